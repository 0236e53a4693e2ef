//! `deploy/` as shipped is accepted by the cluster — with `FERRY_CLUSTER=real` the real
//! kube-apiserver, the judge: the CRDs are created (it refuses a non-structural schema) and
//! Established, the source server's and an agent's kustomizations apply (server-side dry-run
//! first, then for real), and both Deployments become Available (real admission refuses Pods
//! whose ServiceAccount does not exist, and the real controllers report availability).

mod e2e_support;

use anyhow::Result;
use e2e_support::{Env, NS};
use ferry_tests::tools::{Client, repo_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_manifests_are_accepted_and_become_available() -> Result<()> {
    let env = Env::new().await?;
    let kubectl = Client::kubectl(env.cluster.kubeconfig_path())?;
    let deploy = repo_root().join("deploy");
    let path = |p: &str| deploy.join(p).to_string_lossy().into_owned();

    // The harness created the Kustomization CRD from the Rust type; the shipped YAML takes it
    // over (same generator, so only ownership moves).
    kubectl
        .ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &path("crds"),
        ])
        .await;
    kubectl
        .ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/gitrepositories.source.ferry.dev",
            "crd/kustomizations.apply.ferry.dev",
        ])
        .await;

    // An agent for NS (which exists): a server-side dry-run first — the whole admission chain,
    // nothing stored.
    let agent = path("agent");
    let dry = kubectl
        .ok(&["apply", "--server-side", "--dry-run=server", "-k", &agent])
        .await;
    assert!(
        dry.contains("deployment.apps/ferry-agent serverside-applied (server dry run)"),
        "{dry}"
    );
    let absent = kubectl
        .run(&["-n", NS, "get", "deployment", "ferry-agent"])
        .await;
    assert!(!absent.success(), "a dry-run stores nothing: {absent:?}");
    kubectl.ok(&["apply", "--server-side", "-k", &agent]).await;
    // The source server brings its namespace (a dry-run could not place objects in it).
    kubectl
        .ok(&["apply", "--server-side", "-k", &path("source-server")])
        .await;

    for (ns, name) in [(NS, "ferry-agent"), ("ferry-system", "ferry-source-server")] {
        kubectl
            .ok(&[
                "-n",
                ns,
                "wait",
                "--for=condition=Available",
                "--timeout=60s",
                &format!("deployment/{name}"),
            ])
            .await;
    }
    Ok(())
}
