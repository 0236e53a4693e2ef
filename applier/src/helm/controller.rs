//! When to reconcile a HelmRelease: the kube-rs runtime [`Controller`] over the HelmReleases of
//! the agent's namespace, triggered by spec changes, `reconcile.fluxcd.io/requestedAt`, a new
//! artifact of the chart's source, the interval, and a HelmRelease it depends on becoming
//! ready. A finalizer makes removal an uninstall ([`super::uninstall`]: pre-delete hooks, the
//! release's inventory deleted, post-delete hooks) before the HelmRelease goes (Flux uninstalls
//! a removed HelmRelease the same way), unless it is suspended.

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::helmrelease::HelmRelease;
use futures::StreamExt;
use futures::channel::mpsc;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, predicates, watcher};
use kube::{Api, ResourceExt};

use super::release::{self, HelmContext};
use super::status::{self, reason};
use crate::events::EventType;
use crate::reconcile::Context;
use crate::source_client::WatchConfig;

/// The finalizer that turns removal into an uninstall.
pub const FINALIZER: &str = "apply.ferry.dev/helmrelease";

/// A reconcile could not run (reading the HelmRelease or its finalizer failed).
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Adding or removing the finalizer, or the uninstall, failed.
    #[error("HelmRelease {name}: {why}")]
    Finalizer { name: String, why: String },
    /// The uninstall failed (reported in the status and an event); retried after `retry`.
    #[error("HelmRelease {name}: {why}")]
    Uninstall {
        name: String,
        why: String,
        retry: Duration,
    },
}

struct Shared {
    ctx: Arc<Context>,
    helm: Arc<HelmContext>,
    store: Store<HelmRelease>,
    trigger: mpsc::UnboundedSender<ObjectRef<HelmRelease>>,
}

/// Runs until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    helm: Arc<HelmContext>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let (store, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_or_request, Default::default());
    let (trigger, triggers) = mpsc::unbounded();
    let shared = Arc::new(Shared {
        ctx: ctx.clone(),
        helm,
        store: store.clone(),
        trigger,
    });
    let forward = tokio::spawn(forward_artifacts(shared.clone()));
    Controller::for_stream(stream, store)
        .with_config(ControllerConfig::default().concurrency(4))
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, shared)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "helmrelease controller");
            }
        })
        .await;
    forward.abort();
}

fn spec_or_request(hr: &HelmRelease) -> Option<u64> {
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&predicates::generation(hr), &mut h);
    std::hash::Hash::hash(&crate::reconcile::requested_at_of(&hr.metadata), &mut h);
    std::hash::Hash::hash(&hr.metadata.deletion_timestamp.is_some(), &mut h);
    // The finalizer helper adds the finalizer and waits for that change to reconcile.
    let finalized = hr.finalizers().iter().any(|f| f == FINALIZER);
    std::hash::Hash::hash(&finalized, &mut h);
    Some(std::hash::Hasher::finish(&h))
}

/// New artifacts of a chart's source (a GitRepository, or the `HelmChart` the source server
/// resolved for a HelmRepository range) → the HelmReleases using it.
async fn forward_artifacts(shared: Arc<Shared>) {
    let mut watch = shared.ctx.sources.watch(WatchConfig::default());
    while let Some(ev) = watch.next().await {
        let source = ev.source();
        for hr in shared.store.state() {
            if super::desired::chart_source_key(&hr, &shared.ctx.namespace).as_ref()
                == Some(&source)
            {
                let _ = shared.trigger.unbounded_send(ObjectRef::from_obj(&*hr));
            }
        }
    }
}

