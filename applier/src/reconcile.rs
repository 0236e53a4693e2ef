//! One reconcile of one Kustomization: the data path end to end.
//!
//! source → artifact → fetch → render → apply → prune → health → status, each failure mapped to
//! Flux's reason and leaving the previous state (last applied revision, inventory, live
//! objects) untouched. The [`crate::controller`] decides *when* to run it; this module decides
//! *what* happens.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_proto::condition::reason;
use ferry_proto::kustomization::{DriftMode, Kustomization, KustomizationStatus};
use ferry_proto::{ArtifactRef, Digest};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::discovery::{Discovery, Scope as KubeScope};
use kube::{Client, ResourceExt};

use crate::apply::{Action, Applier, ApplyOptions, ChangeSet, from_value, set_owner_labels};
use crate::events::{EventType, Recorder};
use crate::fetch::Fetcher;
use crate::metrics::Metrics;
use crate::prune::{inventory_of, prune};
use crate::render::{self, Scope, ScopeResolver};
use crate::source_client::SourceClient;
use crate::{drift, health, status};

/// Everything a reconcile needs, shared by all Kustomizations of the agent's namespace.
pub struct Context {
    pub namespace: String,
    pub client: Client,
    pub applier: Applier,
    pub fetcher: Fetcher,
    pub sources: SourceClient,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// Last artifact seen per source `(namespace, name)`, so reconciling from the cache keeps
    /// working while the source server is unreachable.
    pub artifacts: Mutex<HashMap<(String, String), ArtifactRef>>,
    /// Renders remembered per input: an unchanged reconcile skips the kustomize build.
    pub renders: render::RenderMemo,
}

/// Why a reconcile stopped, as Flux reports it.
#[derive(Debug)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What the controller needs to know afterwards.
#[derive(Debug)]
pub struct Outcome {
    pub requeue: Duration,
    pub ready: bool,
}

/// The desired state of one Kustomization at one artifact.
pub struct Desired {
    pub artifact: ArtifactRef,
    pub objects: Vec<DynamicObject>,
}

/// `spec.interval`, `spec.retryInterval` (default: interval), `spec.timeout` (default: interval).
/// A refused value falls back to 5 minutes here; `KustomizationSpec::intervals` names the field
/// for a `Stalled` condition.
pub fn intervals(ks: &Kustomization) -> (Duration, Duration, Duration) {
    let fallback = Duration::from_secs(300);
    match ks.spec.intervals() {
        Ok(i) => (i.interval, i.retry_interval, i.timeout),
        Err(_) => (fallback, fallback, fallback),
    }
}

/// The value of the `reconcile.fluxcd.io/requestedAt` annotation, if set.
pub fn requested_at(ks: &Kustomization) -> Option<&str> {
    ks.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ferry_proto::kustomization::RECONCILE_REQUESTED_AT))
        .map(String::as_str)
}

/// Runs the data path for `ks` and writes its status.
pub async fn reconcile(ks: &Kustomization, ctx: &Context) -> Outcome {
    let (interval, retry, _) = intervals(ks);
    let name = ks.name_any();
    let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let generation = ks.metadata.generation;
    let mut st = ks.status.clone().unwrap_or_default();
    if ks.spec.suspend {
        status::suspended(&mut st, generation);
        write_status(&api, &name, &st).await;
        return Outcome {
            requeue: interval,
            ready: status::is_ready(Some(&st)),
        };
    }
    let started = std::time::Instant::now();
    let result = run(ks, ctx, &mut st).await;
    if let Some(at) = requested_at(ks) {
        st.last_handled_reconcile_at = Some(at.to_string());
    }
    ctx.metrics
        .observe_reconcile(&name, started.elapsed(), result.is_ok());
    match result {
        Ok(()) => {
            // An unchanged reconcile leaves the status as it was: no write, no watch event.
            if ks.status.as_ref() != Some(&st) {
                write_status(&api, &name, &st).await;
            }
            Outcome {
                requeue: interval,
                ready: true,
            }
        }
        Err((failure, revision)) => {
            tracing::warn!(kustomization = %name, reason = failure.reason, message = %failure.message, "reconcile failed");
            status::failed(
                &mut st,
                generation,
                failure.reason,
                &failure.message,
                revision.as_deref(),
            );
            write_status(&api, &name, &st).await;
            ctx.recorder
                .publish(ks, EventType::Warning, failure.reason, &[failure.message])
                .await;
            Outcome {
                requeue: retry,
                ready: false,
            }
        }
    }
}

async fn write_status(api: &Api<Kustomization>, name: &str, st: &KustomizationStatus) {
    if let Err(e) = status::write(api, name, st).await {
        tracing::warn!(kustomization = %name, error = %e, "could not write status");
    }
}

