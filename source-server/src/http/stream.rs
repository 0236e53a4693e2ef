//! Event streams served beside hyper, so that 10 000 idle agents cost little memory.
//!
//! Under hyper, an idle `GET /v1/events` connection held about 36 KiB (its read and write
//! buffers, the service and body stream, the SSE encoder), 370 MiB for 10 000 agents. An
//! event stream needs none of that: after the request head it is one-way text. So the listener
//! is wrapped: [`sniffing`] reads the first bytes of every accepted connection; a connection
//! that starts with `GET /v1/events` is served here — head parsed with `httparse` and bounded,
//! the same authentication as the router ([`super::access::identify`]), then the frames of a
//! [`Client`] written as they come — and every other connection goes on to axum with the bytes
//! read so far put back in front of it ([`Conn`]). Requests hyper already holds (a reused
//! keep-alive connection, HTTP/2) are served by the router's [`super::events::stream`].
//!
//! An idle client here is its task, its socket, its queue position and what it may see. One
//! shared tick drives every client's keep-alive comment. A client that stops reading is
//! dropped after [`WRITE_TIMEOUT`]; one that falls behind the feed gets a snapshot (the queue
//! is shared, so a slow reader holds no per-client backlog).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::access::{self, Tenancy};
use super::events::{Client, KEEP_ALIVE, KEEP_ALIVE_FRAME, last_event_id};
use crate::reconcile::Controller;

/// The request line of an event stream, up to the target's end (a space or a query).
const PREFIX: &[u8] = b"GET /v1/events";
/// A request head larger than this is refused (431).
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// Time to send the first bytes (then hyper's own timeouts apply) or a whole event-stream head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that has not taken a write within this is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What event streams need from the server.
pub struct Events {
    pub controller: Controller,
    pub tenancy: Option<Arc<Tenancy>>,
    /// Turns `true` when the server stops: every stream ends with its last chunk.
    pub stop: watch::Receiver<bool>,
}

struct Shared {
    events: Events,
    keep_alive: watch::Receiver<u64>,
}

/// The listener axum serves: the accepted connections that are not event streams.
pub struct Sniffing {
    rx: mpsc::Receiver<(Conn, SocketAddr)>,
    local: SocketAddr,
}

/// Wraps `listener`; event streams are served from the returned listener's own task.
pub fn sniffing(listener: TcpListener, events: Events) -> io::Result<Sniffing> {
    let local = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(accept(listener, events, tx));
    Ok(Sniffing { rx, local })
}

impl axum::serve::Listener for Sniffing {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (the server is stopping): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

async fn accept(listener: TcpListener, events: Events, tx: mpsc::Sender<(Conn, SocketAddr)>) {
    let mut stop = events.stop.clone();
    let (tick_tx, keep_alive) = watch::channel(0u64);
    let shared = Arc::new(Shared { events, keep_alive });
    let mut tick = tokio::time::interval(KEEP_ALIVE);
    tick.reset();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((io, peer)) => {
                    tokio::spawn(route(io, peer, tx.clone(), shared.clone()));
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors, say: accepting again at once would spin.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = tick.tick() => tick_tx.send_modify(|n| *n = n.wrapping_add(1)),
            _ = stopped(&mut stop) => return,
            _ = tx.closed() => return,
        }
    }
}

/// Returns once the server stops (never, if whoever could stop it is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Reads until the request line tells whether this is an event stream.
async fn route(
    mut io: TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<(Conn, SocketAddr)>,
    shared: Arc<Shared>,
) {
    let mut head = Vec::with_capacity(1024);
    let is_stream = tokio::time::timeout(HEAD_TIMEOUT, async {
        loop {
            let k = head.len().min(PREFIX.len());
            if head[..k] != PREFIX[..k] {
                return Ok(false);
            }
            if head.len() > PREFIX.len() {
                return Ok(matches!(head[PREFIX.len()], b' ' | b'?'));
            }
            if io.read_buf(&mut head).await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
        }
    })
    .await;
    match is_stream {
        Ok(Ok(true)) => serve(io, head, &shared).await,
        // Not a stream, or undecided in time: hyper answers (and times out) as for any request.
        Ok(Ok(false)) | Err(_) => {
            let _ = tx.send((Conn::new(head, io), peer)).await;
        }
        // Closed or failed before saying anything.
        Ok(Err(_)) => {}
    }
}

/// The parsed request head of an event stream.
struct Head {
    http10: bool,
    headers: HeaderMap,
}

