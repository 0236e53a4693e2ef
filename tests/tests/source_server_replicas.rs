//! Three source-server replicas on one bucket (moto), coordinated by `coordination.k8s.io`
//! Leases on the API server: each source is polled by exactly one replica, every replica serves
//! every artifact and the event stream, and when the poller of a source is killed (SIGKILL
//! while its request to the Git host, slowed down, for the revision just pushed is in flight)
//! another takes over; no artifact is lost or corrupted and the agent (connected to a replica
//! that does not poll) applies every revision. A reconcile requested from a replica that does
//! not poll the source is passed on to the one that does.

mod e2e_support;

use std::io::Read as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use e2e_support::{Env, NS, Proc, bin, free_port, metric_at};
use ferry_proto::{Digest, SourceKey, SourceKind};
use ferry_store::object_store::ObjectStoreExt;
use ferry_store::pointer::{self, PointerRead};
use ferry_tests::s3::S3Server;
use ferry_tests::upstream::{HttpAuth, SmartHttp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;

const STORE: &str = "s3://ferry/prod";
const LIMIT: Duration = Duration::from_secs(40);
/// `slow` changes only when asked (interval 1h).
const SOURCES: [&str; 3] = ["app", "app2", "slow"];

struct Replica {
    id: String,
    port: u16,
    proc: Option<Proc>,
}

fn config_map(value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  value: {value}\n")
}

/// `name`'s Lease holder, from the Lease annotated with the source.
async fn holder(leases: &Api<Lease>, name: &str) -> Result<Option<String>> {
    let want = format!("GitRepository {NS}/{name}");
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

/// Reconciles of source `name` replica `r` ran (0 when it answers nothing).
async fn polls(r: &Replica, name: &str) -> Result<f64> {
    metric_at(
        &format!("http://127.0.0.1:{}/metrics", r.port),
        "ferry_source_reconcile_duration_seconds_count",
        &[("namespace", NS), ("name", name)],
    )
    .await
}

async fn wait_value(env: &Env, want: &str) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), NS);
    env.wait_for(&format!("ConfigMap app with value {want}"), LIMIT, || {
        let api = api.clone();
        async move {
            let cm = api.get_opt("app").await?;
            let value = cm.and_then(|c| c.data?.get("value").cloned());
            Ok((value.as_deref() == Some(want)).then_some(()))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_a_bucket_with_one_poller_per_source_and_fail_over() -> Result<()> {
    let s3 = S3Server::start()?;
    s3.create_bucket("ferry")?;
    let s3_env: Vec<(String, String)> = s3
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let store = ferry_store::open(&STORE.parse()?, s3_env.clone(), None)?;
    let mut env = Env::new().await?;
    let work = env.work.path().to_path_buf();
    env.upstream.write("deploy/cm.yaml", config_map("one"))?;
    env.upstream.commit_push("one")?;
    let git = SmartHttp::start(env.upstream.root(), HttpAuth::None)?;
    let mut config = String::new();
    for name in SOURCES {
        let interval = if name == "slow" { "1h" } else { "1s" };
        config.push_str(&format!(
            "---\napiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata:\n  name: {name}\n  namespace: {NS}\n\
             spec:\n  url: {}\n  interval: {interval}\n  ref:\n    branch: main\n",
            git.url("repo.git")
        ));
    }
    std::fs::write(work.join("sources.yaml"), config)?;
    let mut replicas = Vec::new();
    for i in 0..3 {
        let (id, port) = (format!("replica-{i}"), free_port()?);
        let mut cmd = Command::new(bin("ferry-source-server")?);
        cmd.env_remove("FERRY_CLUSTER")
            .args(["serve", "--config"])
            .arg(work.join("sources.yaml"))
            .args(["--storage", STORE, "--cache"])
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
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), NS);
    let first_holder = env
        .wait_for("a Lease holder for every source", LIMIT, || async {
            let mut held = Vec::new();
            for name in SOURCES {
                held.push(holder(&leases, name).await?);
            }
            Ok(held[0].clone().filter(|_| held.iter().all(Option::is_some)))
        })
        .await?;
    let h = replicas
        .iter()
        .position(|r| r.id == first_holder)
        .context("holder is a replica")?;
    // The agent talks to a replica that does not poll `app`: artifacts and events reach it
    // through the bucket.
    let f = (h + 1) % 3;
    env.source_port = replicas[f].port;
    env.agent_args = vec!["--artifact-store".into(), STORE.into()];
    let aws: Vec<(&str, &str)> = s3_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.start_agent_with_env(&aws)?;
    // Interval 1m: a new revision within the test arrives as an event from the follower.
    env.apply_kustomization(
        "app",
        json!({
            "sourceRef": {"kind": "GitRepository", "name": "app"},
            "path": "./deploy", "interval": "1m", "retryInterval": "1s", "timeout": "30s", "prune": true,
        }),
    )
    .await?;
    wait_value(&env, "one").await?;

    // One poller per source: only the Lease holder reconciled it.
    for name in SOURCES {
        let holder = holder(&leases, name).await?.context("held")?;
        for r in &replicas {
            let n = polls(r, name).await?;
            if (r.id == holder) != (n > 0.0) {
                bail!("{name}: {} polled {n} times, holder is {holder}", r.id);
            }
        }
    }

    // Kill the poller of `app` while its request for the new revision is in flight (the Git
    // host answers after 1.5 s; only pollers talk to it).
    git.set_delay(Duration::from_millis(1500));
    env.upstream.write("deploy/cm.yaml", config_map("two"))?;
    env.upstream.commit_push("two")?;
    let before = git.requests();
    env.wait_for(
        "a request to the Git host after the push",
        LIMIT,
        || async { Ok((git.requests() > before).then_some(())) },
    )
    .await?;
    replicas[h].proc.take().context("running")?.kill();
    let killed = Instant::now();
    git.set_delay(Duration::ZERO);
    let next_holder = env
        .wait_for("another replica takes app's Lease", LIMIT, || async {
            Ok(holder(&leases, "app")
                .await?
                .filter(|id| *id != replicas[h].id))
        })
        .await?;
    let failover = killed.elapsed();
    wait_value(&env, "two").await?;
    let applied = killed.elapsed();
    println!(
        "SIGKILL of app's poller → {next_holder} holds the Lease after {failover:?}; revision applied after {applied:?} (lease duration 3s)"
    );

    // Every revision after the failover too.
    env.upstream.write("deploy/cm.yaml", config_map("three"))?;
    env.upstream.commit_push("three")?;
    wait_value(&env, "three").await?;

    // Still one poller: of the survivors only the new holder has polled `app`.
    let other = replicas
        .iter()
        .enumerate()
        .find(|(i, r)| *i != h && r.id != next_holder)
        .map(|(_, r)| r)
        .context("a third replica")?;
    let new = replicas
        .iter()
        .find(|r| r.id == next_holder)
        .context("new holder")?;
    assert!(polls(new, "app").await? > 0.0);
    assert_eq!(polls(other, "app").await?, 0.0, "{} polled app", other.id);

    // Nothing lost or corrupted: each pointer's artifact is in the bucket with its digest, and
    // every surviving replica serves it.
    let http = reqwest::Client::new();
    for name in SOURCES {
        let key = SourceKey::of(SourceKind::GitRepository, NS, name);
        let PointerRead::Current { event, .. } = pointer::read(store.as_ref(), &key, None).await?
        else {
            bail!("no pointer for {name}");
        };
        let gz = store
            .get(&ferry_store::artifact_path(&event.digest))
            .await?
            .bytes()
            .await?;
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(gz.as_ref()).read_to_end(&mut tar)?;
        assert_eq!(Digest::of(&tar), event.digest, "{name}");
        for r in replicas.iter().filter(|r| r.proc.is_some()) {
            let url = format!("http://127.0.0.1:{}/v1/sources/{NS}/{name}", r.port);
            let want = event.digest.to_string();
            env.wait_for(
                &format!("{} serves {name} at {want}", r.id),
                LIMIT,
                || async {
                    let view: serde_json::Value = http.get(&url).send().await?.json().await?;
                    let served = view
                        .pointer("/status/artifact/digest")
                        .and_then(serde_json::Value::as_str);
                    Ok((served == Some(want.as_str())).then_some(()))
                },
            )
            .await?;
        }
    }

    // A reconcile asked of a replica that does not poll `slow` reaches the one that does.
    env.upstream.write("deploy/cm.yaml", config_map("four"))?;
    let four = env.upstream.commit_push("four")?;
    let slow_holder = holder(&leases, "slow").await?.context("slow held")?;
    let asked = replicas
        .iter()
        .find(|r| r.proc.is_some() && r.id != slow_holder)
        .context("a live replica not polling slow")?;
    let url = format!("http://127.0.0.1:{}/v1/sources/{NS}/slow", asked.port);
    let resp = http.post(format!("{url}/reconcile")).send().await?;
    assert!(resp.status().is_success(), "{}", resp.status());
    let asked_at = Instant::now();
    env.wait_for(
        &format!("{} serves slow at {four}", asked.id),
        LIMIT,
        || async {
            let view: serde_json::Value = http.get(&url).send().await?.json().await?;
            let revision = view
                .pointer("/status/artifact/revision")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string();
            Ok(revision.contains(&four).then_some(()))
        },
    )
    .await?;
    println!(
        "reconcile asked of {} → {slow_holder} fetched, served by {} after {:?}",
        asked.id,
        asked.id,
        asked_at.elapsed()
    );
    assert_eq!(polls(asked, "slow").await?, 0.0, "{} polled slow", asked.id);
    env.kill_agent();
    Ok(())
}