type Failed = (Failure, Option<String>);

async fn run(
    ks: &Kustomization,
    ctx: &Context,
    st: &mut KustomizationStatus,
) -> Result<(), Failed> {
    let name = ks.name_any();
    let generation = ks.metadata.generation;
    let (_, _, timeout) = intervals(ks);
    dependencies_ready(ks, ctx).await.map_err(|f| (f, None))?;
    let started = std::time::Instant::now();
    let desired = desired(ks, ctx, st).await?;
    tracing::debug!(kustomization = %name, objects = desired.objects.len(), elapsed_ms = started.elapsed().as_millis() as u64, "rendered");
    let revision = desired.artifact.revision.to_string();
    let digest = desired.artifact.digest;
    let fail = |f: Failure| (f, Some(revision.clone()));
    let up_to_date = status::up_to_date(st, generation, &digest);
    let opts = ApplyOptions {
        force: ks.spec.force,
        wait_timeout: timeout,
        ..Default::default()
    };

    if up_to_date && ks.spec.drift_mode == Some(DriftMode::Detect) {
        let drift = ctx
            .applier
            .drift(desired.objects, &opts)
            .await
            .map_err(|e| fail(Failure::new(reason::RECONCILIATION_FAILED, e.to_string())))?;
        let report = drift::report(&drift, &revision);
        if report.is_some() && report != st.drift {
            let lines: Vec<String> = drift.iter().map(drift::describe).collect();
            ctx.recorder
                .publish(ks, EventType::Warning, reason::DRIFT_DETECTED, &lines)
                .await;
        }
        ctx.metrics.set_drifted(&name, drift.len());
        status::set_drift(st, report);
        return Ok(());
    }

    if !up_to_date {
        status::progressing(st, generation, &revision);
        write_status(
            &Api::namespaced(ctx.client.clone(), &ctx.namespace),
            &name,
            st,
        )
        .await;
    }
    let mut changes = ChangeSet::default();
    let applied = tokio::time::timeout(
        timeout,
        ctx.applier.apply_all(desired.objects, &opts, &mut changes),
    )
    .await;
    tracing::debug!(kustomization = %name, elapsed_ms = started.elapsed().as_millis() as u64, "apply done");
    let old_inventory = st.inventory.clone().unwrap_or_default();
    let new_inventory = inventory_of(&changes, &ctx.namespace);
    let failure = match applied {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("apply timed out after {timeout:?}")),
    };
    if let Some(message) = failure {
        // Nothing is pruned; what this attempt did create is inventoried next to what was
        // there, so a later revision that drops it can still prune it.
        st.inventory = Some(ferry_proto::kustomization::Inventory::from_entries(
            old_inventory.entries().chain(new_inventory.entries()),
        ));
        let lines: Vec<String> = changes
            .written()
            .map(|c| format!("{} {}", c.id, c.action))
            .collect();
        publish_changes(ks, ctx, &lines).await;
        return Err(fail(Failure::new(reason::RECONCILIATION_FAILED, message)));
    }
    let mut lines: Vec<String> = changes
        .written()
        .map(|c| format!("{} {}", c.id, c.action))
        .collect();
    if ks.spec.prune {
        match prune(
            &ctx.applier,
            &ctx.namespace,
            &name,
            &old_inventory,
            &new_inventory,
        )
        .await
        {
            Ok(pruned) => {
                lines.extend(pruned.deleted.iter().map(|id| format!("{id} deleted")));
            }
            Err(e) => {
                // Whatever was not deleted stays inventoried, so the next attempt retries it.
                st.inventory = Some(ferry_proto::kustomization::Inventory::from_entries(
                    old_inventory.entries().chain(new_inventory.entries()),
                ));
                publish_changes(ks, ctx, &lines).await;
                return Err(fail(Failure::new(reason::PRUNE_FAILED, e.to_string())));
            }
        }
    }
    publish_changes(ks, ctx, &lines).await;
    ctx.metrics.observe_changes(&name, &changes);
    status::set_drift(st, None);
    ctx.metrics.set_drifted(&name, 0);

    let checks = health_targets(ks, &changes, &ctx.namespace);
    if !checks.is_empty()
        && let Err(e) = health::wait_ready(&ctx.applier, &checks, timeout).await
    {
        // The objects exist: record them, so a later revision can prune them.
        st.inventory = Some(new_inventory);
        return Err(fail(Failure::new(
            reason::HEALTH_CHECK_FAILED,
            e.to_string(),
        )));
    }
    status::succeeded(st, generation, &revision, digest, new_inventory);
    tracing::info!(kustomization = %name, revision = %revision, summary = %changes.summary(), "applied");
    Ok(())
}

