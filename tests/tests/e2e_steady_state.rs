//! What reconciles cost and leave behind, counted on the API server (real agent, real source
//! server): once a revision is applied, a reconcile with nothing to do asks one metadata LIST
//! per kind — no GET, dry-run or write per object, no status write; an edit of one object costs
//! a comparison of that object only and is reverted; and a revision whose new objects cannot all
//! be created leaves the existing objects as they were, inventories what it did create, and
//! converges once the server accepts the rest. The agent's Prometheus metrics count it all.

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::{Env, NS, image, seed_spec, write_seed};
use ferry_testcluster::faults::FaultRule;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);
const CONFIGMAPS: usize = 30;

/// The seed plus `CONFIGMAPS` ConfigMaps (`extra` more after them, for a later revision) and
/// the files `more` (written by the caller).
fn write_app(env: &Env, tag: &str, extra: usize, more: &[&str]) -> Result<()> {
    write_seed(&env.upstream, "app", tag)?;
    let mut resources = vec!["deployment.yaml".to_string(), "service.yaml".to_string()];
    resources.extend(more.iter().map(|m| m.to_string()));
    for i in 0..CONFIGMAPS + extra {
        let file = format!("cm-{i:02}.yaml");
        env.upstream.write(
            &format!("app/{file}"),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:02}\ndata:\n  value: \"{i}\"\n"
            ),
        )?;
        resources.push(file);
    }
    env.upstream.write(
        "app/kustomization.yaml",
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{}",
            resources
                .iter()
                .map(|r| format!("- {r}\n"))
                .collect::<String>()
        ),
    )?;
    Ok(())
}

/// Successful reconciles of Kustomization `app` so far, from the agent's metrics.
async fn applied_count(env: &Env) -> Result<f64> {
    env.agent_metric(
        "ferry_applier_reconciles_total",
        &[("kustomization", "app"), ("result", "success")],
    )
    .await
}

/// Waits until the agent has done `n` more successful reconciles.
async fn reconciles(env: &Env, n: usize) -> Result<()> {
    let target = applied_count(env).await? + n as f64;
    env.wait_for(&format!("{n} more reconciles"), LIMIT, || async {
        Ok((applied_count(env).await? >= target).then_some(()))
    })
    .await
}

