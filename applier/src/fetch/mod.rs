//! Fetch by digest: the only way an artifact reaches the renderer.
//!
//! [`Fetcher::get`] answers from memory when a verified tree for the digest is still alive,
//! else from the on-disk cache (re-verified on every read; a corrupt entry is deleted and
//! fetched again), else from the artifact store when one is configured (`--artifact-store`),
//! else from the source server — the other one when the first cannot answer; the bytes go
//! through the same verification whichever answered. Content addressing makes the cache safe to use
//! while the server is down: a digest names exactly one content, so a cached entry that
//! verifies is the artifact, whoever asks. The URL is always built from the configured server
//! and the digest rather than taken from status, so a status cannot point the agent elsewhere;
//! likewise the store's object path.

mod cache;
mod download;
mod store;
mod tree;
mod verify;

pub use cache::{Cache, CacheError};
pub use download::DownloadError;
pub(crate) use download::error_chain;
pub use store::ArtifactStore;
pub use tree::{ArtifactTree, TreeError};
#[cfg(test)]
pub(crate) use verify::gzip;
pub use verify::{VerifyError, verify};

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ferry_proto::{ArtifactLimits, ArtifactRef, Backoff, Digest, artifact_path};

/// Settings of a [`Fetcher`].
#[derive(Clone, Debug)]
pub struct FetcherConfig {
    /// Source server base URL, e.g. `http://127.0.0.1:9090`; `None` reads the store only.
    pub server: Option<String>,
    /// Cache root; entries live in `<cache_dir>/sha256/<hex>.tar.gz`.
    pub cache_dir: PathBuf,
    /// Bound on the cache's total size; least recently used entries go first.
    pub max_cache_bytes: u64,
    /// Bounds on one artifact (the source server's too: `ferry_proto::limits`);
    /// `max_total_size` holds whatever the server advertises.
    pub limits: ArtifactLimits,
    /// Delays between download tries.
    pub backoff: Backoff,
    /// Download tries, including the first.
    pub download_attempts: u32,
    /// Deadline for one HTTP request.
    pub request_timeout: Duration,
    /// Verified trees kept in memory even when nobody holds them, so an unchanged reconcile
    /// does not re-read and re-hash the cache.
    pub keep_in_memory: usize,
    /// Sent as `Authorization` to the source server (tenancy).
    pub token: Option<std::sync::Arc<crate::source_client::SourceToken>>,
    /// The bucket the source servers write, read before the server when set.
    pub store: Option<Arc<ArtifactStore>>,
}

impl FetcherConfig {
    pub fn new(server: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            server: Some(server.into()),
            cache_dir: cache_dir.into(),
            max_cache_bytes: 512 * 1024 * 1024,
            limits: ArtifactLimits::default(),
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
            download_attempts: 4,
            request_timeout: Duration::from_secs(60),
            keep_in_memory: 4,
            token: None,
            store: None,
        }
    }
}

/// Why an artifact could not be had. Every variant names the digest.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("artifact {digest}: {source}")]
    Download {
        digest: Digest,
        #[source]
        source: DownloadError,
    },
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("artifact {digest}: {source}")]
    Cache {
        digest: Digest,
        #[source]
        source: CacheError,
    },
    /// Neither the artifact store nor the source server could give the bytes.
    #[error("artifact {digest}: artifact store: {store}; source server: {server}")]
    Unavailable {
        digest: Digest,
        store: Box<DownloadError>,
        server: Box<DownloadError>,
    },
    #[error("artifact {digest}: HTTP client: {why}")]
    Client { digest: Digest, why: String },
    #[error("artifact {digest}: verification task failed: {why}")]
    Task { digest: Digest, why: String },
}

impl FetchError {
    /// True when the artifact's bytes were refused (tampered, corrupt, unsafe), as opposed to
    /// the server being unreachable.
    pub fn is_integrity(&self) -> bool {
        matches!(self, FetchError::Verify(_))
    }
}

/// Where a [`Fetcher::get`] answer came from (for logs and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Memory,
    Cache,
    Server,
    /// The artifact store (`--artifact-store`).
    Store,
}

