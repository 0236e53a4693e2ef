//! Removing a HelmRelease, as `helm uninstall` does it: the release's `pre-delete` hooks (by
//! `helm.sh/hook-weight`, each waited for, deleted per `helm.sh/hook-delete-policy`: the same
//! runner as install and upgrade hooks), then the release's objects (its inventory) deleted
//! and waited for until gone (Flux's default `uninstall.disableWait: false`), then the
//! `post-delete` hooks.
//!
//! **Which hooks.** Helm reads them from the release record; Ferry keeps no storage Secret, so
//! they come from the last successful render, held in memory. After an agent restart (or when
//! that render is gone) the release is rendered once more from its current inputs; when those
//! differ from `status.lastReleaseInputs` the event says the hooks come from that new render.
//! When the chart cannot be rendered (its source is gone, say), the hooks cannot be known:
//! the uninstall fails and nothing is deleted — a skipped pre-delete hook may be a lost
//! backup. `spec.uninstall.disableHooks: true` (Helm's `--no-hooks`) removes without them.
//!
//! **Failures**, as Helm: a failing pre-delete hook fails the uninstall before anything is
//! deleted (the finalizer stays, `Ready=False` reason `UninstallFailed`, a Warning event,
//! retried each interval); a failing post-delete hook comes after the objects are gone, so the
//! uninstall completes and reports the error ("uninstallation completed with 1 error(s)").

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::helmrelease::{DEFAULT_TIMEOUT, HelmRelease, HelmReleaseStatus};
use ferry_proto::kustomization::Inventory;
use kube::ResourceExt;

use super::desired::{
    Rendered, chart_artifact, chart_dir, chart_meta, inputs_digest, merged_values, render_release,
};
use super::manifest::Phase;
use super::release::{HelmContext, owner, run_hooks};
use super::values;
use crate::apply::{ApplyError, ApplyOptions, ObjectRef};
use crate::reconcile::Context;

/// Why an uninstall stopped. Nothing of the release was deleted unless said so.
#[derive(Debug, thiserror::Error)]
pub enum UninstallError {
    /// The last render is not in memory and the chart cannot be rendered again.
    #[error(
        "the release's pre-delete/post-delete hooks cannot be known (no render in memory; rendering again failed: {0}); nothing was deleted: make the chart's source available again, or set spec.uninstall.disableHooks: true to uninstall without hooks"
    )]
    UnknownHooks(String),
    /// A pre-delete hook failed; the release's objects stay.
    #[error("pre-delete hook failed, nothing was deleted: {0}")]
    PreDelete(String),
    /// Deleting the release's objects failed or they did not go within the timeout.
    #[error("deleting the release's objects: {0}")]
    Delete(String),
}

/// What an uninstall did.
pub struct Uninstalled {
    /// Event lines: hooks run, objects deleted, in order.
    pub lines: Vec<String>,
    /// A post-delete hook failed after everything was deleted (Helm reports and completes).
    pub post_delete_error: Option<String>,
}

/// How often deleted objects are looked for until they are gone.
const GONE_POLL: Duration = Duration::from_millis(250);