/// Requests for `resource` in the audit, as `verb=count` (for messages).
fn requests(env: &Env, resource: &str) -> String {
    env.cluster
        .audit()
        .snapshot()
        .into_iter()
        .filter(|((_, r), _)| r == resource)
        .map(|((v, _), n)| format!("{v}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_reconcile_only_lists_and_an_edit_costs_one_comparison() -> Result<()> {
    // Counts requests with the test server's audit.
    let mut env = Env::on_test_server().await?;
    let metrics = format!("127.0.0.1:{}", env.agent_metrics_port);
    write_app(&env, "v1.0.0", 0, &[])?;
    env.upstream.commit_push("seed")?;
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("app", seed_spec("./app")).await?;
    env.wait_ready("app", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    // The workload stand-in writes the Deployment's status once, after the apply: a write the
    // next reconcile has to look at. After that, nothing moves.
    env.wait_for("my-app available", LIMIT, || async {
        let d = env.get("apps/v1", "Deployment", "my-app").await?;
        Ok(d.and_then(|d| d.pointer("/status/availableReplicas").cloned()))
    })
    .await?;
    reconciles(&env, 2).await?;

    let audit = env.cluster.audit();
    audit.reset();
    // The reset may land inside a reconcile that already listed: of three counted, the last
    // two listed after it.
    reconciles(&env, 3).await?;
    for resource in ["configmaps", "deployments", "services"] {
        let seen = requests(&env, resource);
        for verb in ["get", "patch", "patch (dry-run)", "update", "create"] {
            assert_eq!(
                audit.count(verb, resource),
                0,
                "an unchanged reconcile sent {verb} {resource}: {seen}\n{}",
                env.logs()
            );
        }
        assert!(
            audit.count("list", resource) >= 2,
            "one list of {resource} per reconcile expected: {seen}"
        );
    }
    assert_eq!(
        audit.count("patch", "kustomizations"),
        0,
        "an unchanged reconcile rewrote the status: {}",
        requests(&env, "kustomizations")
    );

    // kubectl-edit-style drift on one object: that object alone is compared, and reverted.
    audit.reset();
    env.drift_replicas("my-app", 5).await?;
    env.wait_for("replicas reverted", LIMIT, || async {
        let d = env.get("apps/v1", "Deployment", "my-app").await?;
        Ok(
            d.and_then(|d| d.pointer("/spec/replicas").and_then(Value::as_i64))
                .filter(|r| *r == 2),
        )
    })
    .await?;
    let (deployments, configmaps) = (requests(&env, "deployments"), requests(&env, "configmaps"));
    assert!(
        audit.count("patch (dry-run)", "deployments") >= 1,
        "the edited Deployment was not compared: {deployments}"
    );
    for verb in ["get", "patch", "patch (dry-run)"] {
        assert_eq!(
            audit.count(verb, "configmaps"),
            0,
            "untouched ConfigMaps were compared or written: {configmaps}"
        );
    }

    // What happened is in the metrics, per Kustomization and action. The agent counts the
    // revert after it has written it (and published its Event): scrape until it is there.
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let configured = r#"ferry_applier_objects_total{kustomization="app",action="configured"}"#;
    let text = env
        .wait_for("the revert in the metrics", LIMIT, || async {
            let text = reqwest::get(format!("http://{metrics}/metrics"))
                .await?
                .error_for_status()?
                .text()
                .await?;
            Ok((value(&text, configured) >= 1.0).then_some(text))
        })
        .await?;
    let value = |series: &str| value(&text, series);
    let objects = CONFIGMAPS as f64 + 2.0;
    assert_eq!(
        value(r#"ferry_applier_objects_total{kustomization="app",action="created"}"#),
        objects,
        "{text}"
    );
    assert!(
        value(r#"ferry_applier_objects_total{kustomization="app",action="unchanged"}"#)
            >= 4.0 * objects,
        "{text}"
    );
    assert!(
        value(r#"ferry_applier_reconciles_total{kustomization="app",result="success"}"#) >= 5.0,
        "{text}"
    );
    assert!(
        value(
            r#"ferry_applier_reconcile_duration_seconds_count{kustomization="app",result="success"}"#
        ) >= 5.0,
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_that_cannot_be_created_changes_no_existing_object() -> Result<()> {
    // Refused writes are an injected fault: the test server.
    let mut env = Env::on_test_server().await?;
    write_app(&env, "v1.0.0", 0, &[])?;
    env.upstream.commit_push("seed")?;
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("app", seed_spec("./app")).await?;
    env.wait_ready("app", "True", "ReconciliationSucceeded", LIMIT)
        .await?;

    // The next revision bumps the image and adds a Secret and a ConfigMap; the server refuses
    // every ConfigMap write for now (only the new one is written: the others are unchanged).
    env.cluster
        .faults()
        .add(FaultRule::error(500).verb("patch").resource("configmaps"));
    write_app(&env, "v1.0.1", 1, &["secret.yaml"])?;
    env.upstream.write(
        "app/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: extra\nstringData:\n  token: t\n",
    )?;
    let second = env
        .upstream
        .commit_push("v1.0.1, a new Secret and a new ConfigMap")?;
    let ks = env
        .wait_for(
            "the failed attempt of the second revision",
            LIMIT,
            || async {
                let ks = env.kustomization("app").await?;
                let attempted = ks
                    .status
                    .as_ref()
                    .and_then(|s| s.last_attempted_revision.clone());
                let failed = ks.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.reason == "ReconciliationFailed")
                });
                Ok((failed && attempted == Some(format!("main@sha1:{second}"))).then_some(ks))
            },
        )
        .await?;
    let st = ks.status.clone().context("status")?;
    let d = env
        .get("apps/v1", "Deployment", "my-app")
        .await?
        .context("deployment")?;
    assert_eq!(
        image(&d),
        "my-registry/my-app:v1.0.0",
        "an existing object was updated although the revision's creates failed"
    );
    let new_cm = format!("cm-{CONFIGMAPS:02}");
    assert!(env.get("v1", "ConfigMap", &new_cm).await?.is_none());
    assert!(
        env.get("v1", "Secret", "extra").await?.is_some(),
        "the create the server accepted"
    );
    let inventoried: Vec<String> = st
        .inventory
        .as_ref()
        .context("inventory")?
        .objects(NS)
        .map(|(id, _)| id.name)
        .collect();
    assert!(
        inventoried.contains(&"extra".to_string()),
        "the Secret was created but not inventoried: {inventoried:?}"
    );
    assert!(inventoried.contains(&"my-app".to_string()));
    let message = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&format!("ConfigMap/{NS}/{new_cm}")),
        "the failure names the object: {message}"
    );

    // The server recovers: the retry applies the whole revision.
    env.cluster.faults().clear();
    env.wait_image("my-registry/my-app:v1.0.1", LIMIT).await?;
    env.wait_ready("app", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    assert!(env.get("v1", "ConfigMap", &new_cm).await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_reconcile_runs_now_and_is_acknowledged() -> Result<()> {
    let mut env = Env::new().await?;
    let mut spec = seed_spec("./app");
    spec["interval"] = "1h".into();
    // A second Kustomization reconciled every second: its reconciles show the agent at work
    // while `app` is left alone.
    env.upstream.write(
        "canary/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: canary\ndata:\n  k: v\n",
    )?;
    env.seeded(spec).await?;
    let mut canary = seed_spec("./canary");
    canary["interval"] = "1s".into();
    env.apply_kustomization("canary", canary).await?;
    env.wait_ready("canary", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    let canary_count = || {
        env.agent_metric(
            "ferry_applier_reconciles_total",
            &[("kustomization", "canary"), ("result", "success")],
        )
    };
    let replicas = || async {
        let d = env.get("apps/v1", "Deployment", "my-app").await?;
        anyhow::Ok(d.and_then(|d| d.pointer("/spec/replicas").and_then(Value::as_i64)))
    };

    // The source stream's announcement of the artifact may trigger one more reconcile when it
    // lands while the first is still running: let that happen before the drift.
    env.wait_agent_metric(
        "ferry_applier_artifact_announcements_total",
        &[("source", "team-a/app")],
        1.0,
        LIMIT,
    )
    .await?;
    let mut settled = applied_count(&env).await?;
    let mut quiet = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = applied_count(&env).await?;
        quiet = now == settled;
        if quiet {
            break;
        }
        settled = now;
    }
    assert!(quiet, "still reconciling after 30 s\n{}", env.logs());

    // With a one-hour interval, nothing looks at the drift, while the agent reconciles the
    // canary twice...
    env.drift_replicas("my-app", 5).await?;
    let seen = canary_count().await?;
    env.wait_for("two more canary reconciles", LIMIT, || async {
        Ok((canary_count().await? >= seen + 2.0).then_some(()))
    })
    .await?;
    assert_eq!(replicas().await?, Some(5));
    assert_eq!(
        applied_count(&env).await?,
        settled,
        "a reconcile ran without a reason"
    );

    // ...until someone asks, as `flux reconcile kustomization app` does.
    let requested = "2026-11-24T18:00:00.000000000Z";
    let api: kube::Api<ferry_proto::Kustomization> = kube::Api::namespaced(env.client.clone(), NS);
    api.patch(
        "app",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"metadata": {"annotations": {
            ferry_proto::kustomization::RECONCILE_REQUESTED_AT: requested}}})),
    )
    .await?;
    env.wait_for("the drift reverted on request", LIMIT, || async {
        Ok(replicas().await?.filter(|r| *r == 2))
    })
    .await?;
    env.wait_for("lastHandledReconcileAt", LIMIT, || async {
        let ks = env.kustomization("app").await?;
        Ok(ks
            .status
            .and_then(|s| s.last_handled_reconcile_at)
            .filter(|at| at == requested))
    })
    .await?;
    Ok(())
}
