use serde_json::{Value, json};

use super::super::{SsaError, Target};
use super::{apply, update};

const T1: &str = "2026-11-24T10:00:00Z";
const T2: &str = "2026-11-24T10:00:05Z";
const T3: &str = "2026-11-24T10:00:09Z";

fn deploy_target() -> Target<'static> {
    Target {
        api_version: "apps/v1",
        kind: "Deployment",
        subresource: "",
        status_subresource: true,
    }
}

fn config(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "a", "annotations": {"team": "x"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image}]}
            }
        }
    })
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
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
        .unwrap_or_default()
}

fn entry<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["manager"] == manager))
        .unwrap_or_else(|| panic!("no entry for {manager} in {obj}"))
}

fn created() -> Value {
    apply(
        None,
        config(2, "nginx:1"),
        "kubectl",
        false,
        &deploy_target(),
        T1,
    )
    .expect("create")
}

/// `kubectl patch` (an Update by `kubectl-patch`) of the replicas.
fn patched_replicas(live: &Value, replicas: i64) -> Value {
    let mut new = live.clone();
    new["spec"]["replicas"] = json!(replicas);
    update(Some(live), &mut new, "kubectl-patch", &deploy_target(), T2).expect("update");
    new
}

#[test]
fn create_records_exactly_the_applied_fields() {
    let obj = created();
    assert_eq!(obj["spec"]["replicas"], 2);
    assert_eq!(managers(&obj), [("kubectl".into(), "Apply".into())]);
    let e = entry(&obj, "kubectl");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T1);
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(
        e["fieldsV1"],
        json!({
            "f:metadata": {"f:annotations": {"f:team": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {}, "f:image": {}, "f:name": {}
                    }}}
                }
            }
        })
    );
}

#[test]
fn reapplying_the_same_configuration_changes_nothing() {
    let obj = created();
    let again = apply(
        Some(&obj),
        config(2, "nginx:1"),
        "kubectl",
        false,
        &deploy_target(),
        T2,
    )
    .expect("re-apply");
    assert_eq!(
        again, obj,
        "no-op apply keeps the object and its timestamps"
    );
}

