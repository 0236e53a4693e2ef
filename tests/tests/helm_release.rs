//! The real helm v4.1.4 against the test server: install --wait of a `helm create` chart
//! (release Secrets arrive as protobuf; the Deployment becomes ready through the simulated
//! controller), upgrade, list and uninstall.

use std::time::Duration;

use ferry_testcluster::{ClusterOptions, TestCluster};
use ferry_tests::tools::Client;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_upgrade_list_uninstall_a_created_chart() {
    let c = TestCluster::start(ClusterOptions {
        workload_delay: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .expect("cluster");
    let helm = Client::helm(c.kubeconfig_path()).expect("helm installed");
    let k = Client::kubectl(c.kubeconfig_path()).expect("kubectl installed");
    helm.ok(&["create", "demo"]).await;
    let chart = helm.home().join("demo");
    let chart = chart.to_str().expect("utf-8 temp path");

    let out = helm
        .ok(&["install", "demo", chart, "--wait", "--timeout", "30s"])
        .await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    let d: Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "demo", "-o", "json"]).await).expect("json");
    assert_eq!(d["status"]["availableReplicas"], 1);
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    k.ok(&["get", "service/demo", "serviceaccount/demo"]).await;
    // The release record: a Secret helm wrote as protobuf, readable as JSON.
    let s: Value = serde_json::from_str(
        &k.ok(&["get", "secret", "sh.helm.release.v1.demo.v1", "-o", "json"])
            .await,
    )
    .expect("json");
    assert_eq!(s["type"], "helm.sh/release.v1");
    assert_eq!(s["metadata"]["labels"]["owner"], "helm");
    assert!(s["data"]["release"].as_str().is_some_and(|r| r.len() > 100));

    let out = helm
        .ok(&[
            "upgrade",
            "demo",
            chart,
            "--wait",
            "--timeout",
            "30s",
            "--set",
            "replicaCount=2",
        ])
        .await;
    assert!(out.contains("has been upgraded"), "{out}");
    let d: Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "demo", "-o", "json"]).await).expect("json");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["metadata"]["generation"], 2);

    let list: Value = serde_json::from_str(&helm.ok(&["list", "-o", "json"]).await).expect("json");
    assert_eq!(list[0]["name"], "demo");
    assert_eq!(list[0]["revision"], "2");
    assert_eq!(list[0]["status"], "deployed");

    let out = helm.ok(&["uninstall", "demo", "--wait"]).await;
    assert!(out.contains("release \"demo\" uninstalled"), "{out}");
    let left = k.ok(&["get", "deploy,svc,sa,secrets", "-o", "name"]).await;
    assert!(!left.contains("demo"), "left behind: {left}");
    assert_eq!(helm.ok(&["list", "-q"]).await.trim(), "");
}