async fn publish_changes(ks: &Kustomization, ctx: &Context, lines: &[String]) {
    if !lines.is_empty() {
        ctx.recorder
            .publish(ks, EventType::Normal, reason::PROGRESSING, lines)
            .await;
    }
}

/// What `wait` / `healthChecks` ask to be ready.
fn health_targets(
    ks: &Kustomization,
    changes: &ChangeSet,
    namespace: &str,
) -> Vec<(crate::apply::ObjectId, String)> {
    if ks.spec.wait {
        return changes
            .changes
            .iter()
            .filter(|c| c.action != Action::Skipped)
            .map(|c| (c.id.clone(), c.version.clone()))
            .collect();
    }
    ks.spec
        .health_checks
        .iter()
        .map(|h| {
            let api_version = h.api_version.clone().unwrap_or_else(|| "v1".into());
            let (group, version) = crate::apply::split_api_version(&api_version);
            (
                crate::apply::ObjectId {
                    group: group.to_string(),
                    kind: h.kind.clone(),
                    namespace: h.namespace.clone().unwrap_or_else(|| namespace.to_string()),
                    name: h.name.clone(),
                },
                version.to_string(),
            )
        })
        .collect()
}

/// Every `dependsOn` entry must be Ready at its current generation.
async fn dependencies_ready(ks: &Kustomization, ctx: &Context) -> Result<(), Failure> {
    let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    for dep in &ks.spec.depends_on {
        if dep.namespace.as_deref().is_some_and(|n| n != ctx.namespace) {
            return Err(Failure::new(
                reason::DEPENDENCY_NOT_READY,
                format!(
                    "dependency {}/{}: this agent only sees namespace {}",
                    dep.namespace.as_deref().unwrap_or_default(),
                    dep.name,
                    ctx.namespace
                ),
            ));
        }
        let found = api.get_opt(&dep.name).await.map_err(|e| {
            Failure::new(
                reason::DEPENDENCY_NOT_READY,
                format!("dependency '{}/{}': {e}", ctx.namespace, dep.name),
            )
        })?;
        let ready = found.as_ref().is_some_and(|d| {
            status::is_ready(d.status.as_ref())
                && d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation
        });
        if !ready {
            return Err(Failure::new(
                reason::DEPENDENCY_NOT_READY,
                format!("dependency '{}/{}' is not ready", ctx.namespace, dep.name),
            ));
        }
    }
    Ok(())
}

/// The source's current artifact, or the last one known when the source server is unreachable.
async fn artifact(
    ks: &Kustomization,
    ctx: &Context,
    st: &KustomizationStatus,
) -> Result<ArtifactRef, Failure> {
    let src = &ks.spec.source_ref;
    if src.kind != "GitRepository" {
        return Err(Failure::new(
            reason::ARTIFACT_FAILED,
            format!(
                "sourceRef.kind {:?} is not supported (GitRepository)",
                src.kind
            ),
        ));
    }
    let ns = src
        .namespace
        .clone()
        .unwrap_or_else(|| ctx.namespace.clone());
    let key = (ns.clone(), src.name.clone());
    match ctx.sources.current_artifact(&ns, &src.name).await {
        Ok(Some(a)) => {
            remember(ctx, key, &a);
            Ok(a)
        }
        Ok(None) => Err(Failure::new(
            reason::ARTIFACT_FAILED,
            format!("source GitRepository/{ns}/{} has no artifact yet", src.name),
        )),
        Err(e) => {
            let known = ctx.artifacts.lock().ok().and_then(|m| m.get(&key).cloned());
            if let Some(a) = known.filter(|_| !e.is_not_found()) {
                tracing::warn!(error = %e, "source server unavailable; using the last known artifact");
                return Ok(a);
            }
            if !e.is_not_found()
                && let Some(a) = from_status(st, ctx)
            {
                tracing::warn!(error = %e, "source server unavailable; using the last applied artifact");
                return Ok(a);
            }
            Err(Failure::new(
                reason::ARTIFACT_FAILED,
                format!("source GitRepository/{ns}/{}: {e}", src.name),
            ))
        }
    }
}

fn remember(ctx: &Context, key: (String, String), a: &ArtifactRef) {
    if let Ok(mut m) = ctx.artifacts.lock() {
        m.insert(key, a.clone());
    }
}

/// After a restart with the source server down, the status still says which artifact was
/// applied; the fetcher's cache may have it.
fn from_status(st: &KustomizationStatus, ctx: &Context) -> Option<ArtifactRef> {
    let digest: Digest = st.last_applied_digest?;
    let revision = st.last_applied_revision.as_deref()?.parse().ok()?;
    Some(ArtifactRef {
        digest,
        size: ctx.fetcher.config().max_artifact_size,
        compressed_size: None,
        revision,
        url: format!(
            "{}{}",
            ctx.sources.base_url(),
            ferry_proto::artifact_path(&digest)
        ),
        last_update_time: chrono::Utc::now(),
    })
}