#[test]
fn apply_updates_values_and_time() {
    let obj = created();
    let new = apply(
        Some(&obj),
        config(2, "nginx:2"),
        "kubectl",
        false,
        &deploy_target(),
        T2,
    )
    .expect("update");
    assert_eq!(
        new["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    assert_eq!(entry(&new, "kubectl")["time"], T2);
}

#[test]
fn a_value_changed_by_another_manager_conflicts_with_the_apiserver_message() {
    let live = patched_replicas(&created(), 5);
    assert_eq!(
        entry(&live, "kubectl-patch")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert!(
        entry(&live, "kubectl")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none(),
        "the patch took ownership of replicas from the applier"
    );
    let err = apply(
        Some(&live),
        config(2, "nginx:1"),
        "kubectl",
        false,
        &deploy_target(),
        T3,
    )
    .expect_err("conflict");
    let SsaError::Conflict { message, conflicts } = err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert_eq!(
        message,
        "Apply failed with 1 conflict: conflict with \"kubectl-patch\" using apps/v1: .spec.replicas"
    );
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].field, ".spec.replicas");
    assert_eq!(conflicts[0].manager, "\"kubectl-patch\" using apps/v1");
}

#[test]
fn applying_the_value_another_manager_set_shares_ownership() {
    let live = patched_replicas(&created(), 5);
    let new = apply(
        Some(&live),
        config(5, "nginx:1"),
        "kubectl",
        false,
        &deploy_target(),
        T3,
    )
    .expect("same value: no conflict");
    assert_eq!(new["spec"]["replicas"], 5);
    assert_eq!(
        entry(&new, "kubectl-patch")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        entry(&new, "kubectl")["fieldsV1"]["f:spec"]["f:replicas"],
        json!({})
    );
}

#[test]
fn force_takes_the_value_and_the_ownership() {
    let live = patched_replicas(&created(), 5);
    let new = apply(
        Some(&live),
        config(2, "nginx:1"),
        "kubectl",
        true,
        &deploy_target(),
        T3,
    )
    .expect("forced");
    assert_eq!(new["spec"]["replicas"], 2);
    assert_eq!(
        managers(&new),
        [("kubectl".into(), "Apply".into())],
        "the patcher owned nothing else, so its entry is gone"
    );
    assert_eq!(
        entry(&new, "kubectl")["fieldsV1"]["f:spec"]["f:replicas"],
        json!({})
    );
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let live = created();
    let mut by_b = live.clone();
    by_b["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b");
    update(Some(&live), &mut by_b, "b", &deploy_target(), T2).expect("b");
    let mut by_a = by_b.clone();
    by_a["spec"]["replicas"] = json!(9);
    by_a["metadata"]["annotations"]["team"] = json!("y");
    update(Some(&by_b), &mut by_a, "a", &deploy_target(), T2).expect("a");
    let err = apply(
        Some(&by_a),
        config(2, "nginx:1"),
        "kubectl",
        false,
        &deploy_target(),
        T3,
    )
    .expect_err("conflicts");
    let SsaError::Conflict { message, conflicts } = err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert_eq!(conflicts.len(), 3);
    assert_eq!(
        message,
        "Apply failed with 3 conflicts: conflicts with \"a\" using apps/v1:\n\
         - .metadata.annotations.team\n\
         - .spec.replicas\n\
         conflicts with \"b\" using apps/v1:\n\
         - .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn a_field_no_longer_applied_is_removed() {
    let obj = created();
    let mut smaller = config(2, "nginx:1");
    smaller["metadata"]
        .as_object_mut()
        .expect("meta")
        .remove("annotations");
    smaller["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("replicas");
    let new = apply(
        Some(&obj),
        smaller.clone(),
        "kubectl",
        false,
        &deploy_target(),
        T2,
    )
    .expect("apply");
    assert!(new["spec"].get("replicas").is_none(), "{new}");
    assert!(new["metadata"].get("annotations").is_none(), "{new}");
    let fields = &entry(&new, "kubectl")["fieldsV1"];
    assert!(fields["f:spec"].get("f:replicas").is_none());
    assert!(fields.get("f:metadata").is_none());
}

#[test]
fn a_field_co_owned_by_another_manager_stays_when_one_stops_applying_it() {
    let obj = created();
    // A second applier applies the same replicas: shared ownership.
    let other = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    let shared = apply(
        Some(&obj),
        other.clone(),
        "hpa",
        false,
        &deploy_target(),
        T2,
    )
    .expect("shared");
    let mut smaller = config(2, "nginx:1");
    smaller["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("replicas");
    let new = apply(
        Some(&shared),
        smaller.clone(),
        "kubectl",
        false,
        &deploy_target(),
        T3,
    )
    .expect("apply");
    assert_eq!(new["spec"]["replicas"], 2, "kept: hpa still owns it");
    assert!(
        entry(&new, "kubectl")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    assert_eq!(
        entry(&new, "hpa")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
}

#[test]
fn a_container_no_longer_applied_is_removed_whole() {
    let mut two = config(2, "nginx:1");
    two["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .expect("list")
        .push(json!({"name": "sidecar", "image": "s:1", "args": ["-v"]}));
    let obj = apply(None, two.clone(), "kubectl", false, &deploy_target(), T1).expect("create");
    let new = apply(
        Some(&obj),
        config(2, "nginx:1"),
        "kubectl",
        false,
        &deploy_target(),
        T2,
    )
    .expect("apply");
    let containers = new["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("list");
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["name"], "nginx");
}

#[test]
fn fields_set_by_other_writers_survive_an_apply() {
    let live = created();
    let mut labelled = live.clone();
    labelled["metadata"]["labels"] = json!({"env": "prod"});
    update(
        Some(&live),
        &mut labelled,
        "kubectl-label",
        &deploy_target(),
        T2,
    )
    .expect("label");
    assert_eq!(
        entry(&labelled, "kubectl-label")["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:env": {}}}})
    );
    let new = apply(
        Some(&labelled),
        config(3, "nginx:1"),
        "kubectl",
        false,
        &deploy_target(),
        T3,
    )
    .expect("apply");
    assert_eq!(new["metadata"]["labels"]["env"], "prod");
    assert_eq!(new["spec"]["replicas"], 3);
}

#[test]
fn status_is_ignored_on_the_main_resource() {
    let mut cfg = config(2, "nginx:1");
    cfg["status"] = json!({"replicas": 7});
    let obj = apply(None, cfg.clone(), "kubectl", false, &deploy_target(), T1).expect("create");
    assert!(obj.get("status").is_none());
    assert!(entry(&obj, "kubectl")["fieldsV1"].get("f:status").is_none());

    // Kinds without a status subresource keep it as an ordinary field.
    let target = Target {
        api_version: "example.com/v1",
        kind: "Widget",
        subresource: "",
        status_subresource: false,
    };
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "status": {"x": 1}});
    let obj = apply(None, w.clone(), "m", false, &target, T1).expect("create");
    assert_eq!(obj["status"]["x"], 1);
}

#[test]
fn status_subresource_writes_only_status() {
    let live = created();
    let target = Target {
        subresource: "status",
        ..deploy_target()
    };
    let mut new = live.clone();
    new["status"] = json!({"replicas": 2, "readyReplicas": 2});
    new["spec"]["replicas"] = json!(100);
    update(Some(&live), &mut new, "controller", &target, T2).expect("status update");
    assert_eq!(
        new["spec"]["replicas"], 2,
        "spec is not writable through /status"
    );
    assert_eq!(new["status"]["readyReplicas"], 2);
    let e = entry(&new, "controller");
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {".": {}, "f:readyReplicas": {}, "f:replicas": {}}})
    );
}

