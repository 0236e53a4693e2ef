use serde_json::{Value, json};

use super::super::ssa::Target;
use super::super::status::ApiError;
use super::{PatchCtx, PatchError, PatchType, apply_patch};

const NOW: &str = "2026-11-24T12:00:00Z";

fn target() -> Target<'static> {
    Target {
        api_version: "apps/v1",
        kind: "Deployment",
        subresource: "",
        status_subresource: true,
    }
}

fn ctx(manager: Option<&'static str>, force: bool) -> PatchCtx<'static> {
    PatchCtx {
        target: target(),
        manager,
        force,
        now: NOW,
    }
}

const APPLIED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: a
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1
        env:
        - {name: A, value: "1"}
      - name: sidecar
        image: side:1
"#;

fn applied() -> Value {
    let mut obj = apply_patch(
        None,
        PatchType::Apply,
        APPLIED.as_bytes(),
        &ctx(Some("kubectl"), false),
    )
    .expect("create by apply");
    obj["status"] = json!({"replicas": 2});
    obj
}

fn entry<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["manager"] == manager))
        .unwrap_or_else(|| panic!("no entry for {manager} in {obj}"))
}

fn containers(obj: &Value) -> Vec<(String, String)> {
    obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_string(),
                c["image"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn content_types() {
    assert_eq!(
        PatchType::from_content_type("application/merge-patch+json; charset=utf-8", false),
        Ok(PatchType::Merge)
    );
    assert_eq!(
        PatchType::from_content_type("application/apply-patch+yaml", true),
        Ok(PatchType::Apply)
    );
    assert_eq!(
        PatchType::from_content_type("application/json-patch+json", true),
        Ok(PatchType::Json)
    );
    assert_eq!(
        PatchType::from_content_type("application/strategic-merge-patch+json", false),
        Ok(PatchType::Strategic)
    );
    let err = PatchType::from_content_type("application/strategic-merge-patch+json", true)
        .expect_err("no SMP for custom resources");
    assert_eq!(err.code(), 415);
    assert_eq!(
        err.to_string(),
        "the body of the request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
    assert_eq!(
        PatchType::from_content_type("application/json", false).map_err(|e| e.code()),
        Err(415)
    );
}

#[test]
fn merge_patch_changes_fields_and_records_the_patcher() {
    let live = applied();
    let new = apply_patch(
        Some(&live),
        PatchType::Merge,
        br#"{"spec":{"replicas":5},"status":{"replicas":99}}"#,
        &ctx(Some("kubectl-patch"), false),
    )
    .expect("merge patch");
    assert_eq!(new["spec"]["replicas"], 5);
    assert_eq!(
        new["status"]["replicas"], 2,
        "status is not patched through the main resource"
    );
    let e = entry(&new, "kubectl-patch");
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert!(
        entry(&new, "kubectl")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );
}

#[test]
fn a_later_apply_conflicts_with_the_patcher_and_force_wins() {
    let live = applied();
    let patched = apply_patch(
        Some(&live),
        PatchType::Merge,
        br#"{"spec":{"replicas":5}}"#,
        &ctx(Some("kubectl-patch"), false),
    )
    .expect("merge patch");
    let err = apply_patch(
        Some(&patched),
        PatchType::Apply,
        APPLIED.as_bytes(),
        &ctx(Some("kubectl"), false),
    )
    .expect_err("conflict");
    assert_eq!(err.code(), 409);
    let status = ApiError::from(err).to_status();
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"kubectl-patch\" using apps/v1: .spec.replicas"
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldManagerConflict",
                "message": "conflict with \"kubectl-patch\" using apps/v1",
                "field": ".spec.replicas"}])
    );
    let forced = apply_patch(
        Some(&patched),
        PatchType::Apply,
        APPLIED.as_bytes(),
        &ctx(Some("kubectl"), true),
    )
    .expect("forced");
    assert_eq!(forced["spec"]["replicas"], 2);
}

