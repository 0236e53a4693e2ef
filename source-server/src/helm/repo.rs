//! One repository's task: fetch the index on its interval (conditional GET), swap in the new
//! table, re-resolve the registered resolutions; and following the desired state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::Utc;
use ferry_proto::HelmIndexArtifact;
use ferry_proto::api::HelmRepositoryView;
use ferry_proto::condition::{self, Progress, reason, record};
use ferry_proto::{HelmRepositoryStatus, Revision, SourceKey, SourceKind};
use tokio::sync::Notify;

use super::constraint::Constraint;
use super::fetch::{IndexFetch, RepoClient, Validators};
use super::index::Resolution;
use super::resolve::{ensure, source_id};
use super::{Index, Slot};
use crate::config::{DesiredHelmRepository, DesiredState};
use crate::lease::Hold;
use crate::reconcile::Inner;
use crate::storage::SourceState;

fn client(d: &DesiredHelmRepository) -> Result<RepoClient, String> {
    RepoClient::new(
        &d.spec.url,
        d.secret.as_ref(),
        d.cert_secret.as_ref(),
        d.spec.pass_credentials,
        d.timeout,
    )
    .map_err(|e| format!("HelmRepository {}: {e}", d.key))
}

/// Makes the running repositories match `desired`; true when one was removed (its chart
/// artifacts may now be collected).
pub(crate) async fn apply(inner: &Arc<Inner>, desired: &DesiredState) -> bool {
    let repos = &inner.helm;
    *repos.invalid.write().unwrap_or_else(|p| p.into_inner()) = desired
        .invalid_helm
        .iter()
        .map(|(key, bad)| {
            let mut status = HelmRepositoryStatus {
                observed_generation: bad.generation,
                ..Default::default()
            };
            let message = format!(
                "HelmRepository {key}: invalid spec: {}: {} ({}, document {})",
                bad.error.field, bad.error.message, bad.error.file, bad.error.document
            );
            record(
                &mut status.conditions,
                bad.generation,
                Progress::Stalled {
                    reason: reason::INVALID_SPEC,
                    message: &message,
                },
            );
            let view = HelmRepositoryView {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                kind: SourceKind::HelmRepository.to_string(),
                spec: ferry_proto::HelmRepositorySpec {
                    url: crate::git::redact_url(&bad.spec.url),
                    ..bad.spec.clone()
                },
                status,
            };
            (key.clone(), view)
        })
        .collect();
    let removed: Vec<SourceKey> = repos
        .read()
        .keys()
        .filter(|k| !desired.helm_repositories.contains_key(*k))
        .cloned()
        .collect();
    for key in &removed {
        if let Some(slot) = repos.write().remove(key) {
            slot.task.abort();
            inner.metrics.forget_helm(key);
        }
        tracing::info!(repository = %key, "HelmRepository removed");
        if let Err(e) = inner.storage.delete_state(key).await {
            tracing::warn!(repository = %key, error = %e, "deleting state of removed HelmRepository");
        }
    }
    for (key, d) in &desired.helm_repositories {
        let same = repos.read().get(key).map(|s| s.desired == *d);
        match same {
            Some(true) => {}
            Some(false) => {
                repos.update(key, |slot| {
                    slot.task.abort();
                    slot.desired = d.clone();
                    slot.client = client(d);
                    // New credentials or URL: fetch the whole index again.
                    slot.validators = Validators::default();
                    slot.status.observed_generation = d.generation;
                    slot.trigger = Arc::new(Notify::new());
                    slot.task =
                        tokio::spawn(repo_loop(inner.clone(), d.clone(), slot.trigger.clone()));
                });
                tracing::info!(repository = %key, "HelmRepository changed");
            }
            None => {
                let state = match inner.storage.load_state(key).await {
                    Ok(s) => s.unwrap_or_default(),
                    Err(e) => {
                        tracing::warn!(repository = %key, error = %e, "ignoring unreadable state");
                        SourceState::default()
                    }
                };
                let mut status = HelmRepositoryStatus {
                    observed_generation: d.generation,
                    artifact: state.index,
                    ..Default::default()
                };
                let message = format!("HelmRepository {key}: reconciliation in progress");
                record(
                    &mut status.conditions,
                    d.generation,
                    Progress::Progressing { message: &message },
                );
                let trigger = Arc::new(Notify::new());
                let mut charts = state.charts;
                let now = Utc::now();
                for c in &mut charts {
                    // Resolves are not persisted one by one: a restart counts as one, so an
                    // agent has a full TTL to ask again.
                    c.last_resolved = now;
                    // The server may be reachable at another address than in its last life.
                    c.artifact.url =
                        crate::reconcile::artifact_url(&inner.opts.public_url, &c.artifact.digest);
                }
                // Spawned under the write lock: the task's first look at its slot waits
                // until the slot is there.
                let mut slots = repos.write();
                let task = tokio::spawn(repo_loop(inner.clone(), d.clone(), trigger.clone()));
                slots.insert(
                    key.clone(),
                    Slot {
                        desired: d.clone(),
                        status,
                        index: None,
                        validators: Validators::default(),
                        client: client(d),
                        charts,
                        trigger,
                        task,
                        pack: Arc::default(),
                    },
                );
                drop(slots);
                tracing::info!(repository = %key, url = %crate::git::redact_url(&d.spec.url), "HelmRepository added");
            }
        }
    }
    !removed.is_empty()
}

