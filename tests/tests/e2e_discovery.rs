//! Issue 12, defect 1: a custom resource kind the cluster admin installs after the agent
//! started is served without restarting the agent (discovery is refreshed, rate-limited, when a
//! kind is missing).

mod e2e_support;

use std::time::Duration;

use anyhow::Result;
use e2e_support::{Env, seed_spec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

fn widget_crd() -> Result<CustomResourceDefinition> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_installed_after_the_agent_started_is_served_without_a_restart() -> Result<()> {
    let mut env = Env::new().await?;
    env.upstream.write(
        "app/widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n",
    )?;
    env.upstream.commit_push("a widget")?;
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("app", seed_spec("./app")).await?;
    let ks = env.wait_ready("app", "False", "BuildFailed", LIMIT).await?;
    let message = ks
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("does not serve") && message.contains("Widget"),
        "{message}"
    );

    // The cluster admin installs the CRD; the same agent process picks it up.
    let pid = env.agent.as_ref().map(|a| a.pid());
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    crds.create(&PostParams::default(), &widget_crd()?).await?;
    env.wait_ready("app", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    assert!(env.get("example.com/v1", "Widget", "w1").await?.is_some());
    assert_eq!(
        env.agent.as_ref().map(|a| a.pid()),
        pid,
        "the agent was not restarted"
    );
    Ok(())
}
