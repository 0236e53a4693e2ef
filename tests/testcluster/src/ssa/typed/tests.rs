use super::*;
use serde_json::json;

fn deploy() -> Shape {
    Shape::root("apps/v1", "Deployment")
}

fn fs(v: Value) -> FieldSet {
    FieldSet::from_fields_v1(&v).expect("valid")
}

fn nginx(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx", "image": image,
                    "ports": [{"containerPort": 80}],
                    "resources": {}
                }]}
            }
        }
    })
}

#[test]
fn field_set_of_a_deployment_matches_the_apiserver() {
    let set = field_set(&nginx("nginx:1"), deploy()).expect("valid");
    assert_eq!(
        set.to_fields_v1(),
        json!({
            "f:apiVersion": {}, "f:kind": {},
            "f:metadata": {"f:labels": {"f:app": {}}, "f:name": {}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {}, "f:containerPort": {}
                        }},
                        "f:resources": {}
                    }}}
                }
            }
        })
    );
}

#[test]
fn sets_and_atomic_maps() {
    let obj = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "protocol": "UDP"}]}});
    let set = field_set(&obj, Shape::root("v1", "Service")).expect("valid");
    let v1 = set.to_fields_v1();
    assert_eq!(
        v1["f:metadata"]["f:finalizers"],
        json!({"v:\"a\"": {}, "v:\"b\"": {}})
    );
    assert_eq!(v1["f:spec"]["f:selector"], json!({}));
    assert!(
        v1["f:spec"]["f:ports"]
            .get("k:{\"port\":80,\"protocol\":\"UDP\"}")
            .is_some()
    );
}

#[test]
fn unknown_kinds_have_atomic_lists() {
    let obj = json!({"spec": {"items": [{"name": "a"}], "m": {"x": 1}}});
    let set = field_set(&obj, Shape::root("example.com/v1", "Widget")).expect("valid");
    assert_eq!(
        set.to_fields_v1(),
        json!({"f:spec": {"f:items": {}, "f:m": {"f:x": {}}}})
    );
}

#[test]
fn missing_list_map_key_and_duplicates_are_errors_naming_the_list() {
    let mut obj = nginx("a");
    obj["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("object")
        .remove("name");
    let err = field_set(&obj, deploy()).expect_err("no key");
    assert_eq!(err.path, ".spec.template.spec.containers");
    assert!(err.message.contains("omits key field \"name\""), "{err}");

    let mut obj = nginx("a");
    let c = obj["spec"]["template"]["spec"]["containers"][0].clone();
    obj["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .expect("list")
        .push(c);
    let err = field_set(&obj, deploy()).expect_err("dup");
    assert!(
        err.message
            .contains("duplicate entries for key [name=\"nginx\"]"),
        "{err}"
    );
}

#[test]
fn compare_reports_leaf_changes_and_added_containers() {
    let old = nginx("nginx:1");
    let mut new = nginx("nginx:2");
    new["spec"]["replicas"] = json!(2);
    new["metadata"]["annotations"] = json!({"a": "b"});
    let cmp = compare(&old, &new, deploy()).expect("valid");
    assert_eq!(
        cmp.modified.to_fields_v1(),
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"nginx\"}": {"f:image": {}}}}}}})
    );
    assert_eq!(
        cmp.added.to_fields_v1(),
        json!({"f:metadata": {"f:annotations": {".": {}, "f:a": {}}}})
    );
    assert!(cmp.removed.is_empty());
    let back = compare(&new, &old, deploy()).expect("valid");
    assert_eq!(back.removed, cmp.added);
}

#[test]
fn atomic_selector_changes_as_one_leaf() {
    let old = nginx("a");
    let mut new = nginx("a");
    new["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
    let cmp = compare(&old, &new, deploy()).expect("valid");
    assert_eq!(
        cmp.modified.to_fields_v1(),
        json!({"f:spec": {"f:selector": {}}})
    );
}

#[test]
fn merge_follows_list_types() {
    let mut live = nginx("nginx:1");
    live["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .expect("list")
        .push(json!({"name": "sidecar", "image": "s:1"}));
    live["spec"]["selector"]["matchLabels"]["old"] = json!("yes");
    let config = json!({"spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"spec": {"containers": [
            {"name": "first", "image": "f:1"},
            {"name": "nginx", "image": "nginx:2"}
        ]}}
    }});
    let merged = merge(&live, &config, deploy()).expect("valid");
    let names: Vec<&str> = merged["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["first", "nginx", "sidecar"]);
    let nginx = &merged["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(nginx["image"], "nginx:2");
    assert_eq!(nginx["ports"][0]["containerPort"], 80, "live fields kept");
    assert_eq!(
        merged["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}}),
        "atomic selector replaced whole"
    );
    assert_eq!(merged["spec"]["replicas"], 2);
}

#[test]
fn merge_keeps_live_only_items_in_place() {
    let shape = Shape::root("v1", "Service");
    let live = json!({"spec": {"ports": [{"port": 1}, {"port": 2}, {"port": 3}]}});
    let config = json!({"spec": {"ports": [{"port": 3, "name": "c"}, {"port": 1}]}});
    let merged = merge(&live, &config, shape).expect("valid");
    let ports: Vec<i64> = merged["spec"]["ports"]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["port"].as_i64().expect("port"))
        .collect();
    assert_eq!(ports, [2, 3, 1]);
    assert_eq!(merged["spec"]["ports"][1]["name"], "c");
}

#[test]
fn prune_removes_unkept_fields_and_emptied_parents() {
    let mut obj = nginx("a");
    obj["metadata"]["annotations"] = json!({"x": "1"});
    let remove = fs(json!({
        "f:metadata": {"f:annotations": {"f:x": {}}},
        "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}
    }));
    // Another manager still owns the container's image: the item stays, image too.
    let keep = fs(
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
        "k:{\"name\":\"nginx\"}": {"f:image": {}}}}}}}),
    );
    prune(&mut obj, &remove, &keep, deploy()).expect("valid");
    assert!(obj["metadata"].get("annotations").is_none(), "{obj}");
    assert!(obj["spec"].get("replicas").is_none());
    let c = &obj["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "a");
    assert_eq!(c["name"], "nginx");

    let mut obj = nginx("a");
    prune(&mut obj, &remove, &FieldSet::new(), deploy()).expect("valid");
    assert_eq!(
        obj["spec"]["template"],
        json!({"metadata": {"labels": {"app": "web"}}}),
        "item removed with everything in it, emptied parents too"
    );
}
