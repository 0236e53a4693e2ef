//! The controller: one task per source, driven by the desired-state seam.
//!
//! A source task reconciles, then sleeps for its interval (±10% jitter so many sources do not
//! poll in lockstep), for an exponential backoff after a transient failure, or — when stalled
//! (a failure only a change can fix) — until asked. A reconcile request or a spec change wakes
//! it at once. Each reconcile runs the blocking backend under the source's timeout; when it
//! expires the backend is interrupted, and a per-source lock keeps a late finisher from
//! overlapping the next attempt (one fetch per mirror at a time).
//!
//! Conditions follow Flux: `Ready` (True/`Succeeded`, or False with the failure's reason and a
//! message naming the source), `Reconciling` while working or retrying
//! (`Progressing`/`ProgressingWithRetry`), `Stalled` when retrying cannot help, `FetchFailed`,
//! and `ArtifactInStorage` while an artifact is served — a failure keeps the last good one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ferry_proto::GitRepositoryStatus;
use ferry_proto::api::{ArtifactEvent, BucketView, SourceView};
use ferry_proto::{Backoff, SourceKind};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::SourceKey;
use crate::backend::SourceBackend;
use crate::config::{ConfigError, DesiredSource, DesiredState, InvalidSource};
use crate::events::EventHub;
use crate::metrics::Metrics;
use crate::storage::{SourceState, Storage};

mod follow;
mod status;
mod task;

pub(crate) use status::artifact_url;
use status::{
    artifact_event, bucket_view, initial_status, invalid_bucket_view, invalid_view, view,
};
use task::spawn_source;
pub(crate) use task::{holds, jitter, renew, wait_following, wait_holding};

/// Tunables of the loop.
#[derive(Clone, Debug)]
pub struct Options {
    /// Base URL artifacts are advertised at, e.g. `http://127.0.0.1:9090`.
    pub public_url: String,
    /// Artifacts kept per source besides the current one.
    pub keep: usize,
    /// Delays between reconciles of a failing source (after a transient failure).
    pub backoff: Backoff,
    /// Bounds on Helm indexes and charts.
    pub helm: crate::helm::HelmLimits,
    /// Identical events within this interval alert once (Flux's `--rate-limit-interval`).
    pub alert_rate_limit: Duration,
    /// Bounds on webhook calls.
    pub hooks: crate::receiver::HookLimits,
    /// Replicas on one bucket: poll a source only while holding its Lease ([`crate::lease`]).
    pub leases: Option<Arc<crate::lease::Leases>>,
    /// Artifacts written more recently than this are never collected: another replica may be
    /// between writing one and recording it.
    pub gc_grace: Duration,
    /// Bounds of the artifact caches requests are served from ([`crate::serving`]).
    pub serving: crate::serving::ServingOptions,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:9090".into(),
            keep: 2,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            helm: crate::helm::HelmLimits::default(),
            alert_rate_limit: crate::notification::dispatch::DEFAULT_RATE_LIMIT,
            hooks: crate::receiver::HookLimits::default(),
            leases: None,
            gc_grace: Duration::ZERO,
            serving: crate::serving::ServingOptions::default(),
        }
    }
}

struct Slot {
    desired: DesiredSource,
    /// A refused edit of this source's document: the view shows it `Stalled` while `desired`
    /// (the last valid settings) keeps being served.
    rejected: Option<InvalidSource>,
    status: GitRepositoryStatus,
    history: Vec<ferry_proto::Digest>,
    trigger: Arc<Notify>,
    /// The token of a reconcile requested through the API and not started yet; recorded as
    /// `status.lastHandledReconcileAt` once the reconcile it started is done.
    requested: Option<String>,
    task: JoinHandle<()>,
}

