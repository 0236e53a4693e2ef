//! CustomResourceDefinitions through kubectl: applying a CRD registers its kind (discovery,
//! `Established`), custom resources are applied and listed, the status subresource is
//! separate, and deleting the CRD removes its kind and objects.

use std::time::Duration;

use ferry_testcluster::{ClusterOptions, TestCluster};
use ferry_tests::tools::Client;
use serde_json::Value;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

fn widget(name: &str, size: u32) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: {name}}}\nspec: {{size: {size}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_is_established_and_its_resources_are_served() {
    let c = TestCluster::start(ClusterOptions::default())
        .await
        .expect("cluster");
    let k = Client::kubectl(c.kubeconfig_path()).expect("kubectl installed");
    let apply = |doc: String| {
        let k = &k;
        async move {
            let r = k
                .run_with(
                    &["apply", "--server-side", "-f", "-"],
                    Some(&doc),
                    Duration::from_secs(30),
                )
                .await;
            assert!(r.success(), "apply failed: {}", r.stderr);
            r.stdout
        }
    };
    // Before the CRD, the kind is unknown.
    let r = k
        .run_with(
            &["apply", "--server-side", "-f", "-"],
            Some(&widget("a", 1)),
            Duration::from_secs(30),
        )
        .await;
    assert!(!r.success());
    assert!(
        r.stderr.contains("no matches for kind \"Widget\""),
        "{}",
        r.stderr
    );

    apply(CRD.to_string()).await;
    let out = k
        .ok(&[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
            "--timeout=10s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");
    let res = k
        .ok(&["api-resources", "--api-group=example.com", "--no-headers"])
        .await;
    assert!(
        res.contains("widgets") && res.contains("wd") && res.contains("Widget"),
        "{res}"
    );

    assert!(
        apply(widget("a", 1))
            .await
            .contains("widget.example.com/a serverside-applied")
    );
    apply(widget("b", 2)).await;
    let list: Value =
        serde_json::from_str(&k.ok(&["get", "widgets", "-o", "json"]).await).expect("json");
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    assert_eq!(list["items"][1]["spec"]["size"], 2);
    let short = k
        .ok(&["get", "wd", "a", "-o", "jsonpath={.spec.size}"])
        .await;
    assert_eq!(short, "1");

    // Status is a subresource: main-resource writes do not touch it, status writes do.
    let with_status = format!("{}status: {{phase: Ready}}\n", widget("a", 3));
    apply(with_status.clone()).await;
    let a: Value =
        serde_json::from_str(&k.ok(&["get", "widget", "a", "-o", "json"]).await).expect("json");
    assert_eq!(a["spec"]["size"], 3);
    assert!(
        a.get("status").is_none(),
        "status written through the main resource: {a}"
    );
    let r = k
        .run_with(
            &["apply", "--server-side", "--subresource=status", "-f", "-"],
            Some(&with_status),
            Duration::from_secs(30),
        )
        .await;
    assert!(r.success(), "{}", r.stderr);
    let phase = k
        .ok(&["get", "widget", "a", "-o", "jsonpath={.status.phase}"])
        .await;
    assert_eq!(phase, "Ready");

    // Deleting the CRD takes its kind and objects with it.
    k.ok(&["delete", "crd", "widgets.example.com"]).await;
    let r = k.run(&["get", "widgets"]).await;
    assert!(!r.success());
    // kubectl's discovery cache may still know the kind; either way the server has no widgets.
    assert!(
        r.stderr
            .contains("the server doesn't have a resource type \"widgets\"")
            || r.stderr
                .contains("the server could not find the requested resource"),
        "{}",
        r.stderr
    );
}
