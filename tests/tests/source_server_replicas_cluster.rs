//! Three `serve --cluster` replicas on one bucket (moto), coordinated by Leases (the real
//! kube-apiserver with `FERRY_CLUSTER=real`): only the holder of a source's Lease writes its
//! status (the others write nothing); a HelmRepository's index is fetched and parsed by its
//! holder only, the others follow its record and answer chart resolves by forwarding them to
//! the holder, and serve the chart's artifact; steady state costs no Lease request but the
//! replicas' heartbeats; when the HelmRepository's holder is SIGKILLed another takes it over,
//! fetches the index, writes the status and answers resolves.

mod e2e_support;

use std::io::Read as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use e2e_support::sources::{git_api, git_repository, install_source_crds, ready};
use e2e_support::{Env, NS, Proc, bin, free_port, metric_at};
use ferry_proto::api::HelmChartArtifact;
use ferry_proto::{Digest, HelmRepository};
use ferry_tests::s3::S3Server;
use ferry_tests::upstream::ChartServer;
use ferry_tests::upstream::charts::{create_and_package, index};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

const STORE: &str = "s3://ferry/cluster";
const LIMIT: Duration = Duration::from_secs(60);

struct Replica {
    id: String,
    port: u16,
    proc: Option<Proc>,
}

impl Replica {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
        metric_at(&self.url("/metrics"), name, labels).await
    }

    async fn lease_requests(&self, verb: &str) -> Result<f64> {
        self.metric("ferry_source_lease_requests_total", &[("verb", verb)])
            .await
    }

    async fn status_writes(&self, kind: &str, name: &str) -> Result<f64> {
        self.metric(
            "ferry_source_status_writes_total",
            &[("kind", kind), ("namespace", NS), ("name", name)],
        )
        .await
    }
}

/// The holder of the Lease of `<kind> NS/<name>`.
async fn holder(leases: &Api<Lease>, kind: &str, name: &str) -> Result<Option<String>> {
    let want = format!("{kind} {NS}/{name}");
    Ok(leases
        .list(&Default::default())
        .await?
        .into_iter()
        .find(|l| {
            l.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("source.ferry.dev/source"))
                == Some(&want)
        })
        .and_then(|l| l.spec?.holder_identity))
}

fn helm_api(env: &Env) -> Api<DynamicObject> {
    Api::namespaced_with(
        env.client.clone(),
        NS,
        &ApiResource::erase::<HelmRepository>(&()),
    )
}

async fn helm_status(env: &Env, name: &str) -> Result<Value> {
    let o = helm_api(env).get(name).await?;
    Ok(o.data.get("status").cloned().unwrap_or(Value::Null))
}

