//! Many agents asking for one new artifact at once (issue 18): with S3 storage the server reads
//! it from the bucket once and serves every request from that copy; with directory storage
//! one copy in memory serves them all.
//!
//! A counting proxy sits between the server and moto: it counts the GETs of artifact objects,
//! can hold them (so that every request provably arrives while the one download is under way,
//! seen through the server's wait counter, not a sleep) and can refuse them as a failing
//! bucket would.

mod source_server_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use ferry_proto::ArtifactRef;
use ferry_tests::s3::S3Server;
use ferry_tests::upstream::Upstream;
use source_server_support::*;
use tokio::sync::watch;

const AGENTS: usize = 24;
const FETCHES: &str = r#"ferry_source_artifact_cache_fetches_total{tier="disk"}"#;
const WAITS: &str = r#"ferry_source_artifact_cache_waits_total{tier="disk"}"#;
const FAILURES: &str = r#"ferry_source_artifact_cache_fetch_failures_total{tier="disk"}"#;

/// Forwards every request to moto; GETs of artifact objects are counted, held until `open`,
/// and answered 403 while `fail` is set.
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    artifact_gets: AtomicUsize,
    fail: AtomicBool,
    open: watch::Sender<bool>,
}

async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let is_artifact_get =
        parts.method == http::Method::GET && parts.uri.path().contains("/artifacts/sha256/");
    if is_artifact_get {
        p.artifact_gets.fetch_add(1, Ordering::SeqCst);
        let mut open = p.open.subscribe();
        let _ = open.wait_for(|o| *o).await;
        if p.fail.load(Ordering::SeqCst) {
            // Not a 5xx: the client would retry those itself, and the test is about what the
            // server does when the bucket's answer is final.
            return Response::builder()
                .status(403)
                .header("content-type", "application/xml")
                .body(Body::from(
                    "<Error><Code>AccessDenied</Code><Message>refused by the test</Message></Error>",
                ))
                .expect("valid response");
        }
    }
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    let url = format!(
        "{}{}",
        p.upstream,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let mut up = p.client.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST {
            up = up.header(name, value);
        }
    }
    let resp = up.send().await.expect("moto answers");
    let mut out = Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        if !matches!(
            name.as_str(),
            "transfer-encoding" | "connection" | "keep-alive"
        ) {
            out = out.header(name, value);
        }
    }
    let bytes = resp.bytes().await.expect("moto's body");
    out.body(Body::from(bytes)).expect("valid response")
}

