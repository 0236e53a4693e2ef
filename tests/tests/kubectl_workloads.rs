//! kubectl `wait` and `get -w` against the test server: simulated workload controllers make
//! Deployments Available (or, when marked never-ready, never), and watches see changes.

use std::time::Duration;

use ferry_testcluster::{ClusterOptions, TestCluster};
use ferry_tests::tools::Client;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

async fn setup() -> (TestCluster, Client) {
    let cluster = TestCluster::start(ClusterOptions {
        workload_delay: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .expect("test cluster starts");
    let kubectl = Client::kubectl(cluster.kubeconfig_path()).expect("kubectl installed");
    (cluster, kubectl)
}

fn deployment(name: &str, annotations: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, annotations: {{{annotations}}}}}\n\
         spec:\n  replicas: 3\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n\
         \x20   spec: {{containers: [{{name: app, image: nginx:1.27}}]}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_available_succeeds_for_a_simulated_deployment() {
    let (_c, k) = setup().await;
    let out = k
        .run_with(
            &["apply", "--server-side", "-f", "-"],
            Some(&deployment("web", "")),
            Duration::from_secs(30),
        )
        .await;
    assert!(out.success(), "{}", out.stderr);
    let out = k
        .ok(&[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=20s",
        ])
        .await;
    assert!(out.contains("deployment.apps/web condition met"), "{out}");
    let d: Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "web", "-o", "json"]).await).expect("json");
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    assert_eq!(d["status"]["readyReplicas"], 3);
    assert_eq!(d["status"]["availableReplicas"], 3);
    // A spec change bumps generation; the controller catches up again.
    let out = k.ok(&["scale", "deployment/web", "--replicas=5"]).await;
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    let replicas = k
        .ok(&[
            "get",
            "deployment/web",
            "--subresource=scale",
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .await;
    assert_eq!(replicas, "5");
    k.ok(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    let d: Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "web", "-o", "json"]).await).expect("json");
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(d["status"]["availableReplicas"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_times_out_for_a_never_ready_deployment() {
    let (_c, k) = setup().await;
    let manifest = deployment("stuck", "ferry.dev/test-never-ready: \"true\"");
    let out = k
        .run_with(
            &["apply", "--server-side", "-f", "-"],
            Some(&manifest),
            Duration::from_secs(30),
        )
        .await;
    assert!(out.success(), "{}", out.stderr);
    let r = k
        .run(&[
            "wait",
            "--for=condition=Available",
            "deployment/stuck",
            "--timeout=2s",
        ])
        .await;
    assert!(!r.success(), "wait must fail: {}", r.stdout);
    assert!(
        r.stderr.contains("timed out waiting for the condition"),
        "{}",
        r.stderr
    );
    let d: Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "stuck", "-o", "json"]).await).expect("json");
    assert_eq!(d["status"]["availableReplicas"], 0);
    assert_eq!(d["status"]["conditions"][0]["status"], "False");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_sees_a_change() {
    let (_c, k) = setup().await;
    let cm = |v: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: watched}}\ndata: {{k: \"{v}\"}}\n"
        )
    };
    let r = k
        .run_with(
            &["apply", "--server-side", "-f", "-"],
            Some(&cm("one")),
            Duration::from_secs(30),
        )
        .await;
    assert!(r.success(), "{}", r.stderr);
    let mut child = k
        .command(&[
            "get",
            "configmap",
            "watched",
            "-w",
            "-o",
            "jsonpath={.data.k}{\"\\n\"}",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn kubectl get -w");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(next(&mut lines).await, "one");
    let r = k
        .run_with(
            &["apply", "--server-side", "-f", "-"],
            Some(&cm("two")),
            Duration::from_secs(30),
        )
        .await;
    assert!(r.success(), "{}", r.stderr);
    assert_eq!(next(&mut lines).await, "two");
    child.kill().await.expect("stop kubectl");
}

async fn next(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("kubectl get -w printed in time")
        .expect("read")
        .expect("a line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_and_statefulsets_daemonsets_roll_out() {
    let (_c, k) = setup().await;
    let pod = "template:\n    metadata: {labels: {app: x}}\n    spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}\n";
    let manifests = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: once, annotations: {{ferry.dev/test-ready-after: 100ms}}}}\nspec:\n  {pod}\
         ---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db}}\nspec:\n  replicas: 2\n  serviceName: db\n  selector: {{matchLabels: {{app: x}}}}\n  {pod}\
         ---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: agent}}\nspec:\n  selector: {{matchLabels: {{app: x}}}}\n  {pod}"
    );
    let r = k
        .run_with(
            &["apply", "--server-side", "-f", "-"],
            Some(&manifests),
            Duration::from_secs(30),
        )
        .await;
    assert!(r.success(), "{}", r.stderr);
    let out = k
        .ok(&[
            "wait",
            "--for=condition=Complete",
            "job/once",
            "--timeout=20s",
        ])
        .await;
    assert!(out.contains("job.batch/once condition met"), "{out}");
    let out = k
        .ok(&["rollout", "status", "statefulset/db", "--timeout=20s"])
        .await;
    assert!(
        out.contains("roll out complete") || out.contains("rolling update complete"),
        "{out}"
    );
    let out = k
        .ok(&["rollout", "status", "daemonset/agent", "--timeout=20s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
}
