//! The real kubectl v1.35.2 against the test API server: discovery, CRUD, selectors,
//! deletion, namespaces, and errors worded like a real server.

use ferry_tests::tools::cluster_with_kubectl;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_resources_and_version_come_from_discovery() {
    let (_c, k) = cluster_with_kubectl().await;
    let out = k.ok(&["api-resources", "--no-headers"]).await;
    for (name, short, gv, kind) in [
        ("configmaps", "cm", "v1", "ConfigMap"),
        ("deployments", "deploy", "apps/v1", "Deployment"),
        (
            "customresourcedefinitions",
            "crd,crds",
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
        ),
        ("leases", "", "coordination.k8s.io/v1", "Lease"),
    ] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from api-resources:\n{out}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(cols.contains(&gv) && cols.contains(&kind), "{line}");
        if !short.is_empty() {
            assert!(cols.contains(&short), "{line}");
        }
    }
    let v: Value = serde_json::from_str(&k.ok(&["version", "-o", "json"]).await).expect("json");
    assert_eq!(v["serverVersion"]["minor"], "35");
    let ns = k.ok(&["get", "namespaces", "-o", "name"]).await;
    assert!(
        ns.contains("namespace/default") && ns.contains("namespace/kube-system"),
        "{ns}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_label_select_and_delete() {
    let (_c, k) = cluster_with_kubectl().await;
    k.ok(&["create", "namespace", "team"]).await;
    let cm = k.write_manifest(
        "cms.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: team, labels: {tier: web}}\ndata: {k: v}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: team, labels: {tier: db}}\ndata: {k: w}\n",
    );
    let out = k.ok(&["apply", "--server-side", "-f", &cm]).await;
    assert!(out.contains("configmap/a serverside-applied"), "{out}");
    let got: Value =
        serde_json::from_str(&k.ok(&["-n", "team", "get", "cm", "a", "-o", "json"]).await)
            .expect("json");
    assert_eq!(got["data"]["k"], "v");
    assert!(
        got["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    assert!(
        got["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|r| r.parse::<u64>().is_ok())
    );

    // Human output comes from server-side Tables: kind prefixes, NAME and AGE columns.
    let table = k.ok(&["-n", "team", "get", "configmaps,secrets"]).await;
    assert!(
        table.starts_with("NAME") && table.contains("AGE"),
        "{table}"
    );
    assert!(
        table.contains("configmap/a") && table.contains("configmap/b"),
        "{table}"
    );
    let web = k
        .ok(&["-n", "team", "get", "cm", "-l", "tier=web", "-o", "name"])
        .await;
    assert_eq!(web.trim(), "configmap/a");
    let not_web = k
        .ok(&[
            "-n",
            "team",
            "get",
            "cm",
            "-l",
            "tier notin (web)",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(not_web.trim(), "configmap/b");
    let by_name = k
        .ok(&[
            "-n",
            "team",
            "get",
            "cm",
            "--field-selector",
            "metadata.name=b",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(by_name.trim(), "configmap/b");
    // Paging: kubectl follows continue tokens.
    let paged = k
        .ok(&["-n", "team", "get", "cm", "--chunk-size=1", "-o", "name"])
        .await;
    assert_eq!(paged.lines().count(), 2, "{paged}");

    let missing = k.run(&["-n", "team", "get", "cm", "nope"]).await;
    assert!(!missing.success());
    assert!(
        missing
            .stderr
            .contains("Error from server (NotFound): configmaps \"nope\" not found"),
        "{}",
        missing.stderr
    );
    let dup = k.run(&["-n", "team", "create", "configmap", "a"]).await;
    assert!(
        dup.stderr.contains("configmaps \"a\" already exists"),
        "{}",
        dup.stderr
    );

    let out = k.ok(&["-n", "team", "delete", "cm", "a"]).await;
    assert!(out.contains("deleted"), "{out}");
    let gone = k.run(&["-n", "team", "get", "cm", "a"]).await;
    assert!(gone.stderr.contains("NotFound"), "{}", gone.stderr);

    // Deleting the namespace deletes what is in it.
    k.ok(&["delete", "namespace", "team"]).await;
    let ns = k.run(&["get", "namespace", "team"]).await;
    assert!(
        ns.stderr.contains("namespaces \"team\" not found"),
        "{}",
        ns.stderr
    );
    let all = k.ok(&["get", "cm", "-A", "-o", "name"]).await;
    assert!(all.trim().is_empty(), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_namespace_is_reported_as_such() {
    let (_c, k) = cluster_with_kubectl().await;
    let cm = k.write_manifest(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ghost}\n",
    );
    let r = k.run(&["apply", "--server-side", "-f", &cm]).await;
    assert!(!r.success());
    assert!(
        r.stderr.contains("namespaces \"ghost\" not found"),
        "{}",
        r.stderr
    );
}
