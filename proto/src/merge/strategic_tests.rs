use serde_json::{Value, json};

use super::{Options, StrategicMergeError, apply_to_object};

fn merge(original: Value, patch: Value) -> Value {
    apply_to_object(&original, &patch, Options::APISERVER)
        .expect("patch applies")
        .expect("object kept")
}

fn merge_kustomize(original: Value, patch: Value) -> Value {
    apply_to_object(&original, &patch, Options::KUSTOMIZE)
        .expect("patch applies")
        .expect("object kept")
}

fn deployment(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": containers}}
        }
    })
}

fn containers_of(obj: &Value) -> &Value {
    &obj["spec"]["template"]["spec"]["containers"]
}

#[test]
fn maps_merge_and_null_deletes_a_key() {
    let out = merge(
        deployment(json!([])),
        json!({"metadata": {"labels": {"tier": null, "team": "a"}}, "spec": {"replicas": 3}}),
    );
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "team": "a"})
    );
    assert_eq!(out["spec"]["replicas"], json!(3));
}

#[test]
fn containers_merge_by_name_with_kustomize_order() {
    // kustomize v5.7.1: the patch's items first, in its order, then the original-only ones.
    let original = deployment(json!([
        {"name": "a", "image": "a:1", "args": ["x"]},
        {"name": "b", "image": "b:1"},
        {"name": "c", "image": "c:1"},
        {"name": "d", "image": "d:1"}
    ]));
    let out = merge_kustomize(
        original,
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "c:2"},
            {"name": "x", "image": "x:1"},
            {"name": "a", "image": "a:2"}
        ]}}}}),
    );
    assert_eq!(
        containers_of(&out),
        &json!([
            {"name": "c", "image": "c:2"},
            {"name": "x", "image": "x:1"},
            {"name": "a", "image": "a:2", "args": ["x"]},
            {"name": "b", "image": "b:1"},
            {"name": "d", "image": "d:1"}
        ])
    );
}

#[test]
fn containers_merge_by_name_with_apiserver_order() {
    // apimachinery interleaves original-only items by their original positions.
    let original = deployment(json!([
        {"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}
    ]));
    let out = merge(
        original,
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "c:2"},
            {"name": "x"},
            {"name": "a", "image": "a:2"}
        ]}}}}),
    );
    let names: Vec<&str> = containers_of(&out)
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["b", "c", "x", "a", "d"]);
}

#[test]
fn appending_keeps_the_original_first_when_the_patch_names_only_new_items() {
    let original = deployment(json!([{"name": "app"}, {"name": "side"}]));
    for out in [
        merge(
            original.clone(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "new"}]}}}}),
        ),
        merge_kustomize(
            original.clone(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "new"}]}}}}),
        ),
    ] {
        assert_eq!(
            containers_of(&out),
            &json!([{"name": "new"}, {"name": "app"}, {"name": "side"}])
        );
    }
}

#[test]
fn nested_env_and_ports_merge_by_their_keys() {
    let original = deployment(json!([{
        "name": "app",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "ports": [{"containerPort": 80, "name": "http"}]
    }]));
    let out = merge(
        original,
        json!({"spec": {"template": {"spec": {"containers": [{
            "name": "app",
            "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
            "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]
        }]}}}}),
    );
    let c = &containers_of(&out)[0];
    assert_eq!(
        c["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
    );
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}])
    );
}

#[test]
fn lists_without_strategy_are_replaced() {
    let original = deployment(json!([{"name": "app", "args": ["a", "b"]}]));
    let out = merge(
        original,
        json!({"spec": {"template": {"spec": {
            "containers": [{"name": "app", "args": ["c"]}],
            "tolerations": [{"key": "k", "operator": "Exists"}]
        }}}}),
    );
    assert_eq!(containers_of(&out)[0]["args"], json!(["c"]));
    assert_eq!(
        out["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "k", "operator": "Exists"}])
    );
}

#[test]
fn patch_delete_directive_removes_a_list_item_and_a_map() {
    let mut original = deployment(json!([{"name": "app"}, {"name": "debug"}]));
    original["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
    let out = merge(
        original,
        json!({"spec": {
            "template": {"spec": {"containers": [{"name": "debug", "$patch": "delete"}]}},
            "strategy": {"rollingUpdate": {"$patch": "delete"}}
        }}),
    );
    assert_eq!(containers_of(&out), &json!([{"name": "app"}]));
    assert_eq!(out["spec"]["strategy"], json!({"type": "RollingUpdate"}));
}

#[test]
fn patch_delete_at_the_top_deletes_the_object() {
    let out = apply_to_object(
        &deployment(json!([])),
        &json!({"$patch": "delete"}),
        Options::KUSTOMIZE,
    )
    .expect("applies");
    assert_eq!(out, None);
}

#[test]
fn patch_replace_directive_on_map_and_list() {
    let original = deployment(json!([{"name": "app", "image": "a"}, {"name": "b"}]));
    let out = merge(
        original,
        json!({
            "metadata": {"labels": {"$patch": "replace", "only": "this"}},
            "spec": {"template": {"spec": {"containers": [
                {"$patch": "replace"},
                {"name": "solo", "image": "s"}
            ]}}}
        }),
    );
    assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
    assert_eq!(
        containers_of(&out),
        &json!([{"name": "solo", "image": "s"}])
    );
}

#[test]
fn kubectl_edit_shaped_patch_with_set_element_order() {
    // What `kubectl edit` sends after swapping two containers and changing an image.
    let original = deployment(json!([
        {"name": "a", "image": "a:1"},
        {"name": "b", "image": "b:1"}
    ]));
    let out = merge(
        original,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"image": "a:2", "name": "a"}]
        }}}}),
    );
    assert_eq!(
        containers_of(&out),
        &json!([{"name": "b", "image": "b:1"}, {"name": "a", "image": "a:2"}])
    );
}

