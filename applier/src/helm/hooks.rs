//! Running hooks the way Helm does: one phase at a time, hook by hook in weight order; each hook
//! is applied (after deleting its previous instance under `before-hook-creation`), waited for
//! until ready (a Job complete, a Pod succeeded) by the health module, then deleted when its
//! delete policy says so. A failed hook fails the release. Hooks are not in the inventory:
//! Helm does not count them as release objects either.

use std::ops::ControlFlow;
use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject, PropagationPolicy};

use super::manifest::{DeletePolicy, Hook};
use crate::apply::{Applier, ApplyError, ApplyOptions, ChangeSet, ObjectRef, object_ref};
use crate::health::{self, HealthError};

/// A hook that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook could not be applied or deleted.
    #[error("hook {hook}: {source}")]
    Apply {
        hook: String,
        #[source]
        source: ApplyError,
    },
    /// The hook failed or did not become ready within the timeout.
    #[error("hook {hook}: {source}")]
    Failed {
        hook: String,
        #[source]
        source: HealthError,
    },
}

/// How often a deleted hook is looked for before it is re-created.
const DELETE_POLL: Duration = Duration::from_millis(200);

/// Runs `hooks` (one phase, in order) as `objects` already labelled; returns what ran.
pub async fn run(
    applier: &Applier,
    hooks: Vec<(&Hook, DynamicObject)>,
    opts: &ApplyOptions,
    timeout: Duration,
) -> Result<Vec<String>, HookError> {
    let mut ran = vec![];
    for (hook, obj) in hooks {
        let (id, version) = object_ref(&obj).map_err(|source| HookError::Apply {
            hook: hook.name().to_string(),
            source,
        })?;
        let name = id.to_string();
        let apply_err = |source| HookError::Apply {
            hook: name.clone(),
            source,
        };
        if hook.delete.contains(&DeletePolicy::BeforeHookCreation) {
            delete(applier, &id, &version, timeout)
                .await
                .map_err(apply_err)?;
        }
        let mut changes = ChangeSet::default();
        applier
            .apply_all(vec![obj], opts, &mut changes)
            .await
            .map_err(apply_err)?;
        let waited = health::wait_ready(applier, &[(id.clone(), version.clone())], timeout).await;
        let policy = if waited.is_ok() {
            DeletePolicy::HookSucceeded
        } else {
            DeletePolicy::HookFailed
        };
        if hook.delete.contains(&policy) {
            delete(applier, &id, &version, timeout)
                .await
                .map_err(apply_err)?;
        }
        waited.map_err(|source| HookError::Failed {
            hook: name.clone(),
            source,
        })?;
        ran.push(format!("{name} hook succeeded"));
    }
    Ok(ran)
}

/// Deletes `id` (its Pods with it, in the foreground) and waits until it is gone.
async fn delete(
    applier: &Applier,
    id: &ObjectRef,
    version: &str,
    timeout: Duration,
) -> Result<(), ApplyError> {
    let api = applier
        .resolver()
        .resolve(id, version)
        .await?
        .api(applier.client(), id.namespace_or_empty());
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    let request = |action, source| ApplyError::Request {
        object: id.to_string(),
        action,
        source,
    };
    match api.delete(&id.name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(request("delete", e)),
    }
    applier.forget(id);
    let gone = crate::poll::until(timeout, DELETE_POLL, (), |()| {
        let api = api.clone();
        async move {
            match api.get_opt(&id.name).await {
                Ok(None) => Ok(ControlFlow::Break(())),
                Ok(Some(_)) => Ok(ControlFlow::Continue(())),
                Err(e) => Err(request("get", e)),
            }
        }
    })
    .await?;
    gone.map_err(|()| ApplyError::Timeout {
        object: id.to_string(),
        what: "deleted",
        timeout,
    })
}
