//! Prune and health checks against the in-memory API server, counting and slowing down the
//! requests they send (defect 10 of issue 12: one sequential GET or DELETE per object, every
//! 250 ms, made a prune of N objects cost N round trips in a row and a health wait N GETs per
//! poll).

use std::time::{Duration, Instant};

use ferry_applier::apply::{
    Action, Applier, Change, ChangeSet, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, ObjectRef,
    PRUNE_ANNOTATION,
};
use ferry_applier::health;
use ferry_applier::prune::{inventory_of, prune};
use ferry_testcluster::{ClusterOptions, FaultRule, TestCluster};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;

const NS: &str = "default";

fn id(group: &str, kind: &str, name: &str) -> ObjectRef {
    ObjectRef::new(group, kind, Some(NS), name)
}

fn change_set(ids: &[ObjectRef], version: &str) -> ChangeSet {
    ChangeSet {
        changes: ids
            .iter()
            .map(|id| Change {
                id: id.clone(),
                version: version.into(),
                action: Action::Created,
            })
            .collect(),
    }
}

async fn create(client: &kube::Client, api_version: &str, plural: &str, body: serde_json::Value) {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = body["kind"].as_str().expect("test objects have a kind");
    let ar = kube::api::ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &ar);
    let obj: DynamicObject = serde_json::from_value(body).expect("test object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create test object");
}

#[tokio::test]
async fn prune_lists_once_per_kind_and_deletes_concurrently() {
    const N: usize = 16;
    const LATENCY: Duration = Duration::from_millis(200);
    let cluster = TestCluster::start(ClusterOptions::default())
        .await
        .expect("test cluster");
    let client = cluster.client().expect("client");
    let mut ids = vec![];
    for i in 0..N {
        let name = format!("cm-{i:02}");
        create(
            &client,
            "v1",
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "labels": {
                       OWNER_NAME_LABEL: "app", OWNER_NAMESPACE_LABEL: NS}}}),
        )
        .await;
        ids.push(id("", "ConfigMap", &name));
    }
    create(
        &client,
        "v1",
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "keep-annotated", "annotations": {PRUNE_ANNOTATION: "disabled"}}}),
    )
    .await;
    create(
        &client,
        "v1",
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "keep-other", "labels": {
                   OWNER_NAME_LABEL: "other", OWNER_NAMESPACE_LABEL: NS}}}),
    )
    .await;
    ids.push(id("", "ConfigMap", "keep-annotated"));
    ids.push(id("", "ConfigMap", "keep-other"));
    ids.push(id("", "ConfigMap", "already-gone"));

    let applier = Applier::new(client.clone());
    // Discovery is not what is measured.
    applier.resolver().snapshot().await.expect("discovery");
    let old = inventory_of(&change_set(&ids, "v1"), NS);
    let new = inventory_of(&ChangeSet::default(), NS);
    cluster.faults().add(
        FaultRule::delay(LATENCY)
            .verb("delete")
            .resource("configmaps"),
    );
    cluster.audit().reset();
    let started = Instant::now();
    let pruned = prune(&applier, NS, "app", &old, &new).await.expect("prune");
    let elapsed = started.elapsed();

    let mut deleted: Vec<ObjectRef> = ids[..N].to_vec();
    deleted.push(id("", "ConfigMap", "already-gone"));
    deleted.sort();
    assert_eq!(pruned.deleted, deleted);
    assert_eq!(
        pruned.kept,
        vec![
            (
                id("", "ConfigMap", "keep-annotated"),
                "pruning disabled by annotation"
            ),
            (
                id("", "ConfigMap", "keep-other"),
                "owned by another Kustomization"
            ),
        ]
    );
    let audit = cluster.audit();
    assert_eq!(
        audit.count("delete", "configmaps"),
        N,
        "{:?}",
        audit.snapshot()
    );
    assert_eq!(
        audit.count("get", "configmaps") + audit.count("list", "configmaps"),
        1,
        "one LIST reads every candidate of a kind: {:?}",
        audit.snapshot()
    );
    // One after the other, the deletes alone would take N × LATENCY (3.2 s).
    assert!(
        elapsed < LATENCY * (N as u32) / 4,
        "{N} deletes of {LATENCY:?} each took {elapsed:?}: they did not overlap"
    );
    let left: Api<DynamicObject> = Api::namespaced_with(
        client,
        NS,
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    let names: Vec<String> = left
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, ["keep-annotated", "keep-other"]);
}

