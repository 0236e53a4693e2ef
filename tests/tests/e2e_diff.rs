//! `ferry-applier diff`: what the next reconcile would change — drifted fields, new objects
//! and prunes — without changing anything (exit code 1 when there are changes, like
//! `kubectl diff`).

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::{Env, NS, bin, seed_spec};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

fn diff(env: &Env) -> Result<(Option<i32>, String, String)> {
    let out = std::process::Command::new(bin("ferry-applier")?)
        .args([
            "diff",
            "--namespace",
            NS,
            "--kustomization",
            "app",
            "--source-server",
        ])
        .arg(env.source_url())
        .arg("--kubeconfig")
        .arg(env.cluster.kubeconfig_path())
        .arg("--cache-dir")
        .arg(env.work.path().join("diff-cache"))
        .output()?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_shows_drift_and_prunes_without_applying() -> Result<()> {
    let mut env = Env::new().await?;
    env.seeded(seed_spec("./app")).await?;
    env.kill_agent();

    let (code, out, err) = diff(&env)?;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("no changes"), "{out}");

    // Drift plus a removal in Git.
    env.drift_replicas("my-app", 7).await?;
    env.upstream.remove("app/service.yaml")?;
    env.upstream.write(
        "app/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- deployment.yaml\n",
    )?;
    let commit = env.upstream.commit_push("drop the service")?;
    let (code, out, err) = env
        .wait_for("diff to see the new revision", LIMIT, || async {
            let r = diff(&env)?;
            Ok(r.1.contains(&commit).then_some(r))
        })
        .await?;
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains("Deployment/team-a/my-app configured: .spec.replicas"),
        "{out}"
    );
    assert!(out.contains("Service/team-a/my-app deleted"), "{out}");
    // Nothing was changed.
    let d = env
        .get("apps/v1", "Deployment", "my-app")
        .await?
        .context("deployment")?;
    assert_eq!(d.pointer("/spec/replicas"), Some(&json!(7)));
    assert!(env.get("v1", "Service", "my-app").await?.is_some());
    Ok(())
}
