//! `ferry-source-server serve`: the source server daemon.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ferry_proto::ArtifactLimits;
use ferry_proto::limits;
use ferry_source_server::bundle;
use ferry_source_server::cluster::ClusterOptions;
use ferry_source_server::helm;
use ferry_source_server::receiver::HookLimits;
use ferry_source_server::server::{self, ConfigSource, PublicUrl, ServeOptions};
use ferry_source_server::serving;
use ferry_source_server::storage::StorageLocation;

// jemalloc returns freed memory to the system (glibc's malloc kept a burst of 10 000 event
// stream clients' memory after they left) and fragments less under many small tasks.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Mirrors Git repositories into content-addressed tarballs and serves them over HTTP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "FERRY_LOG_FORMAT")]
    log_format: LogFormat,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Bounds on one artifact: the same flags, with the same defaults, as the agent's. A
/// repository beyond them is `Ready=False` (`ArtifactTooLarge`) rather than served to agents
/// that would refuse it.
#[derive(clap::Args)]
struct LimitArgs {
    /// Largest uncompressed artifact (canonical tar), in bytes.
    #[arg(long, env = "FERRY_MAX_ARTIFACT_SIZE", default_value_t = limits::DEFAULT_MAX_TOTAL_SIZE)]
    max_artifact_size: u64,
    /// Largest single file in an artifact, in bytes.
    #[arg(long, env = "FERRY_MAX_FILE_SIZE", default_value_t = limits::DEFAULT_MAX_FILE_SIZE)]
    max_file_size: u64,
    /// Most entries (files and directories) in an artifact.
    #[arg(long, env = "FERRY_MAX_ARTIFACT_ENTRIES", default_value_t = limits::DEFAULT_MAX_ENTRIES)]
    max_artifact_entries: u64,
}

impl LimitArgs {
    fn limits(&self) -> ArtifactLimits {
        ArtifactLimits {
            max_total_size: self.max_artifact_size,
            max_file_size: self.max_file_size,
            max_entries: self.max_artifact_entries,
            ..ArtifactLimits::default()
        }
    }
}

/// Bounds on Helm repositories (Flux's flag names and defaults).
#[derive(clap::Args)]
struct HelmArgs {
    /// Largest Helm repository index.yaml, in bytes.
    #[arg(long, env = "FERRY_HELM_INDEX_MAX_SIZE", default_value_t = helm::DEFAULT_MAX_INDEX_SIZE)]
    helm_index_max_size: u64,
    /// Largest chart .tgz downloaded from a Helm repository, in bytes.
    #[arg(long, env = "FERRY_HELM_CHART_MAX_SIZE", default_value_t = helm::DEFAULT_MAX_CHART_SIZE)]
    helm_chart_max_size: u64,
    /// Largest single file in a chart, in bytes.
    #[arg(long, env = "FERRY_HELM_CHART_FILE_MAX_SIZE", default_value_t = helm::DEFAULT_MAX_CHART_FILE_SIZE)]
    helm_chart_file_max_size: u64,
    /// Drop a chart resolution no agent asked for within this long (Go duration), so its
    /// artifacts can be collected.
    #[arg(long, env = "FERRY_HELM_REGISTRATION_TTL", default_value = "168h", value_parser = ferry_proto::parse_duration)]
    helm_registration_ttl: std::time::Duration,
}

/// Cluster mode: who may see what (README, "Tenancy").
#[derive(clap::Args)]
struct TenancyArgs {
    /// Serve every source to anyone who can reach the server (no tokens): only for a cluster
    /// with a single tenant.
    #[arg(long, env = "FERRY_NO_TENANCY")]
    no_tenancy: bool,
    /// The audience agents' ServiceAccount tokens must be minted for.
    #[arg(long, env = "FERRY_TOKEN_AUDIENCE", default_value = ferry_source_server::cluster::DEFAULT_AUDIENCE)]
    token_audience: String,
    /// Users in this group see every source (repeatable), e.g. for the status page.
    #[arg(long, env = "FERRY_OPERATOR_GROUP", value_delimiter = ',')]
    operator_group: Vec<String>,
    /// Every source in this namespace is visible to every tenant (repeatable).
    #[arg(long, env = "FERRY_SHARED_NAMESPACE", value_delimiter = ',')]
    shared_namespace: Vec<String>,
}

/// Bounds on webhook calls, per Receiver.
#[derive(clap::Args)]
struct HookArgs {
    /// Calls a Receiver takes at once before answering 429 (token bucket size).
    #[arg(long, env = "FERRY_RECEIVER_BURST", default_value_t = HookLimits::default().burst)]
    receiver_burst: u32,
    /// Calls per second a Receiver takes in the long run (token bucket refill rate).
    #[arg(long, env = "FERRY_RECEIVER_RATE", default_value_t = HookLimits::default().per_second)]
    receiver_rate: f64,
    /// How long a delivery id (X-GitHub-Delivery, X-Gitlab-Event-UUID, X-Delivery-Id) is
    /// remembered; a repeat within it triggers nothing (Go duration).
    #[arg(long, env = "FERRY_RECEIVER_REPLAY_WINDOW", default_value = "10m", value_parser = ferry_proto::parse_duration)]
    receiver_replay_window: std::time::Duration,
}

