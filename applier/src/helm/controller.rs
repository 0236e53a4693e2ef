//! When to reconcile a HelmRelease: the kube-rs runtime [`Controller`] over the HelmReleases of
//! the agent's namespace, triggered by spec changes, `reconcile.fluxcd.io/requestedAt`, a new
//! artifact of the chart's source, the interval, and a HelmRelease it depends on becoming
//! ready. A finalizer makes removal an uninstall: the release's inventory is pruned before the
//! HelmRelease goes (Flux uninstalls a removed HelmRelease the same way), unless it is
//! suspended.

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::helmrelease::HelmRelease;
use ferry_proto::kustomization::Inventory;
use futures::StreamExt;
use futures::channel::mpsc;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, predicates, watcher};
use kube::{Api, ResourceExt};

use super::release::{self, HelmContext, owner};
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
    .map_err(|e| ControllerError::Finalizer {
        name: hr.name_any(),
        why: e.to_string(),
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

/// Removal: prune everything the release owns (a suspended release is left as it is).
async fn uninstall(hr: &HelmRelease, shared: &Shared) -> Result<(), ControllerError> {
    let name = hr.name_any();
    shared.helm.forget(&name);
    shared.ctx.reporter.forget("HelmRelease", &name);
    if hr.spec.suspend {
        tracing::info!(helmrelease = %name, "suspended HelmRelease removed; its objects are left");
        return Ok(());
    }
    let Some(inventory) = hr.status.as_ref().and_then(|s| s.inventory.clone()) else {
        return Ok(());
    };
    let pruned = crate::prune::prune(
        &shared.ctx.applier,
        &shared.ctx.namespace,
        &owner(&name),
        &inventory,
        &Inventory::default(),
    )
    .await
    .map_err(|e| ControllerError::Finalizer {
        name: name.clone(),
        why: format!("uninstall: {e}"),
    })?;
    tracing::info!(helmrelease = %name, deleted = pruned.deleted.len(), "release uninstalled");
    shared.ctx.metrics.forget(&format!("HelmRelease/{name}"));
    Ok(())
}

fn error_policy(_hr: Arc<HelmRelease>, err: &ControllerError, _shared: Arc<Shared>) -> Action {
    tracing::warn!(error = %err, "helmrelease reconcile error; retrying");
    Action::requeue(Duration::from_secs(10))
}