async fn resolve(r: &Replica, range: &str) -> Result<(u16, String)> {
    let resp = reqwest::Client::new()
        .get(r.url(&format!(
            "/v1/helmrepositories/{NS}/charts/charts/app?version={range}"
        )))
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

/// The artifact `a` as `r` serves it, checked against its digest.
async fn fetch_verified(r: &Replica, a: &HelmChartArtifact) -> Result<()> {
    let resp = reqwest::get(&a.url).await?;
    if !resp.status().is_success() {
        bail!("{} answered {} for {}", r.id, resp.status(), a.url);
    }
    let gz = resp.bytes().await?;
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gz.as_ref()).read_to_end(&mut tar)?;
    assert_eq!(Digest::of(&tar), a.digest, "{} serves {}", r.id, a.url);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_replicas_write_status_once_and_share_helm_indexes() -> Result<()> {
    let s3 = S3Server::start()?;
    s3.create_bucket("ferry")?;
    let s3_env: Vec<(String, String)> = s3
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let env = Env::new().await?;
    install_source_crds(&env).await?;
    let work = env.work.path().to_path_buf();
    env.upstream.write("deploy/cm.yaml", "kind: ConfigMap\n")?;
    env.upstream.commit_push("first")?;
    let charts = work.join("charts");
    std::fs::create_dir_all(&charts)?;
    create_and_package(&work, &charts, "app", "1.0.0")?;
    index(&work, &charts, None)?;
    let chart_server = ChartServer::start(&charts, None).await?;

    git_api(&env, NS)
        .create(
            &PostParams::default(),
            &git_repository(&env, NS, "app", json!({}), json!({}))?,
        )
        .await?;
    helm_api(&env)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "source.ferry.dev/v1", "kind": "HelmRepository",
                "metadata": {"name": "charts", "namespace": NS},
                "spec": {"url": chart_server.url(), "interval": "1h", "timeout": "30s"},
            }))?,
        )
        .await?;

    let mut replicas = Vec::new();
    for i in 0..3 {
        let (id, port) = (format!("replica-{i}"), free_port()?);
        let mut cmd = Command::new(bin("ferry-source-server")?);
        cmd.env_remove("FERRY_CLUSTER")
            .args(["serve", "--cluster", "--no-tenancy", "--storage", STORE])
            .arg("--cache")
            .arg(work.join(format!("mirrors-{i}")))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--lease-namespace", NS, "--replica-id", &id])
            .args(["--lease-duration", "3s"])
            .env("KUBECONFIG", env.cluster.kubeconfig_path())
            .envs(s3_env.iter().map(|(k, v)| (k, v)));
        let proc = Proc::spawn(&id, &mut cmd, work.join(format!("{id}.log")))?;
        replicas.push(Replica {
            id,
            port,
            proc: Some(proc),
        });
    }
    let logs = |replicas: &[Replica]| {
        replicas
            .iter()
            .filter_map(|r| r.proc.as_ref().map(Proc::log_text))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Both sources Ready in the cluster, as their holders wrote it.
    let git_digest = env
        .wait_for("GitRepository app Ready", LIMIT, || async {
            let s = e2e_support::sources::git_status(&env, NS, "app").await?;
            let ok = ready(&s).is_some_and(|(r, _)| r == "True");
            Ok(ok
                .then(|| s["artifact"]["digest"].as_str().map(str::to_string))
                .flatten())
        })
        .await
        .with_context(|| logs(&replicas))?;
    let index_revision = env
        .wait_for("HelmRepository charts Ready", LIMIT, || async {
            let s = helm_status(&env, "charts").await?;
            let ok = ready(&s).is_some_and(|(r, _)| r == "True");
            Ok(ok
                .then(|| s["artifact"]["revision"].as_str().map(str::to_string))
                .flatten())
        })
        .await
        .with_context(|| logs(&replicas))?;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), NS);
    let git_holder = holder(&leases, "GitRepository", "app")
        .await?
        .context("app held")?;
    let helm_holder = holder(&leases, "HelmRepository", "charts")
        .await?
        .context("charts held")?;

    // Every replica serves both (the followers from the holders' records)...
    let http = reqwest::Client::new();
    for r in &replicas {
        env.wait_for(
            &format!("{} serves app and charts", r.id),
            LIMIT,
            || async {
                let git: Value = http
                    .get(r.url(&format!("/v1/sources/{NS}/app")))
                    .send()
                    .await?
                    .json()
                    .await?;
                let helm: Value = http
                    .get(r.url(&format!("/v1/helmrepositories/{NS}/charts")))
                    .send()
                    .await?
                    .json()
                    .await?;
                let ok = git.pointer("/status/artifact/digest") == Some(&json!(git_digest))
                    && helm.pointer("/status/artifact/revision") == Some(&json!(index_revision));
                Ok(ok.then_some(()))
            },
        )
        .await?;
    }
    // ...and two heartbeats later (a status write follows a change within 250 ms), only the
    // holders have written the statuses; and steady state costs no Lease request besides the
    // heartbeats (no GET, no update, no create).
    let mut before = Vec::new();
    for r in &replicas {
        before.push((
            r.lease_requests("patch").await?,
            r.lease_requests("get").await? + r.lease_requests("update").await?,
            r.lease_requests("create").await?,
        ));
    }
    for (r, (beats, ..)) in replicas.iter().zip(&before) {
        env.wait_for(&format!("two heartbeats of {}", r.id), LIMIT, || async {
            Ok((r.lease_requests("patch").await? >= beats + 2.0).then_some(()))
        })
        .await?;
    }
    for (r, (_, reads_updates, creates)) in replicas.iter().zip(&before) {
        assert_eq!(
            r.lease_requests("get").await? + r.lease_requests("update").await?,
            *reads_updates,
            "{}: Lease GETs or updates in steady state",
            r.id
        );
        assert_eq!(r.lease_requests("create").await?, *creates, "{}", r.id);
        for (kind, name, h) in [
            ("GitRepository", "app", &git_holder),
            ("HelmRepository", "charts", &helm_holder),
        ] {
            let writes = r.status_writes(kind, name).await?;
            if (r.id == *h) != (writes > 0.0) {
                bail!(
                    "{kind} {name}: {} wrote its status {writes} times; the holder is {h}",
                    r.id
                );
            }
        }
    }
    println!(
        "holders: app {git_holder}, charts {helm_holder}; lease requests per replica (patch, get+update, create) {before:?}"
    );

    // The index was fetched and parsed by the holder only.
    let fetches = |r: &Replica| {
        let r = r.url("/metrics");
        async move {
            metric_at(
                &r,
                "ferry_source_helm_index_fetches_total",
                &[("namespace", NS), ("name", "charts"), ("result", "parsed")],
            )
            .await
        }
    };
    for r in &replicas {
        let n = fetches(r).await?;
        if (r.id == helm_holder) != (n > 0.0) {
            bail!(
                "{} parsed the index {n} times; the holder is {helm_holder}",
                r.id
            );
        }
    }

    // A resolve at a follower is forwarded to the holder, which packs the chart; the follower
    // serves the artifact.
    let h = replicas
        .iter()
        .position(|r| r.id == helm_holder)
        .context("holder is a replica")?;
    let follower = &replicas[(h + 1) % 3];
    let (status, body) = resolve(follower, "1.x").await?;
    assert_eq!(status, 200, "{body}\n{}", logs(&replicas));
    let first: HelmChartArtifact = serde_json::from_str(&body)?;
    assert_eq!(first.version, "1.0.0");
    assert!(first.url.starts_with(&follower.url("/")), "{}", first.url);
    fetch_verified(follower, &first).await?;
    let packed = |r: &Replica| {
        let r = r.url("/metrics");
        async move {
            metric_at(
                &r,
                "ferry_source_helm_charts_packed_total",
                &[("namespace", NS), ("name", "charts")],
            )
            .await
        }
    };
    assert_eq!(packed(&replicas[h]).await?, 1.0);
    assert_eq!(packed(follower).await?, 0.0);
    assert_eq!(fetches(follower).await?, 0.0);

    // SIGKILL the holder after a new chart version appears: another replica takes the
    // HelmRepository over, fetches the index (the new version), writes the status, and a
    // resolve at the remaining follower gets the new version.
    create_and_package(&work, &charts, "app", "1.1.0")?;
    index(&work, &charts, None)?;
    replicas[h].proc.take().context("running")?.kill();
    let killed = Instant::now();
    let next = env
        .wait_for("another replica holds charts", LIMIT, || async {
            Ok(holder(&leases, "HelmRepository", "charts")
                .await?
                .filter(|id| *id != helm_holder))
        })
        .await?;
    let failover = killed.elapsed();
    let new_revision = env
        .wait_for("charts' status names the new index", LIMIT, || async {
            let s = helm_status(&env, "charts").await?;
            let r = s["artifact"]["revision"].as_str().map(str::to_string);
            Ok(r.filter(|r| *r != index_revision))
        })
        .await
        .with_context(|| logs(&replicas))?;
    let n = replicas
        .iter()
        .position(|r| r.id == next)
        .context("new holder")?;
    let other = replicas
        .iter()
        .enumerate()
        .find(|(i, _)| *i != h && *i != n)
        .map(|(_, r)| r)
        .context("a third replica")?;
    assert!(
        replicas[n]
            .status_writes("HelmRepository", "charts")
            .await?
            > 0.0
    );
    assert_eq!(
        other.status_writes("HelmRepository", "charts").await?,
        0.0,
        "{} wrote charts' status",
        other.id
    );
    assert_eq!(fetches(other).await?, 0.0, "{} parsed the index", other.id);
    let second: HelmChartArtifact = env
        .wait_for("1.x resolves to 1.1.0 at the follower", LIMIT, || async {
            let (status, body) = resolve(other, "1.x").await?;
            if status != 200 {
                return Ok(None);
            }
            let a: HelmChartArtifact = serde_json::from_str(&body)?;
            Ok((a.version == "1.1.0").then_some(a))
        })
        .await
        .with_context(|| logs(&replicas))?;
    assert_eq!(second.index_revision.to_string(), new_revision);
    fetch_verified(other, &second).await?;
    assert_eq!(packed(other).await?, 0.0);
    println!(
        "SIGKILL of charts' holder {helm_holder} → {next} holds it after {failover:?}; new index {new_revision} in the status after {:?}",
        killed.elapsed()
    );
    Ok(())
}
