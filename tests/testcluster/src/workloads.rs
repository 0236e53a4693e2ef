//! A stand-in for the workload controllers: Deployments, StatefulSets, DaemonSets, ReplicaSets
//! and Jobs get the `status` real controllers would report once their pods run (observed
//! generation, replica counts, `Available`/`Progressing` or `Complete` conditions), after a
//! delay. An object annotated `ferry.dev/test-never-ready: "true"` (on itself or on its Pod
//! template, where the real cluster's node stand-in reads it from the Pods) instead gets a
//! status that says "rolling out, nothing available" and never becomes ready, so health-check
//! timeouts can be tested; `ferry.dev/test-ready-after: "3s"` (or `"500ms"`) overrides the delay.
//! No pods or ReplicaSets are created.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::store::{EventType, Store, name_of, namespace_of, now_rfc3339};

pub const NEVER_READY: &str = "ferry.dev/test-never-ready";
pub const READY_AFTER: &str = "ferry.dev/test-ready-after";

const KINDS: [&str; 5] = [
    "deployments.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "replicasets.apps",
    "jobs.batch",
];

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn parse_delay(s: &str) -> Option<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.trim().parse().ok().map(Duration::from_millis);
    }
    s.strip_suffix('s')
        .unwrap_or(s)
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Whether the status already reflects the current spec (nothing to do).
fn settled(key: &str, obj: &Value) -> bool {
    if key == "jobs.batch" {
        return obj.pointer("/status/conditions").is_some();
    }
    obj.pointer("/status/observedGeneration") == obj.pointer("/metadata/generation")
}

fn replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// The status a healthy controller reports (or, `ready = false`, one stuck rolling out).
pub fn simulated_status(key: &str, obj: &Value, ready: bool) -> Value {
    let generation = obj
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let now = now_rfc3339();
    let n = replicas(obj);
    let up = if ready { n } else { 0 };
    let cond = |t: &str, s: bool, reason: &str, msg: &str| {
        json!({"type": t, "status": if s { "True" } else { "False" }, "reason": reason,
               "message": msg, "lastUpdateTime": now, "lastTransitionTime": now})
    };
    match key {
        "deployments.apps" => {
            let mut s = json!({
                "observedGeneration": generation, "replicas": n, "updatedReplicas": n,
                "readyReplicas": up, "availableReplicas": up,
                "conditions": [
                    if ready || n == 0 {
                        cond("Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability.")
                    } else {
                        cond("Available", false, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
                    },
                    if ready {
                        cond("Progressing", true, "NewReplicaSetAvailable", &format!("ReplicaSet \"{}\" has successfully progressed.", name_of(obj)))
                    } else {
                        cond("Progressing", true, "ReplicaSetUpdated", &format!("ReplicaSet \"{}\" is progressing.", name_of(obj)))
                    },
                ],
            });
            if !ready && n > 0 {
                s["unavailableReplicas"] = json!(n);
            }
            s
        }
        "statefulsets.apps" => {
            let rev = format!("{}-{}", name_of(obj), generation);
            json!({
                "observedGeneration": generation, "replicas": n, "readyReplicas": up,
                "currentReplicas": n, "updatedReplicas": n, "availableReplicas": up,
                "currentRevision": rev, "updateRevision": rev, "collisionCount": 0,
            })
        }
        "daemonsets.apps" => json!({
            "observedGeneration": generation, "desiredNumberScheduled": 1,
            "currentNumberScheduled": 1, "updatedNumberScheduled": 1,
            "numberReady": i64::from(ready), "numberAvailable": i64::from(ready),
            "numberMisscheduled": 0,
        }),
        "replicasets.apps" => json!({
            "observedGeneration": generation, "replicas": n, "fullyLabeledReplicas": n,
            "readyReplicas": up, "availableReplicas": up,
        }),
        _ => {
            // jobs.batch
            let completions = obj
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if ready {
                json!({
                    "startTime": now, "completionTime": now, "succeeded": completions,
                    "ready": 0, "terminating": 0,
                    "conditions": [
                        cond("SuccessCriteriaMet", true, "CompletionsReached", "Reached expected number of succeeded pods"),
                        cond("Complete", true, "CompletionsReached", "Reached expected number of succeeded pods"),
                    ],
                })
            } else {
                json!({"startTime": now, "active": 1, "ready": 0, "terminating": 0, "conditions": []})
            }
        }
    }
}

/// Runs until the store's event feed closes: watches workload writes and schedules status
/// updates. `delay` is the default time to readiness.
pub async fn run(store: Store, delay: Duration) {
    let mut rx = store.subscribe();
    loop {
        match rx.recv().await {
            Ok(ev) => {
                if ev.kind != EventType::Deleted && KINDS.contains(&ev.key.as_str()) {
                    schedule(&store, &ev.key, &ev.object, delay);
                }
            }
            Err(RecvError::Closed) => return,
            // Missed events: look at every workload instead.
            Err(RecvError::Lagged(_)) => {
                let all: Vec<(String, Arc<Value>)> = {
                    let st = store.lock();
                    KINDS
                        .iter()
                        .flat_map(|k| {
                            st.list(k, None)
                                .into_iter()
                                .map(|o| (k.to_string(), Arc::new(o.clone())))
                        })
                        .collect()
                };
                for (key, obj) in all {
                    schedule(&store, &key, &obj, delay);
                }
            }
        }
    }
}

/// Starts the timer for an unsettled workload (sharing the stored object, not copying it).
fn schedule(store: &Store, key: &str, obj: &Arc<Value>, delay: Duration) {
    if settled(key, obj) {
        return;
    }
    let template = obj.pointer("/spec/template").unwrap_or(&Value::Null);
    let never = annotation(obj, NEVER_READY) == Some("true")
        || annotation(template, NEVER_READY) == Some("true");
    let wait = if never {
        Duration::ZERO
    } else {
        annotation(obj, READY_AFTER)
            .and_then(parse_delay)
            .unwrap_or(delay)
    };
    let store = store.clone();
    let (key, obj) = (key.to_string(), obj.clone());
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        reconcile(&store, &key, &obj, !never);
    });
}

/// Writes the simulated status if the object is still the one (same uid and generation) the
/// timer was started for.
fn reconcile(store: &Store, key: &str, seen: &Value, ready: bool) {
    let mut st = store.lock();
    let Some(def) = st.registry.by_key(key).cloned() else {
        return;
    };
    let Some(live) = st
        .get_shared(key, namespace_of(seen), name_of(seen))
        .cloned()
    else {
        return;
    };
    let same = |p: &str| live.pointer(p) == seen.pointer(p);
    if !same("/metadata/uid") || !same("/metadata/generation") || settled(key, &live) {
        return;
    }
    if live.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let mut new = Value::clone(&live);
    new["status"] = simulated_status(key, &live, ready);
    st.replace(&def, &live, new);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_status_is_what_readiness_checks_look_for() {
        let d = json!({"metadata": {"name": "web", "generation": 3}, "spec": {"replicas": 2}});
        let s = simulated_status("deployments.apps", &d, true);
        assert_eq!(s["observedGeneration"], 3);
        assert_eq!(s["availableReplicas"], 2);
        assert_eq!(s["conditions"][0]["type"], "Available");
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][1]["reason"], "NewReplicaSetAvailable");
        let stuck = simulated_status("deployments.apps", &d, false);
        assert_eq!(stuck["conditions"][0]["status"], "False");
        assert_eq!(stuck["unavailableReplicas"], 2);
        assert_eq!(parse_delay("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_delay("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_delay("x"), None);
    }
}
