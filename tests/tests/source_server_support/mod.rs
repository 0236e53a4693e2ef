//! Shared helpers for the source server end-to-end tests: run the whole server in-process on a
//! loopback port with a config file in a temp dir, talk to it over HTTP, and check artifacts
//! the way an agent would (decompress, recompute the digest).

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_proto::api::{SourceList, SourceView};
use ferry_proto::condition::{READY, find_condition};
use ferry_proto::{ConditionStatus, Digest};
use ferry_source_server::server::{self, Running, ServeOptions};
use ferry_source_server::storage::StorageLocation;

/// How long any wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(60);

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub storage: StorageLocation,
    pub cache: PathBuf,
    pub keep: usize,
    pub storage_env: Option<Vec<(String, String)>>,
    /// Bounds on Helm indexes and charts the server is started with.
    pub helm: ferry_source_server::helm::HelmLimits,
    pub server: Option<Running>,
    pub http: reqwest::Client,
}

/// A `GitRepository` document in namespace `ns`.
pub fn repo_doc(ns: &str, name: &str, url: &str, extra_spec: &str) -> String {
    let mut doc = format!(
        "apiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata:\n  name: {name}\n  \
         namespace: {ns}\nspec:\n  url: {url}\n"
    );
    // Defaults unless the caller sets them: no polling during a test, reconciles on request.
    for (k, v) in [("interval", "1h"), ("timeout", "30s")] {
        if !extra_spec.contains(&format!("{k}:")) {
            doc.push_str(&format!("  {k}: {v}\n"));
        }
    }
    for line in extra_spec.lines().filter(|l| !l.trim().is_empty()) {
        doc.push_str("  ");
        doc.push_str(line);
        doc.push('\n');
    }
    doc
}

pub fn join_docs(docs: &[String]) -> String {
    docs.join("---\n")
}

impl Harness {
    /// A harness whose storage is a directory in its temp dir; not started.
    pub fn new(config: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let config_path = dir.path().join("sources.yaml");
        std::fs::write(&config_path, config)?;
        Ok(Self {
            storage: StorageLocation::Dir(dir.path().join("storage")),
            cache: dir.path().join("cache"),
            config: config_path,
            dir,
            keep: 2,
            storage_env: None,
            helm: Default::default(),
            server: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    pub async fn start(&mut self) -> Result<()> {
        let mut opts = ServeOptions::new(
            self.config.clone(),
            self.storage.clone(),
            self.cache.clone(),
        );
        opts.listen = "127.0.0.1:0".parse()?;
        opts.keep = self.keep;
        opts.backoff =
            ferry_proto::Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        opts.storage_env = self.storage_env.clone();
        opts.helm = self.helm.clone();
        self.server = Some(server::start(opts).await?);
        Ok(())
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    pub fn base(&self) -> String {
        self.server
            .as_ref()
            .map(|s| s.base_url())
            .expect("server started")
    }

    pub fn write_config(&self, text: &str) -> Result<()> {
        // Write-then-rename, as editors and ConfigMap updates do.
        let tmp = self.dir.path().join(".sources.yaml.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.config)?;
        Ok(())
    }

    pub fn storage_dir(&self) -> &Path {
        match &self.storage {
            StorageLocation::Dir(dir) => dir,
            StorageLocation::S3 { .. } => panic!("storage_dir on S3 storage"),
        }
    }

    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = format!("{}{path}", self.base());
        let resp = self.http.get(&url).send().await?;
        if !resp.status().is_success() {
            bail!("GET {url}: {}", resp.status());
        }
        Ok(resp.json().await?)
    }

    pub async fn source(&self, ns: &str, name: &str) -> Result<SourceView> {
        self.get_json(&format!("/v1/sources/{ns}/{name}")).await
    }

    pub async fn sources(&self) -> Result<SourceList> {
        self.get_json("/v1/sources").await
    }

    /// POST …/reconcile, expecting 202.
    pub async fn reconcile(&self, ns: &str, name: &str) -> Result<()> {
        let url = format!("{}/v1/sources/{ns}/{name}/reconcile", self.base());
        let resp = self.http.post(&url).send().await?;
        if resp.status() != reqwest::StatusCode::ACCEPTED {
            bail!("POST {url}: {}", resp.status());
        }
        Ok(())
    }

    /// Polls the source until `pred` holds.
    pub async fn wait_source(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&SourceView) -> bool,
    ) -> Result<SourceView> {
        let last = std::sync::Mutex::new(None);
        let found = ferry_tests::poll::until(what, WAIT, Duration::from_millis(50), || async {
            let v = self.source(ns, name).await?;
            if pred(&v) {
                return Ok(Some(v));
            }
            *last.lock().expect("not poisoned") = Some(v);
            Ok(None)
        })
        .await;
        found.with_context(|| {
            format!(
                "{ns}/{name}; last status: {:#?}",
                last.lock().expect("not poisoned")
            )
        })
    }

    /// Waits until the source is Ready with an artifact of `commit`.
    pub async fn wait_commit(&self, ns: &str, name: &str, commit: &str) -> Result<SourceView> {
        self.wait_source(ns, name, &format!("ready at {commit}"), |v| {
            is_ready(v)
                && v.status
                    .artifact
                    .as_ref()
                    .is_some_and(|a| a.revision.commit() == commit)
        })
        .await
    }

    /// The value of a metric line starting with `prefix` (labels included), or 0.
    pub async fn metric(&self, prefix: &str) -> Result<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base()))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0))
    }

    /// Polls a metric until `ok` accepts its value; the source server counts after it has
    /// published the status the other waits look at.
    pub async fn wait_metric(&self, prefix: &str, ok: impl Fn(f64) -> bool) -> Result<f64> {
        let what = format!("metric {prefix} to reach the value waited for");
        ferry_tests::poll::until(&what, WAIT, Duration::from_millis(20), || async {
            let v = self.metric(prefix).await?;
            Ok(ok(v).then_some(v))
        })
        .await
    }

    /// Successful reconciles of a source so far.
    pub async fn successes(&self, ns: &str, name: &str) -> Result<f64> {
        self.metric(&successes_series(ns, name)).await
    }

    /// Triggers a reconcile and waits until it has completed successfully.
    pub async fn reconcile_and_wait(&self, ns: &str, name: &str) -> Result<()> {
        let before = self.successes(ns, name).await?;
        self.reconcile(ns, name).await?;
        self.wait_metric(&successes_series(ns, name), |v| v > before)
            .await
            .with_context(|| format!("reconcile of {ns}/{name} did not succeed in time"))?;
        Ok(())
    }

    /// Downloads a URL's body.
    pub async fn download(&self, url: &str) -> Result<Vec<u8>> {
        let resp = self.http.get(url).send().await?;
        if !resp.status().is_success() {
            bail!("GET {url}: {}", resp.status());
        }
        Ok(resp.bytes().await?.to_vec())
    }
}

