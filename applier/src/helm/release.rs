//! One reconcile of one HelmRelease: dependencies → chart artifact → values → (only when an
//! input changed) `helm template` → CRDs per policy → pre hooks → the same staged server-side
//! apply as Kustomizations → prune of what the chart no longer renders → post hooks → health
//! (Helm's `--wait`) → test hooks (`test.enable`) → status with a history snapshot.
//!
//! **Upgrade only when something changed.** The inputs of a release — the chart artifact's
//! digest and directory, the config digest of the merged values, the post-renderers, the
//! generation, release name and namespace — are digested into `status.lastReleaseInputs`. While
//! it is unchanged nothing is rendered again: the objects of the last render are kept in memory
//! and compared with (`warn`) or re-applied to (`enabled`, which writes only what drifted) the
//! cluster each interval. A chart calling `randAlphaNum` therefore keeps the value it was
//! installed with until an input changes; after an agent restart the first reconcile renders
//! once more and applies that render.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_proto::Digest;
use ferry_proto::condition::reason as flux;
use ferry_proto::helmrelease::{DriftDetectionMode, HelmRelease, HelmReleaseStatus, Snapshot};
use kube::{Api, ResourceExt};

use super::desired::{
    Rendered, chart_artifact, chart_meta, inputs_digest, merged_values, render_release,
};
use super::manifest::Phase;
use super::render::HelmConfig;
use super::status::{self, Released, reason};
use super::{hooks, values};
use crate::apply::{Action, ApplyOptions, ChangeSet, ObjectRef};
use crate::events::EventType;
use crate::prune::{inventory_of, prune};
use crate::reconcile::{Context, dependencies_ready};

/// The agent's Helm state: where helm is, and the last render of each release.
pub struct HelmContext {
    pub config: HelmConfig,
    renders: Mutex<HashMap<String, Arc<Rendered>>>,
}

impl HelmContext {
    pub fn new(config: HelmConfig) -> Self {
        Self {
            config,
            renders: Default::default(),
        }
    }

    fn last_render(&self, name: &str, inputs: &Digest) -> Option<Arc<Rendered>> {
        let m = self.renders.lock().ok()?;
        m.get(name).filter(|r| &r.inputs == inputs).cloned()
    }

    /// The render of the last successful release of `name`, whatever its inputs.
    pub(super) fn last_applied(&self, name: &str) -> Option<Arc<Rendered>> {
        self.renders.lock().ok()?.get(name).cloned()
    }

    fn remember(&self, name: &str, r: Arc<Rendered>) {
        if let Ok(mut m) = self.renders.lock() {
            m.insert(name.to_string(), r);
        }
    }

    pub fn forget(&self, name: &str) {
        if let Ok(mut m) = self.renders.lock() {
            m.remove(name);
        }
    }
}

/// The owner-label value of HelmRelease `name`: the uppercase prefix cannot be a Kustomization
/// name (object names are lowercase), so prune never mistakes one owner for the other.
pub fn owner(name: &str) -> String {
    format!("HelmRelease.{name}")
}

/// Why a reconcile of a HelmRelease stopped; nothing after the failing stage ran.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The spec cannot be acted on (Stalled until edited).
    #[error("{0}")]
    Spec(String),
    /// A dependency is not Ready.
    #[error(transparent)]
    Dependency(#[from] crate::reconcile::DependencyError),
    /// The chart's source or artifact is not available.
    #[error("{0}")]
    Artifact(String),
    /// `valuesFrom` could not be read, or values do not merge.
    #[error("{0}")]
    Values(String),
    /// helm template, the manifest or a post-renderer failed: nothing was applied.
    #[error("{0}")]
    Render(String),
    /// Applying, pruning, a hook or the health wait failed.
    #[error("{0}")]
    Release(String),
}

type Failed = (ReleaseError, Option<(String, Digest)>);

