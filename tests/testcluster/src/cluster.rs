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
    #[error("setting up TLS/authentication: {0}")]
    Auth(#[from] super::auth::AuthError),
    #[error("reading users file {path}: {source}")]
    UsersFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Where to listen; port 0 picks a free one. Loopback by default.
    pub listen: SocketAddr,
    /// Time until simulated workloads report ready.
    pub workload_delay: Duration,
    /// Serve HTTPS with a fresh self-signed CA and enforce authentication and RBAC. The
    /// kubeconfig then carries the CA and an administrator token.
    pub tls: bool,
    /// Static tokens (`token,user,uid,"group1,group2"` per line, like kube's token file);
    /// only used with `tls`.
    pub users_file: Option<PathBuf>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workload_delay: Duration::from_millis(300),
            tls: false,
            users_file: None,
        }
    }
}

/// A started server: where it is, how to reach it, and its tasks.
pub struct Serving {
    pub url: String,
    /// The administrator's bearer token (meaningful with TLS).
    pub admin_token: String,
    /// The CA to trust, with TLS.
    pub tls: Option<super::auth::TlsMaterial>,
    pub tasks: Vec<JoinHandle<()>>,
}

impl Serving {
    /// A kubeconfig for this server (context `ferry-test`, namespace `default`).
    pub fn kubeconfig(&self) -> String {
        kubeconfig_yaml(
            &self.url,
            &self.admin_token,
            self.tls.as_ref().map(|t| t.ca_data()).as_deref(),
        )
    }
}

/// Binds, then serves the API (plain HTTP, or HTTPS behind authentication and RBAC) and runs
/// the workload controller until `shutdown` fires.
pub async fn serve(
    opts: &ClusterOptions,
    server: Arc<Server>,
    shutdown: oneshot::Receiver<()>,
) -> Result<Serving, ClusterError> {
    let bind_err = |source| ClusterError::Bind {
        addr: opts.listen,
        source,
    };
    let listener = TcpListener::bind(opts.listen).await.map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    let controller = tokio::spawn(super::workloads::run(
        server.store.clone(),
        opts.workload_delay,
    ));
    let shutdown = async {
        let _ = shutdown.await;
    };
    if !opts.tls {
        let app = router(server);
        let http = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        return Ok(Serving {
            url: format!("http://{addr}"),
            admin_token: ADMIN_TOKEN.to_string(),
            tls: None,
            tasks: vec![controller, http],
        });
    }
    install_crypto_provider();
    let users = match &opts.users_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ClusterError::UsersFile {
                path: path.clone(),
                source,
            })?;
            super::auth::parse_users_file(&text)?
        }
        None => Vec::new(),
    };
    let mut authn = super::auth::Authenticator::new(users);
    let admin_token = authn.add_admin("ferry-admin");
    let material = super::auth::TlsMaterial::generate(&["127.0.0.1", "localhost"])?;
    let tls_listener =
        super::auth::TlsListener::new(listener, material.server_config()?).map_err(bind_err)?;
    let gate = super::auth::Gate::new(server.store.clone(), authn);
    let app = super::auth::secure(router(server), gate);
    let https = tokio::spawn(async move {
        let _ = axum::serve(tls_listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok(Serving {
        url: format!("https://{addr}"),
        admin_token,
        tls: Some(material),
        tasks: vec![controller, https],
    })
}

/// A running test API server. Dropping it stops the server and removes its kubeconfig.
pub struct TestCluster {
    url: String,
    admin_token: String,
    ca_der: Option<Vec<u8>>,
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

/// A kubeconfig for `url` with one context, `ferry-test`, and a bearer-token user
/// (`ca_data`: base64 PEM of the CA to trust, for HTTPS).
pub fn kubeconfig_yaml(url: &str, token: &str, ca_data: Option<&str>) -> String {
    let mut cluster = json!({"server": url});
    if let Some(ca) = ca_data {
        cluster["certificate-authority-data"] = json!(ca);
    }
    let v = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "ferry-test", "cluster": cluster}],
        "users": [{"name": "ferry-admin", "user": {"token": token}}],
        "contexts": [{"name": "ferry-test",
                      "context": {"cluster": "ferry-test", "user": "ferry-admin", "namespace": "default"}}],
        "current-context": "ferry-test",
    });
    serde_yaml::to_string(&v).expect("a JSON value always serializes to YAML")
}

impl TestCluster {
    pub async fn start(opts: ClusterOptions) -> Result<Self, ClusterError> {
        let server = Arc::new(Server::default());
        let (tx, rx) = oneshot::channel();
        let serving = serve(&opts, server.clone(), rx).await?;
        let dir = tempfile::tempdir().map_err(|source| ClusterError::Kubeconfig {
            path: PathBuf::from("<tempdir>"),
            source,
        })?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, serving.kubeconfig()).map_err(|source| {
            ClusterError::Kubeconfig {
                path: kubeconfig.clone(),
                source,
            }
        })?;
        Ok(Self {
            url: serving.url,
            admin_token: serving.admin_token,
            ca_der: serving.tls.as_ref().map(|t| t.ca_der().to_vec()),
            server,
            kubeconfig,
            _dir: dir,
            shutdown: Some(tx),
            tasks: serving.tasks,
        })
    }

    /// The administrator's bearer token (what the kubeconfig uses).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS).
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
        if let Some(ca) = &self.ca_der {
            cfg.root_cert = Some(vec![ca.clone()]);
            cfg.auth_info = serde_json::from_value(json!({"token": self.admin_token}))
                .expect("an AuthInfo with only a token deserializes");
        }
        kube::Client::try_from(cfg).map_err(|source| ClusterError::Client {
            url: self.url.clone(),
            source,
        })
    }

    /// Fault-injection rules for this server.
    pub fn faults(&self) -> &Faults {
        &self.server.faults
    }

    /// How many requests of each verb and resource the server answered.
    pub fn audit(&self) -> &super::audit::Audit {
        &self.server.audit
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
