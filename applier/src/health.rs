//! Readiness of applied objects, by the rules kubectl rollout status and Flux's kstatus use:
//! Deployments, StatefulSets and DaemonSets have rolled out their current generation, Jobs have
//! completed, and anything else with a `Ready` condition has it `True`.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

use crate::apply::{Applier, ApplyError, ObjectRef, list_by_name};
use crate::poll;

/// The health of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// Still converging, with what it is waiting for.
    InProgress(String),
    /// Will not become ready without a change (a failed Job, a stalled rollout).
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("health check failed after {timeout:?}: {}", .pending.join("; "))]
    Timeout {
        timeout: Duration,
        pending: Vec<String>,
    },
    #[error("health check failed: {}", .0.join("; "))]
    Failed(Vec<String>),
    #[error(transparent)]
    Request(#[from] ApplyError),
}

fn int(v: &Value, ptr: &str) -> Option<i64> {
    v.pointer(ptr).and_then(Value::as_i64)
}

fn condition<'a>(v: &'a Value, type_: &str) -> Option<&'a Value> {
    v.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn condition_status<'a>(v: &'a Value, type_: &str) -> Option<&'a str> {
    condition(v, type_)?.get("status")?.as_str()
}

/// Assesses a live object.
pub fn assess(kind: &str, obj: &Value) -> Health {
    let generation = int(obj, "/metadata/generation");
    let observed = int(obj, "/status/observedGeneration");
    let stale = matches!((generation, observed), (Some(g), Some(o)) if o < g)
        || (generation.is_some()
            && observed.is_none()
            && matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet"));
    if stale {
        return Health::InProgress("status not observed for the current generation".into());
    }
    match kind {
        "Deployment" => deployment(obj),
        "StatefulSet" => statefulset(obj),
        "DaemonSet" => daemonset(obj),
        "Job" => job(obj),
        _ => generic(obj),
    }
}

fn deployment(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "Progressing")
        && c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
    {
        return Health::Failed("progress deadline exceeded".into());
    }
    let want = int(obj, "/spec/replicas").unwrap_or(1);
    let updated = int(obj, "/status/updatedReplicas").unwrap_or(0);
    let available = int(obj, "/status/availableReplicas").unwrap_or(0);
    let total = int(obj, "/status/replicas").unwrap_or(0);
    if updated < want {
        return Health::InProgress(format!("{updated} of {want} replicas updated"));
    }
    if total > updated {
        return Health::InProgress(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if available < want {
        return Health::InProgress(format!("{available} of {want} replicas available"));
    }
    Health::Ready
}

fn statefulset(obj: &Value) -> Health {
    let want = int(obj, "/spec/replicas").unwrap_or(1);
    let ready = int(obj, "/status/readyReplicas").unwrap_or(0);
    if ready < want {
        return Health::InProgress(format!("{ready} of {want} replicas ready"));
    }
    let current = obj
        .pointer("/status/currentRevision")
        .and_then(Value::as_str);
    let update = obj
        .pointer("/status/updateRevision")
        .and_then(Value::as_str);
    if let (Some(c), Some(u)) = (current, update)
        && c != u
    {
        return Health::InProgress(format!("rolling update to {u} in progress"));
    }
    Health::Ready
}

fn daemonset(obj: &Value) -> Health {
    let desired = int(obj, "/status/desiredNumberScheduled").unwrap_or(0);
    let updated = int(obj, "/status/updatedNumberScheduled").unwrap_or(0);
    let available = int(obj, "/status/numberAvailable").unwrap_or(0);
    if updated < desired {
        return Health::InProgress(format!("{updated} of {desired} pods updated"));
    }
    if available < desired {
        return Health::InProgress(format!("{available} of {desired} pods available"));
    }
    Health::Ready
}

fn job(obj: &Value) -> Health {
    if condition_status(obj, "Failed") == Some("True") {
        let msg = condition(obj, "Failed")
            .and_then(|c| c.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("job failed");
        return Health::Failed(msg.to_string());
    }
    if condition_status(obj, "Complete") == Some("True") {
        return Health::Ready;
    }
    Health::InProgress("job not complete".into())
}

fn generic(obj: &Value) -> Health {
    if condition_status(obj, "Stalled") == Some("True") {
        return Health::Failed("Stalled".into());
    }
    match condition_status(obj, "Ready") {
        None | Some("True") => Health::Ready,
        Some(_) => {
            let msg = condition(obj, "Ready")
                .and_then(|c| c.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("not ready");
            Health::InProgress(msg.to_string())
        }
    }
}

/// Lists of one kind in one namespace in flight at once during a poll.
const LIST_CONCURRENCY: usize = 8;

/// How often the health of pending objects is read again.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Polls `objects` until all are ready, one failed, or `timeout` passed. Each poll reads each
/// kind once per namespace with a LIST (as kstatus's caching reader does), the lists running
/// concurrently: a poll costs one request per kind, not one per object.
pub async fn wait_ready(
    applier: &Applier,
    objects: &[(ObjectRef, String)],
    timeout: Duration,
) -> Result<(), HealthError> {
    let pending: (Vec<&(ObjectRef, String)>, Vec<String>) = (objects.iter().collect(), vec![]);
    let waited = poll::until(timeout, POLL_INTERVAL, pending, |(pending, _)| async move {
        let (still, reasons) = poll_once(applier, &pending).await?;
        Ok::<_, HealthError>(if still.is_empty() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue((still, reasons))
        })
    })
    .await?;
    waited.map_err(|(_, reasons)| HealthError::Timeout {
        timeout,
        pending: reasons,
    })
}

/// One poll: the objects still in progress with what each waits for, or the failed ones.
async fn poll_once<'a>(
    applier: &Applier,
    pending: &[&'a (ObjectRef, String)],
) -> Result<(Vec<&'a (ObjectRef, String)>, Vec<String>), HealthError> {
    // Group, version, kind, namespace.
    type Key<'k> = (&'k str, &'k str, &'k str, &'k str);
    let mut groups: BTreeMap<Key, Vec<&'a (ObjectRef, String)>> = BTreeMap::new();
    for item in pending {
        let (id, version) = *item;
        groups
            .entry((&id.group, version, &id.kind, id.namespace_or_empty()))
            .or_default()
            .push(item);
    }
    // Built before streamed: a `map` closure over borrowed data makes the reconcile future
    // fail the controller's `Send` bound (rust#102211).
    let lists: Vec<_> = groups
        .into_values()
        .map(|items| assess_group(applier, items))
        .collect();
    let assessed: Vec<Vec<(&(ObjectRef, String), Health)>> = stream::iter(lists)
        .buffered(LIST_CONCURRENCY)
        .try_collect()
        .await?;
    let mut still = vec![];
    let mut reasons = vec![];
    let mut failed = vec![];
    for (item, health) in assessed.into_iter().flatten() {
        match health {
            Health::Ready => {}
            Health::InProgress(why) => {
                reasons.push(format!("{}: {why}", item.0));
                still.push(item);
            }
            Health::Failed(why) => failed.push(format!("{}: {why}", item.0)),
        }
    }
    if failed.is_empty() {
        Ok((still, reasons))
    } else {
        Err(HealthError::Failed(failed))
    }
}

/// The health of `items`, all of one kind in one namespace, from one LIST.
async fn assess_group<'a>(
    applier: &Applier,
    items: Vec<&'a (ObjectRef, String)>,
) -> Result<Vec<(&'a (ObjectRef, String), Health)>, HealthError> {
    let (first, version) = items.first().copied().expect("groups are never empty");
    let resolved = applier.resolver().resolve(first, version).await?;
    let api = resolved.api(applier.client(), first.namespace_or_empty());
    let by_name = list_by_name(&api, first).await?;
    Ok(items
        .into_iter()
        .map(|item| {
            let health = match by_name.get(&item.0.name) {
                None => Health::InProgress("not found".into()),
                Some(live) => match serde_json::to_value(live) {
                    Ok(v) => assess(&item.0.kind, &v),
                    Err(e) => Health::Failed(format!("unreadable: {e}")),
                },
            };
            (item, health)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(gen_: i64, observed: i64, updated: i64, available: i64) -> Value {
        json!({"metadata": {"generation": gen_}, "spec": {"replicas": 2},
               "status": {"observedGeneration": observed, "replicas": updated,
                          "updatedReplicas": updated, "availableReplicas": available}})
    }

    #[test]
    fn deployment_rollout() {
        assert_eq!(assess("Deployment", &deploy(2, 2, 2, 2)), Health::Ready);
        assert!(matches!(
            assess("Deployment", &deploy(3, 2, 2, 2)),
            Health::InProgress(_)
        ));
        assert!(matches!(
            assess("Deployment", &deploy(2, 2, 2, 1)),
            Health::InProgress(m) if m.contains("1 of 2")
        ));
        let mut stuck = deploy(2, 2, 1, 1);
        stuck["status"]["conditions"] = json!([{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded"}]);
        assert!(matches!(assess("Deployment", &stuck), Health::Failed(_)));
        let fresh = json!({"metadata": {"generation": 1}, "spec": {}});
        assert!(matches!(
            assess("Deployment", &fresh),
            Health::InProgress(_)
        ));
    }

    #[test]
    fn jobs_statefulsets_daemonsets() {
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(assess("Job", &done), Health::Ready);
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True",
            "message": "BackoffLimitExceeded"}]}});
        assert_eq!(
            assess("Job", &failed),
            Health::Failed("BackoffLimitExceeded".into())
        );
        let sts = json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 3,
            "currentRevision": "a", "updateRevision": "b"}});
        assert!(matches!(assess("StatefulSet", &sts), Health::InProgress(_)));
        let ds = json!({"status": {"desiredNumberScheduled": 2, "updatedNumberScheduled": 2,
            "numberAvailable": 2}});
        assert_eq!(assess("DaemonSet", &ds), Health::Ready);
    }

    #[test]
    fn ready_condition_and_plain_objects() {
        assert_eq!(assess("ConfigMap", &json!({"data": {}})), Health::Ready);
        let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False",
            "message": "waiting for cert"}]}});
        assert_eq!(
            assess("Certificate", &not_ready),
            Health::InProgress("waiting for cert".into())
        );
    }
}
