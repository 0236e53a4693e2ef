//! `spec.lookup`: a chart calling `lookup` gets answers from the cluster, read with the agent's
//! own credentials — here those `deploy/agent` gives it (a ServiceAccount token bound to a Role
//! in its namespace) on a cluster that enforces RBAC. Without `lookup` the chart gets helm
//! template's empty answer; a lookup in another namespace is forbidden to that identity and the
//! release fails with helm's error, nothing applied. Runs on the real control plane with
//! `FERRY_CLUSTER=real`.

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::{Env, NS, bin};
use ferry_proto::helmrelease::HelmRelease;
use ferry_tests::tools::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

const CHART: &str = "apiVersion: v2\nname: looker\nversion: 0.1.0\n";
const TEMPLATE: &str = "{{- $cm := lookup \"v1\" \"ConfigMap\" (.Values.from | default .Release.Namespace) \"settings\" }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-out\ndata:\n  color: {{ if $cm }}{{ $cm.data.color | quote }}{{ else }}\"none\"{{ end }}\n";

async fn apply_release(env: &Env, name: &str, lookup: bool, values: Value) -> Result<()> {
    let api: Api<HelmRelease> = Api::namespaced(env.client.clone(), NS);
    let obj = json!({"apiVersion": "apply.ferry.dev/v1", "kind": "HelmRelease",
    "metadata": {"name": name, "namespace": NS},
    "spec": {
        "chart": {"spec": {"chart": "./charts/looker",
            "sourceRef": {"kind": "GitRepository", "name": "app"}}},
        "interval": "2s", "timeout": "45s", "lookup": lookup, "values": values,
    }});
    api.patch(
        name,
        &PatchParams::apply("e2e-test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .with_context(|| format!("applying HelmRelease {name}"))?;
    Ok(())
}

/// The Ready condition of HelmRelease `name` once it has one at its generation with `status`
/// (and `reason`, when given).
async fn wait_ready(
    env: &Env,
    name: &str,
    status: &str,
    reason: Option<&str>,
) -> Result<(String, String)> {
    env.wait_for(
        &format!("HelmRelease {name} Ready={status} {reason:?}"),
        LIMIT,
        || async {
            let api: Api<HelmRelease> = Api::namespaced(env.client.clone(), NS);
            let Some(hr) = api.get_opt(name).await? else {
                return Ok(None);
            };
            let st = hr.status.as_ref();
            Ok(st
                .filter(|s| s.observed_generation == hr.metadata.generation)
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .filter(|c| format!("{:?}", c.status) == status)
                .filter(|c| reason.is_none_or(|r| c.reason == r))
                .map(|c| (c.reason.clone(), c.message.clone())))
        },
    )
    .await
}

async fn color(env: &Env, release: &str) -> Result<Option<String>> {
    Ok(env
        .get("v1", "ConfigMap", &format!("{release}-out"))
        .await?
        .and_then(|cm| cm["data"]["color"].as_str().map(str::to_string)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_read_the_cluster_as_the_agent() -> Result<()> {
    let mut env = Env::with_rbac().await?;
    let admin = Client::kubectl(env.cluster.kubeconfig_path())?;

    // The agent's RBAC as shipped, and a kubeconfig with its ServiceAccount's token.
    let rendered = std::process::Command::new(bin("ferry-applier")?)
        .arg("build")
        .arg(ferry_tests::tools::repo_root().join("deploy/agent"))
        .output()?;
    anyhow::ensure!(rendered.status.success(), "{rendered:?}");
    let path = admin.home().join("agent.yaml");
    std::fs::write(&path, &rendered.stdout)?;
    admin
        .ok(&["apply", "-f", path.to_str().context("utf-8 path")?])
        .await;
    let token = admin
        .ok(&["-n", NS, "create", "token", "ferry-agent"])
        .await;
    let mut cfg: Value =
        serde_yaml::from_str(&std::fs::read_to_string(env.cluster.kubeconfig_path())?)?;
    cfg["users"][0]["user"] = json!({"token": token.trim()});
    let agent_kubeconfig = env.work.path().join("agent.kubeconfig");
    std::fs::write(&agent_kubeconfig, serde_yaml::to_string(&cfg)?)?;
    env.agent_kubeconfig = Some(agent_kubeconfig);

    // What the chart looks up: a ConfigMap in the agent's namespace, and one in another.
    admin
        .ok(&[
            "-n",
            NS,
            "create",
            "configmap",
            "settings",
            "--from-literal=color=blue",
        ])
        .await;
    admin.ok(&["create", "namespace", "team-b"]).await;
    admin
        .ok(&[
            "-n",
            "team-b",
            "create",
            "configmap",
            "settings",
            "--from-literal=color=red",
        ])
        .await;

    env.upstream.write("charts/looker/Chart.yaml", CHART)?;
    env.upstream
        .write("charts/looker/templates/out.yaml", TEMPLATE)?;
    env.upstream.commit_push("chart looker")?;
    env.start_source()?;
    env.start_agent()?;

    apply_release(&env, "with", true, json!({})).await?;
    apply_release(&env, "without", false, json!({})).await?;
    apply_release(&env, "elsewhere", true, json!({"from": "team-b"})).await?;

    let (reason, _) = wait_ready(&env, "with", "True", None).await?;
    assert_eq!(reason, "InstallSucceeded");
    assert_eq!(
        color(&env, "with").await?.as_deref(),
        Some("blue"),
        "lookup answered from the cluster"
    );
    wait_ready(&env, "without", "True", None).await?;
    assert_eq!(
        color(&env, "without").await?.as_deref(),
        Some("none"),
        "without spec.lookup, helm template's empty answer"
    );
    // InstallFailed: the render's own failure. A first reconcile that ran before the source
    // server had the chart's artifact left Ready=False ArtifactFailed, which must not be taken
    // for it.
    let (_, message) = wait_ready(&env, "elsewhere", "False", Some("InstallFailed")).await?;
    assert!(
        message.contains("forbidden") && message.contains("team-b"),
        "the agent's identity may not read another namespace: {message}"
    );
    assert_eq!(color(&env, "elsewhere").await?, None, "nothing applied");
    Ok(())
}
