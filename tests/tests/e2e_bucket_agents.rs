//! Agents that read straight from the bucket (`ferry-applier run --artifact-store s3://…`): the
//! source server stores artifacts and pointer records in a real S3-protocol server (moto) and is
//! stopped; agents in two namespaces — one configured with the source server and the bucket,
//! one with the bucket alone — keep applying the new revisions a second writer (another
//! source-server process on the same bucket) puts there, and a tampered object in the bucket is
//! refused with the last good state kept.

mod e2e_support;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use e2e_support::{Env, NS, Proc, bin, free_port};
use ferry_proto::api::ArtifactEvent;
use ferry_proto::kustomization::Kustomization;
use ferry_proto::{Digest, Revision, SourceKey, SourceKind};
use ferry_store::object_store::{ObjectStore, ObjectStoreExt};
use ferry_store::pointer::{self, PointerRead};
use ferry_tests::s3::S3Server;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const NS_B: &str = "team-b";
const STORE: &str = "s3://ferry/prod";
const LIMIT: Duration = Duration::from_secs(40);

fn config_map(value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  value: {value}\n")
}

async fn value_in(env: &Env, ns: &str) -> Result<Option<String>> {
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), ns);
    Ok(api
        .get_opt("app")
        .await?
        .and_then(|cm| cm.data?.get("value").cloned()))
}

async fn wait_value(env: &Env, ns: &str, want: &str) -> Result<()> {
    env.wait_for(
        &format!("ConfigMap {ns}/app with value {want}"),
        LIMIT,
        || async { Ok((value_in(env, ns).await?.as_deref() == Some(want)).then_some(())) },
    )
    .await
}

