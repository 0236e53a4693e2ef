//! Wiring: storage + Git and Bucket backends + controller + config watcher + HTTP listener. Used by the
//! binary and by tests, which run the whole server in-process on a loopback port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::{ArtifactLimits, Backoff};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::backend::{ByKind, GitBackend, SourceBackend};
use crate::bucket::BucketBackend;
use crate::config::{self, ConfigWatch, LoadError};
use crate::http::access::Tenancy;
use crate::reconcile::{Controller, Options};
use crate::storage::{Storage, StorageError, StorageLocation};
use crate::tenancy::Policy;
use crate::tenancy::review::Reviewer;

/// The base URL agents download artifacts from (`--public-url`): `http` or `https` with a
/// host, optionally a path, no query. Shown without a trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl(http::Uri);

/// Why a `--public-url` value is refused.
#[derive(Debug, thiserror::Error)]
#[error("public URL {url:?}: {reason}")]
pub struct PublicUrlError {
    /// The value given.
    url: String,
    /// What is wrong with it.
    reason: String,
}

impl std::str::FromStr for PublicUrl {
    type Err = PublicUrlError;

    fn from_str(url: &str) -> Result<Self, PublicUrlError> {
        let bad = |reason: String| PublicUrlError {
            url: url.to_string(),
            reason,
        };
        let uri: http::Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => return Err(bad(format!("scheme {other:?} is not http or https"))),
            None => return Err(bad("expected http://host[:port][/path]".into())),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("no host".into()));
        }
        if uri.query().is_some() {
            return Err(bad("a query cannot be the base of artifact URLs".into()));
        }
        Ok(Self(uri))
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.0.scheme_str().expect("checked when parsed");
        let authority = self.0.authority().expect("checked when parsed");
        write!(
            f,
            "{scheme}://{authority}{}",
            self.0.path().trim_end_matches('/')
        )
    }
}

/// Where the desired state comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// Multi-document YAML of `GitRepository`, `HelmRepository`, `Receiver` and `Secret` objects, watched
    /// for changes.
    File(PathBuf),
    /// Source objects in the cluster of the kubeconfig (or the Pod's ServiceAccount), whose
    /// status the server writes back ([`crate::cluster`]).
    Cluster(crate::cluster::ClusterOptions),
}

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub config: ConfigSource,
    /// A directory or `s3://bucket/prefix`.
    pub storage: StorageLocation,
    /// Where bare Git mirrors live.
    pub cache: PathBuf,
    pub listen: SocketAddr,
    /// Base URL in artifact URLs; default `http://<bound address>`.
    pub public_url: Option<PublicUrl>,
    pub keep: usize,
    /// Delays between reconciles of a failing source.
    pub backoff: Backoff,
    /// `AWS_*` settings for S3 storage; `None` reads the process environment.
    pub storage_env: Option<Vec<(String, String)>>,
    /// Bounds on one artifact; keep equal to the agents' (`ferry_proto::limits`).
    pub limits: ArtifactLimits,
    /// Bounds on Helm indexes and charts (their `artifact` limits are set from `limits`).
    pub helm: crate::helm::HelmLimits,
    /// Identical events within this interval alert once.
    pub alert_rate_limit: Duration,
    /// Bounds on webhook calls.
    pub hooks: crate::receiver::HookLimits,
    /// Replicas on one bucket coordinate through Leases ([`crate::lease`]).
    pub leases: Option<crate::lease::LeaseOptions>,
    /// Bounds of the artifact caches; an S3 store's copies go to `<cache>/.artifacts`.
    pub serving: crate::serving::ServingOptions,
}

