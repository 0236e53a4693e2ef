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
use std::time::{Duration, Instant};

use chrono::Utc;
use ferry_proto::api::{ArtifactEvent, SourceView};
use ferry_proto::condition::{self, reason, remove_condition, set_condition};
use ferry_proto::{ArtifactRef, Condition, ConditionStatus, GitRepositoryStatus, artifact_path};
use rand::Rng;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::SourceKey;
use crate::backend::{BackendError, Outcome, SourceBackend};
use crate::config::{ConfigError, DesiredSource, DesiredState};
use crate::events::EventHub;
use crate::metrics::Metrics;
use crate::storage::{SourceState, Storage};

const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";

/// Tunables of the loop.
#[derive(Clone, Debug)]
pub struct Options {
    /// Base URL artifacts are advertised at, e.g. `http://127.0.0.1:9090`.
    pub public_url: String,
    /// Artifacts kept per source besides the current one.
    pub keep: usize,
    /// First retry delay after a failure; doubles per consecutive failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:9090".into(),
            keep: 2,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

struct Slot {
    desired: DesiredSource,
    status: GitRepositoryStatus,
    history: Vec<ferry_proto::Digest>,
    trigger: Arc<Notify>,
    task: JoinHandle<()>,
}

pub(crate) struct Inner {
    pub(crate) storage: Storage,
    backend: Arc<dyn SourceBackend>,
    pub(crate) events: EventHub,
    pub(crate) metrics: Metrics,
    opts: Options,
    slots: RwLock<BTreeMap<SourceKey, Slot>>,
    /// Held while an artifact is written and recorded, and while GC decides and deletes, so GC
    /// never sees an artifact whose state record is not written yet.
    pub(crate) storage_lock: tokio::sync::Mutex<()>,
    config_errors: RwLock<Vec<ConfigError>>,
    ready: AtomicBool,
    /// One lock per source, taken inside the blocking backend call.
    mirror_locks: std::sync::Mutex<BTreeMap<SourceKey, Arc<std::sync::Mutex<()>>>>,
}

/// Handle to the running controller; cheap to clone.
#[derive(Clone)]
pub struct Controller {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TriggerError {
    NotFound,
    Suspended,
}

impl Controller {
    pub fn new(storage: Storage, backend: Arc<dyn SourceBackend>, opts: Options) -> Self {
        Self {
            inner: Arc::new(Inner {
                storage,
                backend,
                events: EventHub::new(),
                metrics: Metrics::new(),
                opts,
                slots: RwLock::new(BTreeMap::new()),
                storage_lock: tokio::sync::Mutex::new(()),
                config_errors: RwLock::new(Vec::new()),
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

    pub fn sources(&self) -> Vec<SourceView> {
        self.inner
            .read_slots()
            .iter()
            .map(|(k, s)| view(k, s))
            .collect()
    }

    pub fn source(&self, key: &SourceKey) -> Option<SourceView> {
        self.inner.read_slots().get(key).map(|s| view(key, s))
    }

    /// Every source's current artifact, as events (an SSE snapshot).
    pub fn current_artifacts(&self) -> Vec<ArtifactEvent> {
        self.inner
            .read_slots()
            .iter()
            .filter_map(|(k, s)| s.status.artifact.as_ref().map(|a| artifact_event(k, a)))
            .collect()
    }

    /// Asks a source to reconcile now.
    pub fn trigger(&self, key: &SourceKey) -> Result<(), TriggerError> {
        let slots = self.inner.read_slots();
        let slot = slots.get(key).ok_or(TriggerError::NotFound)?;
        if slot.desired.spec.suspend {
            return Err(TriggerError::Suspended);
        }
        slot.trigger.notify_one();
        Ok(())
    }

    pub fn events(&self) -> &EventHub {
        &self.inner.events
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Makes the running sources match `desired` (a no-op for unchanged sources).
    pub async fn apply(&self, desired: &DesiredState) {
        let inner = &self.inner;
        *inner
            .config_errors
            .write()
            .unwrap_or_else(|p| p.into_inner()) = desired.errors.clone();
        inner.metrics.set_config_errors(desired.errors.len());

        let removed: Vec<SourceKey> = inner
            .read_slots()
            .keys()
            .filter(|k| !desired.sources.contains_key(*k))
            .cloned()
            .collect();
        for key in &removed {
            if let Some(slot) = inner.write_slots().remove(key) {
                slot.task.abort();
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
                            status,
                            history: state.history,
                            trigger,
                            task,
                        },
                    );
                    tracing::info!(source = %key, url = %crate::git::redact_url(&src.spec.url), "source added");
                }
            }
        }
        inner.ready.store(true, Ordering::Release);
        if !removed.is_empty() {
            crate::gc::collect(inner).await;
        }
    }
}

fn view(key: &SourceKey, slot: &Slot) -> SourceView {
    SourceView {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        kind: "GitRepository".into(),
        spec: slot.desired.spec.clone(),
        status: slot.status.clone(),
    }
}

fn artifact_event(key: &SourceKey, a: &ArtifactRef) -> ArtifactEvent {
    ArtifactEvent {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        revision: a.revision.clone(),
        digest: a.digest,
        size: a.size,
        url: a.url.clone(),
    }
}

fn artifact_url(public_url: &str, digest: &ferry_proto::Digest) -> String {
    format!(
        "{}{}",
        public_url.trim_end_matches('/'),
        artifact_path(digest)
    )
}

fn initial_status(
    public_url: &str,
    src: &DesiredSource,
    state: SourceState,
) -> GitRepositoryStatus {
    let mut status = GitRepositoryStatus {
        observed_generation: src.generation,
        artifact: state.artifact.map(|mut a| {
            // The server may be reachable at another address than in its last life.
            a.url = artifact_url(public_url, &a.digest);
            a
        }),
        skipped: state.skipped,
        observed_ignore: state.observed_ignore,
        conditions: Vec::new(),
    };
    let msg = format!("GitRepository {}: reconciliation in progress", src.key);
    set_condition(
        &mut status.conditions,
        Condition::new(
            condition::READY,
            ConditionStatus::Unknown,
            reason::PROGRESSING,
            &msg,
        ),
    );
    if let Some(a) = &status.artifact {
        set_condition(
            &mut status.conditions,
            Condition::new(
                condition::ARTIFACT_IN_STORAGE,
                ConditionStatus::True,
                reason::SUCCEEDED,
                format!("stored artifact for revision '{}'", a.revision),
            ),
        );
    }
    status
}

impl Inner {
    fn read_slots(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<SourceKey, Slot>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_slots(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<SourceKey, Slot>> {
        self.slots.write().unwrap_or_else(|p| p.into_inner())
    }

    fn update_status(&self, key: &SourceKey, f: impl FnOnce(&mut Slot)) {
        if let Some(slot) = self.write_slots().get_mut(key) {
            f(slot);
        }
    }

    /// `--keep`: artifacts kept per source besides the current one.
    pub(crate) fn keep(&self) -> usize {
        self.opts.keep
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

fn spawn_source(inner: Arc<Inner>, src: DesiredSource, trigger: Arc<Notify>) -> JoinHandle<()> {
    tokio::spawn(source_loop(inner, src, trigger))
}

enum Next {
    Interval,
    Backoff,
    WaitForTrigger,
}

async fn source_loop(inner: Arc<Inner>, src: DesiredSource, trigger: Arc<Notify>) {
    if src.spec.suspend {
        inner.update_status(&src.key, |slot| {
            let ready = condition::find_condition(&slot.status.conditions, condition::READY)
                .map_or(ConditionStatus::Unknown, |c| c.status);
            set_condition(
                &mut slot.status.conditions,
                Condition::new(
                    condition::READY,
                    ready,
                    reason::SUSPENDED,
                    format!(
                        "GitRepository {} is suspended; the last artifact stays served",
                        src.key
                    ),
                ),
            );
            remove_condition(&mut slot.status.conditions, condition::RECONCILING);
        });
        return;
    }
    let mut failures: u32 = 0;
    loop {
        let next = reconcile_once(&inner, &src).await;
        let delay = match next {
            Next::Interval => {
                failures = 0;
                Some(jitter(src.interval))
            }
            Next::Backoff => {
                failures = failures.saturating_add(1);
                Some(backoff(&inner.opts, failures))
            }
            Next::WaitForTrigger => {
                failures = failures.saturating_add(1);
                None
            }
        };
        match delay {
            Some(d) => {
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = trigger.notified() => {}
                }
            }
            None => trigger.notified().await,
        }
    }
}

fn jitter(interval: Duration) -> Duration {
    let factor = rand::rng().random_range(0.9..=1.1);
    interval.mul_f64(factor)
}

fn backoff(opts: &Options, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let d = opts.backoff_base.saturating_mul(1u32 << exp);
    jitter(d.min(opts.backoff_max))
}

async fn reconcile_once(inner: &Arc<Inner>, src: &DesiredSource) -> Next {
    let key = &src.key;
    let started = Instant::now();
    let (current, observed_ignore) = {
        let slots = inner.read_slots();
        let status = slots.get(key).map(|s| s.status.clone()).unwrap_or_default();
        (status.artifact.map(|a| a.revision), status.observed_ignore)
    };
    inner.update_status(key, |slot| {
        set_condition(
            &mut slot.status.conditions,
            Condition::new(
                condition::RECONCILING,
                ConditionStatus::True,
                reason::PROGRESSING,
                format!(
                    "GitRepository {key}: checking {}",
                    crate::git::redact_url(&src.spec.url)
                ),
            ),
        );
    });
    // A changed ignore setting needs a rebuild even when the ref did not move.
    let current = current.filter(|_| observed_ignore == src.spec.ignore);
    let result = run_backend(inner, src, current).await;
    let ok = result.is_ok();
    let next = match result {
        Ok(Outcome::Unchanged(rev)) => {
            tracing::debug!(source = %key, revision = %rev, "remote ref unchanged");
            succeed(inner, src, &rev);
            Next::Interval
        }
        Ok(Outcome::Built(rev, built)) => match store(inner, src, &rev, built).await {
            Ok(()) => {
                succeed(inner, src, &rev);
                Next::Interval
            }
            Err(e) => fail(inner, src, &e),
        },
        Err(e) => fail(inner, src, &e),
    };
    inner
        .metrics
        .observe_reconcile(key, started.elapsed().as_secs_f64(), ok);
    next
}

async fn run_backend(
    inner: &Arc<Inner>,
    src: &DesiredSource,
    current: Option<ferry_proto::Revision>,
) -> Result<Outcome, BackendError> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let lock = inner.mirror_lock(&src.key);
    let backend = inner.backend.clone();
    let job_src = src.clone();
    let job_interrupt = interrupt.clone();
    let job = tokio::task::spawn_blocking(move || {
        let _one_at_a_time = lock.lock().unwrap_or_else(|p| p.into_inner());
        if job_interrupt.load(Ordering::Relaxed) {
            return Err(BackendError {
                reason: "GitOperationFailed".into(),
                message: format!("GitRepository {}: interrupted before starting", job_src.key),
                transient: true,
            });
        }
        backend.sync(&job_src, current.as_ref(), &job_interrupt)
    });
    match tokio::time::timeout(src.timeout, job).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(BackendError {
            reason: "GitOperationFailed".into(),
            message: format!("GitRepository {}: backend task failed: {join}", src.key),
            transient: true,
        }),
        Err(_) => {
            interrupt.store(true, Ordering::Relaxed);
            Err(BackendError {
                reason: "GitOperationFailed".into(),
                message: format!(
                    "GitRepository {}: timed out after {:?} (spec.timeout) while syncing {}",
                    src.key,
                    src.timeout,
                    crate::git::redact_url(&src.spec.url)
                ),
                transient: true,
            })
        }
    }
}

/// Writes a new artifact and records it; the old current one moves into the history.
async fn store(
    inner: &Arc<Inner>,
    src: &DesiredSource,
    rev: &ferry_proto::Revision,
    built: crate::backend::Built,
) -> Result<(), BackendError> {
    let key = &src.key;
    let storage_err = |e: crate::storage::StorageError| BackendError {
        reason: reason::STORAGE_OPERATION_FAILED.into(),
        message: format!("GitRepository {key}: {e}"),
        transient: true,
    };
    let gz_size = built.gz.len() as u64;
    let artifact = ArtifactRef {
        digest: built.digest,
        size: built.tar_size,
        compressed_size: Some(gz_size),
        revision: rev.clone(),
        url: artifact_url(&inner.opts.public_url, &built.digest),
        last_update_time: Utc::now(),
    };
    let changed = {
        let _guard = inner.storage_lock.lock().await;
        inner
            .storage
            .put_artifact(&built.digest, built.gz)
            .await
            .map_err(storage_err)?;
        let (prev, mut history) = {
            let slots = inner.read_slots();
            let slot = slots.get(key);
            (
                slot.and_then(|s| s.status.artifact.clone()),
                slot.map(|s| s.history.clone()).unwrap_or_default(),
            )
        };
        let changed = prev.as_ref().map(|p| p.digest) != Some(built.digest);
        if let Some(p) = &prev
            && changed
        {
            history.retain(|d| *d != p.digest && *d != built.digest);
            history.insert(0, p.digest);
            history.truncate(inner.opts.keep);
        }
        // Same content under a new revision keeps its first update time.
        let artifact = match &prev {
            Some(p) if !changed => ArtifactRef {
                last_update_time: p.last_update_time,
                ..artifact.clone()
            },
            _ => artifact.clone(),
        };
        let state = SourceState {
            artifact: Some(artifact.clone()),
            history: history.clone(),
            observed_ignore: src.spec.ignore.clone(),
            skipped: built.skipped.clone(),
        };
        inner
            .storage
            .save_state(key, &state)
            .await
            .map_err(storage_err)?;
        inner.update_status(key, |slot| {
            slot.status.artifact = Some(artifact);
            slot.status.skipped = built.skipped;
            slot.status.observed_ignore = src.spec.ignore.clone();
            slot.history = history;
        });
        changed
    };
    inner.metrics.artifact(key, built.tar_size, gz_size);
    tracing::info!(source = %key, revision = %rev, digest = %built.digest, size = built.tar_size, new = changed, "artifact stored");
    if changed {
        inner.events.publish(artifact_event(key, &artifact));
        crate::gc::collect(inner).await;
    }
    Ok(())
}

fn succeed(inner: &Inner, src: &DesiredSource, rev: &ferry_proto::Revision) {
    inner.update_status(&src.key, |slot| {
        let c = &mut slot.status.conditions;
        let msg = format!("stored artifact for revision '{rev}'");
        set_condition(
            c,
            Condition::new(
                condition::READY,
                ConditionStatus::True,
                reason::SUCCEEDED,
                &msg,
            ),
        );
        set_condition(
            c,
            Condition::new(
                condition::ARTIFACT_IN_STORAGE,
                ConditionStatus::True,
                reason::SUCCEEDED,
                &msg,
            ),
        );
        for t in [
            condition::RECONCILING,
            condition::STALLED,
            condition::FETCH_FAILED,
        ] {
            remove_condition(c, t);
        }
        slot.status.observed_generation = src.generation;
    });
}

fn fail(inner: &Inner, src: &DesiredSource, e: &BackendError) -> Next {
    let key = &src.key;
    // RefNotFound is not transient in the network sense, but a push fixes it: keep retrying.
    let retry = e.transient || e.reason == reason::REF_NOT_FOUND;
    tracing::warn!(source = %key, reason = %e.reason, error = %e.message, retry, "reconcile failed");
    inner.metrics.failure(key, &e.reason);
    let message = if e.message.contains(&key.to_string()) {
        e.message.clone()
    } else {
        format!("GitRepository {key}: {}", e.message)
    };
    inner.update_status(key, |slot| {
        let c = &mut slot.status.conditions;
        set_condition(
            c,
            Condition::new(
                condition::READY,
                ConditionStatus::False,
                &e.reason,
                &message,
            ),
        );
        set_condition(
            c,
            Condition::new(
                condition::FETCH_FAILED,
                ConditionStatus::True,
                &e.reason,
                &message,
            ),
        );
        if retry {
            set_condition(
                c,
                Condition::new(
                    condition::RECONCILING,
                    ConditionStatus::True,
                    PROGRESSING_WITH_RETRY,
                    format!("GitRepository {key}: retrying with backoff"),
                ),
            );
            remove_condition(c, condition::STALLED);
        } else {
            set_condition(
                c,
                Condition::new(
                    condition::STALLED,
                    ConditionStatus::True,
                    &e.reason,
                    &message,
                ),
            );
            remove_condition(c, condition::RECONCILING);
        }
        slot.status.observed_generation = src.generation;
    });
    if retry {
        Next::Backoff
    } else {
        Next::WaitForTrigger
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let opts = Options {
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
            ..Default::default()
        };
        let within = |d: Duration, secs: f64| {
            let s = d.as_secs_f64();
            s >= secs * 0.89 && s <= secs * 1.11
        };
        assert!(within(backoff(&opts, 1), 1.0));
        assert!(within(backoff(&opts, 2), 2.0));
        assert!(within(backoff(&opts, 4), 8.0));
        assert!(within(backoff(&opts, 5), 10.0));
        assert!(within(backoff(&opts, 40), 10.0));
    }
}
