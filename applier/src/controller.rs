//! When to reconcile: the kube-rs runtime [`Controller`] over the Kustomizations of the agent's
//! own namespace (the agent's credentials reach nothing else).
//!
//! Triggers: a spec change (generation predicate — the agent's own status writes do not
//! trigger) or a new `reconcile.fluxcd.io/requestedAt` annotation (`flux reconcile`), a new
//! artifact announced by the source server for the Kustomization's source, the interval (or
//! retryInterval after a failure), and a dependency becoming ready. The runtime
//! guarantees one reconcile per object at a time and retries watch failures with backoff.

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::kustomization::Kustomization;
use futures::channel::mpsc;
use futures::{StreamExt, TryStreamExt};
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, predicates, watcher};
use kube::{Api, ResourceExt};

use crate::reconcile::{self, Context};
use crate::source_client::{SourceWatch, WatchConfig};

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The Kustomization could not be read before reconciling it.
    #[error("Kustomization {namespace}/{name}: {source}")]
    Status {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

struct Shared {
    ctx: Arc<Context>,
    store: Store<Kustomization>,
    trigger: mpsc::UnboundedSender<ObjectRef<Kustomization>>,
}

/// Runs until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let (store, writer) = reflector::store();
    let metrics = ctx.metrics.clone();
    let reporter = ctx.reporter.clone();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| {
            // A removed Kustomization's series and summary go with it.
            if let watcher::Event::Delete(ks) = event {
                metrics.forget(&ks.name_any());
                reporter.forget("Kustomization", &ks.name_any());
            }
        })
        .applied_objects()
        .predicate_filter(spec_or_request, Default::default());
    let (trigger, triggers) = mpsc::unbounded();
    let shared = Arc::new(Shared {
        ctx: ctx.clone(),
        store: store.clone(),
        trigger: trigger.clone(),
    });
    let artifacts = ctx.sources.watch(WatchConfig::default());
    let forward = tokio::spawn(forward_artifacts(artifacts, shared.clone()));
    Controller::for_stream(stream, store)
        .with_config(ControllerConfig::default().concurrency(4))
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, shared)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "controller");
            }
        })
        .await;
    forward.abort();
}

/// Changes when the spec does or when someone asks for a reconcile; not on status writes.
fn spec_or_request(ks: &Kustomization) -> Option<u64> {
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&predicates::generation(ks), &mut h);
    std::hash::Hash::hash(&reconcile::requested_at(ks), &mut h);
    Some(std::hash::Hasher::finish(&h))
}

/// New artifacts → the Kustomizations that use that source.
async fn forward_artifacts(mut watch: SourceWatch, shared: Arc<Shared>) {
    while let Some(ev) = watch.next().await {
        let source = format!("{}/{}", ev.namespace, ev.name);
        tracing::info!(%source, revision = %ev.revision, digest = %ev.digest, "new artifact");
        shared
            .ctx
            .metrics
            .observe_announcement(&source, &ev.revision.to_string());
        for ks in shared.store.state() {
            let src = &ks.spec.source_ref;
            let src_ns = src.namespace.as_deref().unwrap_or(&shared.ctx.namespace);
            if matches!(
                ev.kind,
                ferry_proto::SourceKind::GitRepository | ferry_proto::SourceKind::Bucket
            ) && src.kind == ev.kind.as_str()
                && src.name == ev.name
                && src_ns == ev.namespace
                && !crate::status::has_applied(&ks, &ev.digest)
            {
                let _ = shared.trigger.unbounded_send(ObjectRef::from_obj(&*ks));
            }
        }
    }
}

async fn reconcile(ks: Arc<Kustomization>, shared: Arc<Shared>) -> Result<Action, ControllerError> {
    let ctx = &shared.ctx;
    let name = ks.name_any();
    // The store may lag behind our own last status write; reconcile from the latest state.
    let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let latest = match api.get_opt(&name).await {
        Ok(Some(k)) => k,
        Ok(None) => {
            ctx.metrics.forget(&name);
            ctx.reporter.forget("Kustomization", &name);
            return Ok(Action::await_change());
        }
        Err(source) => {
            return Err(ControllerError::Status {
                namespace: ctx.namespace.clone(),
                name,
                source,
            });
        }
    };
    let outcome = reconcile::reconcile(&latest, ctx).await;
    if outcome.ready {
        for other in shared.store.state() {
            let depends = other.spec.depends_on.iter().any(|d| {
                d.name == name && d.namespace.as_deref().unwrap_or(&ctx.namespace) == ctx.namespace
            });
            if depends {
                let _ = shared.trigger.unbounded_send(ObjectRef::from_obj(&*other));
            }
        }
    }
    Ok(match outcome.requeue {
        Some(after) => Action::requeue(after),
        // Stalled: the next spec change triggers a reconcile.
        None => Action::await_change(),
    })
}

fn error_policy(ks: Arc<Kustomization>, err: &ControllerError, _shared: Arc<Shared>) -> Action {
    // An invalid spec surfaces as Stalled on the next reconcile; until then retry soon.
    let retry = reconcile::intervals(&ks).map_or(Duration::from_secs(30), |i| i.retry_interval);
    tracing::warn!(error = %err, "reconcile error; retrying");
    Action::requeue(retry)
}
