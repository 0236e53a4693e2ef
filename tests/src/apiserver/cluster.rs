//! Starting and stopping the server: [`TestCluster::start`] binds a loopback port, serves the
//! API, runs the workload controller, writes a kubeconfig, and hands out `kube::Client`s.
//! Everything stops when the handle is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::faults::Faults;
use super::http::{Server, router};
use super::store::Store;

/// The token written into generated kubeconfigs (ignored without TLS: everyone is admin).
pub const ADMIN_TOKEN: &str = "ferry-admin-token";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("binding the test API server to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("writing kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building a kube client for {url}: {source}")]
    Client { url: String, source: kube::Error },
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Where to listen; port 0 picks a free one. Loopback by default.
    pub listen: SocketAddr,
    /// Time until simulated workloads report ready.
    pub workload_delay: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workload_delay: Duration::from_millis(300),
        }
    }
}

/// A running test API server. Dropping it stops the server and removes its kubeconfig.
pub struct TestCluster {
    url: String,
    server: Arc<Server>,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("url", &self.url)
            .finish()
    }
}

/// A kubeconfig for `url` with one context, `ferry-test`, and a bearer-token user.
pub fn kubeconfig_yaml(url: &str, token: &str) -> String {
    let v = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "ferry-test", "cluster": {"server": url}}],
        "users": [{"name": "ferry-admin", "user": {"token": token}}],
        "contexts": [{"name": "ferry-test",
                      "context": {"cluster": "ferry-test", "user": "ferry-admin", "namespace": "default"}}],
        "current-context": "ferry-test",
    });
    serde_yaml::to_string(&v).expect("a JSON value always serializes to YAML")
}

/// Serves the API on `listener` until `shutdown` fires; also runs the workload controller.
pub fn spawn_server(
    listener: TcpListener,
    server: Arc<Server>,
    workload_delay: Duration,
    shutdown: oneshot::Receiver<()>,
) -> Vec<JoinHandle<()>> {
    let controller = tokio::spawn(super::workloads::run(server.store.clone(), workload_delay));
    let app = router(server);
    let http = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = shutdown.await;
            })
            .await;
    });
    vec![controller, http]
}

impl TestCluster {
    pub async fn start(opts: ClusterOptions) -> Result<Self, ClusterError> {
        let listener =
            TcpListener::bind(opts.listen)
                .await
                .map_err(|source| ClusterError::Bind {
                    addr: opts.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ClusterError::Bind {
            addr: opts.listen,
            source,
        })?;
        let url = format!("http://{addr}");
        let dir = tempfile::tempdir().map_err(|source| ClusterError::Kubeconfig {
            path: PathBuf::from("<tempdir>"),
            source,
        })?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&url, ADMIN_TOKEN)).map_err(|source| {
            ClusterError::Kubeconfig {
                path: kubeconfig.clone(),
                source,
            }
        })?;
        let server = Arc::new(Server::default());
        let (tx, rx) = oneshot::channel();
        let tasks = spawn_server(listener, server.clone(), opts.workload_delay, rx);
        Ok(Self {
            url,
            server,
            kubeconfig,
            _dir: dir,
            shutdown: Some(tx),
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kube client talking to this server (default namespace `default`).
    pub fn client(&self) -> Result<kube::Client, ClusterError> {
        install_crypto_provider();
        let uri = self
            .url
            .parse()
            .expect("the URL was formatted from a socket address");
        let mut cfg = kube::Config::new(uri);
        cfg.default_namespace = "default".into();
        kube::Client::try_from(cfg).map_err(|source| ClusterError::Client {
            url: self.url.clone(),
            source,
        })
    }

    /// Fault-injection rules for this server.
    pub fn faults(&self) -> &Faults {
        &self.server.faults
    }

    /// Direct access to the store (inspection, or writes that bypass HTTP).
    pub fn store(&self) -> &Store {
        &self.server.store
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Open watch streams would keep a graceful shutdown waiting: abort outright.
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// kube's rustls needs one process-wide crypto provider (see shared notes); installing twice
/// is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
