//! Client for the source server: a source's current artifact, and a stream of new artifacts.
//!
//! [`SourceClient::watch`] follows `/v1/events` (server-sent events), resuming with
//! `Last-Event-ID` after a disconnect and reconnecting with exponential backoff. Events can be
//! lost anyway (the server restarted and forgot its sequence, a proxy buffered the stream), so
//! after every (re)connect, and on a timer while the stream is down, the client lists all
//! sources and emits an event for each artifact it has not reported yet. Consumers therefore
//! see every source's current artifact at least once, and then every change.

use std::collections::HashMap;
use std::time::Duration;

use ferry_proto::api::{
    ARTIFACT_EVENT, AgentReport, ArtifactEvent, BucketList, BucketView, EventBatch,
    HelmChartArtifact, SourceList, SourceView,
};
use ferry_proto::{ArtifactRef, Digest, SourceKey, SourceKind};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::fetch::error_chain;
use ferry_proto::Backoff;

mod sse;
mod token;

pub use sse::{SseEvent, SseParser};
pub use token::SourceToken;

/// Largest JSON response accepted from the source server.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SourceClientError {
    #[error("source server {url}: {why}")]
    Transport { url: String, why: String },
    #[error("source server {url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("source server {url}: unexpected response: {why}")]
    Decode { url: String, why: String },
    #[error("source server {url}: event stream: {why}")]
    Stream { url: String, why: String },
    /// The agent runs without a source server (`--artifact-store` only).
    #[error("no source server configured (--source-server); {what} needs one")]
    NotConfigured { what: String },
}

impl SourceClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, SourceClientError::Status { status: 404, .. })
    }

    /// The HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            SourceClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How [`SourceClient::watch`] reconnects and polls.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// Delay between reconnect attempts (the watch never gives up).
    pub backoff: Backoff,
    /// How often to list sources while the event stream is down.
    pub poll_interval: Duration,
    /// Reconnect when nothing (not even a keep-alive) arrived for this long.
    pub idle_timeout: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            poll_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SourceClient {
    /// Empty when there is no source server ([`SourceClient::none`]).
    base: String,
    http: reqwest::Client,
    /// For `/v1/events` only: a fresh connection each time, never a pooled one, because the
    /// server serves a stream that opens its connection outside hyper (a few hundred bytes
    /// per agent instead of tens of KiB).
    stream_http: reqwest::Client,
    token: Option<std::sync::Arc<SourceToken>>,
}