// Parsed once at start: the size of the `serve` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Multi-document YAML of GitRepository, HelmRepository, Provider, Alert, Receiver and
        /// Secret objects; edits are picked up live.
        #[arg(
            long,
            env = "FERRY_CONFIG",
            required_unless_present = "cluster",
            conflicts_with = "cluster"
        )]
        config: Option<PathBuf>,
        /// Cluster mode: the sources are GitRepository and HelmRepository objects in the
        /// cluster (the kubeconfig in KUBECONFIG, or the Pod's ServiceAccount), and their status
        /// is written back.
        #[arg(long, env = "FERRY_CLUSTER")]
        cluster: bool,
        /// Cluster mode: only namespaces whose labels match this selector (e.g.
        /// `ferry.dev/tenant=true`); default every namespace.
        #[arg(long, env = "FERRY_NAMESPACE_SELECTOR", requires = "cluster")]
        namespace_selector: Option<String>,
        #[command(flatten)]
        tenancy: TenancyArgs,
        /// Artifact storage: a directory, or s3://bucket/prefix (credentials, region and
        /// endpoint from the AWS_* environment variables).
        #[arg(long, env = "FERRY_STORAGE", default_value = "./ferry-data")]
        storage: StorageLocation,
        /// Directory for the bare Git mirrors.
        #[arg(long, env = "FERRY_CACHE", default_value = "./ferry-cache")]
        cache: PathBuf,
        /// Address the HTTP API listens on.
        #[arg(long, env = "FERRY_LISTEN", default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
        /// Base URL put into artifact URLs (default: http://<listen address>).
        #[arg(long, env = "FERRY_PUBLIC_URL")]
        public_url: Option<PublicUrl>,
        /// Artifacts kept per source besides the current one.
        #[arg(long, env = "FERRY_KEEP", default_value_t = 2)]
        keep: usize,
        /// Identical events (same object, message and revision) within this interval alert
        /// once (Go duration; Flux's --rate-limit-interval).
        #[arg(long, env = "FERRY_ALERT_RATE_LIMIT_INTERVAL", default_value = "5m", value_parser = ferry_proto::parse_duration)]
        alert_rate_limit_interval: std::time::Duration,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        helm: HelmArgs,
        #[command(flatten)]
        hooks: HookArgs,
        #[command(flatten)]
        replicas: ReplicaArgs,
        #[command(flatten)]
        serving: ServingArgs,
    },
    /// Write an air-gap bundle: the store's sources, their revisions and artifacts, in one tar
    /// (prints the bundle's identity, the sha256 of its index).
    Export(bundle::ExportArgs),
    /// Verify a bundle and add it to a store (nothing is written unless all of it verifies).
    Import(bundle::ImportArgs),
    /// Write an ed25519 key pair for signing bundles (--sign-key / --verify-key).
    Keygen(bundle::KeygenArgs),
}

/// Bounds of the artifact caches downloads are served from (source-server/README.md,
/// "Serving artifacts").
#[derive(clap::Args)]
struct ServingArgs {
    /// Bytes of artifacts kept in memory, one copy shared by every request for it; larger
    /// artifacts are sent from their file (0: always from the file).
    #[arg(long, env = "FERRY_ARTIFACT_MEMORY_BUDGET", default_value_t = serving::DEFAULT_MEMORY_BUDGET)]
    artifact_memory_budget: u64,
    /// S3 storage: bytes of artifacts copied into <cache>/.artifacts, least recently used
    /// evicted first.
    #[arg(long, env = "FERRY_ARTIFACT_CACHE_SIZE", default_value_t = serving::DEFAULT_DISK_BUDGET)]
    artifact_cache_size: u64,
}

