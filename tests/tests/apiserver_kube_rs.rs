//! kube-rs against the test server: Discovery, the runtime watcher, server-side apply with
//! force, optimistic concurrency, watch resume from a resourceVersion, and metadata-only lists
//! and watches.

use std::time::Duration;

use ferry_testcluster::{ClusterOptions, TestCluster};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use kube::runtime::watcher;
use serde_json::json;

async fn cluster() -> (TestCluster, kube::Client) {
    let c = TestCluster::start(ClusterOptions::default())
        .await
        .expect("cluster");
    let client = c.client().expect("client");
    (c, client)
}

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"k": value},
    }))
    .expect("configmap")
}

#[tokio::test]
async fn discovery_sees_builtins_and_new_crds() {
    let (_c, client) = cluster().await;
    let d = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let (ar, caps) = d
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .expect("deployments discovered");
    assert_eq!(ar.plural, "deployments");
    assert_eq!(caps.scope, Scope::Namespaced);
    let (_, caps) = d
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
        .expect("namespaces discovered");
    assert_eq!(caps.scope, Scope::Cluster);
    assert!(
        d.resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Gadget"))
            .is_none()
    );

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
                 "names": {"plural": "gadgets", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    }))
    .expect("crd");
    let created = crds
        .create(&PostParams::default(), &crd)
        .await
        .expect("create crd");
    let established = created
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established);
    let d = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let (ar, caps) = d
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Gadget"))
        .expect("gadgets discovered");
    assert_eq!(ar.plural, "gadgets");
    assert_eq!(caps.scope, Scope::Cluster);

    // Custom resources are served; deleting the CRD deletes them, and watchers see it.
    let gadgets: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let g: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"x": 1}
    }))
    .expect("gadget");
    let g = gadgets
        .create(&PostParams::default(), &g)
        .await
        .expect("create gadget");
    let rv = g.metadata.resource_version.clone().expect("rv");
    let mut w = gadgets
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .expect("watch gadgets")
        .boxed();
    crds.delete("gadgets.example.com", &DeleteParams::default())
        .await
        .expect("delete crd");
    match tokio::time::timeout(Duration::from_secs(5), w.try_next()).await {
        Ok(Ok(Some(WatchEvent::Deleted(o)))) => assert_eq!(o.metadata.name.as_deref(), Some("g1")),
        other => panic!("expected the gadget's DELETED event, got {other:?}"),
    }
    let err = gadgets
        .list(&ListParams::default())
        .await
        .expect_err("kind gone");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err}"
    );
}

#[tokio::test]
async fn watcher_sees_create_update_delete() {
    let (_c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    // Wait for the initial listing to finish before changing anything.
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("watcher event in time")
            .expect("watcher ok")
            .expect("stream open");
        if matches!(ev, watcher::Event::InitDone) {
            break;
        }
    }
    api.create(&PostParams::default(), &cm("w", "1"))
        .await
        .expect("create");
    api.replace("w", &PostParams::default(), &{
        let mut c = api.get("w").await.expect("get");
        c.data = Some([("k".to_string(), "2".to_string())].into());
        c
    })
    .await
    .expect("replace");
    api.delete("w", &DeleteParams::default())
        .await
        .expect("delete");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("watcher event in time")
            .expect("watcher ok")
            .expect("stream open");
        match ev {
            watcher::Event::Apply(c) => {
                seen.push(format!("apply {}", c.data.unwrap_or_default()["k"]))
            }
            watcher::Event::Delete(c) => {
                seen.push(format!("delete {}", c.metadata.name.unwrap_or_default()))
            }
            _ => {}
        }
    }
    assert_eq!(seen, vec!["apply 1", "apply 2", "delete w"]);
}