/// How soon a release whose dependency is not ready looks again (helm-controller's default).
pub const REQUEUE_DEPENDENCY: Duration = Duration::from_secs(30);

/// What the controller needs afterwards.
pub struct Outcome {
    pub requeue: Option<Duration>,
    pub ready: bool,
}

/// Runs one reconcile of `hr` and writes its status.
pub async fn reconcile(hr: &HelmRelease, ctx: &Context, helm: &HelmContext) -> Outcome {
    let mut st = hr.status.clone().unwrap_or_default();
    let outcome = reconcile_status(hr, ctx, helm, &mut st).await;
    ctx.reporter.object(crate::report::helm_release_summary(
        &hr.name_any(),
        hr.spec.suspend,
        &st,
    ));
    outcome
}

async fn reconcile_status(
    hr: &HelmRelease,
    ctx: &Context,
    helm: &HelmContext,
    st: &mut HelmReleaseStatus,
) -> Outcome {
    let name = hr.name_any();
    let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let generation = hr.metadata.generation;
    let started = std::time::Instant::now();
    let periods = match hr.spec.intervals() {
        Ok(p) => p,
        Err(e) => {
            status::stalled(st, generation, flux::INVALID_SPEC, &e.to_string());
            write(&api, &name, st).await;
            return Outcome {
                requeue: None,
                ready: false,
            };
        }
    };
    if hr.spec.suspend {
        status::suspended(st, generation, &name);
        write(&api, &name, st).await;
        return Outcome {
            requeue: Some(periods.interval),
            ready: status::is_ready(Some(&*st)),
        };
    }
    let result = run(hr, ctx, helm, st, periods.timeout).await;
    if let Some(at) = crate::reconcile::requested_at_of(&hr.metadata) {
        st.last_handled_reconcile_at = Some(at.to_string());
    }
    let metric_name = format!("HelmRelease/{name}");
    ctx.metrics
        .observe_reconcile(&metric_name, started.elapsed(), result.is_ok());
    match result {
        Ok(()) => {
            if hr.status.as_ref() != Some(&*st) {
                write(&api, &name, st).await;
            }
            Outcome {
                requeue: Some(periods.interval),
                ready: true,
            }
        }
        Err((error, attempted)) => {
            let upgrade = !st.history.is_empty();
            let why = match &error {
                ReleaseError::Spec(_) => flux::INVALID_SPEC,
                ReleaseError::Dependency(_) => flux::DEPENDENCY_NOT_READY,
                ReleaseError::Artifact(_) => flux::ARTIFACT_FAILED,
                ReleaseError::Values(_) | ReleaseError::Render(_) | ReleaseError::Release(_) => {
                    if upgrade {
                        reason::UPGRADE_FAILED
                    } else {
                        reason::INSTALL_FAILED
                    }
                }
            };
            let message = error.to_string();
            tracing::warn!(reason = why, message = %message, "helm release failed");
            if matches!(error, ReleaseError::Spec(_)) {
                status::stalled(st, generation, why, &message);
            } else {
                let attempted = attempted.as_ref().map(|(r, d)| (r.as_str(), *d));
                status::failed(st, generation, why, &message, attempted);
            }
            write(&api, &name, st).await;
            let revision = attempted.as_ref().map(|(r, _)| r.as_str());
            ctx.recorder
                .publish(hr, EventType::Warning, why, &[message], revision)
                .await;
            Outcome {
                requeue: match error {
                    ReleaseError::Spec(_) => None,
                    // A dependency of the other kind has no way to trigger this release when it
                    // becomes ready: look again soon, as helm-controller's
                    // `--requeue-dependency` (30s) does.
                    ReleaseError::Dependency(_) => Some(periods.interval.min(REQUEUE_DEPENDENCY)),
                    _ => Some(periods.interval),
                },
                ready: false,
            }
        }
    }
}