async fn reconcile(hr: Arc<HelmRelease>, shared: Arc<Shared>) -> Result<Action, ControllerError> {
    let ctx = &shared.ctx;
    let name = hr.name_any();
    let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    // The store may lag behind our own last status write; reconcile from the latest state.
    let latest = match api.get_opt(&name).await {
        Ok(Some(h)) => Arc::new(h),
        Ok(None) => {
            shared.helm.forget(&name);
            shared.ctx.reporter.forget("HelmRelease", &name);
            return Ok(Action::await_change());
        }
        Err(e) => {
            return Err(ControllerError::Finalizer {
                name,
                why: e.to_string(),
            });
        }
    };
    let s = shared.clone();
    finalizer(&api, FINALIZER, latest, |event| async move {
        match event {
            Event::Apply(hr) => {
                let outcome = release::reconcile(&hr, &s.ctx, &s.helm).await;
                if outcome.ready {
                    trigger_dependents(&s, &hr.name_any());
                }
                Ok::<_, ControllerError>(match outcome.requeue {
                    Some(after) => Action::requeue(after),
                    None => Action::await_change(),
                })
            }
            Event::Cleanup(hr) => uninstall(&hr, &s).await.map(|()| Action::await_change()),
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::CleanupFailed(e @ ControllerError::Uninstall { .. }) => e,
        e => ControllerError::Finalizer {
            name: hr.name_any(),
            why: e.to_string(),
        },
    })
}

fn trigger_dependents(shared: &Shared, name: &str) {
    for other in shared.store.state() {
        let depends = other.spec.depends_on.iter().any(|d| {
            d.name == name
                && d.kind_or("HelmRelease") == "HelmRelease"
                && d.namespace.as_deref().unwrap_or(&shared.ctx.namespace) == shared.ctx.namespace
        });
        if depends {
            let _ = shared.trigger.unbounded_send(ObjectRef::from_obj(&*other));
        }
    }
}

/// Removal: `helm uninstall` (pre-delete hooks, the inventory deleted, post-delete hooks); a
/// suspended release is left as it is. A failed uninstall keeps the finalizer, reports
/// `Ready=False` (`UninstallFailed`) and a Warning event, and is tried again each interval.
async fn uninstall(hr: &HelmRelease, shared: &Shared) -> Result<(), ControllerError> {
    let ctx = &shared.ctx;
    let name = hr.name_any();
    if hr.spec.suspend {
        tracing::info!(helmrelease = %name, "suspended HelmRelease removed; its objects are left");
        forget(shared, &name);
        return Ok(());
    }
    let revision = hr
        .status
        .as_ref()
        .and_then(|s| s.last_attempted_revision.clone());
    match super::uninstall::uninstall(hr, ctx, &shared.helm).await {
        Ok(done) => {
            let release = hr.spec.release_name(&name);
            let (kind, why, mut lines) = match &done.post_delete_error {
                None => (
                    EventType::Normal,
                    reason::UNINSTALL_SUCCEEDED,
                    vec![format!(
                        "Helm uninstall succeeded for release {}/{release}",
                        ctx.namespace
                    )],
                ),
                // Helm completes the uninstall and reports the error.
                Some(e) => (
                    EventType::Warning,
                    reason::UNINSTALL_FAILED,
                    vec![format!("uninstallation completed with 1 error(s): {e}")],
                ),
            };
            lines.extend(done.lines);
            tracing::info!(helmrelease = %name, "release uninstalled");
            ctx.recorder
                .publish(hr, kind, why, &lines, revision.as_deref())
                .await;
            forget(shared, &name);
            Ok(())
        }
        Err(e) => {
            let message = format!("Helm uninstall failed: {e}");
            tracing::warn!(helmrelease = %name, message = %message, "uninstall failed");
            let mut st = hr.status.clone().unwrap_or_default();
            status::failed(
                &mut st,
                hr.metadata.generation,
                reason::UNINSTALL_FAILED,
                &message,
                None,
            );
            let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
            if let Err(e) = status::write(&api, &name, &st).await {
                tracing::warn!(error = %e, "could not write status");
            }
            ctx.recorder
                .publish(
                    hr,
                    EventType::Warning,
                    reason::UNINSTALL_FAILED,
                    std::slice::from_ref(&message),
                    revision.as_deref(),
                )
                .await;
            let retry = hr
                .spec
                .intervals()
                .map_or(Duration::from_secs(60), |p| p.interval);
            Err(ControllerError::Uninstall {
                name,
                why: message,
                retry,
            })
        }
    }
}

fn forget(shared: &Shared, name: &str) {
    shared.helm.forget(name);
    shared.ctx.reporter.forget("HelmRelease", name);
    shared.ctx.metrics.forget(&format!("HelmRelease/{name}"));
}

fn error_policy(_hr: Arc<HelmRelease>, err: &ControllerError, _shared: Arc<Shared>) -> Action {
    tracing::warn!(error = %err, "helmrelease reconcile error; retrying");
    match err {
        ControllerError::Uninstall { retry, .. } => Action::requeue(*retry),
        ControllerError::Finalizer { .. } => Action::requeue(Duration::from_secs(10)),
    }
}
