//! Agents report to the source server, and alerts go out: the agent index behind
//! `GET /v1/agents`, and Providers/Alerts delivering the events of the server and the agents to
//! real HTTP receivers started by the test.

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::{Env, NS, deployment_yaml, seed_spec};
use ferry_proto::ConditionStatus;
use ferry_proto::api::{AgentList, AgentView, ObjectSummary};

const LIMIT: Duration = Duration::from_secs(30);

/// `GET /v1/agents/{NS}`, `None` until the agent reported.
async fn agent_view(env: &Env) -> Result<Option<AgentView>> {
    let resp = reqwest::get(format!("{}/v1/agents/{NS}", env.source_url())).await?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    Ok(Some(resp.error_for_status()?.json().await?))
}

/// Waits until the index shows an object `kind/name` for which `check` holds.
async fn wait_summary(
    env: &Env,
    what: &str,
    kind: &str,
    name: &str,
    check: impl Fn(&ObjectSummary) -> bool,
) -> Result<ObjectSummary> {
    env.wait_for(what, LIMIT, || async {
        Ok(agent_view(env).await?.and_then(|v| {
            v.objects
                .into_iter()
                .find(|o| o.kind == kind && o.name == name && check(o))
        }))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_report_every_object_of_their_namespace() -> Result<()> {
    let mut env = Env::new().await?;
    let first = env.seeded(seed_spec("./app")).await?;
    let applied = format!("main@sha1:{first}");
    let ok = wait_summary(
        &env,
        "app Ready in the index",
        "Kustomization",
        "app",
        |o| o.ready == ConditionStatus::True,
    )
    .await?;
    assert_eq!(ok.last_applied_revision.as_deref(), Some(applied.as_str()));
    assert_eq!(ok.reason, "ReconciliationSucceeded");
    let inventory: Vec<String> = ok
        .inventory
        .objects(NS)
        .map(|(id, _)| id.to_string())
        .collect();
    assert!(
        inventory
            .iter()
            .any(|i| i.contains("Deployment") && i.contains("my-app")),
        "the inventory is reported: {inventory:?}"
    );

    // A failure shows with its message; the applied revision stays.
    env.upstream.write(
        "app/deployment.yaml",
        deployment_yaml("v2.0.0") + "  broken: [unclosed\n",
    )?;
    let bad = env.upstream.commit_push("broken yaml")?;
    let failed = wait_summary(
        &env,
        "app failing in the index",
        "Kustomization",
        "app",
        |o| o.ready == ConditionStatus::False && o.reason == "BuildFailed",
    )
    .await?;
    assert!(
        failed.message.contains("deployment.yaml"),
        "{}",
        failed.message
    );
    assert_eq!(
        failed.last_applied_revision.as_deref(),
        Some(applied.as_str())
    );
    assert_eq!(
        failed.last_attempted_revision,
        Some(format!("main@sha1:{bad}"))
    );

    // The list has the namespace; a second Kustomization appears, a deleted one goes.
    let list: AgentList = reqwest::get(format!("{}/v1/agents", env.source_url()))
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert!(list.agents.iter().any(|a| a.namespace == NS), "{list:?}");
    // (A path the artifact lacks: it fails, and is reported all the same.)
    env.apply_kustomization("other", seed_spec("./missing"))
        .await?;
    wait_summary(&env, "other in the index", "Kustomization", "other", |_| {
        true
    })
    .await?;
    env.delete_kustomization("other").await?;
    env.wait_for("other gone from the index", LIMIT, || async {
        Ok(agent_view(&env)
            .await?
            .filter(|v| !v.objects.iter().any(|o| o.name == "other"))
            .map(|_| ()))
    })
    .await?;
    let view = agent_view(&env).await?.context("reported")?;
    assert_eq!(view.namespace, NS);
    Ok(())
}
