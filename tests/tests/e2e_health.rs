//! Health: with `wait`, a Deployment that never becomes available fails the reconcile with
//! `HealthCheckFailed` within `timeout` (the objects stay applied and inventoried); once the
//! rollout can finish, the Kustomization becomes Ready.

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::{Env, deployment_yaml, seed_spec};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_reports_health_check_failed_until_the_rollout_finishes() -> Result<()> {
    let mut env = Env::new().await?;
    // Its Pods never become Ready (on the real cluster the node stand-in reads the annotation
    // from each Pod; the test server from the template).
    let stuck = deployment_yaml("v1.0.0").replacen(
        "      labels:\n        app: my-app\n",
        "      labels:\n        app: my-app\n      annotations:\n        ferry.dev/test-never-ready: \"true\"\n",
        1,
    );
    assert_ne!(stuck, deployment_yaml("v1.0.0"), "the template annotated");
    env.upstream.write("app/deployment.yaml", &stuck)?;
    env.upstream
        .commit_push("a deployment that never becomes ready")?;
    env.start_source()?;
    env.start_agent()?;
    let mut spec = seed_spec("./app");
    spec["wait"] = json!(true);
    spec["timeout"] = json!("3s");
    env.apply_kustomization("app", spec).await?;
    let ks = env
        .wait_ready("app", "False", "HealthCheckFailed", LIMIT)
        .await?;
    let st = ks.status.context("status")?;
    let msg = &st
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .context("Ready")?
        .message;
    assert!(msg.contains("Deployment/team-a/my-app"), "{msg}");
    assert_eq!(
        st.inventory.map(|i| i.len()),
        Some(1),
        "applied objects are inventoried"
    );

    // A fixed release (new image, no longer stuck) rolls out.
    env.upstream
        .write("app/deployment.yaml", deployment_yaml("v1.0.1"))?;
    env.upstream.commit_push("fixed release")?;
    env.wait_ready("app", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    // The annotation removed from Git is removed from the live object too.
    let d = env
        .get("apps/v1", "Deployment", "my-app")
        .await?
        .context("deployment")?;
    assert!(
        d.pointer("/spec/template/metadata/annotations/ferry.dev~1test-never-ready")
            .is_none(),
        "{d}"
    );
    Ok(())
}
