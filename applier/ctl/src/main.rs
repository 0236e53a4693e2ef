//! `ferry`: the command line for people who run Ferry, shaped like `flux` and `kubectl`.
//!
//! Every command is a thin reader or writer of what already exists: Kustomizations and
//! HelmReleases are cluster objects (read and patched through the Kubernetes API with the
//! user's kubeconfig), sources are the source server's (its HTTP API, `--source-server`), and
//! `diff`/`build` run the agent's own library code ([`ferry_applier::preview`], the native
//! kustomize engine), so what the CLI shows is what the agent would do. `export`/`import` are
//! the source server's bundle commands ([`ferry_source_server::bundle`]), linked in. Waiting follows Flux's
//! protocol: a token in `reconcile.fluxcd.io/requestedAt` (or the source server's
//! `?requestedAt=`) comes back in `status.lastHandledReconcileAt` when that reconcile is done.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

mod build;
mod events;
mod get;
mod kinds;
mod reconcile;
mod sources;
mod table;
mod tree;

use kinds::Target;

/// How a run ended; the process exit code scripts rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 0: done; the object is Ready; no differences.
    Ok,
    /// 1: the object is not Ready, the reconcile failed, or `diff` found differences.
    NotReady,
    /// 3: the wait ended before the reconcile did.
    TimedOut,
}

const EXIT_CODES: &str = "Exit codes: 0 success (Ready, no differences); 1 not Ready, reconcile failed, \
differences found (diff), or a bundle refused or not written (import, export); 2 bad usage, or the cluster or source server could not be reached; \
3 timed out waiting.";

#[derive(Debug, Parser)]
#[command(name = "ferry", version, about = "Inspect and drive Ferry: sources, Kustomizations and HelmReleases", after_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command understands.
#[derive(Debug, Args)]
pub struct Global {
    /// Kubeconfig file [default: $KUBECONFIG, ~/.kube/config, or the in-cluster account].
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the object [default: the kubeconfig context's namespace].
    #[arg(short = 'n', long, global = true, env = "FERRY_NAMESPACE")]
    pub namespace: Option<String>,
    /// Source server base URL (sources, --with-source, diff, build kustomization).
    #[arg(long, global = true, env = "FERRY_SOURCE_SERVER")]
    pub source_server: Option<String>,
    /// Artifact cache for diff and build [default: a per-namespace directory under the
    /// system temp dir, as the agent's].
    #[arg(long, global = true, env = "FERRY_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// How long to wait for a reconcile (a Go duration such as 30s or 5m).
    #[arg(long, global = true, default_value = "5m", value_parser = parse_timeout)]
    pub timeout: Duration,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    ferry_proto::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// `-o`: how `get` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// The objects as a JSON array.
    Json,
    /// The objects as YAML documents.
    Yaml,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List objects with their readiness, revision and message.
    Get {
        /// sources | kustomizations (ks) | helmreleases (hr) | all
        what: kinds::Listing,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Reconcile now and wait for the outcome (what `flux reconcile` does).
    Reconcile {
        /// kustomization (ks) | helmrelease (hr) | source (a GitRepository) | helmrepository
        target: Target,
        name: String,
        /// Reconcile the object's source first and wait for it.
        #[arg(long)]
        with_source: bool,
        /// Wait for the reconcile to finish (--wait=false returns once requested).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        wait: bool,
    },
    /// Stop reconciling an object (spec.suspend: true); what it applied stays.
    Suspend {
        /// kustomization (ks) | helmrelease (hr)
        target: Target,
        name: String,
    },
    /// Resume a suspended object, reconcile it and wait for the outcome.
    Resume {
        /// kustomization (ks) | helmrelease (hr)
        target: Target,
        name: String,
        /// Wait for the reconcile to finish.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        wait: bool,
    },
    /// What the next reconcile of a Kustomization would change (exit 1 when anything).
    Diff {
        /// kustomization (ks)
        target: Target,
        name: String,
    },
    /// Print the objects a Kustomization would apply (`build kustomization NAME`), or build a
    /// kustomization directory like `kustomize build` (`build DIR`).
    Build(build::BuildArgs),
    /// The objects a Kustomization or HelmRelease applied, as a tree (nested Kustomizations
    /// expanded).
    Tree {
        /// kustomization (ks) | helmrelease (hr)
        target: Target,
        name: String,
    },
    /// Kubernetes Events about Ferry's objects, oldest first.
    Events {
        /// Only events about this object, `Kind/name` (e.g. Kustomization/app).
        #[arg(long = "for")]
        for_object: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Write an air-gap bundle of a source server's store (the same command as
    /// `ferry-source-server export`; prints the bundle's identity).
    Export(ferry_source_server::bundle::ExportArgs),
    /// Verify a bundle and add it to a source server's store (the same command as
    /// `ferry-source-server import`); nothing is written unless all of it verifies.
    Import(ferry_source_server::bundle::ImportArgs),
    /// Print a shell completion script (e.g. `ferry completion bash > /etc/bash_completion.d/ferry`).
    Completion { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completion { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::NotReady) => ExitCode::from(1),
        Ok(Outcome::TimedOut) => ExitCode::from(3),
        Err(e) => {
            eprintln!("✗ {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The bundle commands run the source server's own code (one implementation, linked in: the
/// CLI needs no server binary next to it); a refused bundle is exit 1, like a failed reconcile.
fn bundle(
    result: Result<String, ferry_source_server::bundle::BundleError>,
) -> anyhow::Result<Outcome> {
    match result {
        Ok(report) => {
            println!("{report}");
            Ok(Outcome::Ok)
        }
        Err(e) => {
            eprintln!("✗ {e}");
            Ok(Outcome::NotReady)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let g = &cli.global;
    match cli.command {
        Command::Get {
            what,
            all_namespaces,
            output,
        } => get::run(g, what, all_namespaces, output).await,
        Command::Reconcile {
            target,
            name,
            with_source,
            wait,
        } => reconcile::reconcile(g, target, &name, with_source, wait).await,
        Command::Suspend { target, name } => reconcile::suspend(g, target, &name, true).await,
        Command::Resume { target, name, wait } => {
            reconcile::suspend(g, target, &name, false).await?;
            reconcile::reconcile(g, target, &name, false, wait).await
        }
        Command::Diff { target, name } => build::diff(g, target, &name).await,
        Command::Build(args) => build::build(g, &args).await,
        Command::Tree { target, name } => tree::run(g, target, &name).await,
        Command::Events {
            for_object,
            all_namespaces,
        } => events::run(g, for_object.as_deref(), all_namespaces).await,
        Command::Export(args) => bundle(ferry_source_server::bundle::run_export(args).await),
        Command::Import(args) => bundle(ferry_source_server::bundle::run_import(args).await),
        Command::Completion { .. } => unreachable!("handled before the runtime starts"),
    }
}
