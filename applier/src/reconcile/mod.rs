//! One reconcile of one Kustomization: the data path end to end.
//!
//! The pipeline, one stage after the other, each with its own error type: source → artifact
//! ([`artifact`]) → fetch → render ([`desired`]) → apply → prune → health → status. The
//! stage errors meet in [`ReconcileError`], whose [`ReconcileError::reason`] is the one place
//! mapping them to Flux's reasons; a failure leaves the last applied revision and the live
//! objects as they were, and [`inventory_after_failure`] is the one rule for what the inventory
//! records then. The [`crate::controller`] decides *when* to run a reconcile; this module
//! decides *what* happens.

mod artifact;
mod desired;

use ferry_proto::ObjectRef;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_proto::ArtifactRef;
use ferry_proto::condition::reason;
use ferry_proto::helmrelease::HelmRelease;
use ferry_proto::kustomization::{DriftMode, Inventory, Kustomization, KustomizationStatus};
use kube::api::Api;
use kube::{Client, ResourceExt};
use tracing::Instrument;

pub use artifact::{ArtifactError, current_source};
pub use desired::{
    BuildError, DISCOVERY_MIN_AGE, Desired, DesiredError, DiscoveryScopes, desired,
    discovery_scopes,
};

use crate::apply::{Action, Applier, ApplyError, ApplyOptions, ChangeSet};
use crate::events::{EventType, Recorder};
use crate::fetch::Fetcher;
use crate::health::HealthError;
use crate::metrics::Metrics;
use crate::prune::{PruneError, inventory_of, prune};
use crate::render;
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
    /// Events and object summaries for the source server ([`crate::report`]).
    pub reporter: crate::report::Reporter,
    pub metrics: Metrics,
    /// Last artifact seen per source `(namespace, name)`, so reconciling from the cache keeps
    /// working while the source server is unreachable.
    pub artifacts: Mutex<HashMap<ferry_proto::SourceKey, ArtifactRef>>,
    /// Renders remembered per input: an unchanged reconcile skips the kustomize build.
    pub renders: Arc<render::RenderMemo>,
}

/// The spec cannot be acted on as written (a refused duration, named by its field); only an
/// edit helps.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SpecError(#[from] pub ferry_proto::FieldError);

/// A `dependsOn` entry is not Ready.
#[derive(Debug, thiserror::Error)]
pub enum DependencyError {
    /// The dependency is in another namespace, which this agent cannot see.
    #[error("dependency {namespace}/{name}: this agent only sees namespace {own}")]
    OtherNamespace {
        namespace: String,
        name: String,
        own: String,
    },
    /// The dependency could not be read.
    #[error("dependency '{namespace}/{name}': {source}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The dependency is absent or not Ready at its current generation.
    #[error("dependency {kind} '{namespace}/{name}' is not ready")]
    NotReady {
        kind: String,
        namespace: String,
        name: String,
    },
    /// `dependsOn[].kind` is neither Kustomization nor HelmRelease.
    #[error("dependency {name}: kind {kind:?} is not Kustomization or HelmRelease")]
    Kind { name: String, kind: String },
}

/// The apply stage failed; what it did apply is inventoried.
#[derive(Debug, thiserror::Error)]
pub enum ApplyStageError {
    /// The API server refused an object, or could not be reached.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The apply did not finish within `spec.timeout`.
    #[error("apply timed out after {0:?}")]
    Timeout(Duration),
}

