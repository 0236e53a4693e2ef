//! One source's task: the loop (interval with jitter, backoff, wait for a request), one
//! reconcile (backend call under the timeout, one at a time per mirror), and recording a new
//! artifact.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use ferry_proto::ArtifactRef;
use ferry_proto::condition::{Progress, reason, record};
use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::Inner;
use super::status::{artifact_event, artifact_url, fail, succeed};
use crate::backend::{BackendError, Outcome};
use crate::config::DesiredSource;
use crate::lease::Hold;
use crate::storage::SourceState;

pub(super) fn spawn_source(
    inner: Arc<Inner>,
    src: DesiredSource,
    trigger: Arc<Notify>,
) -> JoinHandle<()> {
    tokio::spawn(source_loop(inner, src, trigger))
}

pub(super) enum Next {
    Interval,
    Backoff,
    WaitForTrigger,
}

pub(super) async fn source_loop(inner: Arc<Inner>, src: DesiredSource, trigger: Arc<Notify>) {
    if src.spec.suspend() {
        let message = format!(
            "{} {} is suspended; the last artifact stays served",
            src.key.kind, src.key
        );
        inner.update_status(&src.key, |slot| {
            record(
                &mut slot.status.conditions,
                src.generation,
                Progress::Suspended { message: &message },
            );
        });
        return;
    }
    let mut failures: u32 = 0;
    let span = tracing::info_span!(
        "reconcile",
        kind = %src.key.kind,
        namespace = %src.key.namespace,
        name = %src.key.name,
    );
    let mut followed = None;
    loop {
        if let Some(leases) = &inner.opts.leases
            && holds(leases, &src.key).await == Hold::Elsewhere
        {
            // Another replica polls this source: serve what it records in the store, and pass
            // a reconcile request on to it.
            if leases.follow_due(&src.key, &followed, src.interval) {
                followed = Some(leases.followed(&src.key));
                follow(&inner, &src).await;
            }
            wait_following(leases, &src.key, src.interval, &trigger).await;
            continue;
        }
        followed = None;
        // Taken before the reconcile starts: a request that arrives during it is handled by
        // the next one (its notification is kept), not credited to this one.
        let requested = inner.take_requested(&src.key);
        // Set when another replica passes a request on during the reconcile: one more follows.
        let again = AtomicBool::new(false);
        let next = match &inner.opts.leases {
            // Requests passed on while the reconcile runs are noticed.
            Some(leases) => tokio::select! {
                next = reconcile_once(&inner, &src).instrument(span.clone()) => next,
                never = renew(leases, &src.key, &again) => match never {},
            },
            None => reconcile_once(&inner, &src).instrument(span.clone()).await,
        };
        if let Some(token) = requested {
            inner.handled(&src.key, token);
        }
        if again.load(Ordering::Relaxed) {
            continue;
        }
        let delay = match next {
            Next::Interval => {
                failures = 0;
                Some(jitter(src.interval))
            }
            Next::Backoff => {
                failures = failures.saturating_add(1);
                Some(inner.opts.backoff.delay(failures))
            }
            Next::WaitForTrigger => {
                failures = failures.saturating_add(1);
                None
            }
        };
        match (delay, &inner.opts.leases) {
            (Some(d), None) => {
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = trigger.notified() => {}
                }
            }
            (None, None) => trigger.notified().await,
            (d, Some(leases)) => wait_holding(leases, &src.key, d, &trigger).await,
        }
    }
}

/// The holder's wait between reconciles: `delay` (`None`: until asked), ended early by a
/// trigger, by losing the Lease, or by a request another replica passed on.
pub(crate) async fn wait_holding(
    leases: &crate::lease::Leases,
    key: &crate::SourceKey,
    delay: Option<Duration>,
    trigger: &Notify,
) {
    let until = delay.map(|d| tokio::time::Instant::now() + d);
    loop {
        let step = match until {
            Some(t) => leases.period().min(t - tokio::time::Instant::now().min(t)),
            None => leases.period(),
        };
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            () = trigger.notified() => break,
        }
        if until.is_some_and(|t| tokio::time::Instant::now() >= t)
            || holds(leases, key).await != Hold::Held
        {
            break;
        }
    }
}

