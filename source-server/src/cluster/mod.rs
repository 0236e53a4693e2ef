//! Cluster mode (`serve --cluster`): sources are objects in the cluster, and their status is
//! written back, so `kubectl get gitrepositories -A` shows what the server does.
//!
//! Design. The cluster is one more feeder of the desired-state seam ([`crate::config`]):
//! [`feed`] watches the source kinds in every namespace (or those `--namespace-selector`
//! picks) as untyped objects — one object the Rust type cannot read must not stop the watch
//! of all the others — and, after each burst of changes, writes the objects it sees (plus the
//! Secrets their `secretRef`s name, read from the source's own namespace and nowhere else) as
//! documents and hands them to [`crate::config::parse`], the same code that reads the config
//! file. So validation, error messages and "a refused edit keeps the last valid version" are
//! one implementation for both modes. `reconcile.fluxcd.io/requestedAt` on an object becomes
//! a reconcile request through the controller, as `POST …/reconcile` does over HTTP.
//! [`status`] writes each source's status (conditions, artifact, observedGeneration,
//! lastHandledReconcileAt) back through the status subresource whenever it changes. A
//! deleted object leaves the desired state, so the controller stops it and its artifacts are
//! collected, as when a document leaves the file.

mod feed;
mod status;

use std::sync::Arc;

use kube::Client;
use kube::discovery::ApiResource;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::DesiredState;
use crate::reconcile::Controller;

pub use feed::FeedError;

/// How the server finds its sources in the cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Only namespaces whose labels match this selector (`kubectl`'s syntax); all when `None`.
    pub namespace_selector: Option<String>,
    /// Authenticate API requests and scope them to tenants ([`crate::tenancy`]).
    pub tenancy: bool,
    /// The audience agents' tokens must be minted for.
    pub audience: String,
    /// Users in these groups see every source.
    pub operator_groups: Vec<String>,
    /// Sources in these namespaces are visible to every tenant.
    pub shared_namespaces: Vec<String>,
}

/// The audience agents' projected ServiceAccount tokens are minted for (deploy/agent).
pub const DEFAULT_AUDIENCE: &str = "ferry-source-server";

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            namespace_selector: None,
            tenancy: true,
            audience: DEFAULT_AUDIENCE.into(),
            operator_groups: Vec::new(),
            shared_namespaces: Vec::new(),
        }
    }
}

/// The source kinds the server follows in a cluster.
pub(crate) fn source_kinds() -> [(ApiResource, &'static str); 2] {
    [
        (
            ApiResource::erase::<ferry_proto::GitRepository>(&()),
            "GitRepository",
        ),
        (
            ApiResource::erase::<ferry_proto::HelmRepository>(&()),
            "HelmRepository",
        ),
    ]
}

/// The running watchers and status writer; stopped when dropped.
pub struct ClusterFeed {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ClusterFeed {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts following the cluster: returns once the first complete desired state (every source
/// object listed) is on the seam.
pub async fn start(
    client: Client,
    controller: Controller,
    tx: watch::Sender<Arc<DesiredState>>,
    opts: ClusterOptions,
    policy: Arc<crate::tenancy::Policy>,
) -> Result<ClusterFeed, FeedError> {
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let feed = tokio::spawn(feed::run(
        client.clone(),
        controller.clone(),
        tx,
        opts,
        policy,
        first_tx,
    ));
    let writer = tokio::spawn(status::run(client, controller));
    let guard = ClusterFeed {
        tasks: vec![feed, writer],
    };
    match first_rx.await {
        Ok(Ok(())) => Ok(guard),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(FeedError::Stopped),
    }
}