/// Why a reconcile stopped: the error of the stage that failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The spec is invalid: the Kustomization is Stalled until it is edited.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A dependency is not Ready yet.
    #[error(transparent)]
    Dependency(#[from] DependencyError),
    /// The artifact could not be had or rendered.
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// Apply (or the drift comparison) failed.
    #[error(transparent)]
    Apply(#[from] ApplyStageError),
    /// Garbage collection failed.
    #[error(transparent)]
    Prune(#[from] PruneError),
    /// The applied objects did not become ready.
    #[error(transparent)]
    Health(#[from] HealthError),
}

impl ReconcileError {
    /// Flux's reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Spec(_) => reason::INVALID_SPEC,
            ReconcileError::Dependency(_) => reason::DEPENDENCY_NOT_READY,
            ReconcileError::Desired(DesiredError::Artifact(_) | DesiredError::Fetch(_)) => {
                reason::ARTIFACT_FAILED
            }
            ReconcileError::Desired(DesiredError::Build(_)) => reason::BUILD_FAILED,
            ReconcileError::Apply(_) => reason::RECONCILIATION_FAILED,
            ReconcileError::Prune(_) => reason::PRUNE_FAILED,
            ReconcileError::Health(_) => reason::HEALTH_CHECK_FAILED,
        }
    }

    /// Retrying cannot fix it (Flux's `Stalled`): only a change of the spec can.
    pub fn is_stalled(&self) -> bool {
        matches!(self, ReconcileError::Spec(_))
    }
}

/// A failure with the revision it was attempted at, when known.
type Failed = (ReconcileError, Option<String>);

/// What the inventory records after a failure that came after applying: until prune has run,
/// what was there stays listed next to what this attempt applied, so a later revision that
/// drops either can still prune it; once prune has run (or is off), the applied objects alone,
/// as on success. Failures before apply leave the inventory untouched.
pub fn inventory_after_failure(
    old: &Inventory,
    applied: &Inventory,
    pruned: bool,
    namespace: &str,
) -> Inventory {
    if pruned {
        applied.clone()
    } else {
        old.union(applied, namespace)
    }
}

/// What the controller needs to know afterwards.
#[derive(Debug)]
pub struct Outcome {
    /// When to run again; `None` when Stalled (only a change of the Kustomization helps).
    pub requeue: Option<Duration>,
    pub ready: bool,
}

/// `spec.interval`, `spec.retryInterval` and `spec.timeout`, validated by `proto`; a refused
/// one is a [`SpecError`] naming the field.
pub fn intervals(ks: &Kustomization) -> Result<Intervals, SpecError> {
    Ok(ks.spec.intervals()?)
}

pub use ferry_proto::kustomization::KustomizationIntervals as Intervals;

/// The value of the `reconcile.fluxcd.io/requestedAt` annotation, if set.
pub fn requested_at(ks: &Kustomization) -> Option<&str> {
    requested_at_of(&ks.metadata)
}

/// [`requested_at`] of any object.
pub fn requested_at_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(ferry_proto::kustomization::RECONCILE_REQUESTED_AT))
        .map(String::as_str)
}

/// Runs the data path for `ks` and writes its status, in a span naming the Kustomization.
pub async fn reconcile(ks: &Kustomization, ctx: &Context) -> Outcome {
    let span = tracing::info_span!(
        "reconcile",
        kind = "Kustomization",
        namespace = %ctx.namespace,
        name = %ks.name_any()
    );
    let mut st = ks.status.clone().unwrap_or_default();
    let outcome = reconcile_in_span(ks, ctx, &mut st).instrument(span).await;
    ctx.reporter.object(crate::report::kustomization_summary(
        &ks.name_any(),
        ks.spec.suspend,
        &st,
    ));
    outcome
}

async fn reconcile_in_span(
    ks: &Kustomization,
    ctx: &Context,
    st: &mut KustomizationStatus,
) -> Outcome {
    let name = ks.name_any();
    let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let generation = ks.metadata.generation;
    let started = std::time::Instant::now();
    let result = match intervals(ks) {
        Ok(_) if ks.spec.suspend => {
            ctx.metrics.observe_suspended(&name);
            status::suspended(st, generation, &name);
            write_status(&api, &name, st).await;
            return Outcome {
                requeue: intervals(ks).ok().map(|i| i.interval),
                ready: status::is_ready(Some(&*st)),
            };
        }
        Ok(periods) => run(ks, ctx, st, periods).await.map(|()| periods),
        Err(e) => Err((e.into(), None)),
    };
    if let Some(at) = requested_at(ks) {
        st.last_handled_reconcile_at = Some(at.to_string());
    }
    ctx.metrics
        .observe_reconcile(&name, started.elapsed(), result.is_ok());
    match result {
        Ok(periods) => {
            // An unchanged reconcile leaves the status as it was: no write, no watch event.
            if ks.status.as_ref() != Some(&*st) {
                write_status(&api, &name, st).await;
            }
            Outcome {
                requeue: Some(periods.interval),
                ready: true,
            }
        }
        Err((error, revision)) => {
            let (why, message) = (error.reason(), error.to_string());
            tracing::warn!(reason = why, message = %message, "reconcile failed");
            if error.is_stalled() {
                status::stalled(st, generation, why, &message);
            } else {
                status::failed(st, generation, why, &message, revision.as_deref());
            }
            write_status(&api, &name, st).await;
            ctx.recorder
                .publish(ks, EventType::Warning, why, &[message], revision.as_deref())
                .await;
            Outcome {
                requeue: intervals(ks).ok().map(|i| i.retry_interval),
                ready: false,
            }
        }
    }
}

