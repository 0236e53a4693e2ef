//! Sources, read from and triggered on the source server's HTTP API (`--source-server`).

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::Global;

/// A source kind the source server serves, and its path in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    GitRepository,
    HelmRepository,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::GitRepository => "GitRepository",
            SourceKind::HelmRepository => "HelmRepository",
        }
    }

    fn path(self) -> &'static str {
        match self {
            SourceKind::GitRepository => "sources",
            SourceKind::HelmRepository => "helmrepositories",
        }
    }

    /// The field of the list response holding the items.
    fn items(self) -> &'static str {
        match self {
            SourceKind::GitRepository => "sources",
            SourceKind::HelmRepository => "repositories",
        }
    }

    /// The kind of a `sourceRef.kind` value.
    pub fn of(kind: &str) -> anyhow::Result<Self> {
        match kind {
            "" | "GitRepository" => Ok(SourceKind::GitRepository),
            "HelmRepository" => Ok(SourceKind::HelmRepository),
            other => bail!("source kind {other} is not served by the source server"),
        }
    }
}

pub struct SourceServer {
    base: String,
    http: reqwest::Client,
}

impl SourceServer {
    pub fn new(g: &Global) -> anyhow::Result<Self> {
        let Some(base) = g.source_server.as_deref() else {
            bail!(
                "sources live on the source server: pass --source-server URL or set FERRY_SOURCE_SERVER"
            );
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .context("creating the HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    async fn json(&self, url: &str) -> anyhow::Result<Option<Value>> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            bail!("GET {url}: {}", error_text(resp).await);
        }
        Ok(Some(
            resp.json().await.with_context(|| format!("GET {url}"))?,
        ))
    }

    /// Every source of `kind` (none when the server does not serve that kind).
    pub async fn list(&self, kind: SourceKind) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/v1/{}", self.base, kind.path());
        Ok(self
            .json(&url)
            .await?
            .and_then(|mut v| v[kind.items()].as_array_mut().map(std::mem::take))
            .unwrap_or_default())
    }

    /// One source, with an error naming it when the server does not have it.
    pub async fn get(&self, kind: SourceKind, ns: &str, name: &str) -> anyhow::Result<Value> {
        let url = format!("{}/v1/{}/{ns}/{name}", self.base, kind.path());
        self.json(&url)
            .await?
            .with_context(|| format!("{} {ns}/{name} not found on the source server", kind.name()))
    }

    /// Asks for a reconcile now; `token` comes back in `status.lastHandledReconcileAt`.
    pub async fn trigger(
        &self,
        kind: SourceKind,
        ns: &str,
        name: &str,
        token: &str,
    ) -> anyhow::Result<()> {
        let url = format!("{}/v1/{}/{ns}/{name}/reconcile", self.base, kind.path());
        let resp = self
            .http
            .post(&url)
            .query(&[("requestedAt", token)])
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        if !resp.status().is_success() {
            bail!("{} {ns}/{name}: {}", kind.name(), error_text(resp).await);
        }
        Ok(())
    }
}

/// The `error` field of an error response, or its status line.
async fn error_text(resp: reqwest::Response) -> String {
    let status = resp.status();
    match resp.json::<Value>().await {
        Ok(v) => v["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| status.to_string()),
        Err(_) => status.to_string(),
    }
}