pub struct Fetcher {
    cfg: FetcherConfig,
    http: reqwest::Client,
    cache: Cache,
    /// Every tree handed out and still alive: concurrent users share one copy, and eviction
    /// never removes an artifact in use.
    live: Mutex<HashMap<Digest, Weak<ArtifactTree>>>,
    recent: Mutex<VecDeque<Arc<ArtifactTree>>>,
    /// One fetch per digest at a time.
    inflight: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl Fetcher {
    pub fn new(cfg: FetcherConfig) -> Result<Self, CacheError> {
        let cache = Cache::open(&cfg.cache_dir, cfg.max_cache_bytes)?;
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CacheError {
                path: cfg.cache_dir.clone(),
                source: std::io::Error::other(format!("HTTP client: {e}")),
            })?;
        Ok(Self {
            cfg,
            http,
            cache,
            live: Mutex::default(),
            recent: Mutex::default(),
            inflight: Mutex::default(),
        })
    }

    pub fn config(&self) -> &FetcherConfig {
        &self.cfg
    }

    /// The artifact store, when the agent reads one.
    pub fn store(&self) -> Option<&ArtifactStore> {
        self.cfg.store.as_deref()
    }

    /// The verified tree of `artifact`: from memory, the local cache, or the source server.
    pub async fn get(&self, artifact: &ArtifactRef) -> Result<Arc<ArtifactTree>, FetchError> {
        let (tree, origin) = self.get_with_origin(artifact).await?;
        tracing::debug!(digest = %artifact.digest, ?origin, "artifact");
        Ok(tree)
    }

    /// [`Fetcher::get`], also saying where the tree came from.
    async fn get_with_origin(
        &self,
        artifact: &ArtifactRef,
    ) -> Result<(Arc<ArtifactTree>, Origin), FetchError> {
        let digest = artifact.digest;
        if let Some(t) = self.live_tree(&digest) {
            return Ok((t, Origin::Memory));
        }
        let lock = self.inflight_lock(digest);
        let _guard = lock.lock().await;
        if let Some(t) = self.live_tree(&digest) {
            return Ok((t, Origin::Memory));
        }
        let result = match self.read_cache(digest).await? {
            Some(t) => Ok((t, Origin::Cache)),
            None => self.download(artifact).await,
        };
        drop(_guard);
        self.inflight
            .lock()
            .expect("inflight map lock poisoned")
            .remove(&digest);
        let (tree, origin) = result?;
        self.remember(&tree);
        Ok((tree, origin))
    }

