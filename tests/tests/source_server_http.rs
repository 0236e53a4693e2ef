//! Source server HTTP API end to end: a real Git upstream, the whole server in-process on
//! loopback, and an HTTP client doing what an agent does.

mod source_server_support;

use anyhow::Result;
use ferry_proto::Digest;
use ferry_proto::api::{ARTIFACT_EVENT, ArtifactEvent, EventId};
use ferry_tests::upstream::{HttpAuth, SmartHttp, Upstream};
use source_server_support::*;

fn upstream_with_files() -> Result<Upstream> {
    let up = Upstream::new()?;
    up.write("deploy/app.yaml", "kind: ConfigMap\n")?;
    up.write_exec("scripts/run.sh", "#!/bin/sh\necho hi\n")?;
    up.write("README.md", "# app\n")?;
    up.commit_push("first")?;
    Ok(up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_download_digest_etag_304_range_and_head() -> Result<()> {
    let up = upstream_with_files()?;
    let commit = up.head()?;
    let mut h = Harness::new(&repo_doc("team-a", "app", &up.file_url(), ""))?;
    h.start().await?;
    let view = h.wait_commit("team-a", "app", &commit).await?;
    let artifact = view.status.artifact.expect("artifact");
    assert_eq!(artifact.revision.to_string(), format!("main@sha1:{commit}"));
    assert_eq!(
        artifact.url,
        format!("{}/v1/artifacts/sha256/{}", h.base(), artifact.digest.hex())
    );

    let resp = h.http.get(&artifact.url).send().await?;
    assert_eq!(resp.status(), 200);
    let etag = resp.headers()["etag"].to_str()?.to_string();
    assert_eq!(etag, format!("\"{}\"", artifact.digest));
    assert_eq!(
        resp.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let gz = resp.bytes().await?.to_vec();
    // The agent's check: sha256 of the decompressed bytes is the advertised digest.
    let tar = gunzip(&gz)?;
    assert_eq!(Digest::of(&tar), artifact.digest);
    assert_eq!(tar.len() as u64, artifact.size);
    assert_eq!(artifact.compressed_size, Some(gz.len() as u64));
    let files = files_of(&gz)?;
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert!(names.contains(&"deploy/app.yaml") && names.contains(&"scripts/run.sh"));

    // Conditional GET: nothing to send.
    let resp = h
        .http
        .get(&artifact.url)
        .header("if-none-match", &etag)
        .send()
        .await?;
    assert_eq!(resp.status(), 304);
    assert!(resp.bytes().await?.is_empty());

    // A range, e.g. resuming an interrupted download.
    let resp = h
        .http
        .get(&artifact.url)
        .header("range", "bytes=10-19")
        .send()
        .await?;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"].to_str()?,
        format!("bytes 10-19/{}", gz.len())
    );
    assert_eq!(resp.bytes().await?.as_ref(), &gz[10..20]);
    let resp = h
        .http
        .get(&artifact.url)
        .header("range", format!("bytes={}-", gz.len()))
        .send()
        .await?;
    assert_eq!(resp.status(), 416);

    let resp = h.http.head(&artifact.url).send().await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-length"].to_str()?,
        gz.len().to_string()
    );
    assert!(resp.bytes().await?.is_empty());

    // Unknown and malformed digests.
    let missing = format!("{}/v1/artifacts/sha256/{}", h.base(), "0".repeat(64));
    assert_eq!(h.http.get(&missing).send().await?.status(), 404);
    let bad = format!("{}/v1/artifacts/sha256/xyz", h.base());
    assert_eq!(h.http.get(&bad).send().await?.status(), 400);

    assert_eq!(
        h.http
            .get(format!("{}/healthz", h.base()))
            .send()
            .await?
            .status(),
        200
    );
    assert_eq!(
        h.http
            .get(format!("{}/readyz", h.base()))
            .send()
            .await?
            .status(),
        200
    );
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_reconcile_delivers_an_sse_event_and_last_event_id_resumes() -> Result<()> {
    let up = upstream_with_files()?;
    let first = up.head()?;
    let mut h = Harness::new(&repo_doc("team-a", "app", &up.file_url(), ""))?;
    h.start().await?;
    h.wait_commit("team-a", "app", &first).await?;

    // On connect: a snapshot of the current artifact.
    let mut sse = SseReader::connect(&h, None).await?;
    let snap = sse.next().await?;
    assert_eq!(snap.event, ARTIFACT_EVENT);
    let ev: ArtifactEvent = serde_json::from_str(&snap.data)?;
    assert_eq!((ev.namespace.as_str(), ev.name.as_str()), ("team-a", "app"));
    assert_eq!(ev.revision.commit(), first);

    up.write("deploy/app.yaml", "kind: ConfigMap\ndata: {a: b}\n")?;
    let second = up.commit_push("second")?;
    h.reconcile("team-a", "app").await?;
    let live = sse.next().await?;
    let ev: ArtifactEvent = serde_json::from_str(&live.data)?;
    assert_eq!(ev.revision.commit(), second);
    let view = h.wait_commit("team-a", "app", &second).await?;
    assert_eq!(Some(ev.digest), view.status.artifact.map(|a| a.digest));
    // What the event points at is downloadable and matches.
    assert_eq!(digest_of(&h.download(&ev.url).await?)?, ev.digest);
    let seen_id = live.id.clone().expect("events carry ids");
    drop(sse);

    // While the agent is away, another push.
    up.write("deploy/app.yaml", "kind: ConfigMap\ndata: {a: c}\n")?;
    let third = up.commit_push("third")?;
    h.reconcile("team-a", "app").await?;
    h.wait_commit("team-a", "app", &third).await?;

    // Resuming replays exactly what was missed.
    let mut sse = SseReader::connect(&h, Some(&seen_id)).await?;
    let resumed = sse.next().await?;
    let ev: ArtifactEvent = serde_json::from_str(&resumed.data)?;
    assert_eq!(ev.revision.commit(), third);
    let id: EventId = resumed.id.expect("id").parse()?;
    let seen: EventId = seen_id.parse()?;
    assert_eq!((id.epoch, id.seq), (seen.epoch, seen.seq + 1));

    // An id from a previous server life (another epoch) gets a snapshot instead.
    let previous_life = EventId {
        epoch: seen.epoch.wrapping_add(1),
        seq: 1,
    };
    let mut sse = SseReader::connect(&h, Some(&previous_life.to_string())).await?;
    let ev: ArtifactEvent = serde_json::from_str(&sse.next().await?.data)?;
    assert_eq!(ev.revision.commit(), third);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_remote_ref_fetches_nothing_and_builds_nothing() -> Result<()> {
    let up = upstream_with_files()?;
    let commit = up.head()?;
    let git = SmartHttp::start(up.root(), HttpAuth::None)?;
    let mut h = Harness::new(&repo_doc("team-a", "app", &git.url("repo.git"), ""))?;
    h.start().await?;
    let view = h.wait_commit("team-a", "app", &commit).await?;
    let first = view.status.artifact.expect("artifact");
    let packs = git.pack_fetches();
    assert!(packs >= 1, "the first reconcile fetched a pack");
    let built = "ferry_source_artifacts_built_total{namespace=\"team-a\",name=\"app\"}";
    assert_eq!(h.wait_metric(built, |v| v > 0.0).await?, 1.0);
    // The first reconcile is counted once it has finished; each of the three below must be a
    // reconcile of its own.
    h.wait_metric(&successes_series("team-a", "app"), |v| v >= 1.0)
        .await?;
    for _ in 0..3 {
        h.reconcile_and_wait("team-a", "app").await?;
    }
    assert_eq!(
        git.pack_fetches(),
        packs,
        "an unchanged ref must not be fetched"
    );
    assert_eq!(h.metric(built).await?, 1.0, "no new artifact");
    let view = h.source("team-a", "app").await?;
    assert_eq!(view.status.artifact, Some(first));
    assert_eq!(stored_artifacts(h.storage_dir())?.len(), 1);

    // A request with a token: the token comes back once its reconcile is done (what
    // `ferry reconcile source --wait` waits for).
    let url = format!(
        "{}/v1/sources/team-a/app/reconcile?requestedAt=token-1",
        h.base()
    );
    let resp = h.http.post(&url).send().await?;
    assert_eq!(resp.status(), 202);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["requestedAt"], "token-1");
    h.wait_source("team-a", "app", "lastHandledReconcileAt token-1", |v| {
        v.status.last_handled_reconcile_at.as_deref() == Some("token-1")
    })
    .await?;
    let long = format!(
        "{}/v1/sources/team-a/app/reconcile?requestedAt={}",
        h.base(),
        "x".repeat(129)
    );
    assert_eq!(h.http.post(&long).send().await?.status(), 400);

    // Reconciling an unknown source is a 404.
    let url = format!("{}/v1/sources/team-a/nope/reconcile", h.base());
    assert_eq!(h.http.post(&url).send().await?.status(), 404);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_over_smart_http_and_a_wrong_password_is_authentication_failed() -> Result<()> {
    let up = upstream_with_files()?;
    let commit = up.head()?;
    let git = SmartHttp::start(
        up.root(),
        HttpAuth::Basic {
            username: "bot".into(),
            password: "s3cret".into(),
        },
    )?;
    let secret = |password: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: team-a}}\n\
             stringData:\n  username: bot\n  password: {password}\n"
        )
    };
    let repo = repo_doc(
        "team-a",
        "app",
        &git.url("repo.git"),
        "secretRef: {name: creds}",
    );
    let mut h = Harness::new(&join_docs(&[repo.clone(), secret("s3cret")]))?;
    h.start().await?;
    h.wait_commit("team-a", "app", &commit).await?;

    // Rotate to a wrong password: the source fails, says why, keeps its artifact.
    h.write_config(&join_docs(&[repo, secret("wrong")]))?;
    let view = h
        .wait_source("team-a", "app", "AuthenticationFailed", |v| {
            v.status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.reason == "AuthenticationFailed")
        })
        .await?;
    let ready = view
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert!(ready.message.contains("team-a/app"), "{}", ready.message);
    assert!(
        !ready.message.contains("wrong"),
        "secrets never appear: {}",
        ready.message
    );
    let artifact = view.status.artifact.expect("last good artifact kept");
    assert_eq!(artifact.revision.commit(), commit);
    assert_eq!(h.http.get(&artifact.url).send().await?.status(), 200);
    h.stop().await;
    Ok(())
}