#[tokio::test]
async fn apply_with_force_takes_ownership_and_stale_writes_conflict() {
    let (_c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let first = api
        .patch(
            "own",
            &PatchParams::apply("alice"),
            &Patch::Apply(&cm("own", "a")),
        )
        .await
        .expect("first apply creates");
    assert_eq!(first.data.unwrap_or_default()["k"], "a");
    let err = api
        .patch(
            "own",
            &PatchParams::apply("bob"),
            &Patch::Apply(&cm("own", "b")),
        )
        .await
        .expect_err("conflict without force");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(
                s.message.contains("conflict with \"alice\""),
                "{}",
                s.message
            );
        }
        other => panic!("expected a 409, got {other}"),
    }
    let forced = api
        .patch(
            "own",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&cm("own", "b")),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.data.unwrap_or_default()["k"], "b");
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:data/f:k").is_some())
        })
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["bob"]);

    // Optimistic concurrency: a replace with an old resourceVersion is refused.
    let mut stale = first_version(&api).await;
    stale.metadata.resource_version = Some("1".into());
    let err = api
        .replace("own", &PostParams::default(), &stale)
        .await
        .expect_err("stale");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"),
        "{err}"
    );
}

/// The server computes a PATCH outside its lock and writes it only if the object did not move
/// meanwhile: concurrent applies by different managers to one object all land, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_applies_to_one_object_lose_no_field() {
    let (_c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let writers = (0..24).map(|i| {
        let api = api.clone();
        async move {
            let mut obj = cm("shared", "x");
            obj.data = Some([(format!("k{i}"), format!("v{i}"))].into());
            api.patch(
                "shared",
                &PatchParams::apply(&format!("writer-{i}")),
                &Patch::Apply(&obj),
            )
            .await
        }
    });
    for r in futures::future::join_all(writers).await {
        r.expect("apply");
    }
    let got = api.get("shared").await.expect("get");
    let data = got.data.unwrap_or_default();
    for i in 0..24 {
        assert_eq!(
            data.get(&format!("k{i}")).map(String::as_str),
            Some(&*format!("v{i}")),
            "k{i} of {data:?}"
        );
    }
    let managers = got.metadata.managed_fields.unwrap_or_default();
    assert_eq!(managers.len(), 24, "one managedFields entry per writer");
}

#[tokio::test]
async fn metadata_only_lists_gets_and_watches_carry_no_data() {
    let (_c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let a = api.create(&pp, &cm("a", "1")).await.expect("create a");
    api.create(&pp, &cm("b", "2")).await.expect("create b");

    let list = api
        .list_metadata(&ListParams::default())
        .await
        .expect("metadata list");
    let names: Vec<_> = list
        .items
        .iter()
        .map(|m| m.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        list.items[0].metadata.resource_version,
        a.metadata.resource_version
    );
    assert!(list.metadata.resource_version.is_some());
    let one = api.get_metadata("b").await.expect("metadata get");
    assert_eq!(one.metadata.name.as_deref(), Some("b"));

    // The raw answer has no data: that is the point of asking for metadata only.
    let req = http::Request::get("/api/v1/namespaces/default/configmaps")
        .header(
            "Accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )
        .body(vec![])
        .expect("request");
    let raw: serde_json::Value = client.request(req).await.expect("raw metadata list");
    assert_eq!(raw["kind"], "PartialObjectMetadataList");
    assert!(raw["items"][0].get("data").is_none(), "{raw}");

    let mut events = api
        .watch_metadata(
            &WatchParams::default().timeout(5),
            list.metadata.resource_version.as_deref().unwrap_or("0"),
        )
        .await
        .expect("metadata watch")
        .boxed();
    api.replace(
        "a",
        &pp,
        &ConfigMap {
            data: Some([("k".to_string(), "changed".to_string())].into()),
            ..a
        },
    )
    .await
    .expect("update a");
    let ev = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .expect("an event in time")
        .expect("watch ok")
        .expect("stream open");
    match ev {
        WatchEvent::Modified(m) => assert_eq!(m.metadata.name.as_deref(), Some("a")),
        other => panic!("expected MODIFIED a, got {other:?}"),
    }
}

async fn first_version(api: &Api<ConfigMap>) -> ConfigMap {
    api.get("own").await.expect("get")
}

#[tokio::test]
async fn watch_resumes_after_a_resource_version() {
    let (_c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let list = api.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("list rv");
    api.create(&PostParams::default(), &cm("r1", "1"))
        .await
        .expect("create");
    api.create(&PostParams::default(), &cm("r2", "1"))
        .await
        .expect("create");
    // Events after `rv` are replayed, in order, to a watch started later.
    let mut s = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut names = Vec::new();
    while names.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), s.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(c)))) => names.push(c.metadata.name.unwrap_or_default()),
            Ok(Ok(Some(_))) => {}
            other => panic!("unexpected watch result: {other:?}"),
        }
    }
    assert_eq!(names, vec!["r1", "r2"]);
}