async fn write_status(api: &Api<Kustomization>, name: &str, st: &KustomizationStatus) {
    if let Err(e) = status::write(api, name, st).await {
        tracing::warn!(error = %e, "could not write status; the previous status stands");
    }
}

async fn run(
    ks: &Kustomization,
    ctx: &Context,
    st: &mut KustomizationStatus,
    periods: Intervals,
) -> Result<(), Failed> {
    let name = ks.name_any();
    let generation = ks.metadata.generation;
    let timeout = periods.timeout;
    dependencies_ready("Kustomization", &ks.spec.depends_on, ctx)
        .await
        .map_err(|e| (e.into(), None))?;
    let desired = desired(ks, ctx, st)
        .await
        .map_err(|(e, revision)| (e.into(), revision))?;
    let revision = desired.artifact.revision.to_string();
    let digest = desired.artifact.digest;
    let at = |e: ReconcileError| (e, Some(revision.clone()));
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
            .map_err(|e| at(ApplyStageError::from(e).into()))?;
        let report = drift::report(&drift, &revision);
        if report.is_some() && report != st.drift {
            let lines: Vec<String> = drift.iter().map(drift::describe).collect();
            ctx.recorder
                .publish(
                    ks,
                    EventType::Warning,
                    reason::DRIFT_DETECTED,
                    &lines,
                    Some(&revision),
                )
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
    let started = std::time::Instant::now();
    let mut changes = ChangeSet::default();
    let applied = match tokio::time::timeout(
        timeout,
        ctx.applier.apply_all(desired.objects, &opts, &mut changes),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ApplyStageError::Apply(e)),
        Err(_) => Err(ApplyStageError::Timeout(timeout)),
    };
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "apply done"
    );
    let old_inventory = st.inventory.clone().unwrap_or_default();
    let new_inventory = inventory_of(&changes, &ctx.namespace);
    let mut lines: Vec<String> = changes
        .written()
        .map(|c| format!("{} {}", c.id, c.action))
        .collect();
    let pruned = match applied {
        Err(e) => Err(ReconcileError::from(e)),
        Ok(()) if ks.spec.prune => prune(
            &ctx.applier,
            &ctx.namespace,
            &name,
            &old_inventory,
            &new_inventory,
        )
        .await
        .map(|p| lines.extend(p.deleted.iter().map(|id| format!("{id} deleted"))))
        .map_err(ReconcileError::from),
        Ok(()) => Ok(()),
    };
    publish_changes(ks, ctx, &lines, &revision).await;
    if let Err(e) = pruned {
        st.inventory = Some(inventory_after_failure(
            &old_inventory,
            &new_inventory,
            false,
            &ctx.namespace,
        ));
        return Err(at(e));
    }
    ctx.metrics.observe_changes(&name, &changes);
    status::set_drift(st, None);
    ctx.metrics.set_drifted(&name, 0);

    let checks = health_targets(ks, &changes, &ctx.namespace);
    if !checks.is_empty()
        && let Err(e) = health::wait_ready(&ctx.applier, &checks, timeout).await
    {
        st.inventory = Some(inventory_after_failure(
            &old_inventory,
            &new_inventory,
            true,
            &ctx.namespace,
        ));
        return Err(at(e.into()));
    }
    status::succeeded(st, generation, &revision, digest, new_inventory);
    tracing::info!(revision = %revision, summary = %changes.summary(), "applied");
    Ok(())
}

async fn publish_changes(ks: &Kustomization, ctx: &Context, lines: &[String], revision: &str) {
    if !lines.is_empty() {
        ctx.recorder
            .publish(
                ks,
                EventType::Normal,
                reason::PROGRESSING,
                lines,
                Some(revision),
            )
            .await;
    }
}