#[tokio::test]
async fn health_wait_reads_each_kind_with_one_list_per_poll() {
    const N: usize = 12;
    let cluster = TestCluster::start(ClusterOptions::default())
        .await
        .expect("test cluster");
    let client = cluster.client().expect("client");
    let mut checks = vec![];
    for i in 0..N {
        let name = format!("web-{i:02}");
        create(
            &client,
            "apps/v1",
            "deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": name,
                                "annotations": {"ferry.dev/test-ready-after": "1500ms"}},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": {"labels": {"app": name}},
                                         "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
        )
        .await;
        checks.push((id("apps", "Deployment", &name), "v1".to_string()));
    }
    let applier = Applier::new(client);
    applier.resolver().snapshot().await.expect("discovery");
    cluster.audit().reset();
    let started = Instant::now();
    health::wait_ready(&applier, &checks, Duration::from_secs(30))
        .await
        .expect("all Deployments become ready");
    let elapsed = started.elapsed();
    let audit = cluster.audit();
    let reads = audit.count("get", "deployments") + audit.count("list", "deployments");
    // The wait spans several polls (the Deployments turn ready after 1.5 s, polls are 250 ms
    // apart); one read per object per poll would be at least N per poll.
    assert!(
        elapsed > Duration::from_millis(1000),
        "the wait spanned several polls: {elapsed:?}"
    );
    assert_eq!(
        audit.count("get", "deployments"),
        0,
        "{:?}",
        audit.snapshot()
    );
    assert!(
        reads < N,
        "{reads} reads of {N} Deployments over {elapsed:?}: not one LIST per poll ({:?})",
        audit.snapshot()
    );
}

/// Issue 12: the health and prune LISTs were one unpaginated request per kind; a kind with
/// more objects than one page is now read page by page, and nothing past the first page is
/// missed.
#[tokio::test]
async fn health_and_prune_read_a_kind_larger_than_one_list_page() {
    let n = ferry_applier::apply::LIST_PAGE_SIZE as usize + 100;
    let cluster = TestCluster::start(ClusterOptions::default())
        .await
        .expect("test cluster");
    let client = cluster.client().expect("client");
    let mut ids = vec![];
    for i in 0..n {
        let name = format!("cm-{i:04}");
        create(
            &client,
            "v1",
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "labels": {
                       OWNER_NAME_LABEL: "app", OWNER_NAMESPACE_LABEL: NS}}}),
        )
        .await;
        ids.push(id("", "ConfigMap", &name));
    }
    let applier = Applier::new(client.clone());
    applier.resolver().snapshot().await.expect("discovery");

    cluster.audit().reset();
    let checks: Vec<(ObjectRef, String)> = ids.iter().map(|i| (i.clone(), "v1".into())).collect();
    health::wait_ready(&applier, &checks, Duration::from_secs(30))
        .await
        .expect("every ConfigMap, on both pages, is found");
    assert_eq!(
        cluster.audit().count("list", "configmaps"),
        2,
        "two pages: {:?}",
        cluster.audit().snapshot()
    );

    cluster.audit().reset();
    let old = inventory_of(&change_set(&ids, "v1"), NS);
    let new = inventory_of(&ChangeSet::default(), NS);
    let pruned = prune(&applier, NS, "app", &old, &new).await.expect("prune");
    assert_eq!(pruned.deleted.len(), n, "kept: {:?}", pruned.kept);
    assert!(pruned.kept.is_empty());
    let audit = cluster.audit();
    assert_eq!(
        audit.count("list", "configmaps"),
        2,
        "{:?}",
        audit.snapshot()
    );
    assert_eq!(audit.count("delete", "configmaps"), n);
}