#[test]
fn json_patch_applies_operations_in_order() {
    let live = applied();
    let new = apply_patch(
        Some(&live),
        PatchType::Json,
        br#"[{"op":"replace","path":"/spec/replicas","value":3},
             {"op":"add","path":"/metadata/labels","value":{"a/b":"c"}},
             {"op":"add","path":"/metadata/annotations","value":{}},
             {"op":"add","path":"/metadata/annotations/x~1y","value":"z"}]"#,
        &ctx(Some("kubectl-patch"), false),
    )
    .expect("json patch");
    assert_eq!(new["spec"]["replicas"], 3);
    assert_eq!(new["metadata"]["labels"]["a/b"], "c");
    assert_eq!(new["metadata"]["annotations"]["x/y"], "z");

    let err = apply_patch(
        Some(&live),
        PatchType::Json,
        br#"[{"op":"test","path":"/spec/replicas","value":7}]"#,
        &ctx(Some("kubectl-patch"), false),
    )
    .expect_err("failed test");
    assert_eq!(err.code(), 422);
    assert!(err.to_string().contains("/spec/replicas"), "{err}");
    let err = apply_patch(
        Some(&live),
        PatchType::Json,
        br#"{"op":"test"}"#,
        &ctx(Some("kubectl-patch"), false),
    )
    .expect_err("not a list");
    assert_eq!(err.code(), 400);
}

#[test]
fn strategic_merge_patch_merges_containers_by_name_like_kubectl_edit() {
    let live = applied();
    // The shape kubectl edit sends: an order directive and only the changed container.
    let body = br#"{"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"nginx"},{"name":"sidecar"}],
        "containers":[{"name":"sidecar","image":"side:2"}]}}},
        "status":{"replicas":0}}"#;
    let new = apply_patch(
        Some(&live),
        PatchType::Strategic,
        body,
        &ctx(Some("kubectl-edit"), false),
    )
    .expect("smp");
    assert_eq!(
        containers(&new),
        [
            ("nginx".to_string(), "nginx:1".to_string()),
            ("sidecar".to_string(), "side:2".to_string())
        ]
    );
    assert_eq!(new["status"]["replicas"], 2);
    assert_eq!(
        new["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}]),
        "untouched container keeps its fields"
    );
    assert_eq!(
        entry(&new, "kubectl-edit")["fieldsV1"],
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"sidecar\"}": {"f:image": {}}}}}}})
    );

    let deleted = apply_patch(
        Some(&live),
        PatchType::Strategic,
        br#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
        &ctx(Some("kubectl-patch"), false),
    )
    .expect("delete item");
    assert_eq!(
        containers(&deleted),
        [("nginx".to_string(), "nginx:1".to_string())]
    );
}

#[test]
fn request_options_are_validated() {
    let live = applied();
    let err = apply_patch(
        Some(&live),
        PatchType::Apply,
        APPLIED.as_bytes(),
        &ctx(None, false),
    )
    .expect_err("no manager");
    assert_eq!(err.code(), 422);
    assert!(
        err.to_string().contains("fieldManager: Required value"),
        "{err}"
    );
    let err = apply_patch(Some(&live), PatchType::Merge, b"{}", &ctx(Some("m"), true))
        .expect_err("force on merge");
    assert_eq!(err.code(), 422);
    assert!(err.to_string().contains("force: Forbidden"), "{err}");
    assert_eq!(
        apply_patch(None, PatchType::Merge, b"{}", &ctx(Some("m"), false)),
        Err(PatchError::NotFound)
    );
    let err = apply_patch(
        Some(&live),
        PatchType::Merge,
        b"{not json",
        &ctx(Some("m"), false),
    )
    .expect_err("bad json");
    assert_eq!(err.code(), 400);
    let err = apply_patch(
        None,
        PatchType::Apply,
        b"- a\n- b\n",
        &ctx(Some("m"), false),
    )
    .expect_err("not an object");
    assert_eq!(err.code(), 400);
}

#[test]
fn apply_body_may_be_json() {
    let body = serde_json::to_vec(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 1}
    }))
    .expect("json");
    let obj =
        apply_patch(None, PatchType::Apply, &body, &ctx(Some("kube-rs"), false)).expect("apply");
    assert_eq!(obj["spec"]["replicas"], 1);
    assert_eq!(entry(&obj, "kube-rs")["operation"], "Apply");
}
