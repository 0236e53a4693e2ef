//! Server-side apply, field ownership and the PATCH content types through the real kubectl
//! v1.35.2 (and kube-rs), against the test API server: the managedFields, conflicts, force
//! and field removal a real apiserver would produce.

use ferry_testcluster::{ClusterOptions, TestCluster};
use ferry_tests::tools::{Client, cluster_with_kubectl};
use serde_json::{Value, json};

fn deployment(replicas: u32, image: &str, annotation: bool) -> String {
    let annotations = if annotation {
        "\n  annotations:\n    team: web"
    } else {
        ""
    };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default{annotations}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: nginx
        image: {image}
        ports:
        - containerPort: 80
"
    )
}

async fn get(k: &Client) -> Value {
    let out = k
        .ok(&[
            "-n",
            "default",
            "get",
            "deployment",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    serde_json::from_str(&out).expect("kubectl prints JSON")
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = obj["metadata"]["managedFields"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_string(),
                        e["operation"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn fields_of<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["manager"] == manager))
        .map(|e| &e["fieldsV1"])
        .unwrap_or_else(|| panic!("no managedFields entry for {manager}: {obj}"))
}

/// The image of the `nginx` container.
fn image(obj: &Value) -> &str {
    obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == "nginx"))
        .and_then(|c| c["image"].as_str())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_conflicts_force_and_removal() {
    let (_c, k) = cluster_with_kubectl().await;
    let v1 = k.write_manifest("v1.yaml", &deployment(2, "nginx:1", true));

    // Create: 201, owned by the "kubectl" applier with exactly the applied fields.
    let r = k.run(&["apply", "--server-side", "-f", &v1, "-v=6"]).await;
    assert!(r.success(), "{r:?}");
    assert!(
        r.stdout.contains("deployment.apps/web serverside-applied"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("201 Created"),
        "first apply creates: {}",
        r.stderr
    );
    let obj = get(&k).await;
    assert_eq!(managers(&obj), [("kubectl".into(), "Apply".into())]);
    assert_eq!(
        fields_of(&obj, "kubectl")["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"nginx\"}": {
            ".": {}, "f:image": {}, "f:name": {},
            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
        }})
    );

    // Update by apply: 200, new value.
    let v2 = k.write_manifest("v2.yaml", &deployment(2, "nginx:2", true));
    let r = k.run(&["apply", "--server-side", "-f", &v2, "-v=6"]).await;
    assert!(r.success() && r.stderr.contains("200 OK"), "{r:?}");
    assert_eq!(image(&get(&k).await), "nginx:2");

    // Someone else changes a field the applier owns…
    k.ok(&[
        "-n",
        "default",
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":5}}"#,
    ])
    .await;
    let obj = get(&k).await;
    assert_eq!(obj["spec"]["replicas"], 5);
    assert_eq!(
        fields_of(&obj, "kubectl-patch"),
        &json!({"f:spec": {"f:replicas": {}}})
    );

    // …so applying a different value conflicts, worded like the apiserver.
    let r = k.run(&["apply", "--server-side", "-f", &v2]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl-patch\" using apps/v1: .spec.replicas"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(get(&k).await["spec"]["replicas"], 5, "nothing changed");

    // Applying the value it already has is fine (shared ownership, no conflict).
    let same = k.write_manifest("same.yaml", &deployment(5, "nginx:2", true));
    k.ok(&["apply", "--server-side", "-f", &same]).await;

    // --force-conflicts takes the value and the ownership.
    k.ok(&["apply", "--server-side", "--force-conflicts", "-f", &v2])
        .await;
    let obj = get(&k).await;
    assert_eq!(obj["spec"]["replicas"], 2);
    assert_eq!(managers(&obj), [("kubectl".into(), "Apply".into())]);

    // A field the applier stops applying is removed.
    let dropped = k.write_manifest("dropped.yaml", &deployment(2, "nginx:2", false));
    k.ok(&["apply", "--server-side", "-f", &dropped]).await;
    let obj = get(&k).await;
    assert!(
        obj["metadata"]
            .get("annotations")
            .and_then(|a| a.get("team"))
            .is_none(),
        "annotation removed: {}",
        obj["metadata"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_and_diff_change_nothing() {
    // A ConfigMap: no simulated controller writes to it behind the test's back.
    let (_c, k) = cluster_with_kubectl().await;
    let cm = |mode: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: default}}\ndata:\n  mode: {mode}\n"
        )
    };
    let get_cm = || async {
        let out = k
            .ok(&[
                "-n",
                "default",
                "get",
                "configmap",
                "settings",
                "-o",
                "json",
            ])
            .await;
        serde_json::from_str::<Value>(&out).expect("json")
    };
    let v1 = k.write_manifest("v1.yaml", &cm("a"));
    k.ok(&["apply", "--server-side", "-f", &v1]).await;
    let before = get_cm().await;

    let v2 = k.write_manifest("v2.yaml", &cm("b"));
    let out = k
        .ok(&[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            &v2,
            "-o",
            "json",
        ])
        .await;
    let dry: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        dry["data"]["mode"], "b",
        "dry run returns the merged object"
    );
    let after = get_cm().await;
    assert_eq!(after["data"]["mode"], "a");
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );

    // diff: 0 without differences, 1 with, and nothing is written.
    let r = k.run(&["diff", "--server-side", "-f", &v1]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = k.run(&["diff", "--server-side", "-f", &v2]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stdout.contains("-  mode: a") && r.stdout.contains("+  mode: b"),
        "{}",
        r.stdout
    );
    assert_eq!(
        get_cm().await["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_types_label_and_edit() {
    let (_c, k) = cluster_with_kubectl().await;
    let v1 = k.write_manifest("v1.yaml", &deployment(2, "nginx:1", true));
    k.ok(&["apply", "--server-side", "-f", &v1]).await;
    let ns = ["-n", "default"];
    let patch = |args: &'static [&'static str]| {
        let mut all = vec!["-n", "default", "patch", "deployment", "web"];
        all.extend_from_slice(args);
        all
    };

    k.ok(&patch(&[
        "--type=merge",
        "-p",
        r#"{"spec":{"minReadySeconds":3}}"#,
    ]))
    .await;
    k.ok(&patch(&[
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:json"},
            {"op":"add","path":"/metadata/annotations/via","value":"json-patch"}]"#,
    ]))
    .await;
    // Strategic merge (kubectl's default): a new container merges in by name.
    k.ok(&patch(&[
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1"}]}}}}"#,
    ]))
    .await;
    let obj = get(&k).await;
    assert_eq!(obj["spec"]["minReadySeconds"], 3);
    assert_eq!(obj["metadata"]["annotations"]["via"], "json-patch");
    let containers: Vec<(&str, &str)> = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or(""),
                c["image"].as_str().unwrap_or(""),
            )
        })
        .collect();
    // The apiserver puts the patch's new items before the ones only the object had.
    assert_eq!(
        containers,
        [("sidecar", "busybox:1"), ("nginx", "nginx:json")]
    );
    let bad = k
        .run(&patch(&[
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":99}]"#,
        ]))
        .await;
    assert!(
        !bad.success(),
        "a failing JSON-patch test is refused: {bad:?}"
    );

    k.ok(&[ns[0], ns[1], "label", "deployment", "web", "env=prod"])
        .await;
    let obj = get(&k).await;
    assert_eq!(obj["metadata"]["labels"]["env"], "prod");
    assert_eq!(
        fields_of(&obj, "kubectl-label"),
        &json!({"f:metadata": {"f:labels": {".": {}, "f:env": {}}}})
    );

    // kubectl edit with an editor that rewrites the image.
    let editor = k.home().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/image: nginx:json/image: nginx:edited/' \"$1\"\n",
    )
    .expect("write editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod editor");
    let editing = Client::kubectl(_c.kubeconfig_path())
        .expect("kubectl")
        .env("KUBE_EDITOR", &editor.to_string_lossy());
    let out = editing
        .ok(&["-n", "default", "edit", "deployment", "web"])
        .await;
    assert!(out.contains("deployment.apps/web edited"), "{out}");
    let obj = get(&k).await;
    assert_eq!(image(&obj), "nginx:edited");
    assert!(
        fields_of(&obj, "kubectl-edit")["f:spec"]["f:template"]["f:spec"]["f:containers"]
            ["k:{\"name\":\"nginx\"}"]
            .get("f:image")
            .is_some(),
        "{obj}"
    );
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["image"], "busybox:1",
        "the other container is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_apply_with_force() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, Patch, PatchParams};

    let cluster = TestCluster::start(ClusterOptions::default())
        .await
        .expect("test cluster starts");
    let client = cluster.client().expect("client");
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm = |value: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "settings"}, "data": {"mode": value, "extra": "x"}})
    };
    let created = api
        .patch(
            "settings",
            &PatchParams::apply("ferry"),
            &Patch::Apply(cm("a")),
        )
        .await
        .expect("create by apply");
    assert_eq!(
        created
            .data
            .as_ref()
            .and_then(|d| d.get("mode"))
            .map(String::as_str),
        Some("a")
    );

    let other = api
        .patch(
            "settings",
            &PatchParams::apply("intruder"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "settings"}, "data": {"mode": "b"}})),
        )
        .await
        .expect_err("conflict");
    let kube::Error::Api(status) = other else {
        panic!("expected an API error, got {other:?}");
    };
    assert_eq!(status.code, 409);
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"ferry\": .data.mode"
    );

    let forced = api
        .patch(
            "settings",
            &PatchParams::apply("intruder").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "settings"}, "data": {"mode": "b"}})),
        )
        .await
        .expect("forced apply");
    let data = forced.data.expect("data");
    assert_eq!(data["mode"], "b");
    assert_eq!(
        data["extra"], "x",
        "fields only the first applier owns stay"
    );
    let owners: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.manager.clone())
        .collect();
    assert!(owners.contains(&"ferry".to_string()) && owners.contains(&"intruder".to_string()));

    // The first applier, no longer owning `mode`, drops it from its own apply: it stays,
    // because the intruder owns it now.
    let trimmed = api
        .patch(
            "settings",
            &PatchParams::apply("ferry"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "settings"}, "data": {"extra": "x"}})),
        )
        .await
        .expect("apply");
    assert_eq!(trimmed.data.expect("data")["mode"], "b");
}