impl ServeOptions {
    pub fn new(config: PathBuf, storage: StorageLocation, cache: PathBuf) -> Self {
        let defaults = Options::default();
        Self {
            config: ConfigSource::File(config),
            storage,
            cache,
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            public_url: None,
            keep: defaults.keep,
            backoff: defaults.backoff,
            storage_env: None,
            limits: ArtifactLimits::default(),
            helm: crate::helm::HelmLimits::default(),
            alert_rate_limit: defaults.alert_rate_limit,
            hooks: crate::receiver::HookLimits::default(),
            leases: None,
            serving: crate::serving::ServingOptions::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The artifact storage could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The config file could not be loaded.
    #[error(transparent)]
    Config(#[from] LoadError),
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The bind failure.
        source: std::io::Error,
    },
    /// The cluster could not be reached or its sources not listed.
    #[error("cluster mode: {0}")]
    Cluster(String),
    /// The mirror cache directory could not be created.
    #[error("creating mirror cache {dir}: {source}")]
    Cache {
        /// The directory.
        dir: String,
        /// The I/O failure.
        source: std::io::Error,
    },
}

/// A running server. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub addr: SocketAddr,
    pub controller: Controller,
    stop: Option<oneshot::Sender<()>>,
    /// Ends the event streams served beside hyper ([`crate::http::stream`]).
    streams_stop: watch::Sender<bool>,
    http: JoinHandle<()>,
    control: JoinHandle<()>,
    _feed: Feed,
}

/// What feeds the desired state; stops feeding when dropped.
enum Feed {
    File(#[allow(dead_code, reason = "held for its Drop")] ConfigWatch),
    Cluster(#[allow(dead_code, reason = "held for its Drop")] crate::cluster::ClusterFeed),
}

impl Running {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, stops every source task, and waits for the listener.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.streams_stop.send(true);
        self.control.abort();
        self.controller.stop();
        // Event streams never end by themselves; give other requests a moment, then cut.
        if tokio::time::timeout(Duration::from_secs(2), &mut self.http)
            .await
            .is_err()
        {
            self.http.abort();
        }
    }
}

/// Starts the server: binds, loads the config (failing when it cannot be read), and returns
/// once requests are being accepted.
pub async fn start(opts: ServeOptions) -> Result<Running, ServeError> {
    let backend: Arc<dyn SourceBackend> = {
        std::fs::create_dir_all(&opts.cache).map_err(|source| ServeError::Cache {
            dir: opts.cache.display().to_string(),
            source,
        })?;
        Arc::new(ByKind {
            git: Arc::new(GitBackend::with_limits(
                opts.cache.clone(),
                opts.limits.clone(),
            )),
            bucket: Arc::new(BucketBackend::new(opts.limits.clone())),
            mirror: Arc::new(crate::mirror::MirrorBackend::new(opts.limits.clone())),
        })
    };
    start_with_backend(opts, backend).await
}

pub async fn start_with_backend(
    opts: ServeOptions,
    backend: Arc<dyn SourceBackend>,
) -> Result<Running, ServeError> {
    let storage = match &opts.storage_env {
        Some(env) => Storage::open_with_env(&opts.storage, env.clone())?,
        None => Storage::open(&opts.storage)?,
    };
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: opts.listen,
        source,
    })?;
    let public_url = opts
        .public_url
        .as_ref()
        .map_or_else(|| format!("http://{addr}"), ToString::to_string);
    let leases = match &opts.leases {
        Some(lease_opts) => {
            let client = kube::Client::try_default().await.map_err(|e| {
                ServeError::Cluster(format!(
                    "--lease-namespace needs a kubeconfig or in-cluster config: {e}"
                ))
            })?;
            tracing::info!(namespace = %lease_opts.namespace, identity = %lease_opts.identity, "coordinating with other replicas through Leases");
            Some(Arc::new(crate::lease::Leases::new(
                client,
                lease_opts.clone(),
            )))
        }
        None => None,
    };
    let controller = Controller::new(
        storage,
        backend,
        Options {
            public_url,
            keep: opts.keep,
            backoff: opts.backoff,
            helm: crate::helm::HelmLimits {
                artifact: opts.limits.clone(),
                spool_dir: Some(opts.cache.clone()),
                ..opts.helm.clone()
            },
            alert_rate_limit: opts.alert_rate_limit,
            hooks: opts.hooks.clone(),
            // Another replica may be between writing an artifact and recording it.
            gc_grace: if leases.is_some() {
                Duration::from_secs(600)
            } else {
                Duration::ZERO
            },
            leases,
            // Mirror keys never start with '.', so this cannot be a mirror's directory.
            serving: crate::serving::ServingOptions {
                cache_dir: Some(opts.cache.join(".artifacts")),
                ..opts.serving.clone()
            },
        },
    );
    let (tx, rx) = config::channel();
    let (feed, tenancy) = match &opts.config {
        ConfigSource::File(path) => (Feed::File(config::watch_file(path.clone(), tx)?), None),
        ConfigSource::Cluster(cluster) => {
            let client = kube::Client::try_default().await.map_err(|e| {
                ServeError::Cluster(format!("no usable kubeconfig or in-cluster config: {e}"))
            })?;
            let policy = Arc::new(Policy::new(cluster.shared_namespaces.clone()));
            let tenancy = cluster.tenancy.then(|| {
                Arc::new(Tenancy {
                    reviewer: Reviewer::new(
                        client.clone(),
                        &cluster.audience,
                        cluster.operator_groups.clone(),
                    ),
                    policy: policy.clone(),
                })
            });
            let feed =
                crate::cluster::start(client, controller.clone(), tx, cluster.clone(), policy)
                    .await
                    .map_err(|e| ServeError::Cluster(e.to_string()))?;
            (Feed::Cluster(feed), tenancy)
        }
    };
    // Apply the initial config before serving, so the first requests see every source and
    // its stored artifact.
    let initial = rx.borrow().clone();
    controller.apply(&initial).await;
    let control = tokio::spawn(controller.clone().run(rx));
    let (streams_stop, stop_streams) = watch::channel(false);
    let listener = crate::http::stream::sniffing(
        listener,
        crate::http::stream::Events {
            controller: controller.clone(),
            tenancy: tenancy.clone(),
            stop: stop_streams,
        },
    )
    .map_err(|source| ServeError::Listen {
        addr: opts.listen,
        source,
    })?;
    let app = crate::http::router(controller.clone(), tenancy)
        .layer(tower_http::trace::TraceLayer::new_for_http());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let http = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(%addr, "listening");
    Ok(Running {
        addr,
        controller,
        stop: Some(stop_tx),
        streams_stop,
        http,
        control,
        _feed: feed,
    })
}
