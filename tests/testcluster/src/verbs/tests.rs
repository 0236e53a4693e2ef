//! Unit tests of the verbs on an in-memory store.

use super::*;
use crate::store::Store;

fn target(st: &State, key: &str, ns: Option<&str>, name: Option<&str>) -> Target {
    let def = st.registry.by_key(key).cloned().expect("resource");
    Target {
        version: def.versions[0].clone(),
        def,
        namespace: ns.map(String::from),
        name: name.map(String::from),
        subresource: None,
    }
}

#[test]
fn create_validates_and_update_checks_resource_version() {
    let store = Store::new();
    let mut st = store.lock();
    let t = target(&st, "configmaps", Some("default"), None);
    let o = WriteOpts::default();
    let (code, cm) = create(
        &mut st,
        &t,
        json!({"metadata": {"name": "a"}, "data": {}}),
        &o,
    )
    .expect("create");
    assert_eq!(code, 201);
    assert_eq!(cm["apiVersion"], "v1");
    assert_eq!(cm["metadata"]["namespace"], "default");
    let err = create(&mut st, &t, json!({"metadata": {"name": "a"}}), &o).expect_err("dup");
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    let err =
        create(&mut st, &t, json!({"metadata": {"name": "Bad_Name"}}), &o).expect_err("invalid");
    assert_eq!(err.code, 422);
    let t_missing_ns = target(&st, "configmaps", Some("nope"), None);
    let err = create(
        &mut st,
        &t_missing_ns,
        json!({"metadata": {"name": "b"}}),
        &o,
    )
    .expect_err("ns");
    assert_eq!(err.message, "namespaces \"nope\" not found");

    let ta = target(&st, "configmaps", Some("default"), Some("a"));
    let mut stale = Value::clone(&cm);
    stale["metadata"]["resourceVersion"] = json!("1");
    let err = update(&mut st, &ta, stale, &o).expect_err("stale");
    assert_eq!(err.code, 409);
    let mut renamed = Value::clone(&cm);
    renamed["metadata"]["name"] = json!("b");
    assert_eq!(
        update(&mut st, &ta, renamed, &o).expect_err("name").code,
        400
    );

    let mut dry = Value::clone(&cm);
    dry["data"] = json!({"x": "1"});
    let (_, d) = update(
        &mut st,
        &ta,
        dry,
        &WriteOpts {
            dry_run: true,
            manager: None,
        },
    )
    .expect("dry");
    assert_eq!(d["data"]["x"], "1");
    assert_eq!(get(&st, &ta).expect("get")["data"], json!({}));
}

#[test]
fn status_is_only_written_through_the_subresource() {
    let store = Store::new();
    let mut st = store.lock();
    let t = target(&st, "deployments.apps", Some("default"), None);
    let o = WriteOpts::default();
    let (_, d) = create(
        &mut st,
        &t,
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 2}, "status": {"replicas": 9}}),
        &o,
    )
    .expect("create");
    assert!(d.get("status").is_none());
    let mut main = Value::clone(&d);
    main["status"] = json!({"replicas": 5});
    let tn = target(&st, "deployments.apps", Some("default"), Some("web"));
    let (_, after) = update(&mut st, &tn, main, &o).expect("update");
    assert!(after.get("status").is_none());
    let ts = Target {
        subresource: Some("status".into()),
        ..tn.clone()
    };
    let mut s = Value::clone(&after);
    s["status"] = json!({"replicas": 2});
    s["spec"]["replicas"] = json!(7);
    let (_, after) = update(&mut st, &ts, s, &o).expect("status");
    assert_eq!(after["status"]["replicas"], 2);
    assert_eq!(after["spec"]["replicas"], 2);
    assert_eq!(after["metadata"]["generation"], 1);
}

#[test]
fn finalizers_hold_deletion_and_namespaces_take_their_contents() {
    let store = Store::new();
    let mut st = store.lock();
    let o = WriteOpts::default();
    let tns = target(&st, "namespaces", None, None);
    create(&mut st, &tns, json!({"metadata": {"name": "team"}}), &o).expect("ns");
    let t = target(&st, "configmaps", Some("team"), None);
    let (_, owner) =
        create(&mut st, &t, json!({"metadata": {"name": "owner"}}), &o).expect("owner");
    let uid = owner["metadata"]["uid"].clone();
    create(
        &mut st,
        &t,
        json!({"metadata": {"name": "child", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}}),
        &o,
    )
    .expect("child");
    create(
        &mut st,
        &t,
        json!({"metadata": {"name": "held", "finalizers": ["x/y"]}}),
        &o,
    )
    .expect("held");
    // GC: deleting the owner deletes the child.
    let towner = target(&st, "configmaps", Some("team"), Some("owner"));
    delete(&mut st, &towner, &DeleteOpts::default()).expect("delete owner");
    assert!(st.get("configmaps", "team", "child").is_none());
    // Namespace deletion: contents go, the finalized one stays with a deletionTimestamp.
    let tteam = target(&st, "namespaces", None, Some("team"));
    let ns = delete(&mut st, &tteam, &DeleteOpts::default()).expect("delete ns");
    assert_eq!(ns["status"]["phase"], "Terminating");
    let held = st
        .get("configmaps", "team", "held")
        .cloned()
        .expect("held stays");
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    // Removing the finalizer releases the object, and then the namespace.
    let mut released = Value::clone(&held);
    released["metadata"]["finalizers"] = json!([]);
    let theld = target(&st, "configmaps", Some("team"), Some("held"));
    update(&mut st, &theld, released, &o).expect("release");
    assert!(st.get("configmaps", "team", "held").is_none());
    assert!(st.get("namespaces", "", "team").is_none());
}

#[test]
fn list_pages_with_continue_tokens() {
    let store = Store::new();
    let mut st = store.lock();
    let t = target(&st, "configmaps", Some("default"), None);
    for n in ["a", "b", "c"] {
        create(
            &mut st,
            &t,
            json!({"metadata": {"name": n, "labels": {"x": n}}}),
            &WriteOpts::default(),
        )
        .expect("create");
    }
    let first = list(
        &st,
        &t,
        &ListOpts {
            limit: Some(2),
            ..Default::default()
        },
    )
    .expect("list");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(first["metadata"]["remainingItemCount"], 1);
    let tok = first["metadata"]["continue"].as_str().map(String::from);
    let second = list(
        &st,
        &t,
        &ListOpts {
            limit: Some(2),
            continue_token: tok,
            ..Default::default()
        },
    )
    .expect("list");
    assert_eq!(second["items"][0]["metadata"]["name"], "c");
    assert!(second["metadata"].get("continue").is_none());
    let sel = ListOpts {
        labels: LabelSelector::parse("x in (a,c)").expect("sel"),
        ..Default::default()
    };
    assert_eq!(
        list(&st, &t, &sel).expect("list")["items"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[test]
fn a_secrets_string_data_is_stored_as_data() {
    let store = Store::new();
    let mut st = store.lock();
    let t = target(&st, "secrets", Some("default"), None);
    let (_, s) = create(
        &mut st,
        &t,
        json!({"metadata": {"name": "s"}, "data": {"a": "eA==", "b": "eA=="},
               "stringData": {"b": "token", "c": "c"}}),
        &WriteOpts::default(),
    )
    .expect("create");
    assert_eq!(
        s["data"],
        json!({"a": "eA==", "b": "dG9rZW4=", "c": "Yw=="})
    );
    assert!(s.get("stringData").is_none(), "{s}");
}
