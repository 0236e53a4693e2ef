//! `ferry reconcile`, `suspend` and `resume`: Flux's protocol. A reconcile request is a new
//! token in the `reconcile.fluxcd.io/requestedAt` annotation (for a source, the source server's
//! `?requestedAt=`); the reconcile it started is done when `status.lastHandledReconcileAt`
//! shows that token, and its outcome is the `Ready` condition written with it.

use std::time::{Duration, Instant};

use anyhow::bail;
use ferry_proto::kustomization::RECONCILE_REQUESTED_AT;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::kinds::{Applied, Cluster, Target};
use crate::sources::{SourceKind, SourceServer};
use crate::table::ready;
use crate::{Global, Outcome};

/// How often the status is read while waiting.
const POLL: Duration = Duration::from_millis(250);
/// A progress line is printed this often during a long wait.
const PROGRESS: Duration = Duration::from_secs(10);

pub async fn reconcile(
    g: &Global,
    target: Target,
    name: &str,
    with_source: bool,
    wait: bool,
) -> anyhow::Result<Outcome> {
    let token = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let deadline = Instant::now() + g.timeout;
    if let Some(kind) = source_kind(target) {
        let cluster_ns = match &g.namespace {
            Some(ns) => ns.clone(),
            None => Cluster::connect(g).await?.namespace,
        };
        return reconcile_source(g, kind, &cluster_ns, name, &token, wait, deadline).await;
    }
    let kind = target.applied("reconcile")?;
    let cluster = Cluster::connect(g).await?;
    let obj = serde_json::to_value(cluster.get(kind, name).await?)?;
    let what = format!("{} {}/{name}", kind.kind(), cluster.namespace);
    if obj["spec"]["suspend"].as_bool().unwrap_or(false) {
        bail!(
            "{what} is suspended; `ferry resume {} {name}` first",
            kind.kind().to_lowercase()
        );
    }
    if with_source {
        let (skind, sns, sname) = source_of(kind, &obj, &cluster.namespace)?;
        let outcome = reconcile_source(g, skind, &sns, &sname, &token, true, deadline).await?;
        if outcome != Outcome::Ok {
            return Ok(outcome);
        }
    }
    eprintln!("► annotating {what}");
    let patch = json!({"metadata": {"annotations": {RECONCILE_REQUESTED_AT: token}}});
    cluster
        .api(kind, false)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    if !wait {
        eprintln!("✔ reconcile of {what} requested");
        return Ok(Outcome::Ok);
    }
    eprintln!("◎ waiting for {what} reconciliation");
    let started = Instant::now();
    let mut said = Instant::now();
    loop {
        let obj = serde_json::to_value(cluster.get(kind, name).await?)?;
        if obj["status"]["lastHandledReconcileAt"].as_str() == Some(token.as_str()) {
            return Ok(report(&what, kind, &obj["status"]));
        }
        if Instant::now() >= deadline {
            eprintln!(
                "✗ timed out after {:?} waiting for {what}: {}",
                g.timeout,
                ready(&obj["status"]).1
            );
            return Ok(Outcome::TimedOut);
        }
        if said.elapsed() >= PROGRESS {
            said = Instant::now();
            eprintln!(
                "◎ still waiting for {what} ({}s)",
                started.elapsed().as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The outcome a handled reconcile left in `status`, printed Flux's way.
fn report(what: &str, kind: Applied, status: &Value) -> Outcome {
    let (ready_status, message) = ready(status);
    if ready_status == "True" {
        let revision = status["lastAppliedRevision"]
            .as_str()
            .or(status["lastAttemptedRevision"].as_str())
            .unwrap_or_default();
        match kind {
            Applied::Kustomization => eprintln!("✔ applied revision {revision}"),
            Applied::HelmRelease => eprintln!("✔ released revision {revision}"),
        }
        println!("{what} Ready: {message}");
        Outcome::Ok
    } else {
        eprintln!("✗ {what} not Ready: {message}");
        Outcome::NotReady
    }
}

fn source_kind(target: Target) -> Option<SourceKind> {
    match target {
        Target::Source => Some(SourceKind::GitRepository),
        Target::Helmrepository => Some(SourceKind::HelmRepository),
        Target::Kustomization | Target::Helmrelease => None,
    }
}

/// The source an object reads: `spec.sourceRef` (Kustomization) or `spec.chart.spec.sourceRef`
/// (HelmRelease).
fn source_of(kind: Applied, obj: &Value, ns: &str) -> anyhow::Result<(SourceKind, String, String)> {
    let r = match kind {
        Applied::Kustomization => &obj["spec"]["sourceRef"],
        Applied::HelmRelease => &obj["spec"]["chart"]["spec"]["sourceRef"],
    };
    let Some(name) = r["name"].as_str() else {
        bail!("{} {ns}: no sourceRef.name", kind.kind());
    };
    Ok((
        SourceKind::of(r["kind"].as_str().unwrap_or_default())?,
        r["namespace"].as_str().unwrap_or(ns).to_string(),
        name.to_string(),
    ))
}

async fn reconcile_source(
    g: &Global,
    kind: SourceKind,
    ns: &str,
    name: &str,
    token: &str,
    wait: bool,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    let server = SourceServer::new(g)?;
    let what = format!("{} {ns}/{name}", kind.name());
    eprintln!("► asking the source server to reconcile {what}");
    server.trigger(kind, ns, name, token).await?;
    if !wait {
        eprintln!("✔ reconcile of {what} requested");
        return Ok(Outcome::Ok);
    }
    eprintln!("◎ waiting for {what} reconciliation");
    loop {
        let v = server.get(kind, ns, name).await?;
        if v["status"]["lastHandledReconcileAt"].as_str() == Some(token) {
            let (status, message) = ready(&v["status"]);
            return Ok(if status == "True" {
                eprintln!(
                    "✔ fetched revision {}",
                    v["status"]["artifact"]["revision"]
                        .as_str()
                        .unwrap_or_default()
                );
                Outcome::Ok
            } else {
                eprintln!("✗ {what} not Ready: {message}");
                Outcome::NotReady
            });
        }
        if Instant::now() >= deadline {
            eprintln!("✗ timed out after {:?} waiting for {what}", g.timeout);
            return Ok(Outcome::TimedOut);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Sets `spec.suspend`.
pub async fn suspend(g: &Global, target: Target, name: &str, on: bool) -> anyhow::Result<Outcome> {
    let verb = if on { "suspend" } else { "resume" };
    let kind = target.applied(verb)?;
    let cluster = Cluster::connect(g).await?;
    let patch = json!({"spec": {"suspend": on}});
    cluster
        .api(kind, false)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            anyhow::Error::new(e).context(format!("{} {}/{name}", kind.kind(), cluster.namespace))
        })?;
    if on {
        eprintln!("✔ {} {}/{name} suspended", kind.kind(), cluster.namespace);
    }
    Ok(Outcome::Ok)
}
