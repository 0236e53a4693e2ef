//! `ferry-applier run`: the agent.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use ferry_proto::{ArtifactLimits, limits};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The namespace this agent owns (its Kustomizations and everything they apply).
    #[arg(long, env = "FERRY_NAMESPACE")]
    pub namespace: String,
    /// Source server base URL, e.g. http://ferry-source-server.ferry-system:9090. May be left
    /// out with --artifact-store (revisions then come from the store alone, on each
    /// Kustomization's interval; HelmRepository charts need the server).
    #[arg(
        long,
        env = "FERRY_SOURCE_SERVER",
        required_unless_present = "artifact_store"
    )]
    pub source_server: Option<String>,
    /// Also read artifacts and sources' current revisions straight from the bucket the source
    /// servers write (`s3://bucket/prefix`, or a directory); S3 endpoint, region and
    /// credentials from the `AWS_*` variables, as for the source server's `--storage`.
    /// Artifacts come from the store first, else the server; while the source server is
    /// down, revisions come from the store's pointer records, read on each reconcile.
    #[arg(long, env = "FERRY_ARTIFACT_STORE")]
    pub artifact_store: Option<ferry_store::StorageLocation>,
    /// Kubeconfig file; default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account.
    #[arg(long, env = "FERRY_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Artifact cache directory (survives restarts). Default: a per-namespace directory under
    /// the system temp dir.
    #[arg(long, env = "FERRY_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// A file holding the token sent to the source server (a projected ServiceAccount token
    /// with the source server's audience; re-read as it rotates). Needed when the source server
    /// runs with tenancy (cluster mode).
    #[arg(long, env = "FERRY_SOURCE_TOKEN_FILE")]
    pub source_token_file: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (`GET /metrics`), e.g. 0.0.0.0:8080.
    #[arg(long, env = "FERRY_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "FERRY_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// The `helm` binary HelmReleases are rendered with (v4); default: `helm` on PATH.
    #[arg(long, env = "FERRY_HELM", default_value = "helm")]
    pub helm_binary: PathBuf,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Bounds on one artifact: the same flags, with the same defaults, as the source server's
/// (`ferry_proto::limits`), so what the server serves the agent accepts.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Largest uncompressed artifact (canonical tar), in bytes.
    #[arg(long, env = "FERRY_MAX_ARTIFACT_SIZE", default_value_t = limits::DEFAULT_MAX_TOTAL_SIZE)]
    pub max_artifact_size: u64,
    /// Largest single file in an artifact, in bytes.
    #[arg(long, env = "FERRY_MAX_FILE_SIZE", default_value_t = limits::DEFAULT_MAX_FILE_SIZE)]
    pub max_file_size: u64,
    /// Most entries (files and directories) in an artifact.
    #[arg(long, env = "FERRY_MAX_ARTIFACT_ENTRIES", default_value_t = limits::DEFAULT_MAX_ENTRIES)]
    pub max_artifact_entries: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> ArtifactLimits {
        ArtifactLimits {
            max_total_size: self.max_artifact_size,
            max_file_size: self.max_file_size,
            max_entries: self.max_artifact_entries,
            ..ArtifactLimits::default()
        }
    }
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: redirected logs (files, `kubectl logs`) stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if format == LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    init_logs(args.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let ctx = ferry_applier::connect::context(
            &args.namespace,
            args.source_server.as_deref(),
            args.kubeconfig.as_deref(),
            args.cache_dir.as_deref(),
            args.limits.limits(),
            args.source_token_file.as_deref(),
            args.artifact_store.as_ref(),
        )
        .await?;
        if let Some(addr) = &args.metrics_addr {
            let listener = tokio::net::TcpListener::bind(*addr)
                .await
                .with_context(|| format!("metrics address {addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, "serving metrics");
            let metrics = ctx.metrics.clone();
            tokio::spawn(async move {
                if let Err(e) = metrics.serve(listener).await {
                    tracing::error!(error = %e, "metrics server stopped");
                }
            });
        }
        tracing::info!(namespace = %args.namespace, source_server = ?args.source_server, artifact_store = ?args.artifact_store.as_ref().map(ToString::to_string), "agent starting");
        // Events and object summaries go to the source server from their own task.
        if ctx.sources.is_configured() {
            tokio::spawn(ctx.reporter.clone().run(ctx.sources.clone()));
        }
        let ctx = Arc::new(ctx);
        // Discovery up front, so the first reconcile does not wait for it; on failure the first
        // reconcile runs it again.
        let warm = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = warm.applier.resolver().snapshot().await {
                tracing::debug!(error = %e, "API discovery at start failed; retried on first use");
            }
        });
        let launcher = std::env::current_exe().context("locating the agent's own binary")?;
        let mut helm_config =
            ferry_applier::helm::HelmConfig::new(resolve_helm(&args.helm_binary), launcher);
        helm_config.cluster = cluster_access(args.kubeconfig.as_deref());
        let helm = Arc::new(ferry_applier::helm::HelmContext::new(helm_config));
        let shutdown = futures::FutureExt::shared(Box::pin(shutdown_signal()));
        tokio::join!(
            ferry_applier::controller::run(ctx.clone(), shutdown.clone()),
            ferry_applier::helm::controller::run(ctx, helm, shutdown),
        );
        tracing::info!("agent stopped");
        Ok(())
    })
}

/// The agent's own credentials for helm's `lookup` (`spec.lookup`), found as the agent found
/// them: `--kubeconfig`, `KUBECONFIG`, `~/.kube/config` (made absolute: helm runs in another
/// directory), else the in-cluster service account.
fn cluster_access(
    kubeconfig: Option<&std::path::Path>,
) -> Option<ferry_applier::helm::render::ClusterAccess> {
    use ferry_applier::helm::render::ClusterAccess;
    let file = kubeconfig
        .map(std::path::Path::to_path_buf)
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".kube/config"))
                .filter(|p| p.is_file())
        });
    if let Some(path) = file {
        return Some(ClusterAccess::Kubeconfig(
            std::path::absolute(&path).unwrap_or(path),
        ));
    }
    let vars: Vec<(String, String)> = ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    (vars.len() == 2).then_some(ClusterAccess::InCluster(vars))
}

/// `helm` as given, or found on PATH when given as a bare name (the child gets no PATH).
pub fn resolve_helm(binary: &std::path::Path) -> PathBuf {
    if binary.components().count() > 1 {
        return binary.to_path_buf();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
        .unwrap_or_else(|| binary.to_path_buf())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