enum Next {
    Interval,
    Backoff,
    WaitForTrigger,
}

async fn repo_loop(inner: Arc<Inner>, d: DesiredHelmRepository, trigger: Arc<Notify>) {
    if d.spec.suspend {
        let message = format!(
            "HelmRepository {} is suspended; resolved charts stay served",
            d.key
        );
        inner.helm.update(&d.key, |slot| {
            record(
                &mut slot.status.conditions,
                d.generation,
                Progress::Suspended { message: &message },
            );
        });
        return;
    }
    let mut failures = 0u32;
    let mut followed = None;
    loop {
        if let Some(leases) = &inner.opts.leases
            && crate::reconcile::holds(leases, &d.key).await == Hold::Elsewhere
        {
            // Another replica polls this repository: serve what it records, forward resolves.
            inner.helm.update(&d.key, |slot| slot.index = None);
            if leases.follow_due(&d.key, &followed, d.interval) {
                followed = Some(leases.followed(&d.key));
                super::replicas::follow(&inner, &d).await;
            }
            crate::reconcile::wait_following(leases, &d.key, d.interval, &trigger).await;
            continue;
        }
        followed = None;
        // Set when another replica passes a request on during the fetch: one more follows.
        let again = AtomicBool::new(false);
        let next = match &inner.opts.leases {
            Some(leases) => tokio::select! {
                next = refresh(&inner, &d) => next,
                never = crate::reconcile::renew(leases, &d.key, &again) => match never {},
            },
            None => refresh(&inner, &d).await,
        };
        if again.load(Ordering::Relaxed) {
            continue;
        }
        let delay = match next {
            Next::Interval => {
                failures = 0;
                Some(crate::reconcile::jitter(d.interval))
            }
            Next::Backoff => {
                failures = failures.saturating_add(1);
                Some(inner.opts.backoff.delay(failures))
            }
            Next::WaitForTrigger => None,
        };
        match (delay, &inner.opts.leases) {
            (d_, Some(leases)) => {
                crate::reconcile::wait_holding(leases, &d.key, d_, &trigger).await;
            }
            (Some(delay), None) => {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = trigger.notified() => {}
                }
            }
            (None, None) => trigger.notified().await,
        }
    }
}

