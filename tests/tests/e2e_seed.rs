//! The seed scenario, end to end with real processes: a Git repo with `my-app`; the agent
//! applies it; a tag bump is applied after the push; `kubectl edit` drift is reverted (correct
//! mode) or reported and left alone (detect mode); deleting `service.yaml` prunes the Service.

mod e2e_support;

const RECONCILES: &str = "ferry_applier_reconciles_total";

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::{Env, NS, deployment_yaml, image, seed_spec, write_seed};
use ferry_tests::tools;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

fn replicas(d: &Value) -> i64 {
    d.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(-1)
}

fn managers(d: &Value) -> Vec<String> {
    d.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.get("manager").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `kubectl edit deployment my-app` with an editor script that sets replicas 5 and a foreign
/// image — what a person at a terminal would do.
async fn kubectl_edit(env: &Env) -> Result<()> {
    let kubectl = tools::Client::kubectl(env.cluster.kubeconfig_path())?;
    let editor = kubectl.home().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i -e 's/^  replicas: .*/  replicas: 5/' -e 's#image: my-registry/my-app:.*#image: evil/app:hacked#' \"$1\"\n",
    )?;
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()?;
    let kubectl = kubectl.env("KUBE_EDITOR", editor.to_str().context("utf-8 path")?);
    let out = kubectl
        .run(&["-n", NS, "edit", "deployment", "my-app"])
        .await;
    anyhow::ensure!(
        out.success() && out.stdout.contains("edited"),
        "kubectl edit failed: {out:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario() -> Result<()> {
    let mut env = Env::new().await?;
    write_seed(&env.upstream, "app", "v1.0.0")?;
    let first = env.upstream.commit_push("seed")?;
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("app", seed_spec("./app")).await?;

    // Applied: the deployment, the service, status and inventory.
    let ks = env
        .wait_ready("app", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    let st = ks.status.clone().context("status")?;
    assert_eq!(
        st.last_applied_revision.as_deref(),
        Some(format!("main@sha1:{first}").as_str())
    );
    assert_eq!(st.observed_generation, ks.metadata.generation);
    let inv = st.inventory.context("inventory")?;
    assert_eq!(inv.len(), 2, "{inv:?}");
    let d = env
        .get("apps/v1", "Deployment", "my-app")
        .await?
        .context("deployment")?;
    assert_eq!(image(&d), "my-registry/my-app:v1.0.0");
    assert_eq!(
        d.pointer("/metadata/labels/apply.ferry.dev~1name"),
        Some(&json!("app"))
    );
    assert!(managers(&d).contains(&"ferry".to_string()), "{d}");
    assert!(env.get("v1", "Service", "my-app").await?.is_some());
    let events = env.events("app").await?;
    assert!(
        events
            .iter()
            .any(|(_, m)| m.contains("Deployment/team-a/my-app created")
                && m.contains("Service/team-a/my-app created")),
        "{events:?}"
    );

    // A tag bump in Git is applied.
    env.upstream
        .write("app/deployment.yaml", deployment_yaml("v1.0.1"))?;
    let second = env.upstream.commit_push("bump to v1.0.1")?;
    env.wait_image("my-registry/my-app:v1.0.1", LIMIT).await?;
    let ks = env
        .wait_for("lastAppliedRevision of the bump", LIMIT, || async {
            let ks = env.kustomization("app").await?;
            let rev = ks
                .status
                .as_ref()
                .and_then(|s| s.last_applied_revision.clone());
            Ok((rev == Some(format!("main@sha1:{second}"))).then_some(ks))
        })
        .await?;
    assert!(ks.status.is_some());

    // Drift by `kubectl edit` is reverted at the next interval, and kubectl's ownership is gone.
    let configured = |events: &[(String, String)]| {
        events
            .iter()
            .filter(|(_, m)| m.contains("Deployment/team-a/my-app configured"))
            .count()
    };
    let configured_before = configured(&env.events("app").await?);
    kubectl_edit(&env).await?;
    let reverted = env
        .wait_for("the kubectl edit to be reverted", LIMIT, || async {
            let d = env.get("apps/v1", "Deployment", "my-app").await?;
            Ok(d.filter(|d| {
                replicas(d) == 2
                    && image(d) == "my-registry/my-app:v1.0.1"
                    && !managers(d).iter().any(|m| m == "kubectl-edit")
            }))
        })
        .await?;
    assert!(!managers(&reverted).contains(&"kubectl-edit".to_string()));
    // The revert has an Event of its own (published after the write, so wait for it).
    env.wait_for("an Event for the revert", LIMIT, || async {
        let events = env.events("app").await?;
        Ok((configured(&events) > configured_before).then_some(()))
    })
    .await?;

    // Detect mode: the same edit is reported in status (object and fields) and left alone.
    let mut spec = seed_spec("./app");
    spec["driftMode"] = json!("detect");
    env.apply_kustomization("app", spec).await?;
    env.wait_for("detect mode observed", LIMIT, || async {
        let ks = env.kustomization("app").await?;
        let st = ks.status.clone().unwrap_or_default();
        Ok((st.observed_generation == ks.metadata.generation).then_some(()))
    })
    .await?;
    kubectl_edit(&env).await?;
    let drift = env
        .wait_for("drift to be reported", LIMIT, || async {
            let ks = env.kustomization("app").await?;
            Ok(ks.status.and_then(|s| s.drift))
        })
        .await?;
    let obj = drift
        .objects
        .iter()
        .find(|o| o.kind == "Deployment" && o.name == "my-app")
        .with_context(|| format!("{drift:?}"))?;
    assert!(obj.fields.iter().any(|f| f == ".spec.replicas"), "{obj:?}");
    assert!(
        obj.fields
            .iter()
            .any(|f| f.contains("containers") && f.ends_with(".image")),
        "{obj:?}"
    );
    // Three more reconciles (each renders, then compares): still the edited values.
    let ok = [("kustomization", "app"), ("result", "success")];
    let reconciled = env.agent_metric(RECONCILES, &ok).await?;
    env.wait_agent_metric(RECONCILES, &ok, reconciled + 3.0, LIMIT)
        .await?;
    let d = env
        .get("apps/v1", "Deployment", "my-app")
        .await?
        .context("deployment")?;
    assert_eq!(replicas(&d), 5);
    assert_eq!(image(&d), "evil/app:hacked");
    let events = env.events("app").await?;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "DriftDetected" && m.contains("Deployment/team-a/my-app")),
        "{events:?}"
    );

    // Back to correct mode: reverted again, drift report cleared.
    env.apply_kustomization("app", seed_spec("./app")).await?;
    env.wait_for("correct mode to revert", LIMIT, || async {
        let d = env.get("apps/v1", "Deployment", "my-app").await?;
        let ks = env.kustomization("app").await?;
        let cleared = ks.status.is_some_and(|s| s.drift.is_none());
        Ok(d.filter(|d| replicas(d) == 2 && cleared))
    })
    .await?;

    // Removing service.yaml from Git prunes the Service.
    env.upstream.remove("app/service.yaml")?;
    env.upstream.write(
        "app/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- deployment.yaml\n",
    )?;
    env.upstream.commit_push("remove the service")?;
    // The agent deletes first and writes its status after: wait for both, so the
    // inventory is read once the reconcile that pruned has recorded it.
    let inv = env
        .wait_for(
            "the Service to be pruned and uninventoried",
            LIMIT,
            || async {
                let gone = env.get("v1", "Service", "my-app").await?.is_none();
                let ks = env.kustomization("app").await?;
                let inv = ks.status.and_then(|s| s.inventory);
                Ok(inv.filter(|i| gone && i.len() == 1))
            },
        )
        .await?;
    let (entry, _) = inv.objects(NS).next().context("one inventory entry")?;
    assert_eq!(
        (entry.kind.as_str(), entry.name.as_str()),
        ("Deployment", "my-app"),
        "{inv:?}"
    );
    assert!(env.get("apps/v1", "Deployment", "my-app").await?.is_some());
    let events = env.events("app").await?;
    assert!(
        events
            .iter()
            .any(|(_, m)| m.contains("Service/team-a/my-app deleted")),
        "{events:?}"
    );
    Ok(())
}