/// What `wait` / `healthChecks` ask to be ready.
fn health_targets(
    ks: &Kustomization,
    changes: &ChangeSet,
    namespace: &str,
) -> Vec<(ObjectRef, String)> {
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
            let (id, version) = ObjectRef::from_api_version(
                h.api_version.as_deref().unwrap_or("v1"),
                &h.kind,
                Some(h.namespace.as_deref().unwrap_or(namespace)),
                &h.name,
            );
            (id, version.to_string())
        })
        .collect()
}

/// Every `dependsOn` entry must be Ready at its current generation. An entry names a
/// Kustomization or a HelmRelease (`kind`, default `own_kind`): either kind may wait for the
/// other.
pub async fn dependencies_ready(
    own_kind: &str,
    deps: &[ferry_proto::kustomization::DependencyReference],
    ctx: &Context,
) -> Result<(), DependencyError> {
    for dep in deps {
        if dep.namespace.as_deref().is_some_and(|n| n != ctx.namespace) {
            return Err(DependencyError::OtherNamespace {
                namespace: dep.namespace.clone().unwrap_or_default(),
                name: dep.name.clone(),
                own: ctx.namespace.clone(),
            });
        }
        let kind = dep.kind_or(own_kind);
        let read = |source| DependencyError::Read {
            namespace: ctx.namespace.clone(),
            name: dep.name.clone(),
            source,
        };
        let ready = match kind {
            "Kustomization" => {
                let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
                api.get_opt(&dep.name)
                    .await
                    .map_err(read)?
                    .is_some_and(|d| {
                        status::is_ready(d.status.as_ref())
                            && d.status.as_ref().and_then(|s| s.observed_generation)
                                == d.metadata.generation
                    })
            }
            "HelmRelease" => {
                let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
                api.get_opt(&dep.name)
                    .await
                    .map_err(read)?
                    .is_some_and(|d| {
                        crate::helm::status::is_ready(d.status.as_ref())
                            && d.status.as_ref().and_then(|s| s.observed_generation)
                                == d.metadata.generation
                    })
            }
            other => {
                return Err(DependencyError::Kind {
                    name: dep.name.clone(),
                    kind: other.to_string(),
                });
            }
        };
        if !ready {
            return Err(DependencyError::NotReady {
                kind: kind.to_string(),
                namespace: ctx.namespace.clone(),
                name: dep.name.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::condition::{STALLED, find_condition};

    fn inv(names: &[&str]) -> Inventory {
        let ids: Vec<ObjectRef> = names
            .iter()
            .map(|n| ObjectRef::new("", "ConfigMap", Some("team-a"), n))
            .collect();
        Inventory::from_objects("team-a", ids.iter().map(|id| (id, "v1")))
    }

    #[test]
    fn the_inventory_keeps_what_prune_has_not_removed_yet() {
        let (old, applied) = (inv(&["a", "b"]), inv(&["b", "c"]));
        assert_eq!(
            inventory_after_failure(&old, &applied, false, "team-a"),
            inv(&["a", "b", "c"]),
            "before prune: both, so a later revision can prune either"
        );
        assert_eq!(
            inventory_after_failure(&old, &applied, true, "team-a"),
            applied
        );
    }

    #[test]
    fn an_invalid_interval_stalls_naming_the_field() {
        let mut ks: Kustomization = serde_json::from_value(serde_json::json!({
            "apiVersion": "apply.ferry.dev/v1", "kind": "Kustomization",
            "metadata": {"name": "app", "namespace": "team-a", "generation": 2},
            "spec": {"sourceRef": {"kind": "GitRepository", "name": "app"},
                     "interval": "5m", "retryInterval": "1x"}
        }))
        .expect("a Kustomization");
        let err = ReconcileError::from(intervals(&ks).expect_err("1x is not a duration"));
        assert!(err.is_stalled());
        assert_eq!(err.reason(), reason::INVALID_SPEC);
        assert!(err.to_string().contains("spec.retryInterval"), "{err}");
        let mut st = KustomizationStatus::default();
        status::stalled(&mut st, Some(2), err.reason(), &err.to_string());
        let stalled = find_condition(&st.conditions, STALLED).expect("Stalled");
        assert!(stalled.is_true());
        assert!(!status::is_ready(Some(&st)));

        ks.spec.retry_interval = None;
        assert!(intervals(&ks).is_ok());
    }
}
