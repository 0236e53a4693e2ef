//! HelmRepository over HTTPS with a private CA: a chart repository served with a certificate
//! signed by a self-signed CA is refused without `certSecretRef` (the system roots do not know
//! that CA) and fetched and resolved with `certSecretRef` naming a Secret whose `ca.crt` is it.

mod source_server_support;

use anyhow::{Context, Result};
use ferry_proto::ConditionStatus;
use ferry_proto::api::HelmRepositoryView;
use ferry_proto::condition::{READY, find_condition};
use ferry_testcluster::auth::TlsMaterial;
use ferry_tests::upstream::ChartServer;
use ferry_tests::upstream::charts::{create_and_package, index};
use source_server_support::*;

fn repo_doc(name: &str, url: &str, extra: &str) -> String {
    format!(
        "apiVersion: source.ferry.dev/v1\nkind: HelmRepository\nmetadata:\n  name: {name}\n  \
         namespace: ns\nspec:\n  url: {url}\n  interval: 1h\n  timeout: 10s\n{extra}"
    )
}

/// The Ready condition of HelmRepository ns/`name` once it has one with `status`.
async fn wait_ready(
    h: &Harness,
    name: &str,
    status: ConditionStatus,
) -> Result<HelmRepositoryView> {
    ferry_tests::poll::until(
        &format!("HelmRepository ns/{name} Ready={status:?}"),
        WAIT,
        std::time::Duration::from_millis(20),
        || async {
            let v: HelmRepositoryView = h
                .get_json(&format!("/v1/helmrepositories/ns/{name}"))
                .await?;
            let ok =
                find_condition(&v.status.conditions, READY).is_some_and(|c| c.status == status);
            Ok(ok.then_some(v))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_only_through_cert_secret_ref() -> Result<()> {
    let work = tempfile::tempdir()?;
    let dir = work.path().join("repo");
    create_and_package(work.path(), &dir, "app", "1.0.0")?;
    let tls = TlsMaterial::generate(&["localhost", "127.0.0.1"])?;
    let server = ChartServer::start_tls(&dir, tls.server_config()?).await?;
    index(work.path(), &dir, Some(&server.url()))?;

    let ca: String = tls.ca_pem.lines().map(|l| format!("    {l}\n")).collect();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: tls, namespace: ns}}\nstringData:\n  ca.crt: |\n{ca}"
    );
    let docs = join_docs(&[
        repo_doc("trusted", &server.url(), "  certSecretRef: {name: tls}\n"),
        repo_doc("untrusted", &server.url(), ""),
        secret,
    ]);
    let mut h = Harness::new(&docs)?;
    h.start().await?;

    let v = wait_ready(&h, "untrusted", ConditionStatus::False).await?;
    let c = find_condition(&v.status.conditions, READY).context("Ready")?;
    assert!(
        c.message.to_lowercase().contains("certificate"),
        "the refusal names the certificate: {}",
        c.message
    );
    let v = wait_ready(&h, "trusted", ConditionStatus::True).await?;
    assert!(v.status.artifact.is_some(), "{v:?}");
    let resp = h
        .http
        .get(format!(
            "{}/v1/helmrepositories/ns/trusted/charts/app",
            h.base()
        ))
        .send()
        .await?;
    assert_eq!(resp.status(), 200, "the chart is fetched over TLS too");
    let chart: serde_json::Value = resp.json().await?;
    assert!(
        chart["revision"]
            .as_str()
            .is_some_and(|r| r.starts_with("1.0.0@sha256:")),
        "{chart}"
    );
    assert!(
        server.seen().iter().any(|s| s.path.ends_with(".tgz")),
        "{:?}",
        server.seen()
    );
    h.stop().await;
    Ok(())
}