async fn start_proxy(s3: &S3Server) -> Result<(Arc<Proxy>, String)> {
    let proxy = Arc::new(Proxy {
        upstream: s3.endpoint(),
        client: reqwest::Client::new(),
        artifact_gets: AtomicUsize::new(0),
        fail: AtomicBool::new(false),
        open: watch::channel(true).0,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((proxy, format!("http://{addr}")))
}

/// One agent's download: status and body.
type Download = tokio::task::JoinHandle<Result<(u16, Vec<u8>)>>;

/// `AGENTS` concurrent GETs of `artifact`: each response's status and body.
fn herd(h: &Harness, artifact: &ArtifactRef) -> Vec<Download> {
    (0..AGENTS)
        .map(|_| {
            let (http, url) = (h.http.clone(), artifact.url.clone());
            tokio::spawn(async move {
                let resp = http.get(&url).send().await?;
                let status = resp.status().as_u16();
                Ok((status, resp.bytes().await?.to_vec()))
            })
        })
        .collect()
}

async fn answers(herd: Vec<Download>) -> Result<Vec<(u16, Vec<u8>)>> {
    let mut out = Vec::new();
    for request in herd {
        out.push(request.await??);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_one_s3_artifact_read_the_bucket_once() -> Result<()> {
    let s3 = S3Server::start()?;
    s3.create_bucket("ferry")?;
    let (proxy, endpoint) = start_proxy(&s3).await?;
    let up = Upstream::new()?;
    // Big enough that the body spans many reads and TCP segments.
    let data: String = (0..40_000).map(|i| format!("line {i}\n")).collect();
    up.write("deploy/data.txt", &data)?;
    let first = up.commit_push("first")?;

    let mut h = Harness::new(&repo_doc("team-a", "app", &up.file_url(), ""))?;
    h.storage = "s3://ferry/prod".parse()?;
    h.storage_env = Some(
        s3.env()
            .into_iter()
            .map(|(k, v)| match k {
                "AWS_ENDPOINT_URL" => (k.to_string(), endpoint.clone()),
                _ => (k.to_string(), v),
            })
            .collect(),
    );
    h.start().await?;
    let artifact = h
        .wait_commit("team-a", "app", &first)
        .await?
        .status
        .artifact
        .context("artifact")?;
    // Writing the artifact read nothing back.
    assert_eq!(proxy.artifact_gets.load(Ordering::SeqCst), 0);

    // HEAD and a conditional GET of an artifact not cached yet: answered from the bucket's
    // metadata, nothing downloaded.
    let head = h.http.head(&artifact.url).send().await?;
    assert_eq!(head.status(), 200);
    let size: u64 = head.headers()["content-length"].to_str()?.parse()?;
    let etag = head.headers()["etag"].clone();
    let cond = h
        .http
        .get(&artifact.url)
        .header("if-none-match", etag)
        .send()
        .await?;
    assert_eq!(cond.status(), 304);
    assert_eq!(proxy.artifact_gets.load(Ordering::SeqCst), 0);

    // The herd: the bucket's answer is held until every request is waiting on the download.
    proxy.open.send_replace(false);
    let requests = herd(&h, &artifact);
    h.wait_metric(WAITS, |v| v >= (AGENTS - 1) as f64).await?;
    assert_eq!(proxy.artifact_gets.load(Ordering::SeqCst), 1);
    proxy.open.send_replace(true);
    let got = answers(requests).await?;
    for (status, body) in &got {
        assert_eq!(*status, 200);
        assert_eq!(body, &got[0].1, "every agent gets the same bytes");
    }
    assert_eq!(got[0].1.len() as u64, size);
    assert_eq!(digest_of(&got[0].1)?, artifact.digest);
    assert_eq!(proxy.artifact_gets.load(Ordering::SeqCst), 1, "one GET");
    assert_eq!(h.metric(FETCHES).await?, 1.0);
    assert_eq!(h.metric(WAITS).await?, (AGENTS - 1) as f64);
    // Later requests (a range too) come from the copy.
    let resp = h
        .http
        .get(&artifact.url)
        .header("range", "bytes=10-19")
        .send()
        .await?;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await?.as_ref(), &got[0].1[10..20]);
    assert_eq!(proxy.artifact_gets.load(Ordering::SeqCst), 1);

    // A new revision while the bucket refuses reads: every waiting request gets a 500, and
    // the failed download is not remembered.
    up.write("deploy/data.txt", format!("{data}more\n"))?;
    let second = up.commit_push("second")?;
    h.reconcile_and_wait("team-a", "app").await?;
    let artifact = h
        .wait_commit("team-a", "app", &second)
        .await?
        .status
        .artifact
        .context("artifact")?;
    proxy.fail.store(true, Ordering::SeqCst);
    proxy.open.send_replace(false);
    let waits_before = h.metric(WAITS).await?;
    let requests = herd(&h, &artifact);
    h.wait_metric(WAITS, |v| v >= waits_before + (AGENTS - 1) as f64)
        .await?;
    proxy.open.send_replace(true);
    for (status, body) in answers(requests).await? {
        assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
    }
    assert_eq!(proxy.artifact_gets.load(Ordering::SeqCst), 2);
    assert_eq!(h.metric(FAILURES).await?, 1.0);

    // The bucket is back: the next request downloads again, once, and the rest is cached.
    proxy.fail.store(false, Ordering::SeqCst);
    let gz = h.download(&artifact.url).await?;
    assert_eq!(digest_of(&gz)?, artifact.digest);
    assert_eq!(proxy.artifact_gets.load(Ordering::SeqCst), 3);
    for (status, body) in answers(herd(&h, &artifact)).await? {
        assert_eq!(status, 200);
        assert_eq!(body, gz);
    }
    assert_eq!(proxy.artifact_gets.load(Ordering::SeqCst), 3);
    assert_eq!(h.metric(FETCHES).await?, 3.0);
    h.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_one_directory_artifact_share_one_copy_in_memory() -> Result<()> {
    let up = Upstream::new()?;
    let data: String = (0..40_000).map(|i| format!("line {i}\n")).collect();
    up.write("deploy/data.txt", &data)?;
    let commit = up.commit_push("first")?;
    let mut h = Harness::new(&repo_doc("team-a", "app", &up.file_url(), ""))?;
    h.start().await?;
    let artifact = h
        .wait_commit("team-a", "app", &commit)
        .await?
        .status
        .artifact
        .context("artifact")?;
    let got = answers(herd(&h, &artifact)).await?;
    for (status, body) in &got {
        assert_eq!(*status, 200);
        assert_eq!(body, &got[0].1);
    }
    assert_eq!(digest_of(&got[0].1)?, artifact.digest);
    // However the requests interleaved, the file was read into memory once.
    let memory = |m: &str| format!("ferry_source_artifact_cache_{m}{{tier=\"memory\"}}");
    assert_eq!(h.metric(&memory("fetches_total")).await?, 1.0);
    assert_eq!(
        h.metric(&memory("bytes")).await?,
        got[0].1.len() as f64,
        "one copy held"
    );
    h.stop().await;
    Ok(())
}