pub(crate) struct Inner {
    pub(crate) storage: Storage,
    /// What artifact downloads are served from.
    pub(crate) artifacts: crate::serving::Artifacts,
    backend: Arc<dyn SourceBackend>,
    pub(crate) events: EventHub,
    /// Events for alerting and the agent index ([`crate::notification`]).
    pub(crate) notifications: crate::notification::Notifications,
    pub(crate) metrics: Metrics,
    pub(crate) opts: Options,
    /// The HelmRepositories ([`crate::helm`]).
    pub(crate) helm: crate::helm::Repos,
    /// The webhook receivers ([`crate::receiver`]).
    pub(crate) receivers: crate::receiver::Receivers,
    slots: RwLock<BTreeMap<SourceKey, Slot>>,
    /// Held while an artifact is written and recorded, and while GC decides and deletes, so GC
    /// never sees an artifact whose state record is not written yet.
    pub(crate) storage_lock: tokio::sync::Mutex<()>,
    config_errors: RwLock<Vec<ConfigError>>,
    /// Sources whose config document is refused and that have nothing running: shown `Stalled`.
    invalid: RwLock<BTreeMap<SourceKey, InvalidSource>>,
    ready: AtomicBool,
    /// One lock per source, taken inside the blocking backend call.
    mirror_locks: std::sync::Mutex<BTreeMap<SourceKey, Arc<std::sync::Mutex<()>>>>,
}

/// Handle to the running controller; cheap to clone.
#[derive(Clone)]
pub struct Controller {
    pub(crate) inner: Arc<Inner>,
}

/// Why a reconcile request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TriggerError {
    /// No such source.
    NotFound,
    /// The source is suspended.
    Suspended,
    /// The source's config document is refused; the message says why.
    InvalidSpec(String),
}

