//! Bucket sources against a real S3-protocol server (moto) on loopback: Flux's revision
//! (computed here on its own from the ETags the server gave), `.sourceignore` and
//! `spec.ignore`, incremental downloads, and hostile keys.

mod source_server_support;

use std::io::Read;

use anyhow::{Context, Result};
use ferry_proto::api::BucketView;
use ferry_proto::condition::{READY, find_condition};
use ferry_proto::{ConditionStatus, Digest};
use ferry_tests::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use source_server_support::*;

const DOWNLOADED: &str = "ferry_source_bucket_objects_downloaded_total{namespace=\"team-a\",name=\"site\",kind=\"Bucket\"}";
const DOWNLOADED_BYTES: &str = "ferry_source_bucket_bytes_downloaded_total{namespace=\"team-a\",name=\"site\",kind=\"Bucket\"}";

fn bucket_doc(s3: &S3Server, bucket: &str, extra: &str) -> String {
    let endpoint = s3.endpoint().trim_start_matches("http://").to_string();
    format!(
        "apiVersion: source.ferry.dev/v1\nkind: Bucket\nmetadata: {{name: site, namespace: team-a}}\n\
         spec:\n  bucketName: {bucket}\n  endpoint: {endpoint}\n  insecure: true\n  interval: 1h\n  \
         secretRef: {{name: s3}}\n{extra}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s3, namespace: team-a}}\n\
         stringData: {{accesskey: {ACCESS_KEY}, secretkey: {SECRET_KEY}}}\n"
    )
}

/// Flux's revision, written out: sha256 over `"<key> <etag>\n"` in key order.
fn flux_revision(objects: &[(&str, &str)]) -> String {
    let mut sorted = objects.to_vec();
    sorted.sort();
    let text: String = sorted.iter().map(|(k, e)| format!("{k} {e}\n")).collect();
    format!("sha256:{}", Digest::of(text.as_bytes()).hex())
}

async fn bucket(h: &Harness) -> Result<BucketView> {
    h.get_json("/v1/buckets/team-a/site").await
}

fn ready(v: &BucketView) -> Option<bool> {
    find_condition(&v.status.conditions, READY).map(|c| c.status == ConditionStatus::True)
}

async fn wait_bucket(
    h: &Harness,
    what: &str,
    ok: impl Fn(&BucketView) -> bool,
) -> Result<BucketView> {
    let found =
        ferry_tests::poll::until(what, WAIT, std::time::Duration::from_millis(50), || async {
            let v = bucket(h).await?;
            Ok(ok(&v).then_some(v))
        })
        .await;
    match found {
        Ok(v) => Ok(v),
        Err(e) => {
            let last = bucket(h).await.ok();
            Err(e).with_context(|| format!("last status: {last:#?}"))
        }
    }
}

/// `POST /v1/buckets/team-a/site/reconcile`, expecting 202.
async fn trigger(h: &Harness) -> Result<()> {
    let url = format!("{}/v1/buckets/team-a/site/reconcile", h.base());
    let resp = h.http.post(&url).send().await?;
    anyhow::ensure!(resp.status() == 202, "POST {url}: {}", resp.status());
    Ok(())
}

fn bucket_successes() -> String {
    "ferry_source_reconcile_duration_seconds_count{namespace=\"team-a\",name=\"site\",kind=\"Bucket\",result=\"success\"}".to_string()
}

async fn wait_revision(h: &Harness, revision: &str) -> Result<BucketView> {
    wait_bucket(h, &format!("Bucket ready at {revision}"), |v| {
        ready(v) == Some(true)
            && v.status
                .artifact
                .as_ref()
                .is_some_and(|a| a.revision.to_string() == revision)
    })
    .await
}