/// The revision `key`'s pointer in the bucket names, if any.
async fn pointed(store: &dyn ObjectStore, key: &SourceKey) -> Result<Option<ArtifactEvent>> {
    Ok(match pointer::read(store, key, None).await? {
        PointerRead::Current { event, .. } => Some(event),
        PointerRead::NotModified | PointerRead::Missing => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_follow_the_bucket_while_the_source_server_is_down() -> Result<()> {
    let s3 = S3Server::start()?;
    s3.create_bucket("ferry")?;
    let s3_env: Vec<(String, String)> = s3
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let store = ferry_store::open(&STORE.parse()?, s3_env.clone(), None)?;

    let mut env = Env::new().await?;
    let nss: Api<Namespace> = Api::all(env.client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": NS_B}}))?,
    )
    .await?;
    env.extra_sources.push(format!(
        "apiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata:\n  name: app\n  namespace: {NS_B}\n\
         spec:\n  url: {}\n  interval: 1s\n  ref:\n    branch: main\n",
        env.upstream.file_url()
    ));
    env.source_storage = Some(STORE.into());
    env.source_env = s3_env.clone();
    env.agent_args = vec!["--artifact-store".into(), STORE.into()];
    env.upstream.write("deploy/cm.yaml", config_map("one"))?;
    env.upstream.commit_push("one")?;
    env.start_source()?;

    // Agent A through the harness (source server and bucket), agent B by hand with the bucket
    // alone.
    let aws: Vec<(&str, &str)> = s3_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.start_agent_with_env(&aws)?;
    let work = env.work.path().to_path_buf();
    let mut agent_b = Command::new(bin("ferry-applier")?);
    agent_b
        .args(["run", "--namespace", NS_B, "--kubeconfig"])
        .arg(env.cluster.kubeconfig_path())
        .arg("--cache-dir")
        .arg(work.join("agent-b-cache"))
        .env("FERRY_ARTIFACT_STORE", STORE)
        .env("RUST_LOG", "info,ferry_applier=debug")
        .envs(aws.iter().copied());
    let _agent_b = Proc::spawn(
        "ferry-applier (team-b)",
        &mut agent_b,
        work.join("agent-b.log"),
    )?;

    // Reconciled every 2s: with the server down, that is how often the pointer is polled.
    let spec = json!({
        "sourceRef": {"kind": "GitRepository", "name": "app"},
        "path": "./deploy", "interval": "2s", "retryInterval": "1s", "timeout": "30s", "prune": true,
    });
    env.apply_kustomization("app", spec.clone()).await?;
    let api_b: Api<Kustomization> = Api::namespaced(env.client.clone(), NS_B);
    api_b
        .patch(
            "app",
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(json!({
                "apiVersion": "apply.ferry.dev/v1", "kind": "Kustomization",
                "metadata": {"name": "app", "namespace": NS_B}, "spec": spec,
            })),
        )
        .await?;
    wait_value(&env, NS, "one").await?;
    wait_value(&env, NS_B, "one").await?;
    let key_a = SourceKey::of(SourceKind::GitRepository, NS, "app");
    let key_b = SourceKey::of(SourceKind::GitRepository, NS_B, "app");
    let first = pointed(store.as_ref(), &key_a)
        .await?
        .context("the source server wrote team-a's pointer")?;

    // The source server the agents know goes away; a second one writes to the same bucket.
    env.stop_source();
    env.upstream.write("deploy/cm.yaml", config_map("two"))?;
    let commit = env.upstream.commit_push("two")?;
    let mut writer = Command::new(bin("ferry-source-server")?);
    writer
        .env_remove("FERRY_CLUSTER")
        .args(["serve", "--config"])
        .arg(work.join("sources.yaml"))
        .args(["--storage", STORE, "--cache"])
        .arg(work.join("mirrors-second"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port()?)])
        .envs(s3_env.iter().map(|(k, v)| (k, v)));
    let writer = Proc::spawn(
        "second ferry-source-server",
        &mut writer,
        work.join("second-writer.log"),
    )?;
    let written = env
        .wait_for("the second writer's pointer for team-a", LIMIT, || async {
            Ok(pointed(store.as_ref(), &key_a)
                .await?
                .filter(|p| p.revision.to_string().contains(&commit))
                .map(|p| (p, Instant::now())))
        })
        .await?;
    let (pointer_a, at) = written;
    assert_ne!(pointer_a.digest, first.digest);
    wait_value(&env, NS, "two").await?;
    let applied_a = at.elapsed();
    wait_value(&env, NS_B, "two").await?;
    let applied_b = at.elapsed();
    println!(
        "second writer's pointer → applied: team-a {applied_a:?}, team-b {applied_b:?} (interval 2s)"
    );
    writer.kill();
    // The bytes came from the bucket: the source server the agents know was down throughout.
    let log = std::fs::read_to_string(work.join("agent.log"))?;
    assert!(
        log.lines().any(|l| l.contains("fetched artifact")
            && l.contains(&pointer_a.digest.to_string())
            && l.contains("Store")),
        "agent team-a fetched {} from the store:\n{log}",
        pointer_a.digest
    );
    let b_revision = pointed(store.as_ref(), &key_b)
        .await?
        .context("team-b's pointer")?
        .revision;
    // team-b's status is written after its apply (which the wait above saw): wait for it.
    let b_revision = b_revision.to_string();
    env.wait_for(
        &format!("team-b's lastAppliedRevision {b_revision}"),
        LIMIT,
        || async {
            let ks_b = api_b.get("app").await?;
            let applied = ks_b.status.and_then(|s| s.last_applied_revision);
            Ok((applied.as_deref() == Some(b_revision.as_str())).then_some(()))
        },
    )
    .await?;

    // A tampered object: a pointer names a digest whose object holds other bytes.
    let claimed = Digest::of(b"the tar the pointer claims");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"other bytes entirely")?;
    store
        .put(&ferry_store::artifact_path(&claimed), gz.finish()?.into())
        .await?;
    pointer::write(
        store.as_ref(),
        &ArtifactEvent {
            kind: SourceKind::GitRepository,
            namespace: NS.into(),
            name: "app".into(),
            revision: Revision::new(Some("main".into()), "f".repeat(40))?,
            digest: claimed,
            size: 4096,
            url: String::new(),
        },
    )
    .await?;
    let refused = env
        .wait_ready("app", "False", "ArtifactFailed", LIMIT)
        .await?;
    let status = refused.status.context("status")?;
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&claimed.to_string()) && message.contains("digest mismatch"),
        "{message}"
    );
    // The last good state is kept, nothing pruned; team-b is untouched.
    assert_eq!(
        status.last_applied_revision,
        Some(pointer_a.revision.to_string())
    );
    assert_eq!(value_in(&env, NS).await?.as_deref(), Some("two"));
    assert_eq!(value_in(&env, NS_B).await?.as_deref(), Some("two"));
    env.kill_agent();
    Ok(())
}
