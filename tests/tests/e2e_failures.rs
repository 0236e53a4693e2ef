//! Failures, end to end: nothing that goes wrong upstream may damage what runs. Broken builds,
//! tampered artifacts, a source server outage, API server errors and dropped watches, an agent
//! killed mid-apply, and objects for another namespace.

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::{Env, NS, deployment_yaml, image, seed_spec, write_seed};
use ferry_testcluster::faults::FaultRule;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_yaml_is_build_failed_and_changes_nothing() -> Result<()> {
    let mut env = Env::new().await?;
    let first = env.seeded(seed_spec("./app")).await?;
    let before = env.kustomization("app").await?;
    let inventory_before = before.status.as_ref().and_then(|s| s.inventory.clone());

    env.upstream.write(
        "app/deployment.yaml",
        deployment_yaml("v2.0.0") + "  broken: [unclosed\n",
    )?;
    let bad = env.upstream.commit_push("broken yaml")?;
    let ks = env.wait_ready("app", "False", "BuildFailed", LIMIT).await?;
    let st = ks.status.context("status")?;
    let ready = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .context("Ready")?;
    assert!(
        ready.message.contains("deployment.yaml"),
        "{}",
        ready.message
    );
    assert_eq!(st.last_applied_revision, Some(format!("main@sha1:{first}")));
    assert_eq!(st.last_attempted_revision, Some(format!("main@sha1:{bad}")));
    assert_eq!(st.inventory, inventory_before, "inventory untouched");
    let d = env
        .get("apps/v1", "Deployment", "my-app")
        .await?
        .context("deployment")?;
    assert_eq!(image(&d), "my-registry/my-app:v1.0.0");
    assert!(
        env.get("v1", "Service", "my-app").await?.is_some(),
        "not pruned"
    );

    // Fixing Git recovers.
    env.upstream
        .write("app/deployment.yaml", deployment_yaml("v2.0.0"))?;
    env.upstream.commit_push("fix")?;
    env.wait_image("my-registry/my-app:v2.0.0", LIMIT).await?;
    env.wait_ready("app", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    Ok(())
}

/// A Kustomization failing on every retry (every second here) keeps one Warning Event whose
/// count grows, as the API intends, instead of a new Event per retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeating_failure_is_one_event_with_a_count() -> Result<()> {
    let mut env = Env::new().await?;
    env.seeded(seed_spec("./app")).await?;
    env.upstream.write(
        "app/deployment.yaml",
        deployment_yaml("v2.0.0") + "  broken: [unclosed\n",
    )?;
    env.upstream.commit_push("broken yaml")?;
    env.wait_ready("app", "False", "BuildFailed", LIMIT).await?;
    // Three repeats counted on the first Event. Counted from here: an agent that reconciled
    // before the source server had the seed's artifact has aggregated ArtifactFailed repeats
    // already, which would satisfy an absolute threshold before any BuildFailed repeat.
    let aggregated = [("type", "Warning"), ("result", "aggregated")];
    let before = env
        .agent_metric("ferry_applier_events_total", &aggregated)
        .await?;
    env.wait_agent_metric(
        "ferry_applier_events_total",
        &aggregated,
        before + 3.0,
        LIMIT,
    )
    .await?;
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(env.client.clone(), NS);
    let warnings: Vec<_> = api
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some("app")
                && e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some("BuildFailed")
        })
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one Event for the repeated failure: {warnings:#?}"
    );
    let count = warnings[0].count.unwrap_or_default();
    assert!(
        count >= 4,
        "the Event counts the repeats: {:#?}",
        warnings[0]
    );
    assert!(
        warnings[0].last_timestamp.as_ref().map(|t| t.0)
            > warnings[0].first_timestamp.as_ref().map(|t| t.0),
        "lastTimestamp moves on: {:#?}",
        warnings[0]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_artifact_is_refused() -> Result<()> {
    let mut env = Env::new().await?;
    env.seeded(seed_spec("./app")).await?;
    env.kill_agent();
    let storage = env.work.path().join("storage/artifacts/sha256");
    let before: Vec<_> = std::fs::read_dir(&storage)?
        .flatten()
        .map(|e| e.path())
        .collect();
    env.upstream
        .write("app/deployment.yaml", deployment_yaml("v6.6.6"))?;
    env.upstream.commit_push("bump")?;
    let new = env
        .wait_for("the new artifact to be stored", LIMIT, || async {
            Ok(std::fs::read_dir(&storage)?
                .flatten()
                .map(|e| e.path())
                // Only the final name: the store writes a staging file beside it first.
                .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
                .find(|p| !before.contains(p)))
        })
        .await?;
    // Same size class, valid gzip, different bytes: only the digest can tell.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &vec![0u8; 10240])?;
    std::fs::write(&new, gz.finish()?)?;

    env.start_agent()?;
    let ks = env
        .wait_ready("app", "False", "ArtifactFailed", LIMIT)
        .await?;
    let msg = ks
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(msg.contains("sha256:"), "{msg}");
    let d = env
        .get("apps/v1", "Deployment", "my-app")
        .await?
        .context("deployment")?;
    assert_eq!(image(&d), "my-registry/my-app:v1.0.0", "nothing applied");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_server_outage_keeps_state_and_recovers() -> Result<()> {
    let mut env = Env::new().await?;
    env.seeded(seed_spec("./app")).await?;
    env.stop_source();

    // Still reconciling from the cache: drift is reverted with the source server down.
    env.drift_replicas("my-app", 7).await?;
    env.wait_for(
        "drift reverted while the source server is down",
        LIMIT,
        || async {
            let d = env.get("apps/v1", "Deployment", "my-app").await?;
            Ok(d.filter(|d| d.pointer("/spec/replicas") == Some(&json!(2))))
        },
    )
    .await?;
    let ks = env.kustomization("app").await?;
    assert!(
        ks.status
            .as_ref()
            .and_then(|s| s.inventory.as_ref())
            .is_some_and(|i| i.len() == 2)
    );
    assert!(env.get("v1", "Service", "my-app").await?.is_some());

    // A commit made during the outage is applied once the server is back.
    env.upstream
        .write("app/deployment.yaml", deployment_yaml("v1.1.0"))?;
    env.upstream.commit_push("during the outage")?;
    env.start_source()?;
    env.wait_image("my-registry/my-app:v1.1.0", LIMIT).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_and_dropped_watches_are_retried() -> Result<()> {
    // Injected 500s and dropped watches: the test server's fault rules.
    let mut env = Env::on_test_server().await?;
    write_seed(&env.upstream, "app", "v1.0.0")?;
    env.upstream.commit_push("seed")?;
    let faults = env.cluster.faults();
    faults.add(
        FaultRule::error(500)
            .verb("patch")
            .resource("deployments")
            .times(4),
    );
    faults.add(
        FaultRule::error(500)
            .verb("list")
            .resource("kustomizations")
            .times(2),
    );
    faults.add(FaultRule::drop_watch_after(Duration::from_millis(700)));
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("app", seed_spec("./app")).await?;
    env.wait_image("my-registry/my-app:v1.0.0", LIMIT).await?;
    env.wait_ready("app", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    // Watches keep being dropped; spec changes are still seen.
    let mut spec = seed_spec("./app");
    spec["suspend"] = json!(true);
    env.apply_kustomization("app", spec).await?;
    env.wait_observed("app", "the suspended spec to be observed", LIMIT)
        .await?;
    assert!(
        env.agent.as_mut().is_some_and(|a| a.alive()),
        "{}",
        env.logs()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_apply_converges_after_restart() -> Result<()> {
    const N: usize = 300;
    // Slowed writes (a fault rule) make the kill land mid-apply: the test server.
    let mut env = Env::on_test_server().await?;
    for i in 0..N {
        env.upstream.write(
            &format!("many/cm-{i:03}.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03}\ndata:\n  i: \"{i}\"\n"),
        )?;
    }
    env.upstream.commit_push("many configmaps")?;
    // Slow writes so the kill lands while the apply is under way: 300 writes, 32 at a time,
    // take about 1.5 s, well over the 200 ms poll below even on a loaded machine.
    env.cluster.faults().add(
        FaultRule::delay(Duration::from_millis(150))
            .verb("patch")
            .resource("configmaps"),
    );
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("many", seed_spec("./many")).await?;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), NS);
    let selector = ListParams::default().labels("apply.ferry.dev/name=many");
    let at_kill = env
        .wait_for("the apply to be under way", LIMIT, || async {
            let n = cms.list(&selector).await?.items.len();
            Ok((n > 0).then_some(n))
        })
        .await?;
    env.kill_agent();
    assert!(
        at_kill < N,
        "the kill should land mid-apply ({at_kill} of {N})"
    );

    env.cluster.faults().clear();
    env.start_agent()?;
    let ks = env
        .wait_ready(
            "many",
            "True",
            "ReconciliationSucceeded",
            Duration::from_secs(60),
        )
        .await?;
    let names: std::collections::BTreeSet<String> = cms
        .list(&selector)
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names.len(), N, "every object exactly once");
    let inv = ks.status.and_then(|s| s.inventory).context("inventory")?;
    assert_eq!(inv.len(), N);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_for_another_namespace_refuses_the_revision() -> Result<()> {
    let mut env = Env::new().await?;
    write_seed(&env.upstream, "app", "v1.0.0")?;
    env.upstream.write(
        "app/other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sneaky\n  namespace: kube-system\ndata: {}\n",
    )?;
    env.upstream.write(
        "app/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- deployment.yaml\n- service.yaml\n- other.yaml\n",
    )?;
    env.upstream.commit_push("cross-namespace")?;
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("app", seed_spec("./app")).await?;
    let ks = env.wait_ready("app", "False", "BuildFailed", LIMIT).await?;
    let msg = ks
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(
        msg.contains("ConfigMap") && msg.contains("kube-system") && msg.contains("sneaky"),
        "{msg}"
    );
    assert!(
        env.get("apps/v1", "Deployment", "my-app").await?.is_none(),
        "nothing applied"
    );
    assert!(
        env.get("v1", "Service", "my-app").await?.is_none(),
        "nothing applied"
    );
    let other: Api<ConfigMap> = Api::namespaced(env.client.clone(), "kube-system");
    assert!(other.get_opt("sneaky").await?.is_none());
    Ok(())
}