async fn write(api: &Api<HelmRelease>, name: &str, st: &HelmReleaseStatus) {
    if let Err(e) = status::write(api, name, st).await {
        tracing::warn!(error = %e, "could not write status; the previous status stands");
    }
}

async fn run(
    hr: &HelmRelease,
    ctx: &Context,
    helm: &HelmContext,
    st: &mut HelmReleaseStatus,
    timeout: Duration,
) -> Result<(), Failed> {
    let name = hr.name_any();
    let generation = hr.metadata.generation;
    if let Some(t) = hr.spec.target_namespace.as_deref()
        && t != ctx.namespace
    {
        return Err((
            ReleaseError::Spec(format!(
                "spec.targetNamespace {t:?}: this agent only applies into namespace {:?}",
                ctx.namespace
            )),
            None,
        ));
    }
    dependencies_ready("HelmRelease", &hr.spec.depends_on, ctx)
        .await
        .map_err(|e| (e.into(), None))?;
    let artifact = chart_artifact(hr, ctx).await.map_err(|e| (e, None))?;
    let tree = ctx
        .fetcher
        .get(&artifact)
        .await
        .map_err(|e| (ReleaseError::Artifact(e.to_string()), None))?;
    let merged = merged_values(hr, ctx)
        .await
        .map_err(|e| (ReleaseError::Values(e), None))?;
    let config_digest = values::config_digest(&merged);
    let release_name = hr.spec.release_name(&name);
    let chart_dir = super::desired::chart_dir(hr);
    let inputs = inputs_digest(
        hr,
        &artifact.digest,
        &chart_dir,
        &config_digest,
        &release_name,
    );
    let chart = chart_meta(&tree, &chart_dir);
    // A HelmRepository chart's revision already is `<version>@sha256:<digest>`; a chart from
    // Git gets its version in front of the commit.
    let revision = if chart_dir.is_empty()
        && hr.spec.chart.spec.source_ref.kind == ferry_proto::helmrelease::HELM_REPOSITORY
    {
        artifact.revision.to_string()
    } else {
        format!("{}@{}", chart.version, artifact.revision)
    };
    let attempted = Some((revision.clone(), config_digest));
    let fail = |e: ReleaseError| (e, attempted.clone());
    let up_to_date = st.last_release_inputs.as_ref() == Some(&inputs)
        && st.observed_generation == generation
        && status::is_ready(Some(st));
    let opts = ApplyOptions {
        // Helm's own behaviour on an immutable change is to fail; Flux's `force` recreates.
        force: false,
        wait_timeout: timeout,
        ..Default::default()
    };

    if up_to_date && let Some(last) = helm.last_render(&name, &inputs) {
        return drift(hr, ctx, st, &last, &opts).await.map_err(fail);
    }

    let is_upgrade = !st.history.is_empty();
    let rendered = render_release(
        hr,
        ctx,
        helm,
        &tree,
        &chart_dir,
        &release_name,
        &merged,
        is_upgrade,
        timeout,
        chart,
        inputs,
    )
    .await
    .map_err(fail)?;
    if up_to_date {
        // Restarted: the release is current; re-apply the fresh render as drift correction.
        let rendered = Arc::new(rendered);
        helm.remember(&name, rendered.clone());
        return drift(hr, ctx, st, &rendered, &opts).await.map_err(fail);
    }
    status::progressing(st, generation, &revision);
    write(
        &Api::namespaced(ctx.client.clone(), &ctx.namespace),
        &name,
        st,
    )
    .await;

    let rendered = Arc::new(rendered);
    let mut lines = vec![];
    // CRDs first, per policy; never inventoried, so never pruned (Helm never deletes CRDs).
    if !rendered.crds.is_empty() {
        let mut crd_changes = ChangeSet::default();
        ctx.applier
            .apply_all(rendered.crds.clone(), &opts, &mut crd_changes)
            .await
            .map_err(|e| fail(ReleaseError::Release(format!("CRDs: {e}"))))?;
        lines.extend(
            crd_changes
                .written()
                .map(|c| format!("{} {}", c.id, c.action)),
        );
    }
    let (pre, post) = if is_upgrade {
        (Phase::PreUpgrade, Phase::PostUpgrade)
    } else {
        (Phase::PreInstall, Phase::PostInstall)
    };
    lines.extend(
        run_hooks(ctx, &rendered, pre, &opts, timeout)
            .await
            .map_err(fail)?,
    );
    let mut changes = ChangeSet::default();
    let applied = tokio::time::timeout(
        timeout,
        ctx.applier
            .apply_all(rendered.objects.clone(), &opts, &mut changes),
    )
    .await;
    lines.extend(changes.written().map(|c| format!("{} {}", c.id, c.action)));
    let old_inventory = st.inventory.clone().unwrap_or_default();
    let new_inventory = inventory_of(&changes, &ctx.namespace);
    let applied = match applied {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("apply timed out after {timeout:?}")),
    };
    if let Err(e) = applied {
        st.inventory = Some(crate::reconcile::inventory_after_failure(
            &old_inventory,
            &new_inventory,
            false,
            &ctx.namespace,
        ));
        publish(hr, ctx, &lines, &revision).await;
        return Err(fail(ReleaseError::Release(e)));
    }
    // Helm deletes what a new chart version no longer renders: prune is always on.
    match prune(
        &ctx.applier,
        &ctx.namespace,
        &owner(&name),
        &old_inventory,
        &new_inventory,
    )
    .await
    {
        Ok(p) => lines.extend(p.deleted.iter().map(|id| format!("{id} deleted"))),
        Err(e) => {
            st.inventory = Some(crate::reconcile::inventory_after_failure(
                &old_inventory,
                &new_inventory,
                false,
                &ctx.namespace,
            ));
            publish(hr, ctx, &lines, &revision).await;
            return Err(fail(ReleaseError::Release(e.to_string())));
        }
    }
    st.inventory = Some(new_inventory.clone());
    ctx.metrics
        .observe_changes(&format!("HelmRelease/{name}"), &changes);
    let finished = finish(
        ctx, hr, &rendered, &changes, post, &opts, timeout, &mut lines,
    )
    .await;
    publish(hr, ctx, &lines, &revision).await;
    finished.map_err(fail)?;

    let now = chrono::Utc::now();
    let first = st.history.last().map_or(now, |s| s.first_deployed);
    let version = st.history.first().map_or(1, |s| s.version + 1);
    let snapshot = Snapshot {
        version,
        name: release_name.clone(),
        namespace: ctx.namespace.clone(),
        chart_name: rendered.chart.name.clone(),
        chart_version: rendered.chart.version.clone(),
        app_version: rendered.chart.app_version.clone(),
        config_digest,
        digest: rendered.digest,
        status: "deployed".into(),
        first_deployed: first,
        last_deployed: now,
    };
    st.last_attempted_config_digest = Some(config_digest);
    st.release_name = Some(release_name);
    status::succeeded(
        st,
        generation,
        Released {
            snapshot,
            revision,
            inputs,
            inventory: new_inventory,
            max_history: hr.spec.max_history,
        },
    );
    helm.remember(&name, rendered);
    Ok(())
}