/// A follower's wait before it looks at the store and the Lease again: a period (at most the
/// interval); a trigger meanwhile is passed on to the holder.
pub(crate) async fn wait_following(
    leases: &crate::lease::Leases,
    key: &crate::SourceKey,
    interval: Duration,
    trigger: &Notify,
) {
    tokio::select! {
        () = tokio::time::sleep(jitter(leases.period()).min(interval)) => {}
        () = trigger.notified() => {
            if let Err(e) = leases.request(key).await {
                tracing::warn!(source = %key, error = %e, "passing a reconcile request to the lease holder");
            }
        }
    }
}

/// Takes `key`'s Lease when free, or says who holds it; an API failure counts as not holding
/// it (another replica may hold it, and a poll by two replicas is what the Lease is there to
/// prevent).
pub(crate) async fn holds(leases: &crate::lease::Leases, key: &crate::SourceKey) -> Hold {
    match leases.try_hold(key).await {
        Ok(hold) => hold,
        Err(e) => {
            tracing::warn!(source = %key, error = %e, "lease not renewed; not polling");
            Hold::Elsewhere
        }
    }
}

/// Looks at `key`'s Lease every period, forever (raced against the reconcile; the heartbeat
/// keeps it held); a request passed on meanwhile sets `again`.
pub(crate) async fn renew(
    leases: &crate::lease::Leases,
    key: &crate::SourceKey,
    again: &AtomicBool,
) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(leases.period()).await;
        if holds(leases, key).await == Hold::Requested {
            again.store(true, Ordering::Relaxed);
        }
    }
}

/// A replica that does not poll `src` serves what its poller recorded: the state record in
/// the shared store. A new artifact there is served and announced as if fetched here.
async fn follow(inner: &Arc<Inner>, src: &DesiredSource) {
    match super::follow::follow_record(inner, src).await {
        // Served already or just now: Ready as the poller's record says.
        Ok(Some((artifact, _))) => succeed(inner, src, &artifact.revision),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(source = %src.key, error = %e, "reading the poller's state record");
        }
    }
}

pub(crate) fn jitter(interval: Duration) -> Duration {
    let factor = rand::rng().random_range(0.9..=1.1);
    interval.mul_f64(factor)
}

pub(super) async fn reconcile_once(inner: &Arc<Inner>, src: &DesiredSource) -> Next {
    let key = &src.key;
    let started = Instant::now();
    if src.spec.imported() {
        let next = super::follow::imported(inner, src).await;
        let ok = !matches!(next, Next::Backoff);
        inner
            .metrics
            .observe_reconcile(key, started.elapsed().as_secs_f64(), ok);
        return next;
    }
    let (current, observed_ignore) = {
        let slots = inner.read_slots();
        let status = slots.get(key).map(|s| s.status.clone()).unwrap_or_default();
        (status.artifact.map(|a| a.revision), status.observed_ignore)
    };
    let message = format!("{} {key}: checking {}", key.kind, src.spec.location());
    inner.update_status(key, |slot| {
        record(
            &mut slot.status.conditions,
            src.generation,
            Progress::Progressing { message: &message },
        );
    });
    // A changed ignore setting needs a rebuild even when the ref did not move.
    let current = current.filter(|_| observed_ignore.as_deref() == src.spec.ignore());
    let result = run_backend(inner, src, current).await;
    let ok = result.is_ok();
    let next = match result {
        Ok(Outcome::Unchanged(rev)) => {
            tracing::debug!(revision = %rev, "remote ref unchanged");
            succeed(inner, src, &rev);
            Next::Interval
        }
        // `store` records success itself, before it announces the artifact.
        Ok(Outcome::Built(rev, built)) => match store(inner, src, &rev, built).await {
            Ok(()) => Next::Interval,
            Err(e) => failed(inner, src, &e),
        },
        Err(e) => failed(inner, src, &e),
    };
    inner
        .metrics
        .observe_reconcile(key, started.elapsed().as_secs_f64(), ok);
    next
}

