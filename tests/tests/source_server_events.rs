//! `GET /v1/events` as the wire sees it: the streams the source server serves beside hyper
//! (source-server/src/http/stream.rs) speak HTTP/1.1 chunked and HTTP/1.0 close-delimited,
//! are counted while connected, refuse bad heads, end cleanly when the server stops, and leave
//! every other request to the router.

mod source_server_support;

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use ferry_tests::upstream::Upstream;
use source_server_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLIENTS: &str = "ferry_source_event_stream_clients";

/// A raw connection and everything read from it so far.
struct Raw {
    io: TcpStream,
    seen: String,
}

impl Raw {
    async fn send(h: &Harness, request: &str) -> Result<Self> {
        let addr = h.base().trim_start_matches("http://").to_string();
        let mut io = TcpStream::connect(&addr).await?;
        io.write_all(request.as_bytes()).await?;
        Ok(Self {
            io,
            seen: String::new(),
        })
    }

    /// Reads until `needle` has been received (after what earlier waits consumed).
    async fn wait_for(&mut self, needle: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            let n = tokio::time::timeout_at(deadline, self.io.read(&mut buf))
                .await
                .with_context(|| format!("waiting for {needle:?}; got {:?}", self.seen))??;
            if n == 0 {
                bail!("closed before {needle:?}; got {:?}", self.seen);
            }
            self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        Ok(())
    }

    /// Reads to the end of the connection.
    async fn finish(mut self) -> Result<String> {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), self.io.read_to_end(&mut rest))
            .await
            .context("waiting for the server to close")??;
        self.seen.push_str(&String::from_utf8_lossy(&rest));
        Ok(self.seen)
    }
}

const GET11: &str = "GET /v1/events HTTP/1.1\r\nHost: ferry\r\nAccept: text/event-stream\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_clients_are_streamed_counted_and_released() -> Result<()> {
    let up = Upstream::new()?;
    up.write("app.yaml", "kind: ConfigMap\n")?;
    up.commit_push("first")?;
    let first = up.head()?;
    let mut h = Harness::new(&repo_doc("team-a", "app", &up.file_url(), ""))?;
    h.start().await?;
    h.wait_commit("team-a", "app", &first).await?;

    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = Raw::send(&h, GET11).await?;
        c.wait_for("transfer-encoding: chunked\r\n").await?;
        // The snapshot: the source's current artifact.
        c.wait_for(&format!("main@sha1:{first}")).await?;
        assert!(c.seen.starts_with("HTTP/1.1 200 OK\r\n"), "{}", c.seen);
        assert!(c.seen.contains("content-type: text/event-stream\r\n"));
        assert!(c.seen.contains("event: artifact\nid: "));
        clients.push(c);
    }
    // HTTP/1.0 knows no chunks: the stream is the body up to the close.
    let mut old = Raw::send(&h, "GET /v1/events?since=now HTTP/1.0\r\n\r\n").await?;
    old.wait_for(&format!("main@sha1:{first}")).await?;
    assert!(!old.seen.contains("transfer-encoding"), "{}", old.seen);
    assert!(
        old.seen.contains("\r\n\r\nevent: artifact\n"),
        "{}",
        old.seen
    );
    h.wait_metric(CLIENTS, |v| v == 4.0).await?;

    // A new revision reaches every client as one chunk.
    up.write("app.yaml", "kind: ConfigMap\nmetadata: {name: b}\n")?;
    up.commit_push("second")?;
    let second = up.head()?;
    h.reconcile("team-a", "app").await?;
    for c in &mut clients {
        c.wait_for(&format!("main@sha1:{second}")).await?;
    }
    old.wait_for(&format!("main@sha1:{second}")).await?;

    // Clients that hang up are released.
    drop(clients);
    h.wait_metric(CLIENTS, |v| v == 1.0).await?;
    drop(old);
    h.wait_metric(CLIENTS, |v| v == 0.0).await?;

    // Bad heads are refused with a status, not served.
    let body = Raw::send(
        &h,
        "GET /v1/events HTTP/1.1\r\nHost: f\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await?
    .finish()
    .await?;
    assert!(body.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{body}");
    assert!(body.contains("takes no body"), "{body}");
    let huge = format!(
        "GET /v1/events HTTP/1.1\r\nHost: f\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let refused = Raw::send(&h, &huge).await?.finish().await?;
    assert!(
        refused.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{refused}"
    );

    // Everything else is the router's, with the bytes read while routing put back.
    let near = Raw::send(
        &h,
        "GET /v1/eventsx HTTP/1.1\r\nHost: f\r\nConnection: close\r\n\r\n",
    )
    .await?
    .finish()
    .await?;
    assert!(near.starts_with("HTTP/1.1 404"), "{near}");
    let health = Raw::send(
        &h,
        "GET /healthz HTTP/1.1\r\nHost: f\r\nConnection: close\r\n\r\n",
    )
    .await?
    .finish()
    .await?;
    assert!(
        health.starts_with("HTTP/1.1 200 OK") && health.ends_with("ok"),
        "{health}"
    );
    assert_eq!(h.metric(CLIENTS).await?, 0.0);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_ends_every_stream() -> Result<()> {
    let up = Upstream::new()?;
    up.write("app.yaml", "kind: ConfigMap\n")?;
    up.commit_push("first")?;
    let commit = up.head()?;
    let mut h = Harness::new(&repo_doc("team-a", "app", &up.file_url(), ""))?;
    h.start().await?;
    h.wait_commit("team-a", "app", &commit).await?;
    let mut c = Raw::send(&h, GET11).await?;
    c.wait_for(&format!("main@sha1:{commit}")).await?;
    h.stop().await;
    let all = c.finish().await?;
    assert!(
        all.ends_with("\r\n0\r\n\r\n"),
        "the last chunk ends the stream: {all:?}"
    );
    Ok(())
}