#[test]
fn malformed_applies_are_rejected_with_reasons() {
    let mut cfg = config(2, "a");
    cfg["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply(None, cfg.clone(), "kubectl", false, &deploy_target(), T1),
        Err(SsaError::BadRequest(
            "metadata.managedFields must be nil".into()
        ))
    );
    let mut cfg = config(2, "a");
    cfg["kind"] = json!("StatefulSet");
    let err = apply(None, cfg.clone(), "kubectl", false, &deploy_target(), T1).expect_err("kind");
    assert!(
        matches!(&err, SsaError::BadRequest(m) if m.contains("kind")),
        "{err:?}"
    );
    let mut cfg = config(2, "a");
    cfg["spec"]["template"]["spec"]["containers"] = json!([{"image": "x"}]);
    let err =
        apply(None, cfg.clone(), "kubectl", false, &deploy_target(), T1).expect_err("no name");
    assert!(
        matches!(&err, SsaError::Invalid(m) if m.contains(".spec.template.spec.containers") && m.contains("\"name\"")),
        "{err:?}"
    );
}

#[test]
fn create_by_update_owns_what_it_wrote() {
    let mut obj = config(1, "a");
    obj["metadata"]["labels"] = json!({"app": "web"});
    update(None, &mut obj, "helm", &deploy_target(), T1).expect("create");
    let fields = &entry(&obj, "helm")["fieldsV1"];
    assert_eq!(entry(&obj, "helm")["operation"], "Update");
    assert!(fields.get("f:apiVersion").is_none());
    assert!(fields["f:metadata"].get("f:name").is_none());
    assert!(fields["f:metadata"].get(".").is_none());
    assert_eq!(
        fields["f:metadata"]["f:labels"],
        json!({".": {}, "f:app": {}})
    );
    assert_eq!(fields["f:spec"]["f:replicas"], json!({}));
    assert!(fields["f:spec"].get(".").is_none());
}

