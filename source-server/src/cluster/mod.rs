//! Cluster mode (`serve --cluster`): sources are objects in the cluster, and their status is
//! written back, so `kubectl get gitrepositories -A` shows what the server does.
//!
//! Design. The cluster is one more feeder of the desired-state seam ([`crate::config`]):
//! [`feed`] watches the source kinds (GitRepository, HelmRepository, Bucket) and the
//! notification kinds (Receiver, Provider, Alert) in every namespace (or those `--namespace-selector`
//! picks) as untyped objects — one object the Rust type cannot read must not stop the watch
//! of all the others — and, after each burst of changes, writes the objects it sees (plus the
//! Secrets their `secretRef`s name, read from the object's own namespace and nowhere else) as
//! documents and hands them to [`crate::config::parse`], the same code that reads the config
//! file. So validation, error messages and "a refused edit keeps the last valid version" are
//! one implementation for both modes. `reconcile.fluxcd.io/requestedAt` on an object becomes
//! a reconcile request through the controller, as `POST …/reconcile` does over HTTP.
//! [`status`] writes each source's status (conditions, artifact, observedGeneration,
//! lastHandledReconcileAt) and each Receiver's (conditions, webhookPath) back through the
//! status subresource whenever it changes. Receivers' hook paths stay an in-memory index fed
//! by the watch, so a webhook call costs no API request. With tenancy, objects are a
//! tenant's: a Receiver names only sources of its own namespace, an Alert selects other
//! namespaces' sources only when they are shared with it
//! ([`crate::config::CrossNamespaceRefs`]). A
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
use ferry_proto::SourceKind;

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

/// One kind the server follows in a cluster.
pub(crate) struct Followed {
    pub resource: ApiResource,
    pub kind: &'static str,
    /// For sources: their kind (sharing, reconcile requests); `None` for notification objects.
    pub source: Option<SourceKind>,
}

/// The kinds the server follows in a cluster: the sources, then Receivers, Providers, Alerts.
pub(crate) fn followed_kinds() -> Vec<Followed> {
    let source = |resource, kind: SourceKind| Followed {
        resource,
        kind: kind.as_str(),
        source: Some(kind),
    };
    let notification = |resource, kind| Followed {
        resource,
        kind,
        source: None,
    };
    vec![
        source(
            ApiResource::erase::<ferry_proto::GitRepository>(&()),
            SourceKind::GitRepository,
        ),
        source(
            ApiResource::erase::<ferry_proto::HelmRepository>(&()),
            SourceKind::HelmRepository,
        ),
        source(
            ApiResource::erase::<ferry_proto::Bucket>(&()),
            SourceKind::Bucket,
        ),
        notification(ApiResource::erase::<ferry_proto::Receiver>(&()), "Receiver"),
        notification(ApiResource::erase::<ferry_proto::Provider>(&()), "Provider"),
        notification(ApiResource::erase::<ferry_proto::Alert>(&()), "Alert"),
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
        opts.clone(),
        policy.clone(),
        first_tx,
    ));
    if opts.tenancy {
        controller.notifications().set_policy(policy.clone());
    }
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