/// Issue 12, defect 4: `GET /v1/sources` returned `spec.url` with its `user:token@` verbatim.
/// No response — source list, one source, its conditions, the config errors, the metrics —
/// may carry the credentials of a URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_a_url_never_appear_in_api_responses() -> Result<()> {
    let secret = "s3cret-t0ken";
    // Nothing listens on port 1: the fetch fails, and its message names the URL.
    let leaky = repo_doc(
        "team-a",
        "leaky",
        &format!("http://bob:{secret}@127.0.0.1:1/repo.git"),
        "",
    );
    // Refused by the config loader, whose message quotes the URL.
    let refused = repo_doc(
        "team-a",
        "refused",
        &format!("ftp://bob:{secret}@127.0.0.1/repo.git"),
        "",
    );
    let mut h = Harness::new(&join_docs(&[leaky, refused]))?;
    h.start().await?;
    let view = h
        .wait_source("team-a", "leaky", "failed", |v| {
            v.status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == ferry_proto::ConditionStatus::False)
        })
        .await?;
    assert_eq!(view.spec.url, "http://127.0.0.1:1/repo.git");
    for path in [
        "/v1/sources",
        "/v1/sources/team-a/leaky",
        "/v1/sources/team-a/refused",
        "/v1/config",
        "/metrics",
    ] {
        let body = h
            .http
            .get(format!("{}{path}", h.base()))
            .send()
            .await?
            .text()
            .await?;
        assert!(
            !body.contains(secret) && !body.contains("bob:"),
            "GET {path} leaks the URL's credentials: {body}"
        );
    }
    let refused = h.source("team-a", "refused").await?;
    assert_eq!(refused.spec.url, "ftp://127.0.0.1/repo.git");
    h.stop().await;
    Ok(())
}
