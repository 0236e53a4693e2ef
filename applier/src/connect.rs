//! Wiring for the binaries: a Kubernetes client from a kubeconfig (or the usual inference) and
//! the reconcile [`Context`] built from it. The agent (`ferry-applier run`), `ferry-applier diff`
//! and the `ferry` CLI build theirs here, so they reach the cluster and the source server the
//! same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_proto::ArtifactLimits;

use crate::apply::Applier;
use crate::events::Recorder;
use crate::fetch::{ArtifactStore, CacheError, Fetcher, FetcherConfig};
use crate::metrics::Metrics;
use crate::reconcile::Context;
use crate::report::Reporter;
use crate::source_client::{SourceClient, SourceClientError};

/// Why the agent could not reach its cluster or prepare its caches.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig file named on the command line is unreadable or unusable.
    #[error("kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig was given and none could be inferred.
    #[error("no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run in a cluster ({0})")]
    Infer(#[from] kube::config::InferConfigError),
    /// The Kubernetes client could not be built from the configuration.
    #[error("creating the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    /// The artifact cache directory cannot be used.
    #[error("artifact cache {}: {source}", dir.display())]
    Cache { dir: PathBuf, source: CacheError },
    /// `--artifact-store` cannot be opened.
    #[error("artifact store: {0}")]
    Store(#[from] ferry_store::LocationError),
    /// Neither `--source-server` nor `--artifact-store` was given.
    #[error("no source of artifacts: give --source-server, --artifact-store, or both")]
    NoSource,
    /// The source server's URL cannot be used.
    #[error("source server {url}: {source}")]
    SourceServer {
        url: String,
        source: SourceClientError,
    },
}

/// A kube client from `kubeconfig`, or `$KUBECONFIG`, `~/.kube/config` or the in-cluster
/// service account.
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, ConnectError> {
    // kube and the HTTP clients must agree on one rustls provider (aws-lc-rs).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = match kubeconfig {
        Some(path) => {
            let wrap = |source| ConnectError::Kubeconfig {
                path: path.to_path_buf(),
                source,
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(wrap)?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(wrap)?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// Everything a reconcile of `namespace`'s objects needs.
/// `source_server` may be `None` only with an `artifact_store`: the agent then learns revisions
/// from the store's pointer records and reads artifacts from it alone.
pub async fn context(
    namespace: &str,
    source_server: Option<&str>,
    kubeconfig: Option<&Path>,
    cache_dir: Option<&Path>,
    limits: ArtifactLimits,
    source_token: Option<&Path>,
    artifact_store: Option<&ferry_store::StorageLocation>,
) -> Result<Context, ConnectError> {
    let token = source_token.map(|p| Arc::new(crate::source_client::SourceToken::new(p)));
    let client = client(kubeconfig).await?;
    let cache_dir = cache_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("ferry-applier-{namespace}")));
    if source_server.is_none() && artifact_store.is_none() {
        return Err(ConnectError::NoSource);
    }
    let defaults = FetcherConfig {
        server: source_server.map(str::to_string),
        ..FetcherConfig::new("", &cache_dir)
    };
    let store = match artifact_store {
        Some(location) => Some(Arc::new(ArtifactStore::open(
            location,
            std::env::vars(),
            defaults.request_timeout,
        )?)),
        None => None,
    };
    let fetcher = Fetcher::new(FetcherConfig {
        limits,
        token: token.clone(),
        store,
        ..defaults
    })
    .map_err(|source| ConnectError::Cache {
        dir: cache_dir.clone(),
        source,
    })?;
    let mut sources = match source_server {
        Some(url) => SourceClient::new(url).map_err(|source| ConnectError::SourceServer {
            url: url.to_string(),
            source,
        })?,
        None => SourceClient::none(),
    };
    if let Some(t) = token {
        sources = sources.with_token(t);
    }
    let metrics = Metrics::new();
    let reporter = Reporter::new(namespace, metrics.clone());
    Ok(Context {
        namespace: namespace.to_string(),
        applier: Applier::new(client.clone()),
        recorder: Recorder::new(client.clone(), metrics.clone(), reporter.clone()),
        reporter,
        client,
        fetcher,
        sources,
        metrics,
        artifacts: Default::default(),
        // One entry per Kustomization in steady state; a few more cover a revision change.
        renders: Arc::new(crate::render::RenderMemo::new(8)),
    })
}
