//! `ferry-node-standin`: the scheduler-and-kubelet stand-in of
//! [`ferry_tests::realcluster::nodes`] as a process, for scripts (the demo, benchmarks) on the
//! real control plane started by `tests/scripts/real-cluster.sh`. Runs until killed.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};

#[derive(Debug, Parser)]
#[command(
    about = "Registers a Node and runs every Pod on it (bind, Running/Ready, Jobs succeed, deletions confirmed)"
)]
struct Args {
    /// Admin kubeconfig of the cluster (e.g. DIR/kubeconfig from `real-cluster.sh start DIR`).
    #[arg(long)]
    kubeconfig: PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    ferry_testcluster::cluster::install_crypto_provider();
    let kc = Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", args.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", args.kubeconfig.display()))?;
    let client = kube::Client::try_from(config).context("building a kube client")?;
    ferry_tests::realcluster::nodes::run(client)
        .await
        .context("node stand-in")?;
    Ok(())
}
