//! HelmRepository over HTTPS with a private CA: a chart repository served with a certificate
//! signed by a self-signed CA is refused without `certSecretRef` (the system roots do not know
//! that CA) and fetched and resolved with `certSecretRef` naming a Secret whose `ca.crt` is it.
//! A server that requires a client certificate (mutual TLS) refuses a client with only the CA,
//! and serves one whose `certSecretRef` also has `tls.crt`/`tls.key` signed by its CA.

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

/// A Secret `name` in ns with `data` as stringData keys (PEM values indented as block scalars).
fn tls_secret(name: &str, data: &[(&str, &str)]) -> String {
    let mut doc = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: ns}}\nstringData:\n"
    );
    for (key, pem) in data {
        doc.push_str(&format!("  {key}: |\n"));
        for line in pem.lines() {
            doc.push_str(&format!("    {line}\n"));
        }
    }
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_cert_secret_ref_is_presented() -> Result<()> {
    let work = tempfile::tempdir()?;
    let dir = work.path().join("repo");
    create_and_package(work.path(), &dir, "app", "1.0.0")?;
    let tls = TlsMaterial::generate(&["localhost", "127.0.0.1"])?;
    // The chart server refuses any client without a certificate its CA signed (mutual TLS).
    let server = ChartServer::start_tls(&dir, tls.server_config_requiring_client_cert()?).await?;
    index(work.path(), &dir, Some(&server.url()))?;

    let docs = join_docs(&[
        repo_doc(
            "with-cert",
            &server.url(),
            "  certSecretRef: {name: mtls}\n",
        ),
        repo_doc("ca-only", &server.url(), "  certSecretRef: {name: ca}\n"),
        tls_secret(
            "mtls",
            &[
                ("ca.crt", &tls.ca_pem),
                ("tls.crt", &tls.client_cert_pem),
                ("tls.key", &tls.client_key_pem),
            ],
        ),
        tls_secret("ca", &[("ca.crt", &tls.ca_pem)]),
    ]);
    let mut h = Harness::new(&docs)?;
    h.start().await?;

    // Trusting the server is not enough: without a client certificate the handshake fails,
    // and the condition names the repository and the cause.
    let v = wait_ready(&h, "ca-only", ConditionStatus::False).await?;
    let c = find_condition(&v.status.conditions, READY).context("Ready")?;
    assert!(
        c.message.contains("ns/ca-only") && c.message.to_lowercase().contains("certificate"),
        "the refusal names the repository and the certificate: {}",
        c.message
    );
    assert!(v.status.artifact.is_none(), "{v:?}");

    let v = wait_ready(&h, "with-cert", ConditionStatus::True).await?;
    let idx = v.status.artifact.context("index artifact")?;
    assert_eq!((idx.charts, idx.versions), (1, 1));
    let resp = h
        .http
        .get(format!(
            "{}/v1/helmrepositories/ns/with-cert/charts/app",
            h.base()
        ))
        .send()
        .await?;
    assert_eq!(
        resp.status(),
        200,
        "the chart is fetched with the certificate too"
    );
    let chart: serde_json::Value = resp.json().await?;
    assert!(
        chart["revision"]
            .as_str()
            .is_some_and(|r| r.starts_with("1.0.0@sha256:")),
        "{chart}"
    );
    // Only the client with the certificate got through the handshake to ask for anything.
    assert_eq!(server.count("/index.yaml", 200), 1, "{:?}", server.seen());
    assert_eq!(
        server.count("/app-1.0.0.tgz", 200),
        1,
        "{:?}",
        server.seen()
    );
    h.stop().await;
    Ok(())
}