/// After the apply: post hooks, the health wait (Helm's `--wait`), then test hooks.
#[allow(clippy::too_many_arguments)]
async fn finish(
    ctx: &Context,
    hr: &HelmRelease,
    rendered: &Rendered,
    changes: &ChangeSet,
    post: Phase,
    opts: &ApplyOptions,
    timeout: Duration,
    lines: &mut Vec<String>,
) -> Result<(), ReleaseError> {
    lines.extend(run_hooks(ctx, rendered, post, opts, timeout).await?);
    let targets: Vec<(ObjectRef, String)> = changes
        .changes
        .iter()
        .filter(|c| c.action != Action::Skipped)
        .map(|c| (c.id.clone(), c.version.clone()))
        .collect();
    crate::health::wait_ready(&ctx.applier, &targets, timeout)
        .await
        .map_err(|e| ReleaseError::Release(e.to_string()))?;
    if hr.spec.tests_enabled() {
        lines.extend(run_hooks(ctx, rendered, Phase::Test, opts, timeout).await?);
    }
    Ok(())
}

async fn publish(hr: &HelmRelease, ctx: &Context, lines: &[String], revision: &str) {
    if !lines.is_empty() {
        ctx.recorder
            .publish(
                hr,
                EventType::Normal,
                flux::PROGRESSING,
                lines,
                Some(revision),
            )
            .await;
    }
}

