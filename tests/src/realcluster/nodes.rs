//! A stand-in for the scheduler and the kubelets of a real control plane, so that Deployment,
//! StatefulSet, DaemonSet and Job status comes from the real controllers.
//!
//! It registers one Node, [`NODE`] (Ready, with capacity), renews its Lease so the node
//! lifecycle controller never marks it unreachable, and for every Pod:
//! - unscheduled → bound to [`NODE`] through the `binding` subresource (as the scheduler does);
//! - bound to [`NODE`] and `Pending` → `Running` and Ready through the `status` subresource, or
//!   `Succeeded` (container exited 0) when a Job owns it, so Jobs complete;
//! - with a `deletionTimestamp` → deleted with grace period 0 (a kubelet confirms the graceful
//!   deletion once the containers stopped; there are none).
//!
//! A Pod annotated [`NEVER_READY`]`: "true"` (set it on the Pod template) runs but never becomes
//! Ready, so health-check timeouts can be tested on the real controllers too. The test server
//! honours the same annotation on a workload or its Pod template.
//!
//! Why not kwok (`sigs.k8s.io/kwok`, which the Go proxy serves): it does not schedule, so it
//! needs a kube-scheduler too, plus a third Go build and Stage objects for "never ready"; this
//! is one small watch loop in the harness's own language.

use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// The one node every Pod runs on.
pub const NODE: &str = "ferry-node";
/// Pod annotation: run, but never report Ready (the test server's annotation, same meaning).
pub use ferry_testcluster::workloads::NEVER_READY;
const MANAGER: &str = "ferry-node-standin";
/// How often the node's Lease is renewed (the lifecycle controller's grace period is 50 s).
const LEASE_RENEWAL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    /// Registering the Node or its Lease failed.
    #[error("registering node {NODE}: {0}")]
    Register(#[source] kube::Error),
    /// The Pod watch ended (it retries errors itself, so this only happens when it is dropped).
    #[error("the pod watch ended")]
    WatchEnded,
}

/// Registers the node and plays scheduler and kubelet until the future is dropped.
pub async fn run(client: Client) -> Result<(), NodesError> {
    register(&client).await.map_err(NodesError::Register)?;
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(pods);
    let mut lease = tokio::time::interval(LEASE_RENEWAL);
    loop {
        tokio::select! {
            _ = lease.tick() => {
                if let Err(e) = renew_lease(&client).await {
                    tracing::warn!("renewing the lease of node {NODE}: {e}");
                }
            }
            pod = pods.try_next() => match pod {
                Ok(Some(pod)) => {
                    if let Err(e) = handle(&client, &pod).await {
                        tracing::warn!(
                            "pod {}/{}: {e}",
                            pod.namespace().unwrap_or_default(),
                            pod.name_any()
                        );
                    }
                }
                Ok(None) => return Err(NodesError::WatchEnded),
                // The backoff retries; the error is only worth a line.
                Err(e) => tracing::warn!("pod watch: {e}"),
            },
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn register(client: &Client) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "labels": {
            "kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "node.ferry.dev/stand-in": "true"}},
    });
    nodes
        .patch(
            NODE,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&node),
        )
        .await?;
    let t = now();
    let capacity =
        json!({"cpu": "64", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "1Ti"});
    let status = json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
        "status": {
            "capacity": capacity, "allocatable": capacity,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": NODE}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "ferry node stand-in", "lastHeartbeatTime": t,
                            "lastTransitionTime": t}],
            "nodeInfo": {"kubeletVersion": "v1.35.4", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "ferry://0",
                         "kernelVersion": "", "osImage": "", "kubeProxyVersion": "",
                         "machineID": "", "systemUUID": "", "bootID": ""},
        },
    });
    nodes
        .patch_status(
            NODE,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&status),
        )
        .await?;
    renew_lease(client).await
}

async fn renew_lease(client: &Client) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let renew = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": NODE, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40, "renewTime": renew},
    });
    leases
        .patch(
            NODE,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&lease),
        )
        .await?;
    Ok(())
}

/// One step of a Pod's life; the watch brings the next event.
async fn handle(client: &Client, pod: &Pod) -> Result<(), kube::Error> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let spec = pod.spec.as_ref();
    let node = spec.and_then(|s| s.node_name.as_deref());
    if pod.metadata.deletion_timestamp.is_some() {
        if node.is_some() {
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            return ignore_gone(pods.delete(&name, &params).await.map(|_| ()));
        }
        return Ok(());
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    match node {
        None => {
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
            });
            let bound = pods
                .create_subresource::<_, Value>("binding", &name, &PostParams::default(), &binding)
                .await;
            ignore_gone(bound.map(|_| ()))
        }
        Some(NODE) if phase.is_none_or(|p| p == "Pending") => {
            let status = pod_status(pod);
            ignore_gone(
                pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .map(|_| ()),
            )
        }
        _ => Ok(()),
    }
}

/// The pod is gone or already bound/changed by someone else: the watch brings its next state.
fn ignore_gone(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        r => r,
    }
}

/// What a kubelet reports once the containers started (or, for a Job's Pod, exited 0).
fn pod_status(pod: &Pod) -> Value {
    let t = now();
    let owned_by_job = pod
        .owner_references()
        .iter()
        .any(|o| o.kind == "Job" && o.controller == Some(true));
    let never_ready = pod.annotations().get(NEVER_READY).map(String::as_str) == Some("true");
    let ready = !owned_by_job && !never_ready;
    let containers: Vec<(String, String)> = pod
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|(name, image)| {
            let state = if owned_by_job {
                json!({"terminated": {"exitCode": 0, "reason": "Completed",
                                      "startedAt": t, "finishedAt": t}})
            } else {
                json!({"running": {"startedAt": t}})
            };
            json!({"name": name, "image": image, "imageID": format!("ferry://{image}"),
                   "ready": ready, "started": !owned_by_job, "restartCount": 0, "state": state})
        })
        .collect();
    let cond = |ty: &str, ok: bool, reason: Option<&str>| {
        let mut c = json!({"type": ty, "status": if ok { "True" } else { "False" },
                           "lastTransitionTime": t, "lastProbeTime": null});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        c
    };
    let not_ready_reason = if owned_by_job {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let unready = (!ready).then_some(not_ready_reason);
    json!({"status": {
        "phase": if owned_by_job { "Succeeded" } else { "Running" },
        "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
        "startTime": t,
        "conditions": [
            cond("PodScheduled", true, None),
            cond("Initialized", true, None),
            cond("ContainersReady", ready, unready),
            cond("Ready", ready, unready),
        ],
        "containerStatuses": statuses,
    }})
}