#[test]
fn retain_keys_clears_unlisted_fields_of_a_union() {
    let mut original = deployment(json!([]));
    original["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
    let out = merge(
        original,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn finalizers_merge_as_set_and_delete_from_primitive_list() {
    let mut original = deployment(json!([]));
    original["metadata"]["finalizers"] = json!(["a", "b"]);
    let out = merge(
        original,
        json!({"metadata": {
            "finalizers": ["c", "a"],
            "$deleteFromPrimitiveList/finalizers": ["b"]
        }}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "a"]));
}

#[test]
fn service_ports_merge_by_port() {
    let original = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "x"}}
    });
    let out = merge(
        original,
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );
}

#[test]
fn volumes_merge_by_name_and_new_items_drop_nulls() {
    let original = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [], "volumes": [{"name": "v", "emptyDir": {}}]}
    });
    let out = merge(
        original,
        json!({"spec": {"volumes": [
            {"name": "v", "emptyDir": null, "configMap": {"name": "cm"}},
            {"name": "w", "secret": {"secretName": "s"}, "hostPath": null}
        ]}}),
    );
    assert_eq!(
        out["spec"]["volumes"],
        json!([
            {"name": "v", "configMap": {"name": "cm"}},
            {"name": "w", "secret": {"secretName": "s"}}
        ])
    );
}

#[test]
fn custom_resources_have_their_lists_replaced() {
    let original = json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"items": [{"name": "a", "v": 1}, {"name": "b", "v": 2}]}
    });
    let patch = json!({"spec": {"items": [{"name": "b", "v": 3}]}});
    for out in [
        merge(original.clone(), patch.clone()),
        merge_kustomize(original, patch),
    ] {
        assert_eq!(out["spec"]["items"], json!([{"name": "b", "v": 3}]));
    }
}

#[test]
fn missing_merge_key_is_an_error_naming_the_path() {
    let err = apply_to_object(
        &deployment(json!([{"name": "app"}])),
        &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
        Options::APISERVER,
    )
    .expect_err("no merge key");
    assert!(matches!(err, StrategicMergeError::MissingMergeKey { .. }));
    let text = err.to_string();
    assert!(text.contains(".spec.template.spec.containers"), "{text}");
    assert!(text.contains("\"name\""), "{text}");
}

#[test]
fn unknown_directive_is_an_error() {
    let err = apply_to_object(
        &deployment(json!([])),
        &json!({"spec": {"$patch": "explode"}}),
        Options::APISERVER,
    )
    .expect_err("bad directive");
    assert!(err.to_string().contains("explode"), "{err}");
    assert!(err.to_string().contains(".spec"), "{err}");
}

#[test]
fn patch_must_be_an_object() {
    let err = apply_to_object(&deployment(json!([])), &json!([1]), Options::APISERVER)
        .expect_err("not an object");
    assert!(err.to_string().contains("must be an object"), "{err}");
}

#[test]
fn scalar_replaces_map_and_map_replaces_scalar() {
    let original = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}, "x": 1});
    let out = merge(original, json!({"data": "flat", "x": {"y": 2}}));
    assert_eq!(out["data"], json!("flat"));
    assert_eq!(out["x"], json!({"y": 2}));
}

#[test]
fn kustomize_copies_list_directives_as_plain_fields() {
    // kustomize v5.7.1 only knows `$patch`; the other directives land in the output.
    let mut original = deployment(json!([{"name": "a"}, {"name": "b"}]));
    original["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
    let out = merge_kustomize(
        original,
        json!({"spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "a", "image": "x"}]
            }}
        }}),
    );
    assert_eq!(
        out["spec"]["strategy"],
        json!({"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    );
    let spec = &out["spec"]["template"]["spec"];
    assert_eq!(
        spec["$setElementOrder/containers"],
        json!([{"name": "b"}, {"name": "a"}])
    );
    assert_eq!(
        spec["containers"],
        json!([{"name": "a", "image": "x"}, {"name": "b"}])
    );
}

#[test]
fn large_lists_merge_by_key_in_reverse_order() {
    // Untrusted input may hold large lists; merging indexes items by key (linear, not
    // quadratic) and must still pair every item correctly.
    const N: usize = 5_000;
    let items: Vec<Value> = (0..N)
        .map(|i| json!({"name": format!("c{i}"), "image": "x"}))
        .collect();
    let patch_items: Vec<Value> = (0..N)
        .rev()
        .map(|i| json!({"name": format!("c{i}"), "image": "y"}))
        .collect();
    let out = merge(
        deployment(Value::Array(items)),
        json!({"spec": {"template": {"spec": {"containers": patch_items}}}}),
    );
    let containers = containers_of(&out).as_array().expect("list");
    assert_eq!(containers.len(), N);
    assert_eq!(
        containers[0],
        json!({"name": format!("c{}", N - 1), "image": "y"})
    );
}
