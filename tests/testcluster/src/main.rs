//! `ferry-testcluster`: the Kubernetes API test server as a process, for scripts, demos and
//! humans with kubectl. Runs until killed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ferry_testcluster::cluster::{ClusterOptions, serve};
use ferry_testcluster::http::Server;

// The server is allocation-bound (JSON trees, field sets, watch events); glibc's malloc
// spent a third of its CPU growing arena heaps under concurrent writes.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Serve HTTPS (fresh self-signed CA, written into the kubeconfig) and enforce bearer-token
    /// authentication and RBAC. Without it everyone is an administrator.
    #[arg(long)]
    tls: bool,
    /// Static tokens, one `token,user,uid,"group1,group2"` per line (with --tls).
    #[arg(long, requires = "tls")]
    users: Option<PathBuf>,
    /// Milliseconds until simulated Deployments/StatefulSets/DaemonSets/Jobs report ready.
    #[arg(long, default_value_t = 300)]
    workload_delay_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let opts = ClusterOptions {
        listen: args.listen,
        workload_delay: Duration::from_millis(args.workload_delay_ms),
        tls: args.tls,
        users_file: args.users.clone(),
    };
    let (_tx, rx) = tokio::sync::oneshot::channel();
    let serving = serve(&opts, Arc::new(Server::default()), rx)
        .await
        .context("starting the test API server")?;
    std::fs::write(&args.kubeconfig_out, serving.kubeconfig())
        .with_context(|| format!("writing kubeconfig {}", args.kubeconfig_out.display()))?;
    eprintln!(
        "ferry-testcluster serving {}; kubeconfig: {}",
        serving.url,
        args.kubeconfig_out.display()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    for t in serving.tasks {
        t.abort();
    }
    Ok(())
}
