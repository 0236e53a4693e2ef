//! Watch streams: newline-delimited `{"type", "object"}` events for one resource (optionally one
//! namespace, filtered by selectors). A watch starts from "now" with synthetic ADDED events
//! (no resourceVersion or `0`), resumes after a given resourceVersion from the event log
//! (410 Expired as an ERROR event when it is too old), or — watch-list, as kubectl 1.35 and
//! helm 4 send it — gives the initial state followed by the `k8s.io/initial-events-end`
//! bookmark. It ends at `timeoutSeconds`, when a fault drops it, or if the client falls too
//! far behind (it then resumes from its last resourceVersion, which the log still holds).
//! With a selector, an object modified into or out of it is reported ADDED or DELETED.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Event, EventType, Store, namespace_of};
use super::verbs::{Target, present};

/// What the client asked for.
#[derive(Debug, Clone, Default)]
pub struct WatchParams {
    /// Resume after this resourceVersion; `None` for unset or `0` (start from the current state).
    pub resource_version: Option<u64>,
    pub send_initial_events: bool,
    pub allow_bookmarks: bool,
    pub timeout: Option<Duration>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// Fault injection: end the stream after this long.
    pub drop_after: Option<Duration>,
    /// Send each object as a one-row `Table` (kubectl get -w) or as its metadata only.
    pub shape: super::shape::Shape,
}

/// Longest watch when the client gives no `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

fn line(kind: &str, object: Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// An object event, in the shape the client asked for.
fn object_line(p: &WatchParams, kind: &str, object: Value) -> Bytes {
    line(kind, p.shape.render(object))
}

fn matches(t: &Target, p: &WatchParams, key: &str, ev_ns: &str, obj: &Value) -> bool {
    key == t.def.key()
        && t.namespace.as_deref().is_none_or(|ns| ns == ev_ns)
        && p.labels.matches(obj)
        && p.fields.matches(obj)
}

/// What a filtered watch reports for an event: a modification that moves the object into
/// the selector is ADDED, out of it DELETED (as the real watch cache does); `None` if the
/// object is outside the selector before and after.
fn translate(t: &Target, p: &WatchParams, ev: &Event) -> Option<Bytes> {
    let now = matches(t, p, &ev.key, &ev.namespace, &ev.object);
    let kind = match (ev.kind, &ev.previous) {
        (EventType::Modified, Some(prev)) => {
            let before = matches(t, p, &ev.key, namespace_of(prev), prev);
            match (before, now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            }
        }
        (kind, _) if now => kind.as_str(),
        _ => return None,
    };
    Some(object_line(p, kind, present(t, Value::clone(&ev.object))))
}

/// Starts a watch: the initial part is computed under the store lock together with the
/// subscription, so no event is lost or duplicated between them.
pub fn start(
    store: &Store,
    t: &Target,
    p: WatchParams,
) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, ApiError> {
    let (rx, initial, last_rv) = {
        let st = store.lock();
        let rx = store.subscribe();
        let mut initial = Vec::new();
        let now = st.current_rv();
        match p.resource_version {
            Some(rv) if !p.send_initial_events => {
                if rv < st.oldest_resumable_rv() {
                    let err = ApiError::new(
                        410,
                        "Expired",
                        format!(
                            "too old resource version: {rv} ({})",
                            st.oldest_resumable_rv() + 1
                        ),
                    );
                    initial.push(line("ERROR", err.to_status()));
                } else {
                    initial.extend(
                        st.events_since(rv)
                            .iter()
                            .filter_map(|ev| translate(t, &p, ev)),
                    );
                }
            }
            _ => {
                for obj in st.list(&t.def.key(), t.namespace.as_deref()) {
                    if matches(t, &p, &t.def.key(), namespace_of(obj), obj) {
                        initial.push(object_line(&p, "ADDED", present(t, obj.clone())));
                    }
                }
                if p.send_initial_events && p.allow_bookmarks {
                    initial.push(line(
                        "BOOKMARK",
                        json!({
                            "kind": t.def.kind,
                            "apiVersion": t.def.api_version(&t.version),
                            "metadata": {
                                "resourceVersion": now.to_string(),
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        }),
                    ));
                }
            }
        }
        (rx, initial, now)
    };
    let limit = p.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let limit = p.drop_after.map_or(limit, |d| d.min(limit));
    let deadline = Instant::now() + limit;
    let t = t.clone();
    let live = stream::unfold(
        (rx, last_rv, t, p),
        move |(mut rx, last, t, p)| async move {
            loop {
                let ev: Arc<Event> = match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Err(_) => return None,
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    // Too far behind: end; the client resumes from its last resourceVersion.
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => return None,
                    Ok(Ok(ev)) => ev,
                };
                if ev.rv <= last {
                    continue;
                }
                if let Some(out) = translate(&t, &p, &ev) {
                    return Some((Ok(out), (rx, ev.rv, t, p)));
                }
            }
        },
    );
    Ok(stream::iter(initial.into_iter().map(Ok)).chain(live))
}
