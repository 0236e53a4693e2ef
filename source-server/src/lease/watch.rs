//! The replica's view of the Leases in its namespace: one list and one watch (kube's
//! `watcher`, kept in a reflector store) instead of a GET per source and renewal.
//!
//! Liveness is judged the way client-go's leader election judges it: not from the
//! `renewTime` another replica wrote (its clock is not ours), but from when this replica saw
//! that value change. A Lease whose `renewTime` (or holder) did not change for
//! `leaseDurationSeconds` of our own clock belongs to a replica that stopped renewing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};

use super::LeaseMetrics;

/// What changes when a holder renews or a Lease changes hands.
fn marker(lease: &Lease) -> (Option<String>, Option<String>) {
    let spec = lease.spec.as_ref();
    (
        spec.and_then(|s| s.holder_identity.clone()),
        spec.and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0.to_string()),
    )
}

struct Observed {
    marker: (Option<String>, Option<String>),
    /// When this replica saw `marker` change last.
    at: Instant,
}

/// The Leases as last seen, and when each was last seen renewed.
pub(super) struct View {
    namespace: String,
    store: Store<Lease>,
    observed: Mutex<HashMap<String, Observed>>,
    /// True once the first list is in.
    ready: tokio::sync::watch::Sender<bool>,
}

impl View {
    /// Starts the list and watch of `api`'s Leases; the task ends when the returned view is
    /// dropped by everyone else and the stream ends, or is aborted.
    pub(super) fn start(
        api: Api<Lease>,
        namespace: &str,
        metrics: LeaseMetrics,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let writer = reflector::store::Writer::default();
        let view = Arc::new(Self {
            namespace: namespace.to_string(),
            store: writer.as_reader(),
            observed: Mutex::default(),
            ready: tokio::sync::watch::Sender::new(false),
        });
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        let task = tokio::spawn(run(view.clone(), stream, metrics));
        (view, task)
    }

    /// Waits until the first list is in.
    pub(super) async fn ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    pub(super) fn get(&self, name: &str) -> Option<Arc<Lease>> {
        self.store
            .get(&ObjectRef::new(name).within(&self.namespace))
    }

    /// Every Lease seen.
    pub(super) fn all(&self) -> Vec<Arc<Lease>> {
        self.store.state()
    }

    /// Whether `name` was seen renewed (or taken) within `within`.
    pub(super) fn fresh(&self, name: &str, within: Duration) -> bool {
        self.lock()
            .get(name)
            .is_some_and(|o| o.at.elapsed() < within)
    }

    /// How long since `name` was seen renewed; `None` when it is not known.
    pub(super) fn age(&self, name: &str) -> Option<Duration> {
        self.lock().get(name).map(|o| o.at.elapsed())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Observed>> {
        self.observed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn observe(&self, lease: &Lease) {
        let Some(name) = lease.metadata.name.clone() else {
            return;
        };
        let marker = marker(lease);
        let mut observed = self.lock();
        match observed.get_mut(&name) {
            Some(o) if o.marker == marker => {}
            Some(o) => {
                o.marker = marker;
                o.at = Instant::now();
            }
            None => {
                observed.insert(
                    name,
                    Observed {
                        marker,
                        at: Instant::now(),
                    },
                );
            }
        }
    }
}

async fn run<S>(view: Arc<View>, stream: S, metrics: LeaseMetrics)
where
    S: futures::Stream<Item = Result<watcher::Event<Lease>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => metrics.request("list"),
            Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l)) => view.observe(&l),
            Ok(watcher::Event::Delete(l)) => {
                if let Some(name) = &l.metadata.name {
                    view.lock().remove(name);
                }
            }
            Ok(watcher::Event::InitDone) => {
                // A relist: what is gone was deleted meanwhile.
                let present: std::collections::HashSet<String> = view
                    .all()
                    .iter()
                    .filter_map(|l| l.metadata.name.clone())
                    .collect();
                view.lock().retain(|name, _| present.contains(name));
                view.ready.send_replace(true);
            }
            Err(e) => {
                metrics.request("watch_error");
                tracing::warn!(error = %e, "watching Leases failed; retrying with backoff");
            }
        }
    }
}
