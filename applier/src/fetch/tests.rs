//! Fetcher against a real HTTP server on 127.0.0.1:0 (axum), with a real cache directory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ferry_proto::{ArtifactRef, Digest, Revision};

use super::tree::tests::raw_tar;
use super::*;

#[derive(Default)]
struct Served {
    /// hex → body served for it.
    bodies: std::sync::Mutex<HashMap<String, Vec<u8>>>,
    hits: AtomicUsize,
    /// Answer this many requests with 503 before serving.
    fail_first: AtomicUsize,
    /// Milliseconds to wait before answering.
    delay_ms: AtomicUsize,
    /// Send bodies chunked, without Content-Length (so no header can give the size away).
    chunked: std::sync::atomic::AtomicBool,
}

struct TestServer {
    url: String,
    state: Arc<Served>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    async fn start() -> Self {
        async fn artifact(
            State(s): State<Arc<Served>>,
            Path(hex): Path<String>,
        ) -> axum::response::Response {
            s.hits.fetch_add(1, Ordering::SeqCst);
            let delay = s.delay_ms.load(Ordering::SeqCst) as u64;
            tokio::time::sleep(Duration::from_millis(delay)).await;
            if s.fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            let hex = hex.trim_end_matches(".tar.gz").to_string();
            let body = s.bodies.lock().expect("lock").get(&hex).cloned();
            match body {
                Some(b) if s.chunked.load(Ordering::SeqCst) => {
                    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                        b.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
                    axum::body::Body::from_stream(futures::stream::iter(chunks)).into_response()
                }
                Some(b) => (StatusCode::OK, b).into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
        let state = Arc::new(Served::default());
        let app = axum::Router::new()
            .route("/v1/artifacts/sha256/{hex}", axum::routing::get(artifact))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
        });
        Self {
            url,
            state,
            stop: Some(tx),
            task,
        }
    }

    fn serve(&self, digest: &Digest, body: Vec<u8>) {
        self.state
            .bodies
            .lock()
            .expect("lock")
            .insert(digest.hex(), body);
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}

fn artifact(files: &[(&str, &str)]) -> (ArtifactRef, Vec<u8>) {
    let entries: Vec<(&[u8], tar::EntryType, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_bytes(), tar::EntryType::Regular, d.as_bytes()))
        .collect();
    let tar = raw_tar(&entries);
    let r = ArtifactRef {
        digest: Digest::of(&tar),
        size: tar.len() as u64,
        compressed_size: None,
        revision: Revision::new(Some("main".into()), "a".repeat(40)).expect("revision"),
        url: "ignored".into(),
        last_update_time: chrono::Utc::now(),
    };
    (r, gzip(&tar))
}

fn config(server: &str, cache: &std::path::Path) -> FetcherConfig {
    FetcherConfig {
        backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(50)),
        download_attempts: 4,
        ..FetcherConfig::new(server, cache)
    }
}

#[tokio::test]
async fn fetches_verifies_caches_and_then_survives_the_server_going_down() {
    let server = TestServer::start().await;
    let cache = tempfile::tempdir().expect("tempdir");
    let (a, gz) = artifact(&[("deploy/app.yaml", "kind: ConfigMap")]);
    server.serve(&a.digest, gz);

    let f = Fetcher::new(config(&server.url, cache.path())).expect("fetcher");
    let (tree, origin) = f.get_with_origin(&a).await.expect("fetch");
    assert_eq!(origin, Origin::Server);
    assert_eq!(tree.get("deploy/app.yaml"), Some(&b"kind: ConfigMap"[..]));
    assert!(
        cache
            .path()
            .join(format!("sha256/{}.tar.gz", a.digest.hex()))
            .is_file()
    );
    let (_, origin) = f.get_with_origin(&a).await.expect("again");
    assert_eq!(origin, Origin::Memory);
    assert_eq!(server.state.hits.load(Ordering::SeqCst), 1);

    server.stop().await;
    // A restarted agent (new Fetcher, same cache dir) reconciles from the cache.
    drop(tree);
    drop(f);
    let f = Fetcher::new(config("http://127.0.0.1:1", cache.path())).expect("fetcher");
    let (tree, origin) = f.get_with_origin(&a).await.expect("served from cache");
    assert_eq!(origin, Origin::Cache);
    assert_eq!(tree.digest(), a.digest);

    // After a restart with the server down, only the digest may be known (from status): a ref
    // whose size is only an upper bound still resolves from the cache, and the entry is not
    // mistaken for a corrupt one.
    assert_eq!(tree.get("deploy/app.yaml"), Some(&b"kind: ConfigMap"[..]));
    drop(tree);
    f.forget_memory();
    let mut vague = a.clone();
    vague.size = f.config().limits.max_total_size;
    let (_, origin) = f.get_with_origin(&vague).await.expect("cache");
    assert_eq!(origin, Origin::Cache);
    assert!(
        cache
            .path()
            .join(format!("sha256/{}.tar.gz", a.digest.hex()))
            .is_file()
    );
}