impl Controller {
    pub fn new(storage: Storage, backend: Arc<dyn SourceBackend>, opts: Options) -> Self {
        let metrics = Metrics::new();
        let notifications =
            crate::notification::Notifications::new(opts.alert_rate_limit, &metrics);
        let receivers = crate::receiver::Receivers::new(opts.hooks.clone());
        let artifacts = crate::serving::Artifacts::new(storage.clone(), &opts.serving, &metrics);
        if let Some(leases) = &opts.leases {
            leases.start(&opts.public_url, &metrics);
        }
        Self {
            inner: Arc::new(Inner {
                storage,
                artifacts,
                backend,
                events: EventHub::new(),
                notifications,
                metrics,
                opts,
                helm: crate::helm::Repos::default(),
                receivers,
                slots: RwLock::new(BTreeMap::new()),
                storage_lock: tokio::sync::Mutex::new(()),
                config_errors: RwLock::new(Vec::new()),
                invalid: RwLock::new(BTreeMap::new()),
                ready: AtomicBool::new(false),
                mirror_locks: std::sync::Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Follows the desired-state seam until the sender is dropped; then stops every task.
    pub async fn run(self, mut rx: watch::Receiver<Arc<DesiredState>>) {
        loop {
            let desired = rx.borrow_and_update().clone();
            self.apply(&desired).await;
            if rx.changed().await.is_err() {
                break;
            }
        }
        self.stop();
    }

    /// Aborts every source task.
    pub fn stop(&self) {
        for slot in self.inner.write_slots().values() {
            slot.task.abort();
        }
        self.inner.helm.stop();
    }

    /// Ready once the first desired state is applied and persisted states are loaded.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    pub fn config_errors(&self) -> Vec<ConfigError> {
        self.inner
            .config_errors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every GitRepository, running or refused, in key order.
    pub fn sources(&self) -> Vec<SourceView> {
        self.views(SourceKind::GitRepository, view, invalid_view)
    }

    /// One GitRepository (a key of kind `GitRepository`), running or refused.
    pub fn source(&self, key: &SourceKey) -> Option<SourceView> {
        self.view_of(key, view, invalid_view)
    }

    /// Every Bucket, running or refused, in key order.
    pub fn buckets(&self) -> Vec<BucketView> {
        self.views(SourceKind::Bucket, bucket_view, invalid_bucket_view)
    }

    /// One Bucket (a key of kind `Bucket`), running or refused.
    pub fn bucket(&self, key: &SourceKey) -> Option<BucketView> {
        self.view_of(key, bucket_view, invalid_bucket_view)
    }

    fn views<V>(
        &self,
        kind: SourceKind,
        running: fn(&SourceKey, &Slot) -> Option<V>,
        refused: fn(&SourceKey, &InvalidSource) -> Option<V>,
    ) -> Vec<V> {
        let mut all: BTreeMap<SourceKey, V> = self
            .inner
            .read_invalid()
            .iter()
            .filter(|(k, _)| k.kind == kind)
            .filter_map(|(k, i)| Some((k.clone(), refused(k, i)?)))
            .collect();
        all.extend(
            self.inner
                .read_slots()
                .iter()
                .filter(|(k, _)| k.kind == kind)
                .filter_map(|(k, s)| Some((k.clone(), running(k, s)?))),
        );
        all.into_values().collect()
    }

    fn view_of<V>(
        &self,
        key: &SourceKey,
        running: fn(&SourceKey, &Slot) -> Option<V>,
        refused: fn(&SourceKey, &InvalidSource) -> Option<V>,
    ) -> Option<V> {
        let found = self
            .inner
            .read_slots()
            .get(key)
            .and_then(|s| running(key, s));
        found.or_else(|| {
            self.inner
                .read_invalid()
                .get(key)
                .and_then(|i| refused(key, i))
        })
    }

    /// Every source's current artifact, and every registered chart resolution's, as events
    /// (an SSE snapshot).
    pub fn current_artifacts(&self) -> Vec<ArtifactEvent> {
        let mut all: Vec<ArtifactEvent> = self
            .inner
            .read_slots()
            .iter()
            .filter_map(|(k, s)| s.status.artifact.as_ref().map(|a| artifact_event(k, a)))
            .collect();
        all.extend(self.inner.helm.current_artifacts());
        all
    }

    /// The sources serving `digest`, as their current artifact or one of the kept earlier
    /// ones (a chart's: its HelmRepository).
    pub fn artifact_owners(&self, digest: &ferry_proto::Digest) -> Vec<SourceKey> {
        let mut owners: Vec<SourceKey> = self
            .inner
            .read_slots()
            .iter()
            .filter(|(_, s)| {
                s.status.artifact.as_ref().map(|a| &a.digest) == Some(digest)
                    || s.history.contains(digest)
            })
            .map(|(k, _)| k.clone())
            .collect();
        owners.extend(self.inner.helm.owners(digest));
        owners
    }

    /// Every HelmRepository, running or refused.
    pub fn helm_repositories(&self) -> Vec<ferry_proto::api::HelmRepositoryView> {
        self.inner.helm.views()
    }

    /// One HelmRepository (a key of kind `HelmRepository`).
    pub fn helm_repository(&self, key: &SourceKey) -> Option<ferry_proto::api::HelmRepositoryView> {
        self.inner.helm.view(key)
    }

    /// Asks a HelmRepository to fetch its index now.
    pub fn trigger_helm(&self, key: &SourceKey) -> Result<(), TriggerError> {
        self.inner.helm.trigger(key)
    }

    /// Resolves `range` (default `*`) for `chart` in the HelmRepository `repo` to a packed
    /// chart version, and registers the resolution (see [`crate::helm`]).
    pub async fn resolve_chart(
        &self,
        repo: &SourceKey,
        chart: &str,
        range: Option<&str>,
    ) -> Result<ferry_proto::api::HelmChartArtifact, crate::helm::ResolveError> {
        crate::helm::resolve(&self.inner, repo, chart, range).await
    }

    /// Reconciles `key` now; `requested_at` (any token, Flux uses a timestamp) is echoed in
    /// `status.lastHandledReconcileAt` when that reconcile is done.
    pub fn trigger(&self, key: &SourceKey, requested_at: &str) -> Result<(), TriggerError> {
        let mut slots = self.inner.write_slots();
        let Some(slot) = slots.get_mut(key) else {
            let invalid = self.inner.read_invalid();
            let stalled = invalid.get(key).map(|i| status::invalid_message(key, i));
            return Err(stalled.map_or(TriggerError::NotFound, TriggerError::InvalidSpec));
        };
        if slot.desired.spec.suspend() {
            return Err(TriggerError::Suspended);
        }
        slot.requested = Some(requested_at.to_string());
        slot.trigger.notify_one();
        Ok(())
    }

    /// Whether this replica writes `key`'s status in cluster mode: always without Leases;
    /// with them, a running source's only while holding its Lease, so N replicas write it
    /// once, not N times. A source with no poll to coordinate (suspended, or its document
    /// refused) has a holder only if it had one before: then that replica writes; else every
    /// replica writes the same status.
    pub fn writes_status(&self, key: &SourceKey) -> bool {
        let Some(leases) = &self.inner.opts.leases else {
            return true;
        };
        let polled = match key.kind {
            SourceKind::HelmRepository => self.inner.helm.polled(key),
            _ => self
                .inner
                .read_slots()
                .get(key)
                .is_some_and(|s| !s.desired.spec.suspend()),
        };
        if polled {
            leases.holds(key)
        } else {
            !leases.held_elsewhere(key)
        }
    }

    /// Every Receiver, valid or refused (never a token).
    pub fn receivers(&self) -> Vec<ferry_proto::api::ReceiverView> {
        self.inner.receivers.views()
    }

    /// The receiver of a hook path, from memory.
    pub fn hook(&self, path: &str) -> Option<Arc<crate::receiver::Entry>> {
        self.inner.receivers.lookup(path)
    }

    /// Bounds on webhook calls.
    pub fn hook_limits(&self) -> &crate::receiver::HookLimits {
        &self.inner.receivers.limits
    }

    pub fn events(&self) -> &EventHub {
        &self.inner.events
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Events (the server's and the agents') and the agents' reports.
    pub fn notifications(&self) -> &crate::notification::Notifications {
        &self.inner.notifications
    }

    /// What each agent last reported about its namespace (the status page reads this).
    pub fn agents(&self) -> &crate::notification::AgentIndex {
        self.inner.notifications.agents()
    }

    /// Makes the running sources match `desired` (a no-op for unchanged sources).
    pub async fn apply(&self, desired: &DesiredState) {
        let inner = &self.inner;
        *inner
            .config_errors
            .write()
            .unwrap_or_else(|p| p.into_inner()) = desired.errors.clone();
        inner.metrics.set_config_errors(desired.errors.len());
        inner
            .notifications
            .configure(&desired.alerting, &desired.labels);
        *inner.invalid.write().unwrap_or_else(|p| p.into_inner()) = desired.invalid.clone();

        let removed: Vec<SourceKey> = inner
            .read_slots()
            .keys()
            .filter(|k| !desired.sources.contains_key(*k))
            .cloned()
            .collect();
        for key in &removed {
            {
                let mut slots = inner.write_slots();
                if let Some(slot) = slots.remove(key) {
                    slot.task.abort();
                    // Under the lock: once the source is gone from the API, so are its series.
                    inner.metrics.forget(key);
                }
            }
            tracing::info!(source = %key, "source removed");
            if let Err(e) = inner.storage.delete_state(key).await {
                tracing::warn!(source = %key, error = %e, "deleting state of removed source");
            }
        }

        for (key, src) in &desired.sources {
            let existing = inner.read_slots().get(key).map(|s| s.desired == *src);
            match existing {
                Some(true) => {}
                Some(false) => {
                    let mut slots = inner.write_slots();
                    if let Some(slot) = slots.get_mut(key) {
                        slot.task.abort();
                        slot.desired = src.clone();
                        slot.status.observed_generation = src.generation;
                        slot.trigger = Arc::new(Notify::new());
                        slot.task = spawn_source(inner.clone(), src.clone(), slot.trigger.clone());
                    }
                    tracing::info!(source = %key, "source changed");
                }
                None => {
                    let state = match inner.storage.load_state(key).await {
                        Ok(s) => s.unwrap_or_default(),
                        Err(e) => {
                            tracing::warn!(source = %key, error = %e, "ignoring unreadable state");
                            SourceState::default()
                        }
                    };
                    let status = initial_status(&inner.opts.public_url, src, state.clone());
                    let trigger = Arc::new(Notify::new());
                    let task = spawn_source(inner.clone(), src.clone(), trigger.clone());
                    inner.write_slots().insert(
                        key.clone(),
                        Slot {
                            desired: src.clone(),
                            rejected: None,
                            status,
                            history: state.history,
                            trigger,
                            requested: None,
                            task,
                        },
                    );
                    tracing::info!(source = %key, kind = %key.kind, from = %src.spec.location(), "source added");
                }
            }
        }
        let helm_removed = crate::helm::apply(inner, desired).await;
        for gone in inner.receivers.apply(desired) {
            inner.metrics.forget_receiver(&gone);
        }
        for (key, slot) in inner.write_slots().iter_mut() {
            slot.rejected = desired.rejected_edits.get(key).cloned();
        }
        let first = !inner.ready.swap(true, Ordering::AcqRel);
        if first {
            self.forget_unconfigured(desired).await;
        }
        if first || !removed.is_empty() || helm_removed {
            inner.collect_garbage().await;
        }
    }

    /// At start: drops the stored state of sources removed from the config while the server
    /// was down, so GC can collect their artifacts. A source whose document is merely invalid
    /// right now keeps its state (and artifacts) until the document is fixed or removed.
    async fn forget_unconfigured(&self, desired: &DesiredState) {
        let storage = &self.inner.storage;
        let keys = match storage.list_states().await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "listing stored source states");
                return;
            }
        };
        for key in keys {
            let named_in_error = desired
                .errors
                .iter()
                .any(|e| e.object.ends_with(&format!("/{key}")));
            let configured = match key.kind {
                SourceKind::GitRepository | SourceKind::Bucket => {
                    desired.sources.contains_key(&key)
                }
                _ => desired.helm_repositories.contains_key(&key),
            };
            if configured || named_in_error {
                continue;
            }
            tracing::info!(source = %key, "forgetting a source no longer configured");
            if let Err(e) = storage.delete_state(&key).await {
                tracing::warn!(source = %key, error = %e, "deleting state of removed source");
            }
        }
    }
}

impl Inner {
    fn read_slots(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<SourceKey, Slot>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    fn read_invalid(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<SourceKey, InvalidSource>> {
        self.invalid.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_slots(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<SourceKey, Slot>> {
        self.slots.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the token of a pending API reconcile request of `key`, if any.
    pub(super) fn take_requested(&self, key: &SourceKey) -> Option<String> {
        self.write_slots()
            .get_mut(key)
            .and_then(|s| s.requested.take())
    }

    /// Records that the reconcile requested with `token` is done.
    pub(super) fn handled(&self, key: &SourceKey, token: String) {
        self.update_status(key, |slot| {
            slot.status.last_handled_reconcile_at = Some(token)
        });
    }

    fn update_status(&self, key: &SourceKey, f: impl FnOnce(&mut Slot)) {
        if let Some(slot) = self.write_slots().get_mut(key) {
            f(slot);
        }
    }

    /// One GC pass under the storage lock (see [`crate::gc`]); failures are logged, and only
    /// delay collection to the next pass.
    pub(crate) async fn collect_garbage(&self) {
        let _guard = self.storage_lock.lock().await;
        match crate::gc::run(&self.storage, self.opts.keep, self.opts.gc_grace).await {
            Ok(deleted) if !deleted.is_empty() => {
                tracing::info!(count = deleted.len(), "garbage-collected artifacts");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
        }
    }

    fn mirror_lock(&self, key: &SourceKey) -> Arc<std::sync::Mutex<()>> {
        self.mirror_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone()
    }
}
