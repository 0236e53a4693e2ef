//! `ferry-source-server serve --cluster`: sources are `GitRepository` objects in the cluster
//! (the real kube-apiserver with `FERRY_CLUSTER=real`), the server writes their status back so
//! `kubectl get gitrepositories -A` shows Ready and Revision, `reconcile.fluxcd.io/requestedAt`
//! fetches now, Secrets come only from the source's own namespace, and a deleted object stops
//! being served.

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::sources::*;
use e2e_support::{Env, NS};
use ferry_tests::tools::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_sources_get_status_requests_secrets_and_deletion() -> Result<()> {
    let env = Env::new().await?;
    install_source_crds(&env).await?;
    env.upstream.write("deploy/cm.yaml", "kind: ConfigMap\n")?;
    env.upstream.commit_push("first")?;
    let first = env.upstream.head()?;
    let git = git_api(&env, NS);
    let repo = |name: &str, extra: Value| git_repository(&env, NS, name, extra, json!({}));
    git.create(&PostParams::default(), &repo("app", json!({}))?)
        .await?;
    // A Secret of that name exists, but in another namespace: it must not be used.
    let other = "ferry-other-tenant";
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": other}}))?,
    )
    .await?;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(env.client.clone(), other);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "creds", "namespace": other},
                "stringData": {"username": "u", "password": "p"},
            }))?,
        )
        .await?;
    git.create(
        &PostParams::default(),
        &repo("needs-secret", json!({"secretRef": {"name": "creds"}}))?,
    )
    .await?;

    // One tenant in this test: tenancy is the subject of e2e_tenancy_sources.
    let server = start_cluster_server(&env, &["--no-tenancy"])?;
    let port = env.source_port;
    let st = env
        .wait_for(
            "GitRepository app Ready with its revision",
            LIMIT,
            || async {
                let s = git_status(&env, NS, "app").await?;
                let ok = ready(&s).is_some_and(|(r, _)| r == "True")
                    && s["artifact"]["revision"] == format!("main@sha1:{first}");
                Ok(ok.then_some(s))
            },
        )
        .await
        .with_context(|| server.log_text())?;
    let generation = git.get("app").await?.metadata.generation;
    assert_eq!(st["observedGeneration"].as_i64(), generation);
    assert!(
        st["artifact"]["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{st}"
    );

    // What users look at: the CRD's printer columns read the written status (the API test
    // server prints no custom columns; the same JSONPaths are asked for explicitly there).
    let kubectl = Client::kubectl(env.cluster.kubeconfig_path())?;
    let columns = "custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type==\"Ready\")].status,REVISION:.status.artifact.revision";
    let args: &[&str] = if env.cluster.is_real() {
        &["get", "gitrepositories", "-A"]
    } else {
        &["get", "gitrepositories", "-A", "-o", columns]
    };
    let table = kubectl.ok(args).await;
    let line = table
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == "app"))
        .with_context(|| format!("no app row in:\n{table}"))?;
    assert!(
        line.contains("True") && line.contains(&format!("main@sha1:{first}")),
        "{table}"
    );

    // The Secret is looked up in the source's own namespace only.
    let st = env
        .wait_for("needs-secret refused", LIMIT, || async {
            let s = git_status(&env, NS, "needs-secret").await?;
            Ok(ready(&s).filter(|(r, _)| r == "False"))
        })
        .await?;
    assert!(
        st.1.contains("creds"),
        "the message names the missing Secret: {}",
        st.1
    );

    // requestedAt fetches now (the interval is an hour) and is echoed once handled.
    env.upstream
        .write("deploy/cm.yaml", "kind: ConfigMap\n# two\n")?;
    env.upstream.commit_push("second")?;
    let second = env.upstream.head()?;
    let token = "2026-12-05T10:00:00Z";
    git.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}),
        ),
    )
    .await?;
    env.wait_for("the requested reconcile handled", LIMIT, || async {
        let s = git_status(&env, NS, "app").await?;
        Ok((s["lastHandledReconcileAt"] == token
            && s["artifact"]["revision"] == format!("main@sha1:{second}"))
        .then_some(()))
    })
    .await
    .with_context(|| server.log_text())?;

    // The HTTP API serves the same source; deleting the object stops serving it.
    let http = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{port}/v1/sources/{NS}/app");
    assert_eq!(http.get(&api).send().await?.status(), 200);
    git.delete("app", &Default::default()).await?;
    env.wait_for("the deleted source no longer served", LIMIT, || async {
        Ok((http.get(&api).send().await?.status() == 404).then_some(()))
    })
    .await?;
    drop(server);
    Ok(())
}
