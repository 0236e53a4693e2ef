//! `GET /v1/events`: artifact events as server-sent events.
//!
//! Each event is `event: artifact`, `id: <epoch>-<sequence>` ([`EventId`]), `data:
//! <ArtifactEvent JSON>`. On connect the client first gets either the events after its
//! `Last-Event-ID`, or — first connection, server restarted, or too far behind — a snapshot:
//! the current artifact of every source, each with the latest id. A client that falls behind
//! the live feed gets a fresh snapshot. So an agent needs only this stream to know every
//! source's current artifact.
//!
//! A stream is served two ways with one [`Client`]: most connections are taken before hyper
//! sees them and served by [`super::stream`], which costs a few hundred bytes per idle client;
//! a request hyper already holds (a reused keep-alive connection, HTTP/2) is served by
//! [`stream`] here.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use ferry_proto::api::EventId;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::access::Access;
use crate::events::{Backlog, Sequenced, frame};
use crate::reconcile::Controller;

/// A comment line every this often keeps idle connections (and proxies) from timing out; the
/// agents' idle timeout is a multiple of it.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What an SSE comment looks like on the wire.
pub const KEEP_ALIVE_FRAME: &str = ":\n\n";

/// Frames written in one go when events queue up (a snapshot is one batch whatever its size).
const BATCH: usize = 64 * 1024;

/// One subscriber: its position in the feed and what it may see.
pub struct Client {
    c: Controller,
    access: Access,
    live: broadcast::Receiver<Sequenced>,
    first: Option<String>,
    _counted: crate::metrics::StreamClient,
}

impl Client {
    /// Subscribes; the first [`Client::next`] returns the replay or the snapshot.
    pub fn new(c: Controller, access: Access, last_id: Option<EventId>) -> Self {
        let sub = c.events().subscribe(last_id);
        let first = match sub.backlog {
            Backlog::Replay(evs) => {
                let mut out = String::new();
                for e in &evs {
                    push(&access, &mut out, e);
                }
                out
            }
            Backlog::Snapshot { id } => snapshot(&c, &access, id),
        };
        let counted = c.metrics().stream_client();
        Self {
            c,
            access,
            live: sub.live,
            first: Some(first),
            _counted: counted,
        }
    }

    /// The next frames to write (possibly empty when nothing visible happened), or `None`
    /// when the feed closed. Cancel-safe: nothing is lost if the future is dropped.
    pub async fn next(&mut self) -> Option<String> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        let mut out = String::new();
        match self.live.recv().await {
            Ok(e) => push(&self.access, &mut out, &e),
            Err(RecvError::Lagged(_)) => return Some(self.resnapshot()),
            Err(RecvError::Closed) => return None,
        }
        // Whatever else is already queued goes in the same write.
        match self.ready(&mut out) {
            Some(()) => Some(out),
            None if out.is_empty() => None,
            None => Some(out),
        }
    }

    /// Appends events that are already queued, up to a batch; `None` when the feed closed.
    fn ready(&mut self, out: &mut String) -> Option<()> {
        while out.len() < BATCH {
            match self.live.try_recv() {
                Ok(e) => push(&self.access, out, &e),
                Err(TryRecvError::Empty) => return Some(()),
                Err(TryRecvError::Lagged(_)) => {
                    // Too far behind: the snapshot supersedes whatever was gathered.
                    *out = self.resnapshot();
                    return Some(());
                }
                Err(TryRecvError::Closed) => return None,
            }
        }
        Some(())
    }

    /// A client that fell behind the ring: every source's current artifact with the latest
    /// id, and the queue skipped to the present (what it missed is in the snapshot).
    fn resnapshot(&mut self) -> String {
        self.live = self.live.resubscribe();
        snapshot(&self.c, &self.access, self.c.events().latest_id())
    }
}

fn push(access: &Access, out: &mut String, e: &Sequenced) {
    if access.sees(&e.event.source()) {
        out.push_str(&e.frame);
    }
}

fn snapshot(c: &Controller, access: &Access, id: EventId) -> String {
    let mut out = String::new();
    for ev in c.current_artifacts() {
        if access.sees(&ev.source()) {
            out.push_str(&frame(id, &ev));
        }
    }
    out
}

/// The client's `Last-Event-ID`; anything unparsable (an id of an older server version,
/// garbage) counts as none and gets a snapshot.
pub fn last_event_id(headers: &HeaderMap) -> Option<EventId> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<EventId>().ok())
}

/// The stream for a request hyper holds.
pub(super) async fn stream(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
) -> Response {
    let client = Client::new(c, access, last_event_id(&headers));
    let mut tick = tokio::time::interval(KEEP_ALIVE);
    tick.reset();
    let body = futures::stream::unfold((client, tick), |(mut client, mut tick)| async move {
        let bytes = loop {
            tokio::select! {
                frames = client.next() => match frames {
                    Some(f) if f.is_empty() => continue,
                    Some(f) => break Bytes::from(f),
                    None => return None,
                },
                _ = tick.tick() => break Bytes::from_static(KEEP_ALIVE_FRAME.as_bytes()),
            }
        };
        Some((Ok::<_, Infallible>(bytes), (client, tick)))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
