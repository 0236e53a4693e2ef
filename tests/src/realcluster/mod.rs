//! The real Kubernetes control plane as a test fixture: etcd, kube-apiserver and
//! kube-controller-manager (built from the Go module proxy by `tests/scripts/real-cluster.sh
//! build`, cached outside the clone) on loopback with TLS and RBAC, plus [`nodes`], a stand-in
//! for the scheduler and kubelets so workloads become ready through the real controllers.
//!
//! [`RealCluster`] offers what tests use of `ferry_testcluster::TestCluster`
//! (`client()`, `kubeconfig_path()`), so a test can run on either; what only the test server
//! can do (fault injection, request audit) stays there. Starting is the script's job (one
//! implementation of certificates, flags and readiness); this type runs it, loads the admin
//! kubeconfig, runs the node stand-in on its own thread (so a test blocked on a child process
//! never starves it), and stops exactly its processes when dropped.

pub mod nodes;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::oneshot;

/// How long the node stand-in may take to register its Node.
const NODE_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RealClusterError {
    /// `real-cluster.sh` could not be run or failed (its stderr says why, e.g. not built).
    #[error("{command} failed ({status}): {stderr}")]
    Script {
        command: String,
        status: String,
        stderr: String,
    },
    /// The working directory could not be created.
    #[error("creating the cluster directory: {0}")]
    Dir(#[source] std::io::Error),
    /// The admin kubeconfig the script wrote is unreadable.
    #[error("loading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    /// A kube client could not be built from the kubeconfig.
    #[error("building a kube client for {path}: {source}")]
    Client { path: PathBuf, source: kube::Error },
    /// The node stand-in did not register its Node in time.
    #[error("node {node} not registered after {NODE_LIMIT:?} (last error: {last})")]
    Node { node: &'static str, last: String },
}

/// The path of `tests/scripts/real-cluster.sh`.
pub fn script() -> PathBuf {
    crate::tools::repo_root().join("tests/scripts/real-cluster.sh")
}

/// Whether tests should run on the real control plane: `FERRY_CLUSTER=real`.
pub fn requested() -> bool {
    std::env::var("FERRY_CLUSTER").is_ok_and(|v| v == "real")
}

/// A running real control plane; dropping it stops the node stand-in and the processes.
pub struct RealCluster {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    config: kube::Config,
    nodes: Option<(oneshot::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl std::fmt::Debug for RealCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealCluster")
            .field("dir", &self.dir.path())
            .field("url", &self.config.cluster_url.to_string())
            .finish()
    }
}

impl RealCluster {
    /// Starts etcd, kube-apiserver and kube-controller-manager from the cached binaries
    /// (`real-cluster.sh build` must have run), waits until a namespace can hold Pods, and
    /// registers the node stand-in.
    pub async fn start() -> Result<Self, RealClusterError> {
        ferry_testcluster::cluster::install_crypto_provider();
        let dir = tempfile::Builder::new()
            .prefix("ferry-real-")
            .tempdir()
            .map_err(RealClusterError::Dir)?;
        let kubeconfig = dir.path().join("kubeconfig");
        // Stop whatever started even if starting failed half-way.
        let mut cluster = Self {
            config: kube::Config::new("https://127.0.0.1".parse().expect("a valid URI")),
            dir,
            kubeconfig,
            nodes: None,
        };
        let out = tokio::process::Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(cluster.dir.path())
            .output()
            .await
            .map_err(|e| RealClusterError::Script {
                command: format!("{} start", script().display()),
                status: "not started".into(),
                stderr: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(RealClusterError::Script {
                command: format!(
                    "{} start {}",
                    script().display(),
                    cluster.dir.path().display()
                ),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let path = cluster.kubeconfig.clone();
        let kc = Kubeconfig::read_from(&path).map_err(|source| RealClusterError::Kubeconfig {
            path: path.clone(),
            source,
        })?;
        cluster.config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|source| RealClusterError::Kubeconfig {
                path: path.clone(),
                source,
            })?;
        cluster.start_nodes();
        cluster.wait_node().await?;
        Ok(cluster)
    }

    /// The admin kubeconfig (client certificate in `system:masters`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Where the processes' logs and pid files are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A kube client with the admin's credentials (default namespace `default`).
    pub fn client(&self) -> Result<kube::Client, RealClusterError> {
        kube::Client::try_from(self.config.clone()).map_err(|source| RealClusterError::Client {
            path: self.kubeconfig.clone(),
            source,
        })
    }

    /// Whether each process still runs, and the last lines of its log: for failure messages
    /// (a test that times out because etcd died — e.g. of a full disk — should say so).
    pub fn report(&self) -> String {
        let mut out = String::new();
        for p in ["etcd", "apiserver", "controller-manager"] {
            let pid =
                std::fs::read_to_string(self.dir().join(format!("{p}.pid"))).unwrap_or_default();
            let alive = !pid.trim().is_empty() && Path::new("/proc").join(pid.trim()).exists();
            let log =
                std::fs::read_to_string(self.dir().join(format!("{p}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(5)..].join("\n");
            out.push_str(&format!(
                "--- {p} ({}) log tail ---\n{tail}\n",
                if alive { "running" } else { "NOT running" }
            ));
        }
        out
    }

    fn start_nodes(&mut self) {
        let config = self.config.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ferry-node-standin".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime builds on a working system");
                rt.block_on(async move {
                    let client = match kube::Client::try_from(config) {
                        Ok(c) => c,
                        Err(e) => return tracing::warn!("node stand-in: {e}"),
                    };
                    tokio::select! {
                        r = nodes::run(client) => if let Err(e) = r {
                            tracing::warn!("node stand-in: {e}");
                        },
                        _ = rx => {}
                    }
                });
            })
            .expect("spawning a thread succeeds on a working system");
        self.nodes = Some((tx, thread));
    }

    async fn wait_node(&self) -> Result<(), RealClusterError> {
        let client = self.client()?;
        let nodes: kube::Api<Node> = kube::Api::all(client);
        let start = Instant::now();
        loop {
            let last = match nodes.get_opt(nodes::NODE).await {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => "absent".to_string(),
                Err(e) => e.to_string(),
            };
            if start.elapsed() > NODE_LIMIT {
                return Err(RealClusterError::Node {
                    node: nodes::NODE,
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        if let Some((tx, thread)) = self.nodes.take() {
            let _ = tx.send(());
            let _ = thread.join();
        }
        let stopped = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
        if !stopped.as_ref().is_ok_and(|s| s.success()) {
            eprintln!(
                "warning: stopping the real cluster in {} failed: {stopped:?}",
                self.dir.path().display()
            );
        }
    }
}