impl SourceClient {
    /// `base` is the server's URL, e.g. `http://127.0.0.1:9090`.
    pub fn new(base: impl Into<String>) -> Result<Self, SourceClientError> {
        let base = base.into().trim_end_matches('/').to_string();
        let build = |b: reqwest::ClientBuilder| {
            b.connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| SourceClientError::Transport {
                    url: base.clone(),
                    why: error_chain(&e),
                })
        };
        let http = build(reqwest::Client::builder())?;
        let stream_http = build(reqwest::Client::builder().pool_max_idle_per_host(0))?;
        Ok(Self {
            base,
            http,
            stream_http,
            token: None,
        })
    }

    /// A client for an agent without a source server: every request fails with
    /// [`SourceClientError::NotConfigured`] and [`SourceClient::watch`] reports nothing.
    pub fn none() -> Self {
        Self {
            base: String::new(),
            http: reqwest::Client::new(),
            stream_http: reqwest::Client::new(),
            token: None,
        }
    }

    /// Whether a source server is configured.
    pub fn is_configured(&self) -> bool {
        !self.base.is_empty()
    }

    fn configured(&self, what: &str) -> Result<(), SourceClientError> {
        if self.is_configured() {
            Ok(())
        } else {
            Err(SourceClientError::NotConfigured {
                what: what.to_string(),
            })
        }
    }

    /// Sends `token` with every request (a source server with tenancy requires it).
    pub fn with_token(mut self, token: std::sync::Arc<SourceToken>) -> Self {
        self.token = Some(token);
        self
    }

    /// `req` with the agent's token, when it has one.
    pub fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.token.as_ref().and_then(|t| t.header()) {
            Some(v) => req.header(reqwest::header::AUTHORIZATION, v),
            None => req,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /v1/sources/{namespace}/{name}`.
    pub async fn get_source(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<SourceView, SourceClientError> {
        self.get_json(&format!("/v1/sources/{namespace}/{name}"))
            .await
    }

    /// The artifact a source currently serves; `None` while it has none yet.
    pub async fn current_artifact(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ArtifactRef>, SourceClientError> {
        Ok(self.get_source(namespace, name).await?.status.artifact)
    }

    /// `GET /v1/buckets/{namespace}/{name}`.
    pub async fn get_bucket(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BucketView, SourceClientError> {
        self.get_json(&format!("/v1/buckets/{namespace}/{name}"))
            .await
    }

    /// The artifact a GitRepository or Bucket currently serves; `None` while it has none yet
    /// (other kinds have no artifact of their own: `None`).
    pub async fn current_artifact_of(
        &self,
        key: &SourceKey,
    ) -> Result<Option<ArtifactRef>, SourceClientError> {
        match key.kind {
            SourceKind::GitRepository => self.current_artifact(&key.namespace, &key.name).await,
            SourceKind::Bucket => Ok(self
                .get_bucket(&key.namespace, &key.name)
                .await?
                .status
                .artifact),
            SourceKind::HelmRepository | SourceKind::HelmChart => Ok(None),
        }
    }

    /// `GET /v1/buckets`.
    pub async fn list_buckets(&self) -> Result<BucketList, SourceClientError> {
        self.get_json("/v1/buckets").await
    }

    /// `GET /v1/helmrepositories/{namespace}/{repository}/charts/{chart}?version=<range>`: the
    /// highest chart version matching `range`, packed by the server into an artifact (which
    /// also registers the range, so new matching versions are announced as `HelmChart` events).
    pub async fn resolve_chart(
        &self,
        namespace: &str,
        repository: &str,
        chart: &str,
        range: &str,
    ) -> Result<HelmChartArtifact, SourceClientError> {
        self.configured(&format!(
            "HelmRepository {namespace}/{repository} (chart {chart})"
        ))?;
        let path = format!("/v1/helmrepositories/{namespace}/{repository}/charts/{chart}");
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base)).map_err(|e| {
            SourceClientError::Transport {
                url: format!("{}{path}", self.base),
                why: e.to_string(),
            }
        })?;
        url.query_pairs_mut().append_pair("version", range);
        self.get_json_at(url.to_string()).await
    }

    /// `GET /v1/sources`.
    pub async fn list_sources(&self) -> Result<SourceList, SourceClientError> {
        self.get_json("/v1/sources").await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, SourceClientError> {
        self.get_json_at(format!("{}{path}", self.base)).await
    }

    async fn get_json_at<T: serde::de::DeserializeOwned>(
        &self,
        url: String,
    ) -> Result<T, SourceClientError> {
        self.configured(&format!("GET {url}"))?;
        let resp = self
            .authorize(self.http.get(&url))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| SourceClientError::Transport {
                url: url.clone(),
                why: error_chain(&e),
            })?;
        let status = resp.status();
        // A source list is small; a server sending more is broken or hostile.
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| SourceClientError::Transport {
                url: url.clone(),
                why: error_chain(&e),
            })?;
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(SourceClientError::Decode {
                    url,
                    why: format!("response larger than {MAX_RESPONSE} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(SourceClientError::Status {
                url,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| SourceClientError::Decode {
            url,
            why: e.to_string(),
        })
    }

    /// `POST /v1/agents/{namespace}/events`: events for alerting (see [`crate::report`]).
    pub async fn post_events(
        &self,
        namespace: &str,
        batch: &EventBatch,
    ) -> Result<(), SourceClientError> {
        let url = format!("{}/v1/agents/{namespace}/events", self.base);
        self.send_json(self.http.post(&url).json(batch), url).await
    }

    /// `PUT /v1/agents/{namespace}/status`: the state of every object of the namespace.
    pub async fn put_status(
        &self,
        namespace: &str,
        report: &AgentReport,
    ) -> Result<(), SourceClientError> {
        let url = format!("{}/v1/agents/{namespace}/status", self.base);
        self.send_json(self.http.put(&url).json(report), url).await
    }

    /// Sends a request whose answer carries nothing but its status.
    async fn send_json(
        &self,
        request: reqwest::RequestBuilder,
        url: String,
    ) -> Result<(), SourceClientError> {
        self.configured(&url)?;
        let resp = self
            .authorize(request)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| SourceClientError::Transport {
                url: url.clone(),
                why: error_chain(&e),
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        // Only the first chunk of an error body is read, and its start kept.
        let mut resp = resp;
        let first = resp.chunk().await.ok().flatten().unwrap_or_default();
        Err(SourceClientError::Status {
            url,
            status: status.as_u16(),
            body: String::from_utf8_lossy(&first[..first.len().min(512)]).into_owned(),
        })
    }

    /// Starts following new artifacts; stops when the returned [`SourceWatch`] is dropped.
    pub fn watch(&self, cfg: WatchConfig) -> SourceWatch {
        let (tx, rx) = mpsc::channel(256);
        let client = self.clone();
        let task = tokio::spawn(async move {
            // Without a source server there is no stream; revisions come from the store.
            if client.is_configured() {
                Watcher::new(client, cfg, tx).run().await
            }
        });
        SourceWatch { rx, task }
    }
}

/// New artifacts as they are announced. Dropping it stops the background task.
pub struct SourceWatch {
    rx: mpsc::Receiver<ArtifactEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl SourceWatch {
    /// The next artifact not reported before (per source).
    pub async fn next(&mut self) -> Option<ArtifactEvent> {
        self.rx.recv().await
    }
}

impl Drop for SourceWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Watcher {
    client: SourceClient,
    cfg: WatchConfig,
    tx: mpsc::Sender<ArtifactEvent>,
    last_event_id: Option<String>,
    /// Last digest reported per `(namespace, name)`: each change is sent once.
    known: HashMap<SourceKey, Digest>,
}

/// The consumer went away; the watch ends.
struct Closed;

impl Watcher {
    fn new(client: SourceClient, cfg: WatchConfig, tx: mpsc::Sender<ArtifactEvent>) -> Self {
        Self {
            client,
            cfg,
            tx,
            last_event_id: None,
            known: HashMap::new(),
        }
    }

    async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            match self.follow().await {
                Err(Closed) => return,
                Ok(Ok(())) => failures = 0,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "source event stream down; polling until it returns");
                    failures = failures.saturating_add(1);
                }
            }
            // While disconnected, poll at the poll interval but retry the stream by backoff.
            let delay = self.cfg.backoff.delay(failures);
            let mut waited = Duration::ZERO;
            while waited < delay {
                let step = (delay - waited).min(self.cfg.poll_interval);
                tokio::time::sleep(step).await;
                waited += step;
                if step == self.cfg.poll_interval && self.resync().await.is_err() {
                    return;
                }
            }
        }
    }

    /// One connection: resync, then forward events until the stream ends or fails.
    async fn follow(&mut self) -> Result<Result<(), SourceClientError>, Closed> {
        let url = format!("{}/v1/events", self.client.base);
        let mut req = self
            .client
            .authorize(self.client.stream_http.get(&url))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = &self.last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = match req.send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                self.resync().await?;
                return Ok(Err(SourceClientError::Status {
                    url,
                    status: r.status().as_u16(),
                    body: String::new(),
                }));
            }
            Err(e) => {
                self.resync().await?;
                return Ok(Err(SourceClientError::Transport {
                    url,
                    why: error_chain(&e),
                }));
            }
        };
        // Connected: catch up on anything missed while away, then follow.
        self.resync().await?;
        let mut parser = SseParser::default();
        let mut body = resp.bytes_stream();
        loop {
            let chunk = match tokio::time::timeout(self.cfg.idle_timeout, body.next()).await {
                Err(_) => {
                    return Ok(Err(SourceClientError::Stream {
                        url,
                        why: format!("nothing received for {:?}", self.cfg.idle_timeout),
                    }));
                }
                Ok(None) => return Ok(Ok(())),
                Ok(Some(Err(e))) => {
                    return Ok(Err(SourceClientError::Stream {
                        url,
                        why: error_chain(&e),
                    }));
                }
                Ok(Some(Ok(c))) => c,
            };
            let events = match parser.feed(&chunk) {
                Ok(ev) => ev,
                Err(why) => return Ok(Err(SourceClientError::Stream { url, why })),
            };
            for ev in events {
                if let Some(id) = ev.id.clone() {
                    self.last_event_id = Some(id);
                }
                if ev.event != ARTIFACT_EVENT {
                    continue;
                }
                match serde_json::from_str::<ArtifactEvent>(&ev.data) {
                    Ok(a) => self.report(a).await?,
                    Err(e) => {
                        tracing::warn!(error = %e, data = %ev.data, "ignoring malformed artifact event")
                    }
                }
            }
        }
    }

    /// Lists every GitRepository and Bucket and reports artifacts not seen yet. A failure is
    /// only logged: the stream or the next poll will try again.
    async fn resync(&mut self) -> Result<(), Closed> {
        let mut current = Vec::new();
        match self.client.list_sources().await {
            Ok(l) => current.extend(l.sources.into_iter().map(|s| {
                (
                    SourceKind::GitRepository,
                    s.namespace,
                    s.name,
                    s.status.artifact,
                )
            })),
            Err(e) => tracing::debug!(error = %e, "listing sources failed"),
        }
        match self.client.list_buckets().await {
            Ok(l) => current.extend(
                l.buckets
                    .into_iter()
                    .map(|b| (SourceKind::Bucket, b.namespace, b.name, b.status.artifact)),
            ),
            // A server without buckets (older) answers 404.
            Err(e) => tracing::debug!(error = %e, "listing buckets failed"),
        }
        for (kind, namespace, name, artifact) in current {
            if let Some(a) = artifact {
                self.report(ArtifactEvent {
                    kind,
                    namespace,
                    name,
                    revision: a.revision,
                    digest: a.digest,
                    size: a.size,
                    url: a.url,
                })
                .await?;
            }
        }
        Ok(())
    }

    async fn report(&mut self, ev: ArtifactEvent) -> Result<(), Closed> {
        let key = ev.source();
        if self.known.get(&key) == Some(&ev.digest) {
            return Ok(());
        }
        self.known.insert(key, ev.digest);
        self.tx.send(ev).await.map_err(|_| Closed)
    }
}

#[cfg(test)]
mod tests;