#[tokio::test]
async fn corrupt_cache_entry_is_removed_and_fetched_again() {
    let server = TestServer::start().await;
    let cache = tempfile::tempdir().expect("tempdir");
    let (a, gz) = artifact(&[("a.yaml", "x: 1")]);
    server.serve(&a.digest, gz.clone());
    let path = cache
        .path()
        .join(format!("sha256/{}.tar.gz", a.digest.hex()));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut corrupt = gz;
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    std::fs::write(&path, &corrupt).expect("plant corrupt entry");

    let f = Fetcher::new(config(&server.url, cache.path())).expect("fetcher");
    let (tree, origin) = f.get_with_origin(&a).await.expect("re-fetched");
    assert_eq!(origin, Origin::Server);
    assert_eq!(tree.get("a.yaml"), Some(&b"x: 1"[..]));
    let fixed = std::fs::read(&path).expect("cache rewritten");
    assert_ne!(fixed, corrupt);
    server.stop().await;
}

#[tokio::test]
async fn tampered_artifact_is_refused_and_not_cached() {
    let server = TestServer::start().await;
    let cache = tempfile::tempdir().expect("tempdir");
    let (a, _) = artifact(&[("a.yaml", "image: good")]);
    let (_, evil) = artifact(&[("a.yaml", "image: evil")]);
    server.serve(&a.digest, evil);
    let f = Fetcher::new(config(&server.url, cache.path())).expect("fetcher");
    let err = f.get(&a).await.expect_err("tampered");
    assert!(err.is_integrity(), "{err}");
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert_eq!(
        Cache::open(cache.path(), 1 << 30)
            .expect("cache")
            .size()
            .expect("size"),
        0
    );
    // Integrity failures are not retried: the same bytes would come back.
    assert_eq!(server.state.hits.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn retries_5xx_with_backoff_and_gives_up_on_404() {
    let server = TestServer::start().await;
    let cache = tempfile::tempdir().expect("tempdir");
    let (a, gz) = artifact(&[("a.yaml", "x")]);
    server.serve(&a.digest, gz);
    server.state.fail_first.store(2, Ordering::SeqCst);
    let f = Fetcher::new(config(&server.url, cache.path())).expect("fetcher");
    f.get(&a).await.expect("third try succeeds");
    assert_eq!(server.state.hits.load(Ordering::SeqCst), 3);

    let (missing, _) = artifact(&[("other.yaml", "y")]);
    let err = f.get(&missing).await.expect_err("404");
    assert!(
        matches!(&err, FetchError::Download { source, .. } if source.is_not_found()),
        "{err}"
    );
    assert_eq!(
        server.state.hits.load(Ordering::SeqCst),
        4,
        "404 is not retried"
    );

    server.state.fail_first.store(100, Ordering::SeqCst);
    let (c, gz) = artifact(&[("c.yaml", "z")]);
    server.serve(&c.digest, gz);
    let err = f.get(&c).await.expect_err("persistent 503");
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert_eq!(server.state.hits.load(Ordering::SeqCst), 8, "4 attempts");
    server.stop().await;
}

#[tokio::test]
async fn download_is_capped_even_when_the_body_is_bigger_than_promised() {
    let server = TestServer::start().await;
    let cache = tempfile::tempdir().expect("tempdir");
    let (mut a, _) = artifact(&[("a.yaml", "x")]);
    // Incompressible junk far beyond what the advertised size can compress to.
    let junk: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    server.serve(&a.digest, junk);
    a.size = 10_000;
    let f = Fetcher::new(config(&server.url, cache.path())).expect("fetcher");
    // Once refused by Content-Length, once (chunked, no length) by counting bytes as they come.
    for chunked in [false, true] {
        server.state.chunked.store(chunked, Ordering::SeqCst);
        let err = f.get(&a).await.expect_err("oversize");
        assert!(
            matches!(
                &err,
                FetchError::Download {
                    source: DownloadError::TooLarge { .. },
                    ..
                }
            ),
            "chunked={chunked}: {err}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn server_down_without_cache_is_a_download_error_naming_the_digest() {
    let cache = tempfile::tempdir().expect("tempdir");
    // Bind and drop: nothing listens on this loopback port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let (a, _) = artifact(&[("a.yaml", "x")]);
    let f = Fetcher::new(config(&format!("http://127.0.0.1:{port}"), cache.path())).expect("f");
    let err = f.get(&a).await.expect_err("down");
    assert!(!err.is_integrity());
    assert!(err.to_string().contains(&a.digest.to_string()), "{err}");
}

#[tokio::test]
async fn cache_stays_bounded_and_keeps_the_artifact_in_use() {
    let server = TestServer::start().await;
    let cache = tempfile::tempdir().expect("tempdir");
    let arts: Vec<_> = (0..4)
        .map(|i| {
            let body: String = (0..2000).map(|j| format!("{i}-{j}\n")).collect();
            artifact(&[("a.yaml", body.as_str())])
        })
        .collect();
    for (a, gz) in &arts {
        server.serve(&a.digest, gz.clone());
    }
    let one = arts[0].1.len() as u64;
    let f = Fetcher::new(FetcherConfig {
        max_cache_bytes: one * 2 + one / 2,
        keep_in_memory: 0,
        ..config(&server.url, cache.path())
    })
    .expect("fetcher");
    let held = f.get(&arts[0].0).await.expect("first");
    for (a, _) in &arts[1..] {
        f.get(a).await.expect("fetch");
    }
    let c = Cache::open(cache.path(), u64::MAX).expect("cache");
    assert!(c.size().expect("size") <= one * 3, "bounded");
    assert!(
        c.path(&arts[0].0.digest).is_file(),
        "the tree still held is not evicted"
    );
    assert!(c.path(&arts[3].0.digest).is_file(), "the newest is kept");
    drop(held);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_of_one_digest_download_once_and_share_the_tree() {
    let server = TestServer::start().await;
    let cache = tempfile::tempdir().expect("tempdir");
    let (a, gz) = artifact(&[("a.yaml", "x: 1")]);
    server.serve(&a.digest, gz);
    server.state.delay_ms.store(200, Ordering::SeqCst);
    let f = Arc::new(Fetcher::new(config(&server.url, cache.path())).expect("fetcher"));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (f, a) = (f.clone(), a.clone());
            tokio::spawn(async move { f.get(&a).await })
        })
        .collect();
    let mut trees = vec![];
    for t in tasks {
        trees.push(t.await.expect("task").expect("fetch"));
    }
    assert_eq!(
        server.state.hits.load(Ordering::SeqCst),
        1,
        "one download for 8 callers"
    );
    assert!(
        trees.iter().all(|t| Arc::ptr_eq(t, &trees[0])),
        "one shared tree in memory"
    );
    server.stop().await;
}

#[tokio::test]
async fn reads_the_artifact_store_first_and_the_server_when_the_store_lacks_it() {
    use ferry_store::object_store::memory::InMemory;
    use ferry_store::object_store::{ObjectStore, ObjectStoreExt};
    let server = TestServer::start().await;
    let cache = tempfile::tempdir().expect("tempdir");
    let bucket: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let put = async |digest: &Digest, gz: Vec<u8>| {
        bucket
            .put(&ferry_store::artifact_path(digest), gz.into())
            .await
            .expect("put");
    };
    let (in_store, gz) = artifact(&[("a.yaml", "in the store")]);
    put(&in_store.digest, gz).await;
    let (on_server, gz) = artifact(&[("a.yaml", "on the server")]);
    server.serve(&on_server.digest, gz);
    let (tampered, good) = artifact(&[("a.yaml", "good")]);
    let (_, evil) = artifact(&[("a.yaml", "evil")]);
    put(&tampered.digest, evil).await;
    server.serve(&tampered.digest, good);
    let f = Fetcher::new(FetcherConfig {
        store: Some(Arc::new(ArtifactStore::from_store(
            bucket.clone(),
            "s3://bucket/prod",
        ))),
        ..config(&server.url, cache.path())
    })
    .expect("fetcher");

    let (_, origin) = f.get_with_origin(&in_store).await.expect("from the store");
    assert_eq!(origin, Origin::Store);
    assert_eq!(server.state.hits.load(Ordering::SeqCst), 0);
    let (_, origin) = f
        .get_with_origin(&on_server)
        .await
        .expect("from the server");
    assert_eq!(origin, Origin::Server);
    assert_eq!(server.state.hits.load(Ordering::SeqCst), 1);

    // Bytes from the store go through the same verification: refused, naming the digest,
    // not cached, and not replaced by a second opinion from the server.
    let err = f.get(&tampered).await.expect_err("tampered object");
    assert!(err.is_integrity(), "{err}");
    assert!(
        err.to_string().contains(&tampered.digest.to_string()),
        "{err}"
    );
    assert_eq!(server.state.hits.load(Ordering::SeqCst), 1);

    // Neither has it: the error names both answers.
    server.stop().await;
    let (nowhere, _) = artifact(&[("a.yaml", "nowhere")]);
    let err = f.get(&nowhere).await.expect_err("missing everywhere");
    let msg = err.to_string();
    assert!(
        msg.contains("no such object in the artifact store")
            && msg.contains("s3://bucket/prod/artifacts/sha256/")
            && msg.contains("source server"),
        "{msg}"
    );
}