pub(super) fn set(inner: &Inner, d: &DesiredHelmRepository, progress: Progress<'_>) {
    inner.helm.update(&d.key, |slot| {
        record(&mut slot.status.conditions, d.generation, progress);
        slot.status.observed_generation = d.generation;
    });
}

async fn refresh(inner: &Arc<Inner>, d: &DesiredHelmRepository) -> Next {
    let key = &d.key;
    let started = Instant::now();
    let url = crate::git::redact_url(&d.spec.url);
    let message = format!("HelmRepository {key}: fetching the index of {url}");
    set(inner, d, Progress::Progressing { message: &message });
    let Some((client, known, current)) = inner.helm.read().get(key).map(|s| {
        // Without a table, a 304 would leave nothing to resolve from: ask unconditionally.
        let known = if s.index.is_some() {
            s.validators.clone()
        } else {
            Validators::default()
        };
        let current = s.index.as_ref().map(|i| i.revision.clone());
        (s.client.clone(), known, current)
    }) else {
        return Next::WaitForTrigger;
    };
    let client = match client {
        Ok(c) => c,
        Err(message) => {
            inner.metrics.failure(key, reason::INVALID_SPEC);
            let progress = Progress::Stalled {
                reason: reason::INVALID_SPEC,
                message: &message,
            };
            set(inner, d, progress);
            return Next::WaitForTrigger;
        }
    };
    let limit = inner.opts.helm.max_index_size;
    let spool_dir = (inner.opts.helm.spool_dir.clone()).unwrap_or_else(std::env::temp_dir);
    let fetched = tokio::time::timeout(d.timeout, client.index(&known, limit, &spool_dir)).await;
    let result = match fetched {
        Err(_) => Err((
            reason::TIMEOUT,
            format!(
                "HelmRepository {key}: fetching the index of {url} timed out after {:?} (spec.timeout)",
                d.timeout
            ),
        )),
        Ok(Err(e)) => Err((
            reason::INDEXATION_FAILED,
            format!("HelmRepository {key}: {e}"),
        )),
        Ok(Ok(IndexFetch::NotModified)) => {
            inner.metrics.helm_index(key, "not_modified");
            Ok(current)
        }
        Ok(Ok(IndexFetch::Parsed(parsed, validators))) => {
            inner.metrics.helm_index(key, "parsed");
            if let super::index::Parser::General(why) = &parsed.parser {
                inner.metrics.helm_index_general(key);
                tracing::info!(repository = %key, why = %why, "the index was read by the general YAML parser (the fast scanner was not sure of it)");
            }
            match Revision::sha256(None, parsed.digest.hex()) {
                Err(e) => Err((
                    reason::INDEXATION_FAILED,
                    format!("HelmRepository {key}: {e}"),
                )),
                Ok(revision) => {
                    let changed = current.as_ref() != Some(&revision);
                    let artifact = HelmIndexArtifact {
                        revision: revision.clone(),
                        size: parsed.size,
                        charts: parsed.table.charts(),
                        versions: parsed.table.versions(),
                        last_update_time: Utc::now(),
                    };
                    tracing::info!(revision = %revision, size = parsed.size, versions = artifact.versions, changed, "index parsed");
                    let index = Arc::new(Index {
                        revision: revision.clone(),
                        table: parsed.table,
                    });
                    inner.helm.update(key, |slot| {
                        slot.validators = validators;
                        if changed || slot.index.is_none() {
                            slot.index = Some(index.clone());
                            slot.status.artifact = Some(artifact);
                        }
                    });
                    if changed {
                        if inner.opts.leases.is_some() {
                            // The other replicas show the index from the record.
                            super::replicas::save_record(inner, key).await;
                        }
                        inner.notifications.emit_source(
                            key,
                            ferry_proto::api::Severity::Info,
                            crate::notification::NEW_ARTIFACT,
                            &format!("stored index for revision '{revision}'"),
                            Some(&revision),
                        );
                        reresolve(inner, key, &index).await;
                    }
                    Ok(Some(revision))
                }
            }
        }
    };
    let ok = result.is_ok();
    inner
        .metrics
        .observe_reconcile(key, started.elapsed().as_secs_f64(), ok);
    match result {
        Ok(revision) => {
            let msg = match revision {
                Some(r) => format!("stored index for revision '{r}'"),
                None => "index fetched".to_string(),
            };
            set(
                inner,
                d,
                Progress::Succeeded {
                    reason: reason::SUCCEEDED,
                    message: &msg,
                },
            );
            inner.helm.update(key, |slot| {
                condition::remove_condition(&mut slot.status.conditions, condition::FETCH_FAILED);
            });
            expire(inner, key).await;
            Next::Interval
        }
        Err((why, message)) => {
            inner.metrics.failure(key, why);
            tracing::warn!(reason = why, error = %message, "index fetch failed");
            inner.notifications.emit_source(
                key,
                ferry_proto::api::Severity::Error,
                why,
                &message,
                None,
            );
            set(
                inner,
                d,
                Progress::Retrying {
                    reason: why,
                    message: &message,
                },
            );
            inner.helm.update(key, |slot| {
                condition::set_condition(
                    &mut slot.status.conditions,
                    ferry_proto::Condition::new(
                        condition::FETCH_FAILED,
                        ferry_proto::ConditionStatus::True,
                        why,
                        &message,
                    ),
                );
            });
            Next::Backoff
        }
    }
}

