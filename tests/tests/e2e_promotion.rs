//! Promotion across environments: `clusters/staging` and `clusters/production` overlays over a
//! shared `apps/base`. Staging moves first; production's objects are not even rewritten until
//! its own path changes.

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::{Env, deployment_yaml};
use ferry_tests::upstream::Upstream;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

fn overlay(up: &Upstream, env: &str, tag: &str) -> Result<()> {
    up.write(
        &format!("clusters/{env}/kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamePrefix: {env}-\nresources:\n- ../../apps/base\nimages:\n- name: my-registry/my-app\n  newTag: {tag}\n"
        ),
    )?;
    Ok(())
}

fn spec(path: &str) -> Value {
    json!({
        "sourceRef": {"kind": "GitRepository", "name": "app"},
        "path": path, "interval": "2s", "retryInterval": "1s", "timeout": "30s", "prune": true,
    })
}

async fn image_of(env: &Env, name: &str) -> Result<Option<(String, String)>> {
    Ok(env.get("apps/v1", "Deployment", name).await?.map(|d| {
        (
            d.pointer("/spec/template/spec/containers/0/image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            // Generation + the time of ferry's last apply: the workload simulator updates
            // status (and so resourceVersion) on its own.
            format!(
                "{}@{}",
                d.pointer("/metadata/generation").unwrap_or(&Value::Null),
                d.pointer("/metadata/managedFields")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|e| e["manager"] == "ferry"))
                    .map(|e| e["time"].to_string())
                    .unwrap_or_default()
            ),
        )
    }))
}

async fn wait_image(env: &Env, name: &str, image: &str) -> Result<String> {
    env.wait_for(&format!("{name} at {image}"), LIMIT, || async {
        Ok(image_of(env, name)
            .await?
            .filter(|(i, _)| i == image)
            .map(|(_, rv)| rv))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_moves_first_production_only_when_its_path_changes() -> Result<()> {
    let mut env = Env::new().await?;
    let up = &env.upstream;
    up.write("apps/base/deployment.yaml", deployment_yaml("v1.0.0"))?;
    up.write(
        "apps/base/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- deployment.yaml\n",
    )?;
    overlay(up, "staging", "v1.0.0")?;
    overlay(up, "production", "v1.0.0")?;
    up.commit_push("both at v1.0.0")?;
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("staging", spec("./clusters/staging"))
        .await?;
    env.apply_kustomization("production", spec("./clusters/production"))
        .await?;
    wait_image(&env, "staging-my-app", "my-registry/my-app:v1.0.0").await?;
    let prod_rv = wait_image(&env, "production-my-app", "my-registry/my-app:v1.0.0").await?;

    // Promote to staging only.
    overlay(&env.upstream, "staging", "v1.1.0")?;
    let commit = env.upstream.commit_push("staging to v1.1.0")?;
    wait_image(&env, "staging-my-app", "my-registry/my-app:v1.1.0").await?;
    // Production reconciles the new revision too, and leaves its objects untouched.
    env.wait_for("production to reach the new revision", LIMIT, || async {
        let ks = env.kustomization("production").await?;
        let rev = ks.status.and_then(|s| s.last_applied_revision);
        Ok((rev == Some(format!("main@sha1:{commit}"))).then_some(()))
    })
    .await?;
    let (image, rv) = image_of(&env, "production-my-app")
        .await?
        .context("production deployment")?;
    assert_eq!(image, "my-registry/my-app:v1.0.0");
    assert_eq!(rv, prod_rv, "production's Deployment was not rewritten");

    // Promote to production.
    overlay(&env.upstream, "production", "v1.1.0")?;
    env.upstream.commit_push("production to v1.1.0")?;
    wait_image(&env, "production-my-app", "my-registry/my-app:v1.1.0").await?;
    Ok(())
}