/// Several replicas on one bucket (`--storage s3://…`): each source is polled by the holder
/// of its Lease, the others serve what it stores.
#[derive(Debug, clap::Args)]
struct ReplicaArgs {
    /// Coordinate with other replicas through Leases in this namespace (needs a kubeconfig
    /// or the Pod's ServiceAccount, allowed to get/list/watch/create/update/patch/delete leases there).
    #[arg(long, env = "FERRY_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This replica's identity in the Leases; default `$POD_NAME`, else host name and pid.
    #[arg(long, env = "FERRY_REPLICA_ID", requires = "lease_namespace")]
    replica_id: Option<String>,
    /// How long a Lease outlives its holder's last renewal (failover time).
    #[arg(long, env = "FERRY_LEASE_DURATION", default_value = "15s", value_parser = ferry_proto::parse_duration)]
    lease_duration: std::time::Duration,
    /// The URL the other replicas reach this one at (a chart resolve reaching a replica that
    /// does not poll the HelmRepository is forwarded there), e.g. `http://$(POD_IP):9090`;
    /// default the public URL.
    #[arg(long, env = "FERRY_REPLICA_URL", requires = "lease_namespace")]
    replica_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: redirected logs (files, `kubectl logs`) stay plain text.
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if cli.log_format == LogFormat::Json {
        fmt.json().init();
    } else {
        fmt.init();
    }
    // gix (HTTPS) and object_store (S3) both use rustls; pick the provider once, up front.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    match cli.command {
        Command::Export(args) => {
            println!("{}", bundle::run_export(args).await?);
            Ok(())
        }
        Command::Import(args) => {
            println!("{}", bundle::run_import(args).await?);
            Ok(())
        }
        Command::Keygen(args) => {
            println!("{}", bundle::run_keygen(args)?);
            Ok(())
        }
        Command::Serve {
            config,
            cluster,
            namespace_selector,
            tenancy,
            storage,
            cache,
            listen,
            public_url,
            keep,
            alert_rate_limit_interval,
            limits,
            helm: helm_args,
            hooks,
            replicas,
            serving: serving_args,
        } => {
            let mut opts = ServeOptions::new(config.unwrap_or_default(), storage, cache);
            if cluster {
                opts.config = ConfigSource::Cluster(ClusterOptions {
                    namespace_selector,
                    tenancy: !tenancy.no_tenancy,
                    audience: tenancy.token_audience,
                    operator_groups: tenancy.operator_group,
                    shared_namespaces: tenancy.shared_namespace,
                });
            }
            opts.listen = listen;
            opts.public_url = public_url;
            opts.keep = keep;
            opts.alert_rate_limit = alert_rate_limit_interval;
            opts.limits = limits.limits();
            opts.helm = helm::HelmLimits {
                max_index_size: helm_args.helm_index_max_size,
                max_chart_size: helm_args.helm_chart_max_size,
                max_chart_file_size: helm_args.helm_chart_file_max_size,
                artifact: opts.limits.clone(),
                registration_ttl: helm_args.helm_registration_ttl,
                // server::start sets it to the cache directory.
                spool_dir: None,
            };
            opts.hooks = HookLimits {
                burst: hooks.receiver_burst,
                per_second: hooks.receiver_rate,
                replay_window: hooks.receiver_replay_window,
                ..HookLimits::default()
            };
            opts.serving = serving::ServingOptions {
                memory_budget: serving_args.artifact_memory_budget,
                cache_dir: None,
                cache_size: serving_args.artifact_cache_size,
            };
            opts.leases = replicas.lease_namespace.map(|namespace| {
                ferry_source_server::lease::LeaseOptions {
                    namespace,
                    identity: replicas.replica_id.unwrap_or_else(default_identity),
                    duration: replicas.lease_duration,
                    url: replicas.replica_url,
                }
            });
            let running = server::start(opts)
                .await
                .context("starting the source server")?;
            shutdown_signal().await?;
            tracing::info!("shutting down");
            running.shutdown().await;
            Ok(())
        }
    }
}

/// `$POD_NAME` (the Deployment sets it), else `<host name>-<pid>`.
fn default_identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

/// SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends).
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(extra: &[&str]) -> Result<Cli, clap::Error> {
        let mut args = vec!["ferry-source-server", "serve", "--config", "sources.yaml"];
        args.extend_from_slice(extra);
        Cli::try_parse_from(args)
    }

    #[test]
    fn storage_and_public_url_are_typed_and_refused_at_parse_time() {
        let cli = serve(&[
            "--storage",
            "s3://ferry/prod",
            "--public-url",
            "https://ferry.example:8443/src/",
        ])
        .expect("valid flags");
        let Command::Serve {
            storage,
            public_url,
            ..
        } = cli.command
        else {
            panic!("parsed as serve");
        };
        assert_eq!(
            storage,
            StorageLocation::S3 {
                bucket: "ferry".into(),
                prefix: "prod".into()
            }
        );
        assert_eq!(
            public_url.expect("set").to_string(),
            "https://ferry.example:8443/src"
        );

        for (flag, value, why) in [
            ("--storage", "s3://", "no bucket name"),
            (
                "--storage",
                "gs://bucket/x",
                "expected a directory or s3://bucket/prefix",
            ),
            ("--public-url", "ferry.example:9090", "http"),
            ("--public-url", "ftp://ferry.example", "not http or https"),
            ("--public-url", "http://", "public URL"),
            ("--public-url", "http://ferry.example/?a=b", "query"),
        ] {
            let err = match serve(&[flag, value]) {
                Ok(_) => panic!("{flag} {value} accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.contains(flag) && err.contains(why),
                "{flag} {value}: {err}"
            );
        }
    }
}