/// The metric series that counts the successful reconciles of `ns/name`.
pub fn successes_series(ns: &str, name: &str) -> String {
    format!(
        "ferry_source_reconcile_duration_seconds_count{{namespace=\"{ns}\",name=\"{name}\",result=\"success\"}}"
    )
}

pub fn is_ready(v: &SourceView) -> bool {
    find_condition(&v.status.conditions, READY).is_some_and(|c| c.status == ConditionStatus::True)
}

/// Decompresses an artifact and returns its tar bytes.
pub fn gunzip(gz: &[u8]) -> Result<Vec<u8>> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut tar)
        .context("artifact is not gzip")?;
    Ok(tar)
}

/// The digest an agent computes: sha256 of the decompressed tar.
pub fn digest_of(gz: &[u8]) -> Result<Digest> {
    Ok(Digest::of(&gunzip(gz)?))
}

/// Paths and contents of the regular files in an artifact.
pub fn files_of(gz: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let tar = gunzip(gz)?;
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_file() {
            let path = entry.path()?.display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            out.push((path, data));
        }
    }
    Ok(out)
}

/// Stored artifact files under a directory storage.
pub fn stored_artifacts(storage: &Path) -> Result<Vec<String>> {
    let dir = storage.join("artifacts/sha256");
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    Ok(names)
}

/// Reads server-sent events from a response until `n` `artifact` events arrived.
pub struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

#[derive(Debug, Clone)]
pub struct Sse {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseReader {
    pub async fn connect(h: &Harness, last_event_id: Option<&str>) -> Result<Self> {
        let mut req = h
            .http
            .get(format!("{}/v1/events", h.base()))
            .header("accept", "text/event-stream")
            // The client-wide timeout would cut a long-lived stream.
            .timeout(Duration::from_secs(3600));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await?;
        if !resp.status().is_success() {
            bail!("GET /v1/events: {}", resp.status());
        }
        Ok(Self {
            resp,
            buf: String::new(),
        })
    }

    /// The next event (comments and keep-alives skipped), within `WAIT`.
    pub async fn next(&mut self) -> Result<Sse> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Sse {
                    id: None,
                    event: "message".into(),
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim().to_string());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim().to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        ev.data.push_str(v.trim_start());
                        any = true;
                    }
                }
                if any {
                    return Ok(ev);
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.resp.chunk())
                .await
                .context("no server-sent event in time")??
                .context("event stream ended")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