#[tokio::test]
async fn with_tls_the_client_trusts_the_ca_and_authenticates_as_admin() {
    let c = TestCluster::start(ClusterOptions {
        tls: true,
        ..Default::default()
    })
    .await
    .expect("cluster");
    assert!(c.url().starts_with("https://127.0.0.1:"), "{}", c.url());
    let kubeconfig = std::fs::read_to_string(c.kubeconfig_path()).expect("kubeconfig");
    assert!(
        kubeconfig.contains("certificate-authority-data"),
        "{kubeconfig}"
    );
    let api: Api<ConfigMap> = Api::default_namespaced(c.client().expect("client"));
    api.create(&PostParams::default(), &cm("secure", "1"))
        .await
        .expect("the admin token may create");
    assert_eq!(
        api.get("secure")
            .await
            .expect("get")
            .data
            .unwrap_or_default()["k"],
        "1"
    );
}

#[tokio::test]
async fn a_selector_watch_sees_objects_enter_and_leave() {
    let (_c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut s = api
        .watch(&WatchParams::default().labels("team=a").timeout(10), &rv)
        .await
        .expect("watch")
        .boxed();
    let label = |team: &str| Patch::Merge(json!({"metadata": {"labels": {"team": team}}}));
    let mut c = cm("moving", "1");
    c.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    api.create(&PostParams::default(), &c)
        .await
        .expect("create");
    api.patch("moving", &PatchParams::default(), &label("b"))
        .await
        .expect("relabel");
    api.patch("moving", &PatchParams::default(), &label("b2"))
        .await
        .expect("still outside");
    api.patch("moving", &PatchParams::default(), &label("a"))
        .await
        .expect("back");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), s.try_next())
            .await
            .expect("event in time")
            .expect("watch ok")
            .expect("stream open");
        match ev {
            WatchEvent::Added(_) => seen.push("ADDED"),
            WatchEvent::Modified(_) => seen.push("MODIFIED"),
            WatchEvent::Deleted(_) => seen.push("DELETED"),
            _ => {}
        }
    }
    assert_eq!(seen, vec!["ADDED", "DELETED", "ADDED"]);
}

#[tokio::test]
async fn finalizers_hold_deletion_and_orphaning_keeps_dependents() {
    let (_c, client) = cluster().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let owner = api
        .create(&PostParams::default(), &cm("owner", "1"))
        .await
        .expect("owner");
    let owned = |name: &str| {
        let mut c = cm(name, "1");
        c.metadata.owner_references = Some(vec![
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "name": "owner", "uid": owner.metadata.uid.clone().expect("uid")}))
            .expect("owner reference"),
        ]);
        c
    };
    api.create(&PostParams::default(), &owned("kept"))
        .await
        .expect("dependent");
    let gone = api
        .delete("owner", &DeleteParams::orphan())
        .await
        .expect("orphaning delete");
    // Deleted at once: answered with a Success Status naming the object, like the real server.
    let status = gone.right().expect("a Status for an immediate deletion");
    assert_eq!(status.details.expect("details").name, "owner");
    let kept = api.get("kept").await.expect("an orphaned dependent stays");
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );

    let mut held = cm("held", "1");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held)
        .await
        .expect("create");
    let deleted = api
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(
        deleted.is_left(),
        "the object is still there, being deleted"
    );
    let live = api.get("held").await.expect("held stays");
    assert!(live.metadata.deletion_timestamp.is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove the finalizer");
    let err = api.get("held").await.expect_err("gone once released");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err}"
    );
}
