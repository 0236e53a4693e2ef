//! `ferry-testcluster`: the Kubernetes API test server as a process, for scripts, demos and
//! humans with kubectl. Runs until killed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ferry_tests::apiserver::cluster::{ADMIN_TOKEN, kubeconfig_yaml, spawn_server};
use ferry_tests::apiserver::http::Server;

#[derive(Debug, Parser)]
#[command(
    about = "An in-memory Kubernetes API server for tests (not a cluster: see tests/README.md)"
)]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:6443 (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig for the server.
    #[arg(long)]
    kubeconfig_out: PathBuf,
    /// Milliseconds until simulated Deployments/StatefulSets/DaemonSets/Jobs report ready.
    #[arg(long, default_value_t = 300)]
    workload_delay_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let url = format!("http://{addr}");
    std::fs::write(&args.kubeconfig_out, kubeconfig_yaml(&url, ADMIN_TOKEN))
        .with_context(|| format!("writing kubeconfig {}", args.kubeconfig_out.display()))?;
    eprintln!(
        "ferry-testcluster serving {url}; kubeconfig: {}",
        args.kubeconfig_out.display()
    );
    let (_tx, rx) = tokio::sync::oneshot::channel();
    let tasks = spawn_server(
        listener,
        Arc::new(Server::default()),
        Duration::from_millis(args.workload_delay_ms),
        rx,
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    for t in tasks {
        t.abort();
    }
    Ok(())
}