    /// The cached artifact, verified. The bound is the configured maximum, not the ref's
    /// size: the entry was verified before it was written, so only the digest decides whether
    /// it is still intact (and a caller that does not know the size can still use it).
    async fn read_cache(&self, digest: Digest) -> Result<Option<Arc<ArtifactTree>>, FetchError> {
        let cache = self.cache.clone();
        let limits = self.cfg.limits.clone();
        let max = limits.max_total_size;
        let out = tokio::task::spawn_blocking(move || {
            let Some(path) = cache.lookup(&digest)? else {
                return Ok(None);
            };
            match verify(|| std::fs::File::open(&path), digest, max, &limits) {
                Ok(tree) => Ok(Some(tree)),
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "cached artifact is corrupt; removing it and fetching again");
                    cache.remove(&digest)?;
                    Ok(None)
                }
            }
        })
        .await
        .map_err(|e| FetchError::Task {
            digest,
            why: e.to_string(),
        })?;
        out.map(|t| t.map(Arc::new))
            .map_err(|source| FetchError::Cache { digest, source })
    }

    async fn download(&self, a: &ArtifactRef) -> Result<(Arc<ArtifactTree>, Origin), FetchError> {
        let digest = a.digest;
        if a.size > self.cfg.limits.max_total_size {
            return Err(VerifyError::AdvertisedTooLarge {
                digest,
                size: a.size,
                limit: self.cfg.limits.max_total_size,
            }
            .into());
        }
        // Deflate never grows data by more than a few bytes per 16 KiB block, plus headers.
        let cap = a.size + a.size / 64 + 4096;
        // The body goes to a temp file in the cache, never memory: verification streams it,
        // and only verified bytes become a cache entry.
        let tmp = self
            .cache
            .temp_file()
            .map_err(|source| FetchError::Cache { digest, source })?;
        let file = || {
            tmp.as_file()
                .try_clone()
                .map(tokio::fs::File::from_std)
                .map_err(|e| FetchError::Cache {
                    digest,
                    source: CacheError {
                        path: tmp.path().to_path_buf(),
                        source: e,
                    },
                })
        };
        let origin = match (&self.cfg.store, &self.cfg.server) {
            (Some(store), server) => {
                let read = download::download_from_store(
                    store.object_store(),
                    store.describe(),
                    &ferry_store::artifact_path(&digest),
                    cap,
                    &self.cfg.backoff,
                    self.cfg.download_attempts,
                    file()?,
                )
                .await;
                match (read, server) {
                    (Ok(()), _) => Origin::Store,
                    (Err(source), None) => return Err(FetchError::Download { digest, source }),
                    (Err(store), Some(server)) => {
                        tracing::warn!(%digest, error = %store, "artifact store did not answer; trying the source server");
                        match self
                            .download_from_server(server, digest, cap, file()?)
                            .await
                        {
                            Ok(()) => Origin::Server,
                            Err(FetchError::Download { source, .. }) => {
                                return Err(FetchError::Unavailable {
                                    digest,
                                    store: Box::new(store),
                                    server: Box::new(source),
                                });
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
            (None, Some(server)) => {
                self.download_from_server(server, digest, cap, file()?)
                    .await?;
                Origin::Server
            }
            (None, None) => {
                return Err(FetchError::Client {
                    digest,
                    why: "neither a source server nor an artifact store is configured".into(),
                });
            }
        };
        let cache = self.cache.clone();
        let (size, limits) = (a.size, self.cfg.limits.clone());
        let mut keep: HashSet<Digest> = self.live_digests();
        keep.insert(digest);
        let tree = tokio::task::spawn_blocking(move || {
            let tree = verify(|| tmp.reopen(), digest, size, &limits)?;
            // A cache failure costs a re-download later, not this reconcile.
            if let Err(e) = cache.persist(tmp, &digest) {
                tracing::warn!(%digest, error = %e, "could not cache artifact");
            }
            match cache.evict(&keep) {
                Ok(gone) if !gone.is_empty() => tracing::info!(?gone, "evicted cached artifacts"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "artifact cache eviction failed"),
            }
            Ok::<_, FetchError>(tree)
        })
        .await
        .map_err(|e| FetchError::Task {
            digest,
            why: e.to_string(),
        })??;
        tracing::info!(%digest, revision = %a.revision, files = tree.len(), ?origin, "fetched artifact");
        Ok((Arc::new(tree), origin))
    }

    /// The artifact's bytes from the source server, into `out`.
    async fn download_from_server(
        &self,
        server: &str,
        digest: Digest,
        cap: u64,
        out: tokio::fs::File,
    ) -> Result<(), FetchError> {
        let url = format!("{}{}", server.trim_end_matches('/'), artifact_path(&digest));
        download::download(
            &self.http,
            &url,
            self.cfg.token.as_ref().and_then(|t| t.header()),
            cap,
            &self.cfg.backoff,
            self.cfg.download_attempts,
            out,
        )
        .await
        .map_err(|source| FetchError::Download { digest, source })
    }

    fn live_tree(&self, digest: &Digest) -> Option<Arc<ArtifactTree>> {
        let live = self.live.lock().expect("live map lock poisoned");
        live.get(digest).and_then(Weak::upgrade)
    }

    fn live_digests(&self) -> HashSet<Digest> {
        let mut live = self.live.lock().expect("live map lock poisoned");
        live.retain(|_, w| w.strong_count() > 0);
        live.keys().copied().collect()
    }

    fn remember(&self, tree: &Arc<ArtifactTree>) {
        self.live
            .lock()
            .expect("live map lock poisoned")
            .insert(tree.digest(), Arc::downgrade(tree));
        let mut recent = self.recent.lock().expect("recent list lock poisoned");
        recent.retain(|t| t.digest() != tree.digest());
        recent.push_front(tree.clone());
        recent.truncate(self.cfg.keep_in_memory);
    }

    fn inflight_lock(&self, digest: Digest) -> Arc<tokio::sync::Mutex<()>> {
        self.inflight
            .lock()
            .expect("inflight map lock poisoned")
            .entry(digest)
            .or_default()
            .clone()
    }

    /// Drops trees kept only for speed, to force a cache read.
    #[cfg(test)]
    pub(crate) fn forget_memory(&self) {
        self.recent
            .lock()
            .expect("recent list lock poisoned")
            .clear();
    }
}

#[cfg(test)]
mod tests;
