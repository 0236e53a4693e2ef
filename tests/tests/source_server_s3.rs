//! Source server with S3 storage, against a real S3-protocol server (moto) on loopback.
//! Needs `pip install 'moto[server]'`; fails, naming that command, when it is missing.

mod source_server_support;

use std::sync::Arc;

use anyhow::Result;
use ferry_tests::s3::S3Server;
use ferry_tests::upstream::Upstream;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use source_server_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_and_state_live_in_s3_and_survive_a_restart() -> Result<()> {
    let s3 = S3Server::start()?;
    s3.create_bucket("ferry")?;
    let up = Upstream::new()?;
    up.write("deploy/app.yaml", "kind: ConfigMap\n")?;
    let commit = up.commit_push("first")?;

    let mut h = Harness::new(&repo_doc("team-a", "app", &up.file_url(), ""))?;
    h.storage = "s3://ferry/prod".parse()?;
    h.storage_env = Some(
        s3.env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    );
    h.start().await?;
    let artifact = h
        .wait_commit("team-a", "app", &commit)
        .await?
        .status
        .artifact
        .expect("artifact");
    let gz = h.download(&artifact.url).await?;
    assert_eq!(digest_of(&gz)?, artifact.digest);
    let resp = h
        .http
        .get(&artifact.url)
        .header("range", "bytes=0-3")
        .send()
        .await?;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await?.as_ref(), &gz[..4]);

    // The object really is in the bucket, under the prefix, content-addressed.
    let bucket = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(s3.endpoint())
            .with_allow_http(true)
            .with_region(ferry_tests::s3::REGION)
            .with_bucket_name("ferry")
            .with_access_key_id(ferry_tests::s3::ACCESS_KEY)
            .with_secret_access_key(ferry_tests::s3::SECRET_KEY)
            .build()?,
    );
    let key = Path::from(format!(
        "prod/artifacts/sha256/{}.tar.gz",
        artifact.digest.hex()
    ));
    let stored = bucket.get(&key).await?.bytes().await?;
    assert_eq!(stored.as_ref(), gz.as_slice());
    let state = Path::from("prod/state/sources/team-a/app.json");
    assert!(bucket.head(&state).await.is_ok(), "state persisted in S3");
    // The pointer agents poll names the artifact.
    let pointer = Path::from("prod/pointers/gitrepositories/team-a/app.json");
    let pointer: serde_json::Value =
        serde_json::from_slice(&bucket.get(&pointer).await?.bytes().await?)?;
    assert_eq!(pointer["digest"], artifact.digest.to_string());

    // Restart against the same bucket: served straight from S3.
    h.stop().await;
    h.start().await?;
    let view = h.source("team-a", "app").await?;
    let restored = view.status.artifact.expect("artifact restored from S3");
    assert_eq!(restored.digest, artifact.digest);
    assert_eq!(
        digest_of(&h.download(&restored.url).await?)?,
        artifact.digest
    );
    h.stop().await;
    Ok(())
}