/// Runs the hooks of `phase` of `rendered`; returns the event lines of what ran.
pub(super) async fn run_hooks(
    ctx: &Context,
    rendered: &Rendered,
    phase: Phase,
    opts: &ApplyOptions,
    timeout: Duration,
) -> Result<Vec<String>, ReleaseError> {
    let hooks: Vec<_> = rendered
        .manifest
        .hooks_of(phase)
        .into_iter()
        .filter_map(|h| {
            let i = rendered
                .manifest
                .hooks
                .iter()
                .position(|x| std::ptr::eq(x, h))?;
            Some((h, rendered.hook_objects[i].clone()))
        })
        .collect();
    if hooks.is_empty() {
        return Ok(vec![]);
    }
    hooks::run(&ctx.applier, hooks, opts, timeout)
        .await
        .map_err(|e| ReleaseError::Release(e.to_string()))
}

/// Drift of an unchanged release: compared (`warn`) or corrected (`enabled`).
async fn drift(
    hr: &HelmRelease,
    ctx: &Context,
    st: &mut HelmReleaseStatus,
    rendered: &Rendered,
    opts: &ApplyOptions,
) -> Result<(), ReleaseError> {
    let name = hr.name_any();
    let generation = hr.metadata.generation;
    match hr.spec.drift_mode() {
        DriftDetectionMode::Disabled => Ok(()),
        DriftDetectionMode::Warn => {
            let drift = ctx
                .applier
                .drift(rendered.objects.clone(), opts)
                .await
                .map_err(|e| ReleaseError::Release(e.to_string()))?;
            ctx.metrics
                .set_drifted(&format!("HelmRelease/{name}"), drift.len());
            let lines: Vec<String> = drift.iter().map(crate::drift::describe).collect();
            let message = (!lines.is_empty())
                .then(|| format!("{} object(s) drifted: {}", lines.len(), lines.join("; ")));
            let was = ferry_proto::condition::find_condition(
                &st.conditions,
                ferry_proto::helmrelease::DRIFTED,
            )
            .map(|c| c.message.clone());
            if message.is_some() && message != was {
                ctx.recorder
                    .publish(
                        hr,
                        EventType::Warning,
                        reason::DRIFT_DETECTED,
                        &lines,
                        st.last_attempted_revision.as_deref(),
                    )
                    .await;
            }
            status::set_drifted(st, generation, message);
            Ok(())
        }
        DriftDetectionMode::Enabled => {
            let mut changes = ChangeSet::default();
            ctx.applier
                .apply_all(rendered.objects.clone(), opts, &mut changes)
                .await
                .map_err(|e| ReleaseError::Release(e.to_string()))?;
            let lines: Vec<String> = changes
                .written()
                .map(|c| format!("{} {} (drift corrected)", c.id, c.action))
                .collect();
            if !lines.is_empty() {
                ctx.recorder
                    .publish(
                        hr,
                        EventType::Warning,
                        reason::DRIFT_DETECTED,
                        &lines,
                        st.last_attempted_revision.as_deref(),
                    )
                    .await;
            }
            ctx.metrics
                .observe_changes(&format!("HelmRelease/{name}"), &changes);
            Ok(())
        }
    }
}
