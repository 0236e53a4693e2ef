//! Source objects in the cluster, for the tests of `ferry-source-server serve --cluster`.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use ferry_proto::{Alert, Bucket, GitRepository, HelmRepository, Provider, Receiver};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt as _;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::{Env, Proc, bin};

/// Creates the CRDs of the kinds the source server follows (sources, Receivers, Providers,
/// Alerts) and waits until they are served.
pub async fn install_source_crds(env: &Env) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    for crd in [
        GitRepository::crd(),
        HelmRepository::crd(),
        Bucket::crd(),
        Receiver::crd(),
        Provider::crd(),
        Alert::crd(),
    ] {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.create(&PostParams::default(), &crd)
            .await
            .with_context(|| format!("creating CRD {name}"))?;
        tokio::time::timeout(
            Duration::from_secs(60),
            kube::runtime::wait::await_condition(
                crds.clone(),
                &name,
                kube::runtime::wait::conditions::is_crd_established(),
            ),
        )
        .await
        .with_context(|| format!("CRD {name} not Established"))??;
    }
    Ok(())
}

/// `GitRepository` objects of namespace `ns`.
pub fn git_api(env: &Env, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        env.client.clone(),
        ns,
        &ApiResource::erase::<GitRepository>(&()),
    )
}

/// A `GitRepository` of the test's upstream (interval 1h: only requests fetch), with `extra`
/// merged into its spec and `annotations`.
pub fn git_repository(
    env: &Env,
    ns: &str,
    name: &str,
    extra: Value,
    annotations: Value,
) -> Result<DynamicObject> {
    let mut spec = json!({"url": env.upstream.file_url(), "interval": "1h"});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "source.ferry.dev/v1", "kind": "GitRepository",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": spec,
    }))?)
}

/// The object's `status` (null when it has none yet).
pub async fn git_status(env: &Env, ns: &str, name: &str) -> Result<Value> {
    let o = git_api(env, ns).get(name).await?;
    Ok(o.data.get("status").cloned().unwrap_or(Value::Null))
}

/// The `Ready` condition's status and message.
pub fn ready(status: &Value) -> Option<(String, String)> {
    let c = status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    Some((
        c["status"].as_str()?.to_string(),
        c["message"].as_str()?.to_string(),
    ))
}

/// `ferry-source-server serve --cluster` on the env's source port, with the admin kubeconfig
/// and `args`.
pub fn start_cluster_server(env: &Env, args: &[&str]) -> Result<Proc> {
    let dir = env.work.path();
    let mut cmd = Command::new(bin("ferry-source-server")?);
    // FERRY_CLUSTER=real picks the tests' control plane; the server reads FERRY_CLUSTER as
    // its --cluster flag, so it must not inherit it.
    cmd.env_remove("FERRY_CLUSTER");
    cmd.args(["serve", "--cluster", "--storage"])
        .arg(dir.join("storage"))
        .arg("--cache")
        .arg(dir.join("mirrors"))
        .args(["--listen", &format!("127.0.0.1:{}", env.source_port)])
        .args(args)
        .env("KUBECONFIG", env.cluster.kubeconfig_path());
    Proc::spawn(
        "ferry-source-server",
        &mut cmd,
        dir.join("source-server.log"),
    )
}