/// Fetches and renders `ks`: the objects to apply, owner-labelled, with their artifact.
pub async fn desired(
    ks: &Kustomization,
    ctx: &Context,
    st: &KustomizationStatus,
) -> Result<Desired, Failed> {
    let artifact = artifact(ks, ctx, st).await.map_err(|f| (f, None))?;
    let revision = artifact.revision.to_string();
    let fail = |reason: &'static str, message: String| {
        (Failure::new(reason, message), Some(revision.clone()))
    };
    let tree = ctx
        .fetcher
        .get(&artifact)
        .await
        .map_err(|e| fail(reason::ARTIFACT_FAILED, e.to_string()))?;
    let vars = substitute_from(ks, ctx)
        .await
        .map_err(|m| fail(reason::BUILD_FAILED, m))?;
    let discovery = ctx
        .applier
        .resolver()
        .snapshot()
        .await
        .map_err(|e| fail(reason::BUILD_FAILED, e.to_string()))?;
    let scopes = DiscoveryScopes(discovery);
    let started = std::time::Instant::now();
    let rendered = ctx
        .renders
        .render(&tree, &ks.spec, &vars, &ctx.namespace, &scopes)
        .map_err(|e| fail(reason::BUILD_FAILED, e.to_string()))?;
    let render_ms = started.elapsed().as_millis() as u64;
    let mut objects = Vec::with_capacity(rendered.len());
    for r in rendered.iter() {
        let mut obj =
            from_value(r.object.clone()).map_err(|e| fail(reason::BUILD_FAILED, e.to_string()))?;
        set_owner_labels(&mut obj, &ctx.namespace, &ks.name_any());
        objects.push(obj);
    }
    tracing::debug!(
        render_ms,
        convert_ms = started.elapsed().as_millis() as u64 - render_ms,
        "desired state"
    );
    Ok(Desired { artifact, objects })
}

/// Variables from `postBuild.substituteFrom`, later entries winning.
async fn substitute_from(
    ks: &Kustomization,
    ctx: &Context,
) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    let Some(pb) = &ks.spec.post_build else {
        return Ok(vars);
    };
    for r in &pb.substitute_from {
        match r.kind.as_str() {
            "ConfigMap" => {
                let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
                match api.get_opt(&r.name).await {
                    Ok(Some(cm)) => vars.extend(cm.data.unwrap_or_default()),
                    Ok(None) if r.optional => {}
                    Ok(None) => {
                        return Err(format!(
                            "postBuild.substituteFrom: ConfigMap/{}/{} not found",
                            ctx.namespace, r.name
                        ));
                    }
                    Err(e) => {
                        return Err(format!(
                            "postBuild.substituteFrom: ConfigMap/{}/{}: {e}",
                            ctx.namespace, r.name
                        ));
                    }
                }
            }
            "Secret" => {
                let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
                match api.get_opt(&r.name).await {
                    Ok(Some(s)) => {
                        for (k, v) in s.data.unwrap_or_default() {
                            let v = String::from_utf8(v.0).map_err(|_| {
                                format!(
                                    "postBuild.substituteFrom: Secret/{}/{} key {k} is not UTF-8",
                                    ctx.namespace, r.name
                                )
                            })?;
                            vars.insert(k, v);
                        }
                        vars.extend(s.string_data.unwrap_or_default());
                    }
                    Ok(None) if r.optional => {}
                    Ok(None) => {
                        return Err(format!(
                            "postBuild.substituteFrom: Secret/{}/{} not found",
                            ctx.namespace, r.name
                        ));
                    }
                    Err(e) => {
                        return Err(format!(
                            "postBuild.substituteFrom: Secret/{}/{}: {e}",
                            ctx.namespace, r.name
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "postBuild.substituteFrom: kind {other:?} is not ConfigMap or Secret"
                ));
            }
        }
    }
    Ok(vars)
}

/// Tenancy asks whether a kind is namespaced; the API server's discovery knows.
struct DiscoveryScopes(Arc<Discovery>);

impl ScopeResolver for DiscoveryScopes {
    fn scope(&self, api_version: &str, kind: &str) -> Option<Scope> {
        let (group, version) = crate::apply::split_api_version(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (_, caps) = self.0.resolve_gvk(&gvk)?;
        Some(match caps.scope {
            KubeScope::Namespaced => Scope::Namespaced,
            KubeScope::Cluster => Scope::Cluster,
        })
    }
}