/// Records the failure and decides what comes next: a backoff, or waiting for a change.
fn failed(inner: &Inner, src: &DesiredSource, e: &BackendError) -> Next {
    fail(inner, src, e);
    if e.retryable() {
        Next::Backoff
    } else {
        Next::WaitForTrigger
    }
}

pub(super) async fn run_backend(
    inner: &Arc<Inner>,
    src: &DesiredSource,
    current: Option<ferry_proto::Revision>,
) -> Result<Outcome, BackendError> {
    let interrupt = Arc::new(AtomicBool::new(false));
    // Also interrupt when this future is dropped (the source was changed or removed mid-way):
    // the blocking job would otherwise run on and hold the mirror.
    let _on_drop = InterruptOnDrop(interrupt.clone());
    let lock = inner.mirror_lock(&src.key);
    let failed_reason = match src.key.kind {
        ferry_proto::SourceKind::Bucket => reason::BUCKET_OPERATION_FAILED,
        _ => reason::GIT_OPERATION_FAILED,
    };
    let backend = inner.backend.clone();
    let job_src = src.clone();
    let job_interrupt = interrupt.clone();
    let job = tokio::task::spawn_blocking(move || {
        let _one_at_a_time = lock.lock().unwrap_or_else(|p| p.into_inner());
        if job_interrupt.load(Ordering::Relaxed) {
            return Err(BackendError {
                reason: failed_reason,
                message: format!(
                    "{} {}: interrupted before starting",
                    job_src.key.kind, job_src.key
                ),
                transient: true,
            });
        }
        backend.sync(&job_src, current.as_ref(), &job_interrupt)
    });
    match tokio::time::timeout(src.timeout, job).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(BackendError {
            reason: failed_reason,
            message: format!("{} {}: backend task failed: {join}", src.key.kind, src.key),
            transient: true,
        }),
        Err(_) => {
            interrupt.store(true, Ordering::Relaxed);
            Err(BackendError {
                reason: failed_reason,
                message: format!(
                    "{} {}: timed out after {:?} (spec.timeout) while syncing {}",
                    src.key.kind,
                    src.key,
                    src.timeout,
                    src.spec.location()
                ),
                transient: true,
            })
        }
    }
}

pub(super) struct InterruptOnDrop(Arc<AtomicBool>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Writes a new artifact and records it (status Ready) before announcing it, so whoever reacts
/// to the event (an agent, the status page) reads a status that already says so; the old
/// current one moves into the history.
pub(super) async fn store(
    inner: &Arc<Inner>,
    src: &DesiredSource,
    rev: &ferry_proto::Revision,
    built: crate::backend::Built,
) -> Result<(), BackendError> {
    let key = &src.key;
    let storage_err = |e: crate::storage::StorageError| BackendError {
        reason: reason::STORAGE_OPERATION_FAILED,
        message: format!("{} {key}: {e}", key.kind),
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
            observed_ignore: src.spec.ignore().map(str::to_string),
            skipped: built.skipped.clone(),
            ..Default::default()
        };
        inner
            .storage
            .save_state(key, &state)
            .await
            .map_err(storage_err)?;
        // Last: agents reading the store follow the pointer to an artifact already stored.
        inner
            .storage
            .put_pointer(&artifact_event(key, &artifact))
            .await
            .map_err(storage_err)?;
        inner.update_status(key, |slot| {
            slot.status.artifact = Some(artifact);
            slot.status.skipped = built.skipped;
            slot.status.observed_ignore = src.spec.ignore().map(str::to_string);
            slot.history = history;
        });
        changed
    };
    if let Some(leases) = &inner.opts.leases {
        leases.recorded(key).await;
    }
    succeed(inner, src, rev);
    inner.metrics.artifact(key, built.tar_size, gz_size);
    inner.metrics.downloaded(key, built.downloaded);
    tracing::info!(revision = %rev, digest = %built.digest, size = built.tar_size, new = changed, "artifact stored");
    if changed {
        inner.notifications.emit_source(
            key,
            ferry_proto::api::Severity::Info,
            crate::notification::NEW_ARTIFACT,
            &format!("stored artifact for revision '{rev}'"),
            Some(rev),
        );
        inner.events.publish(artifact_event(key, &artifact));
        inner.collect_garbage().await;
    }
    Ok(())
}