enum Refused {
    TooLarge,
    Bad(&'static str),
}

async fn serve(mut io: TcpStream, mut buf: Vec<u8>, shared: &Shared) {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut io, &mut buf)).await {
        Ok(Ok(Ok(head))) => head,
        Ok(Ok(Err(Refused::TooLarge))) => {
            let refusal = super::error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request head over {MAX_HEAD} bytes"),
            );
            return respond(io, refusal).await;
        }
        Ok(Ok(Err(Refused::Bad(why)))) => {
            return respond(io, super::error(StatusCode::BAD_REQUEST, why)).await;
        }
        Ok(Err(_)) | Err(_) => return,
    };
    drop(buf);
    let events = &shared.events;
    let access = match access::identify(
        events.tenancy.as_deref(),
        &head.headers,
        &Method::GET,
        "/v1/events",
    )
    .await
    {
        Ok(access) => access,
        Err(refusal) => return respond(io, refusal).await,
    };
    let mut client = Client::new(
        events.controller.clone(),
        access,
        last_event_id(&head.headers),
    );
    let chunked = !head.http10;
    drop(head);
    // Events are small and must not wait for the next one to fill a segment.
    let _ = io.set_nodelay(true);
    let response_head: &[u8] = if chunked {
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"
    };
    if write(&mut io, false, response_head).await.is_err() {
        return;
    }
    let mut keep_alive = shared.keep_alive.clone();
    keep_alive.mark_unchanged();
    let mut stop = events.stop.clone();
    let mut scratch = [0u8; 64];
    loop {
        let frames = tokio::select! {
            frames = client.next() => match frames {
                Some(f) if f.is_empty() => continue,
                Some(f) => std::borrow::Cow::Owned(f),
                None => break,
            },
            changed = keep_alive.changed() => {
                if changed.is_err() {
                    break;
                }
                std::borrow::Cow::Borrowed(KEEP_ALIVE_FRAME)
            }
            _ = stopped(&mut stop) => break,
            // The client sends nothing after its request; readable means it closed (or
            // pipelined bytes nobody will answer, which are dropped).
            ready = io.readable() => {
                if ready.is_err() {
                    return;
                }
                match io.try_read(&mut scratch) {
                    Ok(0) => return,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => return,
                }
            }
        };
        if write(&mut io, chunked, frames.as_bytes()).await.is_err() {
            return;
        }
    }
    if chunked {
        let _ = write(&mut io, false, b"0\r\n\r\n").await;
    }
    let _ = io.shutdown().await;
}

async fn read_head(io: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Result<Head, Refused>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(_)) => return Ok(head(&req)),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Ok(Err(Refused::TooLarge)),
            Err(_) => return Ok(Err(Refused::Bad("malformed request head"))),
        }
        if buf.len() >= MAX_HEAD {
            return Ok(Err(Refused::TooLarge));
        }
        let room = MAX_HEAD - buf.len();
        if (&mut *io).take(room as u64).read_buf(buf).await? == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
    }
}

fn head(req: &httparse::Request<'_, '_>) -> Result<Head, Refused> {
    let mut headers = HeaderMap::new();
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| Refused::Bad("invalid header name"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| Refused::Bad("invalid header value"))?;
        headers.append(name, value);
    }
    let has_body = headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || headers.contains_key(http::header::TRANSFER_ENCODING);
    if has_body {
        return Err(Refused::Bad("GET /v1/events takes no body"));
    }
    Ok(Head {
        http10: req.version == Some(0),
        headers,
    })
}

/// Writes a whole response (a refusal) and closes.
async fn respond(mut io: TcpStream, response: Response) {
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let mut out = format!("HTTP/1.1 {}\r\n", parts.status).into_bytes();
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    if write(&mut io, false, &out).await.is_ok() {
        let _ = io.shutdown().await;
    }
}

/// One write (a chunk when `chunked`), given up after [`WRITE_TIMEOUT`].
async fn write(io: &mut TcpStream, chunked: bool, data: &[u8]) -> io::Result<()> {
    let framed;
    let bytes = if chunked {
        let mut out = Vec::with_capacity(data.len() + 12);
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        framed = out;
        &framed[..]
    } else {
        data
    };
    match tokio::time::timeout(WRITE_TIMEOUT, io.write_all(bytes)).await {
        Ok(written) => written,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "event stream client not reading",
        )),
    }
}

/// An accepted connection handed to hyper, with the bytes read while routing it first.
pub struct Conn {
    read: Vec<u8>,
    pos: usize,
    io: TcpStream,
}

impl Conn {
    fn new(read: Vec<u8>, io: TcpStream) -> Self {
        Self { read, pos: 0, io }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.read.len() {
            let rest = &this.read[this.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.pos += n;
            if this.pos == this.read.len() {
                this.read = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_read_while_routing_come_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(b"rest").await.expect("write");
        });
        let (io, _) = listener.accept().await.expect("accept");
        let mut conn = Conn::new(b"GET /".to_vec(), io);
        let mut all = String::new();
        conn.read_to_string(&mut all).await.expect("read");
        client.await.expect("client");
        assert_eq!(all, "GET /rest");
    }
}
