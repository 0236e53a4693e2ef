//! `GET /v1/events`: artifact events as server-sent events.
//!
//! Each event is `event: artifact`, `id: <epoch>-<sequence>` ([`EventId`]), `data:
//! <ArtifactEvent JSON>`. On connect
//! the client first gets either the events after its `Last-Event-ID`, or — first connection,
//! server restarted, or too far behind — a snapshot: the current artifact of every source,
//! each with the latest id. A client that falls behind the live feed gets a fresh snapshot.
//! So an agent needs only this stream to know every source's current artifact.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use ferry_proto::api::{ARTIFACT_EVENT, ArtifactEvent, EventId};
use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::access::Access;
use crate::events::Backlog;
use crate::reconcile::Controller;

pub(super) async fn stream(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        // Anything else (an id of an older server version, garbage) gets a snapshot.
        .and_then(|v| v.parse::<EventId>().ok());
    let sub = c.events().subscribe(last_id);
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        let mut live = sub.live;
        let first = match sub.backlog {
            Backlog::Replay(evs) => evs.into_iter().map(|e| (e.id, e.event)).collect(),
            Backlog::Snapshot { id } => snapshot(&c, id),
        };
        for (id, ev) in first {
            if !access.sees(&ev.source()) {
                continue;
            }
            if tx.send(Ok(event(id, &ev))).await.is_err() {
                return;
            }
        }
        loop {
            let batch = match live.recv().await {
                Ok(e) => vec![(e.id, e.event)],
                Err(broadcast::error::RecvError::Lagged(_)) => snapshot(&c, c.events().latest_id()),
                Err(broadcast::error::RecvError::Closed) => return,
            };
            for (id, ev) in batch {
                if !access.sees(&ev.source()) {
                    continue;
                }
                if tx.send(Ok(event(id, &ev))).await.is_err() {
                    return;
                }
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn snapshot(c: &Controller, id: EventId) -> Vec<(EventId, ArtifactEvent)> {
    c.current_artifacts().into_iter().map(|e| (id, e)).collect()
}

fn event(id: EventId, ev: &ArtifactEvent) -> Event {
    Event::default()
        .event(ARTIFACT_EVENT)
        .id(id.to_string())
        .json_data(ev)
        .expect("ArtifactEvent serializes")
}
