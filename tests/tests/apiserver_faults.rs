//! Fault injection as a kube-rs client observes it: injected 500s and 429s, latency, and
//! watch connections dropped by the server (and resumed without losing events).

use std::time::{Duration, Instant};

use ferry_testcluster::{ClusterOptions, FaultRule, TestCluster};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
    )
    .expect("configmap")
}

#[tokio::test]
async fn injected_errors_reach_the_client_and_run_out() {
    let c = TestCluster::start(ClusterOptions::default())
        .await
        .expect("cluster");
    let api: Api<ConfigMap> = Api::default_namespaced(c.client().expect("client"));
    c.faults().add(
        FaultRule::error(500)
            .verb("list")
            .resource("configmaps")
            .times(1),
    );
    let err = api
        .list(&ListParams::default())
        .await
        .expect_err("injected 500");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 500);
            assert_eq!(s.reason, "InternalError");
        }
        other => panic!("expected a Status 500, got {other}"),
    }
    api.list(&ListParams::default())
        .await
        .expect("the rule fired once only");
    // 429 with Retry-After: kube's retry policy waits as told and tries again.
    c.faults()
        .add(FaultRule::throttle(1).verb("create").times(1));
    let t = Instant::now();
    api.create(&PostParams::default(), &cm("x"))
        .await
        .expect("create after the throttle");
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured: {:?}",
        t.elapsed()
    );

    c.faults().add(
        FaultRule::delay(Duration::from_millis(400))
            .verb("get")
            .times(1),
    );
    let t = Instant::now();
    api.get("x").await.expect("slow get");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_dropped_watch_ends_and_a_resumed_one_misses_nothing() {
    let c = TestCluster::start(ClusterOptions::default())
        .await
        .expect("cluster");
    let api: Api<ConfigMap> = Api::default_namespaced(c.client().expect("client"));
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    c.faults().add(
        FaultRule::drop_watch_after(Duration::from_secs(2))
            .resource("configmaps")
            .times(1),
    );
    let started = Instant::now();
    let mut s = api
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .expect("watch")
        .boxed();
    api.create(&PostParams::default(), &cm("before-drop"))
        .await
        .expect("create");
    let mut last_rv = rv.clone();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(o)))) => {
                last_rv = o.metadata.resource_version.expect("rv")
            }
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => break,
            other => panic!("unexpected watch result: {other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the server dropped the watch early"
    );
    assert_ne!(last_rv, rv, "the event before the drop was delivered");
    // Written while nobody watched; a watch resumed from the last seen RV gets it.
    api.create(&PostParams::default(), &cm("during-gap"))
        .await
        .expect("create");
    let mut s = api
        .watch(&WatchParams::default().timeout(5), &last_rv)
        .await
        .expect("rewatch")
        .boxed();
    match tokio::time::timeout(Duration::from_secs(5), s.try_next()).await {
        Ok(Ok(Some(WatchEvent::Added(o)))) => {
            assert_eq!(o.metadata.name.as_deref(), Some("during-gap"))
        }
        other => panic!("unexpected watch result: {other:?}"),
    }
}