#[test]
fn clients_can_reset_managed_fields() {
    let live = patched_replicas(&created(), 5);
    // Keep only kubectl-patch (how Flux drops kubectl's ownership before taking over).
    let mut new = live.clone();
    let only_patch: Vec<Value> = live["metadata"]["managedFields"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|e| e["manager"] == "kubectl-patch")
        .cloned()
        .collect();
    new["metadata"]["managedFields"] = Value::Array(only_patch);
    update(Some(&live), &mut new, "flux", &deploy_target(), T3).expect("reset");
    assert_eq!(managers(&new), [("kubectl-patch".into(), "Update".into())]);

    let mut cleared = live.clone();
    cleared["metadata"]["managedFields"] = json!([{}]);
    update(Some(&live), &mut cleared, "flux", &deploy_target(), T3).expect("clear");
    assert!(
        cleared["metadata"].get("managedFields").is_none(),
        "{cleared}"
    );

    // Without managedFields in the write, the live ones are kept.
    let mut plain = live.clone();
    plain["metadata"]
        .as_object_mut()
        .expect("meta")
        .remove("managedFields");
    update(Some(&live), &mut plain, "flux", &deploy_target(), T3).expect("keep");
    assert_eq!(managers(&plain), managers(&live));
}

#[test]
fn unowned_objects_belong_to_before_first_apply() {
    let mut live = config(2, "nginx:1");
    live["metadata"]["uid"] = json!("u-1");
    let err = apply(
        Some(&live),
        config(3, "nginx:1"),
        "kubectl",
        false,
        &deploy_target(),
        T2,
    )
    .expect_err("changing a value nobody applied conflicts");
    let SsaError::Conflict { message, .. } = err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert_eq!(
        message,
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
    );
    // Same values: shared with before-first-apply, which keeps what only it had.
    let mut partial = config(2, "nginx:1");
    partial["metadata"]
        .as_object_mut()
        .expect("meta")
        .remove("annotations");
    let new = apply(
        Some(&live),
        partial.clone(),
        "kubectl",
        false,
        &deploy_target(),
        T2,
    )
    .expect("no conflict");
    assert_eq!(new["metadata"]["annotations"]["team"], "x");
    assert_eq!(entry(&new, "before-first-apply")["operation"], "Update");
}

#[test]
fn appliers_own_list_items_and_set_members_separately() {
    let target = Target {
        api_version: "apps/v1",
        kind: "Deployment",
        subresource: "",
        status_subresource: true,
    };
    let piece = |container: &str, finalizer: &str| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "finalizers": [finalizer]},
            "spec": {"template": {"spec": {"containers": [{"name": container, "image": "i"}]}}}
        })
    };
    let a = apply(None, piece("app", "a.example/x"), "a", false, &target, T1).expect("a");
    let both = apply(
        Some(&a),
        piece("proxy", "b.example/y"),
        "b",
        false,
        &target,
        T2,
    )
    .expect("b adds its own container and finalizer without conflict");
    let names = |obj: &Value| -> Vec<String> {
        obj["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .map(|c| c["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(names(&both), ["app", "proxy"]);
    assert_eq!(
        both["metadata"]["finalizers"],
        json!(["a.example/x", "b.example/y"])
    );
    assert_eq!(
        entry(&both, "b")["fieldsV1"]["f:metadata"]["f:finalizers"],
        json!({"v:\"b.example/y\"": {}})
    );

    // b stops applying its container and finalizer: exactly those go.
    let mut nothing = piece("proxy", "b.example/y");
    nothing["metadata"]
        .as_object_mut()
        .expect("meta")
        .remove("finalizers");
    nothing.as_object_mut().expect("object").remove("spec");
    let after = apply(Some(&both), nothing.clone(), "b", false, &target, T3).expect("b shrinks");
    assert_eq!(names(&after), ["app"]);
    assert_eq!(after["metadata"]["finalizers"], json!(["a.example/x"]));
}
