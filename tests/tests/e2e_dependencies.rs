//! `dependsOn` orders Kustomizations; `suspend` stops everything (apply, prune, drift
//! correction) until it is cleared.

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::{Env, deployment_yaml, image, seed_spec, write_seed};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_waits_for_the_dependency() -> Result<()> {
    let mut env = Env::new().await?;
    write_seed(&env.upstream, "app", "v1.0.0")?;
    env.upstream.write(
        "infra/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared-config\ndata:\n  level: info\n",
    )?;
    env.upstream.commit_push("app and infra")?;
    env.start_source()?;
    env.start_agent()?;
    // The dependency points at a path that does not exist yet: it fails, so app must wait.
    env.apply_kustomization("infra", seed_spec("./missing"))
        .await?;
    let mut app = seed_spec("./app");
    app["dependsOn"] = json!([{"name": "infra"}]);
    env.apply_kustomization("app", app).await?;
    let ks = env
        .wait_ready("app", "False", "DependencyNotReady", LIMIT)
        .await?;
    let msg = ks
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(msg.contains("infra"), "{msg}");
    assert!(env.get("apps/v1", "Deployment", "my-app").await?.is_none());

    // Fix the dependency: it becomes ready, then app is applied.
    env.apply_kustomization("infra", seed_spec("./infra"))
        .await?;
    env.wait_ready("infra", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    env.wait_ready("app", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    assert!(env.get("v1", "ConfigMap", "shared-config").await?.is_some());
    assert!(env.get("apps/v1", "Deployment", "my-app").await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_stops_apply_prune_and_drift_correction() -> Result<()> {
    let mut env = Env::new().await?;
    env.seeded(seed_spec("./app")).await?;

    let mut spec = seed_spec("./app");
    spec["suspend"] = json!(true);
    env.apply_kustomization("app", spec).await?;
    env.wait_observed("app", "suspend to be observed", LIMIT)
        .await?;
    // A new commit, a removed file and drift: none of it is acted on while suspended.
    env.upstream
        .write("app/deployment.yaml", deployment_yaml("v1.0.1"))?;
    env.upstream.remove("app/service.yaml")?;
    env.upstream.write(
        "app/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- deployment.yaml\n",
    )?;
    let commit = env.upstream.commit_push("while suspended")?;
    env.drift_replicas("my-app", 4).await?;
    // The agent has heard of the new commit, and has since looked at the suspended
    // Kustomization twice (its interval is 2 s) and left it alone.
    let revision = format!("main@sha1:{commit}");
    env.wait_agent_metric(
        "ferry_applier_artifact_announcements_total",
        &[("source", "team-a/app"), ("revision", &revision)],
        1.0,
        LIMIT,
    )
    .await?;
    let suspended = [("kustomization", "app"), ("result", "suspended")];
    let seen = env
        .agent_metric("ferry_applier_reconciles_total", &suspended)
        .await?;
    env.wait_agent_metric(
        "ferry_applier_reconciles_total",
        &suspended,
        seen + 2.0,
        LIMIT,
    )
    .await?;
    let d = env
        .get("apps/v1", "Deployment", "my-app")
        .await?
        .context("deployment")?;
    assert_eq!(image(&d), "my-registry/my-app:v1.0.0");
    assert_eq!(d.pointer("/spec/replicas"), Some(&json!(4)));
    assert!(env.get("v1", "Service", "my-app").await?.is_some());

    // Resumed: everything catches up.
    env.apply_kustomization("app", seed_spec("./app")).await?;
    env.wait_image("my-registry/my-app:v1.0.1", LIMIT).await?;
    env.wait_for(
        "the Service to be pruned and drift reverted",
        LIMIT,
        || async {
            let gone = env.get("v1", "Service", "my-app").await?.is_none();
            let d = env.get("apps/v1", "Deployment", "my-app").await?;
            let reverted = d.is_some_and(|d| d.pointer("/spec/replicas") == Some(&json!(2)));
            Ok((gone && reverted).then_some(()))
        },
    )
    .await?;
    Ok(())
}
