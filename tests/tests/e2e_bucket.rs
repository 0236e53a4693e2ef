//! A Kustomization whose `sourceRef` is a `Bucket`: the source server lists an S3-protocol
//! bucket (moto), the agent applies the objects under the prefix, and a changed object reaches
//! the cluster through the event stream.

mod e2e_support;

use std::time::Duration;

use anyhow::Result;
use e2e_support::{Env, NS};
use ferry_tests::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

fn config_map(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-bucket\ndata:\n  value: {value}\n"
    )
}

async fn wait_value(env: &Env, want: &str) -> Result<()> {
    env.wait_for(
        &format!("ConfigMap from-bucket with value {want}"),
        LIMIT,
        || async {
            let cm = env.get("v1", "ConfigMap", "from-bucket").await?;
            let value = cm
                .as_ref()
                .and_then(|c| c.pointer("/data/value"))
                .and_then(Value::as_str);
            Ok((value == Some(want)).then_some(()))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_applies_the_objects_of_a_bucket_and_follows_changes() -> Result<()> {
    let s3 = S3Server::start()?;
    s3.create_bucket("manifests")?;
    s3.put_object(
        "manifests",
        "prod/app/cm.yaml",
        config_map("one").as_bytes(),
    )?;
    s3.put_object("manifests", "prod/app/README.md", b"not a manifest\n")?;
    s3.put_object(
        "manifests",
        "staging/app/cm.yaml",
        config_map("staging").as_bytes(),
    )?;

    let mut env = Env::new().await?;
    let endpoint = s3.endpoint().trim_start_matches("http://").to_string();
    env.sources.clear();
    env.extra_sources.push(format!(
        "apiVersion: source.ferry.dev/v1\nkind: Bucket\nmetadata: {{name: manifests, namespace: {NS}}}\n\
         spec:\n  bucketName: manifests\n  endpoint: {endpoint}\n  insecure: true\n  prefix: prod/\n  \
         ignore: '*.md'\n  interval: 1s\n  secretRef: {{name: s3}}\n---\napiVersion: v1\nkind: Secret\n\
         metadata: {{name: s3, namespace: {NS}}}\nstringData: {{accesskey: {ACCESS_KEY}, secretkey: {SECRET_KEY}}}\n"
    ));
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization(
        "from-bucket",
        json!({
            "sourceRef": {"kind": "Bucket", "name": "manifests"},
            "path": "./app", "interval": "1m", "retryInterval": "1s", "timeout": "30s", "prune": true,
        }),
    )
    .await?;
    wait_value(&env, "one").await?;
    // The status is written after the apply: wait for it rather than read it once.
    let applied = env
        .wait_for("from-bucket's lastAppliedRevision", LIMIT, || async {
            let ks = env.kustomization("from-bucket").await?;
            Ok(ks.status.and_then(|s| s.last_applied_revision).map(Some))
        })
        .await?;
    assert!(
        applied.as_deref().is_some_and(|r| r.starts_with("sha256:")),
        "Flux's bucket revision: {applied:?}"
    );

    // A changed object: a new revision, announced on the stream, applied within the
    // Kustomization's 1m interval only through the announcement.
    s3.put_object(
        "manifests",
        "prod/app/cm.yaml",
        config_map("two").as_bytes(),
    )?;
    wait_value(&env, "two").await?;
    env.stop_source();
    env.kill_agent();
    Ok(())
}