/// The artifact's files: path → content.
async fn files(h: &Harness, v: &BucketView) -> Result<Vec<(String, String)>> {
    let a = v.status.artifact.as_ref().context("artifact")?;
    let tar = gunzip(&h.download(&a.url).await?)?;
    let mut out = Vec::new();
    for e in tar::Archive::new(&tar[..]).entries()? {
        let mut e = e?;
        let path = e.path()?.display().to_string();
        let mut text = String::new();
        e.read_to_string(&mut text)?;
        out.push((path, text));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_is_fluxs_ignores_apply_and_only_changed_objects_are_downloaded() -> Result<()> {
    let s3 = S3Server::start()?;
    s3.create_bucket("site")?;
    let deploy = s3.put_object("site", "apps/web/deploy.yaml", b"kind: Deployment\n")?;
    let svc = s3.put_object("site", "apps/web/svc.yaml", b"kind: Service\n")?;
    s3.put_object("site", "apps/web/", b"")?; // a directory marker
    s3.put_object("site", "apps/notes.md", b"# notes\n")?; // spec.ignore
    s3.put_object("site", "apps/drafts/x.yaml", b"kind: Draft\n")?; // .sourceignore
    s3.put_object("site", "other/z.yaml", b"kind: Elsewhere\n")?; // outside the prefix
    s3.put_object("site", ".sourceignore", b"drafts/\n")?;

    let mut h = Harness::new(&bucket_doc(
        &s3,
        "site",
        "  prefix: apps/\n  ignore: '*.md'\n",
    ))?;
    h.start().await?;
    let expected = flux_revision(&[
        ("apps/web/deploy.yaml", &deploy),
        ("apps/web/svc.yaml", &svc),
    ]);
    let v = wait_revision(&h, &expected).await?;
    assert_eq!(
        files(&h, &v).await?,
        vec![
            ("web/".to_string(), String::new()),
            (
                "web/deploy.yaml".to_string(),
                "kind: Deployment\n".to_string()
            ),
            ("web/svc.yaml".to_string(), "kind: Service\n".to_string()),
        ],
        "keys below the prefix, without markers and ignored keys"
    );
    // Two objects and the .sourceignore.
    assert_eq!(h.wait_metric(DOWNLOADED, |n| n >= 3.0).await?, 3.0);
    let listed: ferry_proto::api::BucketList = h.get_json("/v1/buckets").await?;
    assert_eq!(listed.buckets.len(), 1);

    // One object changes: a new revision, and only that object is downloaded.
    let bytes_before = h.metric(DOWNLOADED_BYTES).await?;
    let svc2 = s3.put_object("site", "apps/web/svc.yaml", b"kind: Service\nspec: {}\n")?;
    trigger(&h).await?;
    let expected = flux_revision(&[
        ("apps/web/deploy.yaml", &deploy),
        ("apps/web/svc.yaml", &svc2),
    ]);
    let v = wait_revision(&h, &expected).await?;
    // The server publishes the new revision, then counts what it downloaded: wait for both.
    assert_eq!(
        h.wait_metric(DOWNLOADED, |n| n >= 4.0).await?,
        4.0,
        "only the changed object"
    );
    assert_eq!(
        h.wait_metric(DOWNLOADED_BYTES, |n| n >= bytes_before + 23.0)
            .await?
            - bytes_before,
        23.0
    );
    assert!(files(&h, &v).await?.contains(&(
        "web/svc.yaml".to_string(),
        "kind: Service\nspec: {}\n".to_string()
    )));

    // An ignored object changing changes nothing.
    let digest = v.status.artifact.as_ref().map(|a| a.digest);
    s3.put_object("site", "apps/notes.md", b"# more notes\n")?;
    let before = h.metric(&bucket_successes()).await?;
    trigger(&h).await?;
    h.wait_metric(&bucket_successes(), |n| n > before).await?;
    let v = bucket(&h).await?;
    assert_eq!(v.status.artifact.as_ref().map(|a| a.digest), digest);
    assert_eq!(h.metric(DOWNLOADED).await?, 4.0);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_bucket_has_fluxs_empty_revision() -> Result<()> {
    let s3 = S3Server::start()?;
    s3.create_bucket("empty")?;
    let mut h = Harness::new(&bucket_doc(&s3, "empty", ""))?;
    h.start().await?;
    let v = wait_revision(
        &h,
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    )
    .await?;
    assert!(files(&h, &v).await?.is_empty());
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_keys_are_refused_naming_the_key_and_the_last_artifact_stays() -> Result<()> {
    let s3 = S3Server::start()?;
    s3.create_bucket("evil")?;
    let good = s3.put_object("evil", "app.yaml", b"kind: ConfigMap\n")?;
    let mut h = Harness::new(&bucket_doc(&s3, "evil", ""))?;
    h.start().await?;
    let served = wait_revision(&h, &flux_revision(&[("app.yaml", &good)])).await?;

    for key in ["../escape.yaml", "/etc/cron.d/x", "a/../../b"] {
        s3.put_object("evil", key, b"kind: Secret\n")?;
        trigger(&h).await?;
        let v = wait_bucket(&h, &format!("refusal of {key:?}"), |v| {
            ready(v) == Some(false)
                && find_condition(&v.status.conditions, READY)
                    .is_some_and(|c| c.message.contains(&format!("{key:?}")))
        })
        .await?;
        let c = find_condition(&v.status.conditions, READY).context("Ready")?;
        assert_eq!(c.reason, "UnsafePath");
        assert!(c.message.contains("Bucket team-a/site"), "{}", c.message);
        assert_eq!(
            v.status.artifact.as_ref().map(|a| a.digest),
            served.status.artifact.as_ref().map(|a| a.digest),
            "the good artifact is kept"
        );
        // Nothing of the refused listing was downloaded.
        assert_eq!(h.metric(DOWNLOADED).await?, 1.0);
        // The next hostile key is judged alone.
        s3.delete_object("evil", key)?;
    }
    h.stop().await;
    Ok(())
}
