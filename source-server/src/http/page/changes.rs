//! `GET /changes`: a server-sent `change` event whenever something the page shows may have
//! changed — a new artifact, an agent's report, an event from an agent or a source — so the
//! page re-fetches its content at once instead of polling (the data is a placeholder: browsers
//! drop events without data). Bursts are coalesced: at most one
//! event per [`COALESCE`].

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::reconcile::Controller;

/// Changes closer together than this are announced once.
const COALESCE: Duration = Duration::from_millis(100);

pub(in crate::http) async fn stream(
    State(c): State<Controller>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel(1);
    let mut artifacts = c.events().subscribe(None).live;
    let mut events = c.notifications().subscribe();
    let mut reports = c.agents().changes();
    tokio::spawn(async move {
        loop {
            let open = tokio::select! {
                r = artifacts.recv() => !matches!(r, Err(broadcast::error::RecvError::Closed)),
                r = events.recv() => !matches!(r, Err(broadcast::error::RecvError::Closed)),
                r = reports.changed() => r.is_ok(),
            };
            if !open {
                return;
            }
            tokio::time::sleep(COALESCE).await;
            // Whatever arrived meanwhile is covered by this one event.
            artifacts = artifacts.resubscribe();
            events = events.resubscribe();
            reports.mark_unchanged();
            if tx
                .send(Ok(Event::default().event("change").data("1")))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
