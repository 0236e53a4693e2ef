//! The agent runs with the credentials `deploy/agent` gives it — a ServiceAccount bound to a Role
//! in its own namespace — on a cluster that enforces RBAC (with `FERRY_CLUSTER=real` the real
//! control plane, whose token is a real ServiceAccount token from the TokenRequest API). It
//! applies the seed there; the same token is refused everywhere else.

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::{Env, NS, bin, seed_spec, write_seed};
use ferry_tests::tools::Client;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_needs_only_its_namespace_role() -> Result<()> {
    let mut env = Env::with_rbac().await?;
    let admin = Client::kubectl(env.cluster.kubeconfig_path())?;

    // Install the agent's RBAC exactly as shipped (rendered by the agent's own kustomize).
    let rendered = std::process::Command::new(bin("ferry-applier")?)
        .arg("build")
        .arg(ferry_tests::tools::repo_root().join("deploy/agent"))
        .output()?;
    anyhow::ensure!(rendered.status.success(), "{rendered:?}");
    let manifests = String::from_utf8(rendered.stdout)?;
    assert!(
        !manifests.contains("kind: ClusterRole"),
        "agent RBAC must be namespaced"
    );
    let path = admin.home().join("agent.yaml");
    std::fs::write(&path, &manifests)?;
    admin
        .ok(&["apply", "-f", path.to_str().context("utf-8 path")?])
        .await;
    admin.ok(&["create", "namespace", "team-b"]).await;
    let token = admin
        .ok(&["-n", NS, "create", "token", "ferry-agent"])
        .await;

    // The agent's kubeconfig: the admin's, with the ServiceAccount's token.
    let text = std::fs::read_to_string(env.cluster.kubeconfig_path())?;
    let mut cfg: Value = serde_yaml::from_str(&text)?;
    cfg["users"][0]["user"] = json!({"token": token.trim()});
    let agent_kubeconfig = env.work.path().join("agent.kubeconfig");
    std::fs::write(&agent_kubeconfig, serde_yaml::to_string(&cfg)?)?;
    env.agent_kubeconfig = Some(agent_kubeconfig.clone());

    write_seed(&env.upstream, "app", "v1.0.0")?;
    env.upstream.commit_push("seed")?;
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("app", seed_spec("./app")).await?;
    env.wait_ready("app", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    assert!(env.get("apps/v1", "Deployment", "my-app").await?.is_some());
    let events = env.events("app").await?;
    assert!(
        events
            .iter()
            .any(|(_, m)| m.contains("Deployment/team-a/my-app created")),
        "{events:?}"
    );

    // The same credentials reach nothing outside team-a.
    let agent = Client::kubectl(&agent_kubeconfig)?;
    let other = agent
        .run(&[
            "-n",
            "team-b",
            "create",
            "configmap",
            "x",
            "--from-literal=a=b",
        ])
        .await;
    assert!(!other.success(), "{other:?}");
    assert!(other.stderr.contains("forbidden"), "{other:?}");
    let cluster_scoped = agent.run(&["create", "namespace", "team-c"]).await;
    assert!(!cluster_scoped.success(), "{cluster_scoped:?}");
    Ok(())
}