/// After an index change: every registered resolution whose answer changed gets the new
/// version packed and announced. A resolution that no longer matches anything keeps its last
/// artifact (a failed fetch or a yanked version never takes a chart away).
async fn reresolve(inner: &Arc<Inner>, key: &SourceKey, index: &Index) {
    let charts = inner
        .helm
        .read()
        .get(key)
        .map(|s| s.charts.clone())
        .unwrap_or_default();
    for c in charts {
        let Ok(constraint) = Constraint::parse(&c.range) else {
            continue;
        };
        match index.table.resolve(&c.chart, &constraint) {
            Resolution::Found(v) => {
                if *v.raw == c.version && source_id(v) == c.source {
                    continue;
                }
                if let Err(e) = ensure(inner, key, &c.chart, &c.range, v, false).await {
                    tracing::warn!(error = %e, range = %c.range, "re-resolving a registered chart failed; the last artifact stays served");
                }
            }
            _ => {
                tracing::warn!(chart = %c.chart, range = %c.range, "a registered chart range no longer matches; the last artifact stays served");
            }
        }
    }
}

/// Drops the registrations no agent asked for within `registration_ttl` (their HelmRelease is
/// gone or uses another range now), so GC can collect their artifacts.
async fn expire(inner: &Arc<Inner>, key: &SourceKey) {
    let ttl = chrono::Duration::from_std(inner.opts.helm.registration_ttl)
        .unwrap_or(chrono::Duration::MAX);
    let Some(pack) = inner.helm.read().get(key).map(|s| s.pack.clone()) else {
        return;
    };
    let _one_at_a_time = pack.lock().await;
    let _guard = inner.storage_lock.lock().await;
    let now = Utc::now();
    let mut state = None;
    inner.helm.update(key, |slot| {
        let before = slot.charts.len();
        slot.charts.retain(|c| now - c.last_resolved <= ttl);
        if slot.charts.len() != before {
            tracing::info!(repository = %key, dropped = before - slot.charts.len(), "chart resolutions no agent asked for expired");
            state = Some(super::record(slot));
        }
    });
    let Some(state) = state else { return };
    if let Err(e) = inner.storage.save_state(key, &state).await {
        tracing::warn!(repository = %key, error = %e, "saving expired chart resolutions");
        return;
    }
    drop(_guard);
    if let Some(leases) = &inner.opts.leases {
        leases.recorded(key).await;
    }
    inner.collect_garbage().await;
}
