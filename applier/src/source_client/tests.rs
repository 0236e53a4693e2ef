//! The client against a small axum source server on 127.0.0.1:0: SSE resume with
//! `Last-Event-ID`, reconnects, and the polling fallback.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use ferry_proto::{GitRepositorySpec, GitRepositoryStatus, Revision};

use super::*;

#[derive(Default)]
struct Fake {
    sources: Mutex<Vec<SourceView>>,
    /// `(id, event)`; each SSE connection sends those after `Last-Event-ID`, then closes.
    log: Mutex<Vec<(u64, ArtifactEvent)>>,
    /// `Last-Event-ID` of every SSE connection.
    resumed_from: Mutex<Vec<Option<String>>>,
    events_enabled: bool,
}

async fn serve(fake: Arc<Fake>) -> String {
    async fn sources(State(f): State<Arc<Fake>>) -> Response {
        let list = SourceList {
            sources: f.sources.lock().expect("lock").clone(),
        };
        axum::Json(list).into_response()
    }
    async fn one(
        State(f): State<Arc<Fake>>,
        axum::extract::Path((ns, name)): axum::extract::Path<(String, String)>,
    ) -> Response {
        let found = f
            .sources
            .lock()
            .expect("lock")
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
            .cloned();
        match found {
            Some(s) => axum::Json(s).into_response(),
            None => (StatusCode::NOT_FOUND, "no such source").into_response(),
        }
    }
    async fn events(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
        if !f.events_enabled {
            return StatusCode::NOT_FOUND.into_response();
        }
        let last = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        f.resumed_from.lock().expect("lock").push(last.clone());
        let after: u64 = last.and_then(|l| l.parse().ok()).unwrap_or(0);
        let evs: Vec<Result<Event, Infallible>> = f
            .log
            .lock()
            .expect("lock")
            .iter()
            .filter(|(id, _)| *id > after)
            .map(|(id, e)| {
                Ok(Event::default()
                    .event(ARTIFACT_EVENT)
                    .id(id.to_string())
                    .json_data(e)
                    .expect("json"))
            })
            .collect();
        Sse::new(futures::stream::iter(evs)).into_response()
    }
    let app = axum::Router::new()
        .route("/v1/sources", axum::routing::get(sources))
        .route("/v1/sources/{ns}/{name}", axum::routing::get(one))
        .route("/v1/events", axum::routing::get(events))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn artifact_event(name: &str, content: &str) -> ArtifactEvent {
    let digest = Digest::of(content.as_bytes());
    ArtifactEvent {
        kind: Default::default(),
        namespace: "team-a".into(),
        name: name.into(),
        revision: Revision::new(Some("main".into()), "b".repeat(40)).expect("rev"),
        digest,
        size: 10,
        url: format!("/v1/artifacts/sha256/{}", digest.hex()),
    }
}

fn view(ev: &ArtifactEvent) -> SourceView {
    SourceView {
        namespace: ev.namespace.clone(),
        name: ev.name.clone(),
        kind: "GitRepository".into(),
        spec: GitRepositorySpec::default(),
        status: GitRepositoryStatus {
            artifact: Some(ArtifactRef {
                digest: ev.digest,
                size: ev.size,
                compressed_size: None,
                revision: ev.revision.clone(),
                url: ev.url.clone(),
                last_update_time: chrono::Utc::now(),
            }),
            ..GitRepositoryStatus::default()
        },
    }
}

fn fast() -> WatchConfig {
    WatchConfig {
        backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(100)),
        poll_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_secs(5),
    }
}

async fn next(w: &mut SourceWatch) -> ArtifactEvent {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("an event within 10s")
        .expect("watch open")
}

#[tokio::test]
async fn get_source_returns_the_current_artifact_and_404_is_distinguishable() {
    let fake = Arc::new(Fake::default());
    let ev = artifact_event("app", "v1");
    fake.sources.lock().expect("lock").push(view(&ev));
    let client = SourceClient::new(serve(fake).await).expect("client");
    let a = client
        .current_artifact("team-a", "app")
        .await
        .expect("get")
        .expect("has artifact");
    assert_eq!(a.digest, ev.digest);
    let err = client.get_source("team-a", "nope").await.expect_err("404");
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn follows_events_resumes_with_last_event_id_and_reports_each_artifact_once() {
    let fake = Arc::new(Fake {
        events_enabled: true,
        ..Fake::default()
    });
    let v1 = artifact_event("app", "v1");
    fake.sources.lock().expect("lock").push(view(&v1));
    // The log already announced v1 (id 1): the client must not report it twice.
    fake.log.lock().expect("lock").push((1, v1.clone()));
    let client = SourceClient::new(serve(fake.clone()).await).expect("client");
    let mut watch = client.watch(fast());
    assert_eq!(next(&mut watch).await.digest, v1.digest);

    let v2 = artifact_event("app", "v2");
    let other = artifact_event("infra", "i1");
    fake.log.lock().expect("lock").push((2, v2.clone()));
    fake.log.lock().expect("lock").push((3, other.clone()));
    let got = [next(&mut watch).await, next(&mut watch).await];
    assert_eq!(got[0].digest, v2.digest);
    assert_eq!(got[1].name, "infra");

    // Every reconnect after the first resumed from the last id seen, never from scratch.
    let resumed = fake.resumed_from.lock().expect("lock").clone();
    assert_eq!(resumed[0], None);
    assert!(
        resumed.len() >= 2,
        "the server closed the stream; the client came back"
    );
    assert!(
        resumed[1..].iter().all(|r| r.is_some()),
        "reconnects carry Last-Event-ID: {resumed:?}"
    );
    assert!(resumed.contains(&Some("1".into())), "{resumed:?}");
    drop(watch);
}

#[tokio::test]
async fn polls_when_the_event_stream_is_unavailable() {
    let fake = Arc::new(Fake::default());
    let v1 = artifact_event("app", "v1");
    fake.sources.lock().expect("lock").push(view(&v1));
    let client = SourceClient::new(serve(fake.clone()).await).expect("client");
    let mut watch = client.watch(fast());
    assert_eq!(next(&mut watch).await.digest, v1.digest);
    let v2 = artifact_event("app", "v2");
    *fake.sources.lock().expect("lock") = vec![view(&v2)];
    assert_eq!(next(&mut watch).await.digest, v2.digest);
}

#[tokio::test]
async fn recovers_when_the_server_comes_back() {
    // Nothing listens on this port at first.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = SourceClient::new(format!("http://{addr}")).expect("client");
    let mut watch = client.watch(fast());
    tokio::time::sleep(Duration::from_millis(200)).await;

    let fake = Arc::new(Fake {
        events_enabled: true,
        ..Fake::default()
    });
    let v1 = artifact_event("app", "v1");
    fake.sources.lock().expect("lock").push(view(&v1));
    let app_listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("rebind same port");
    let app = axum::Router::new()
        .route(
            "/v1/sources",
            axum::routing::get(|State(f): State<Arc<Fake>>| async move {
                axum::Json(SourceList {
                    sources: f.sources.lock().expect("lock").clone(),
                })
            }),
        )
        .with_state(fake);
    tokio::spawn(async move {
        let _ = axum::serve(app_listener, app).await;
    });
    assert_eq!(next(&mut watch).await.digest, v1.digest);
}