/// Uninstalls `hr` (not suspended: the caller leaves a suspended release alone).
pub async fn uninstall(
    hr: &HelmRelease,
    ctx: &Context,
    helm: &HelmContext,
) -> Result<Uninstalled, UninstallError> {
    let name = hr.name_any();
    let st = hr.status.clone().unwrap_or_default();
    let timeout = hr.spec.intervals().map_or(DEFAULT_TIMEOUT, |p| p.timeout);
    let opts = ApplyOptions {
        force: false,
        wait_timeout: timeout,
        ..Default::default()
    };
    let mut lines = vec![];
    // Never released (a first install that failed keeps no render): nothing's hooks to run.
    let released = !st.history.is_empty();
    let rendered = if hr.spec.uninstall_hooks_disabled() || !released {
        None
    } else if let Some(r) = helm.last_applied(&name) {
        Some(r)
    } else {
        let (r, same) = render_again(hr, ctx, helm, &st, timeout)
            .await
            .map_err(UninstallError::UnknownHooks)?;
        if !same {
            lines.push(
                "the release's own render was not in memory and its inputs have changed since: \
                 delete hooks from a render of the current inputs"
                    .to_string(),
            );
        }
        Some(Arc::new(r))
    };
    if let Some(r) = &rendered {
        lines.extend(
            run_hooks(ctx, r, Phase::PreDelete, &opts, timeout)
                .await
                .map_err(|e| UninstallError::PreDelete(e.to_string()))?,
        );
    }
    let inventory = st.inventory.clone().unwrap_or_default();
    let pruned = crate::prune::prune(
        &ctx.applier,
        &ctx.namespace,
        &owner(&name),
        &inventory,
        &Inventory::default(),
    )
    .await
    .map_err(|e| UninstallError::Delete(e.to_string()))?;
    let deleted: Vec<(ObjectRef, String)> = inventory
        .minus(&Inventory::default(), &ctx.namespace)
        .into_iter()
        .filter(|(id, _)| pruned.deleted.contains(id))
        .map(|(id, v)| (id, v.to_string()))
        .collect();
    wait_gone(ctx, &deleted, timeout)
        .await
        .map_err(|e| UninstallError::Delete(e.to_string()))?;
    lines.extend(deleted.iter().map(|(id, _)| format!("{id} deleted")));
    let mut post_delete_error = None;
    if let Some(r) = &rendered {
        match run_hooks(ctx, r, Phase::PostDelete, &opts, timeout).await {
            Ok(ran) => lines.extend(ran),
            Err(e) => post_delete_error = Some(format!("post-delete hook failed: {e}")),
        }
    }
    Ok(Uninstalled {
        lines,
        post_delete_error,
    })
}

/// The release rendered again from its current inputs; `true` when those are the inputs of
/// the last successful release (the render is the release's own).
async fn render_again(
    hr: &HelmRelease,
    ctx: &Context,
    helm: &HelmContext,
    st: &HelmReleaseStatus,
    timeout: Duration,
) -> Result<(Rendered, bool), String> {
    let name = hr.name_any();
    let artifact = chart_artifact(hr, ctx).await.map_err(|e| e.to_string())?;
    let tree = ctx
        .fetcher
        .get(&artifact)
        .await
        .map_err(|e| e.to_string())?;
    let merged = merged_values(hr, ctx).await?;
    let config_digest = values::config_digest(&merged);
    let release_name = hr.spec.release_name(&name);
    let dir = chart_dir(hr);
    let inputs = inputs_digest(hr, &artifact.digest, &dir, &config_digest, &release_name);
    let same = st.last_release_inputs.as_ref() == Some(&inputs);
    let chart = chart_meta(&tree, &dir);
    // The last release was an upgrade when an earlier one is in its history.
    let is_upgrade = st.history.len() > 1;
    let rendered = render_release(
        hr,
        ctx,
        helm,
        &tree,
        &dir,
        &release_name,
        &merged,
        is_upgrade,
        timeout,
        chart,
        inputs,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok((rendered, same))
}

/// Waits until every object of `ids` is gone (their deletion was requested).
async fn wait_gone(
    ctx: &Context,
    ids: &[(ObjectRef, String)],
    timeout: Duration,
) -> Result<(), ApplyError> {
    let mut apis = Vec::with_capacity(ids.len());
    for (id, version) in ids {
        match ctx.applier.resolver().resolve(id, version).await {
            Ok(r) => apis.push((id, r.api(ctx.applier.client(), id.namespace_or_empty()))),
            // Its kind is not served any more: nothing left.
            Err(ApplyError::UnknownKind { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let gone = crate::poll::until(timeout, GONE_POLL, apis, |pending| async move {
        let mut left = Vec::with_capacity(pending.len());
        for (id, api) in pending {
            match api.get_opt(&id.name).await {
                Ok(None) => {}
                Ok(Some(_)) => left.push((id, api)),
                Err(source) => {
                    return Err(ApplyError::Request {
                        object: id.to_string(),
                        action: "get",
                        source,
                    });
                }
            }
        }
        Ok(if left.is_empty() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(left)
        })
    })
    .await?;
    gone.map_err(|left| ApplyError::Timeout {
        object: left
            .iter()
            .map(|(id, _)| id.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        what: "deleted",
        timeout,
    })
}
