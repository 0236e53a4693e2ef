//! `ferry-webhook-bench`: `git push` → webhook → artifact → agent applied, N times, on the
//! Kubernetes API test server with the real `ferry-source-server` and `ferry-applier` binaries
//! (taken from this executable's directory). Sources and the Kustomization poll every 10
//! minutes, so only the hook explains the speed. "Applied" = the ConfigMap the push changed
//! has the new value in the API. Prints p50/p95 of the whole and of its parts.
//! Used by `source-server/bench/webhook/bench.sh`; results in `RESULTS.md` there.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ferry_proto::Kustomization;
use ferry_testcluster::cluster::{ClusterOptions, TestCluster};
use ferry_tests::upstream::Upstream;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "team-a";
const TOKEN: &str = "bench-token";

#[derive(Debug, Parser)]
struct Args {
    /// Pushes to measure.
    #[arg(long, default_value_t = 50)]
    pushes: usize,
    /// Where the binaries are (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

struct WorkDir(PathBuf);

impl WorkDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

/// A child killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    println!(
        "{name:<28} p50 {:>7.1} ms   p95 {:>7.1} ms   min {:>7.1}   max {:>7.1}",
        pct(&v, 0.5),
        pct(&v, 0.95),
        v[0],
        v[v.len() - 1]
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("executable directory")?
            .to_path_buf(),
    };
    // Kept after the run: the logs explain a slow or failed push.
    let work = tempfile::Builder::new()
        .prefix("ferry-webhook-bench-")
        .tempdir()?;
    let work_dir = work.path().to_path_buf();
    std::mem::forget(work);
    let work = WorkDir(work_dir);
    let cluster = TestCluster::start(ClusterOptions::default()).await?;
    let client = cluster.client()?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Kustomization::crd())
        .await?;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": NS}}))?,
    )
    .await?;

    let up = Upstream::new()?;
    let cm = |v: usize| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\ndata:\n  v: \"{v}\"\n")
    };
    up.write("app/configmap.yaml", cm(0))?;
    up.write(
        "app/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- configmap.yaml\n",
    )?;
    up.commit_push("seed")?;
    let config = format!(
        "apiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata: {{name: app, namespace: {NS}}}\n\
         spec: {{url: '{}', interval: 10m}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: hook, namespace: {NS}}}\nstringData: {{token: {TOKEN}}}\n---\n\
         apiVersion: notification.ferry.dev/v1\nkind: Receiver\nmetadata: {{name: bench, namespace: {NS}}}\n\
         spec: {{type: generic, secretRef: {{name: hook}}, resources: [{{kind: GitRepository, name: app}}]}}\n",
        up.file_url()
    );
    std::fs::write(work.path().join("sources.yaml"), config)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let log =
        |name: &str| -> Result<Stdio> { Ok(std::fs::File::create(work.path().join(name))?.into()) };
    let _source = Proc(
        Command::new(bin_dir.join("ferry-source-server"))
            .args(["serve", "--config"])
            .arg(work.path().join("sources.yaml"))
            .arg("--storage")
            .arg(work.path().join("storage"))
            .arg("--cache")
            .arg(work.path().join("mirrors"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--receiver-burst", "1000", "--receiver-rate", "1000"])
            .stdout(log("source.log")?)
            .stderr(log("source.err")?)
            .spawn()
            .context("starting ferry-source-server")?,
    );
    let _agent = Proc(
        Command::new(bin_dir.join("ferry-applier"))
            .args(["run", "--namespace", NS, "--source-server", &base])
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig_path())
            .arg("--cache-dir")
            .arg(work.path().join("agent-cache"))
            .stdout(log("agent.log")?)
            .stderr(log("agent.err")?)
            .spawn()
            .context("starting ferry-applier")?,
    );
    let http = reqwest::Client::new();
    let ks: Api<Kustomization> = Api::namespaced(client.clone(), NS);
    let obj = json!({
        "apiVersion": "apply.ferry.dev/v1", "kind": "Kustomization",
        "metadata": {"name": "app", "namespace": NS},
        "spec": {"sourceRef": {"kind": "GitRepository", "name": "app"}, "path": "./app",
                 "interval": "10m", "timeout": "30s", "prune": true},
    });
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let value = |c: Option<ConfigMap>| c.and_then(|c| c.data).and_then(|d| d.get("v").cloned());
    let logs = work.path().to_path_buf();
    let wait = |want: String| {
        let cms = cms.clone();
        let logs = logs.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if value(cms.get_opt("bench").await?).as_deref() == Some(want.as_str()) {
                    return Ok::<(), anyhow::Error>(());
                }
                if Instant::now() > deadline {
                    bail!("ConfigMap bench never got v={want}; logs in {logs:?}");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    // The server must be up before the Kustomization, or the agent's first fetch backs off.
    let up_deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if Instant::now() > up_deadline {
            bail!("source server not ready");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ks.patch(
        "app",
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&obj),
    )
    .await?;
    wait("0".into()).await?;
    let hook = format!(
        "{base}{}",
        ferry_proto::receiver::webhook_path(TOKEN.as_bytes(), "bench", NS)
    );
    let (mut push, mut hooked, mut applied, mut total) = (vec![], vec![], vec![], vec![]);
    for i in 1..=args.pushes {
        up.write("app/configmap.yaml", cm(i))?;
        up.commit(&format!("c{i}"))?;
        let t0 = Instant::now();
        up.push()?;
        let t1 = Instant::now();
        let r = http.post(&hook).body("{}").send().await?;
        if !r.status().is_success() {
            bail!("hook answered {}: {}", r.status(), r.text().await?);
        }
        let t2 = Instant::now();
        wait(i.to_string()).await?;
        let t3 = Instant::now();
        push.push(ms(t1 - t0));
        hooked.push(ms(t2 - t1));
        applied.push(ms(t3 - t2));
        total.push(ms(t3 - t0));
    }
    println!(
        "{} pushes, poll intervals 10m (logs: {:?}):",
        args.pushes,
        work.path()
    );
    report("git push", push);
    report("webhook call answered", hooked);
    report("hook → ConfigMap applied", applied);
    report("push → applied (total)", total);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for l in metrics.lines().filter(|l| {
        l.starts_with("ferry_source_reconcile_duration_seconds_sum")
            || l.starts_with("ferry_source_reconcile_duration_seconds_count")
    }) {
        println!("{l}");
    }
    Ok(())
}
