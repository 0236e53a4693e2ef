//! Source and notification objects in the cluster → documents → [`crate::config::parse`] → the seam.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot, watch};

use super::{ClusterOptions, followed_kinds};
use crate::SourceKey;
use crate::config::{self, CrossNamespaceRefs, DesiredState};
use crate::reconcile::{Controller, TriggerError};
use crate::tenancy::{Policy, SHARED_WITH, Sharing};
use ferry_proto::SourceKind;
use ferry_proto::kustomization::RECONCILE_REQUESTED_AT;

/// Changes closer together than this are read as one.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Secrets are read, not watched (the server may `get` them, nothing more): this often a
/// changed Secret is noticed even when no source changed.
const SECRET_REFRESH: Duration = Duration::from_secs(30);
/// A reconcile request for a source the controller does not run yet is retried this often.
const RETRY: Duration = Duration::from_secs(1);

/// Why the cluster cannot be followed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// A source kind cannot be listed: its CRD is not installed, or RBAC refuses it.
    #[error(
        "cannot list {kind} in the cluster (is deploy/crds applied, and may this identity list it?): {source}"
    )]
    List {
        /// The kind.
        kind: &'static str,
        /// The API's answer.
        source: kube::Error,
    },
    /// The objects in the cluster do not make a desired state (more documents than the limit).
    #[error("sources in the cluster: {0}")]
    Load(#[from] config::LoadError),
    /// The feed stopped before its first state.
    #[error("the cluster watch stopped before listing every source")]
    Stopped,
}

struct Kind {
    resource: ApiResource,
    kind: &'static str,
    source: Option<SourceKind>,
    store: Store<DynamicObject>,
}

pub(super) async fn run(
    client: Client,
    controller: Controller,
    tx: watch::Sender<Arc<DesiredState>>,
    opts: ClusterOptions,
    policy: Arc<Policy>,
    first: oneshot::Sender<Result<(), FeedError>>,
) {
    let changed = Arc::new(Notify::new());
    let mut kinds = Vec::new();
    for super::Followed {
        resource,
        kind,
        source,
    } in followed_kinds()
    {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        if let Err(source) = api.list_metadata(&ListParams::default().limit(1)).await {
            let _ = first.send(Err(FeedError::List { kind, source }));
            return;
        }
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        tokio::spawn(drive(kind, stream, changed.clone()));
        kinds.push(Kind {
            resource,
            kind,
            source,
            store,
        });
    }
    let namespaces = opts.namespace_selector.as_ref().map(|selector| {
        let api: Api<Namespace> = Api::all(client.clone());
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default().labels(selector)).default_backoff(),
        );
        tokio::spawn(drive("Namespace", stream, changed.clone()));
        store
    });
    for k in &kinds {
        let _ = k.store.wait_until_ready().await;
    }
    if let Some(ns) = &namespaces {
        let _ = ns.wait_until_ready().await;
    }

    let refs = if opts.tenancy {
        CrossNamespaceRefs::Refused
    } else {
        CrossNamespaceRefs::Allowed
    };
    let mut feed = Feed {
        client,
        refs,
        controller,
        tx,
        kinds,
        namespaces,
        policy,
        fingerprint: None,
        triggered: BTreeMap::new(),
        pending: BTreeSet::new(),
    };
    let result = feed.rebuild(true).await;
    let failed = result.is_err();
    let _ = first.send(result);
    if failed {
        return;
    }
    let mut secrets = tokio::time::interval(SECRET_REFRESH);
    secrets.reset();
    loop {
        let refresh_secrets = tokio::select! {
            () = changed.notified() => {
                tokio::time::sleep(DEBOUNCE).await;
                false
            }
            _ = secrets.tick() => true,
            () = tokio::time::sleep(RETRY), if !feed.pending.is_empty() => false,
        };
        if let Err(e) = feed.rebuild(refresh_secrets).await {
            tracing::warn!(error = %e, "sources in the cluster not loaded; the previous state stays");
        }
    }
}

/// Polls one watch stream (the reflector keeps the store) and signals each change.
async fn drive<K, S>(kind: &'static str, stream: S, changed: Arc<Notify>)
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(_) => changed.notify_one(),
            Err(e) => tracing::warn!(kind, error = %e, "watch failed; retrying with backoff"),
        }
    }
}

struct Feed {
    client: Client,
    /// Refused with tenancy: objects are tenants'.
    refs: CrossNamespaceRefs,
    controller: Controller,
    tx: watch::Sender<Arc<DesiredState>>,
    kinds: Vec<Kind>,
    namespaces: Option<Store<Namespace>>,
    /// Fed the `source.ferry.dev/shared-with` annotations.
    policy: Arc<Policy>,
    /// The documents of the last rebuild (without Secrets): unchanged objects — a status write
    /// of our own, say — cost no Secret reads and no parse.
    fingerprint: Option<String>,
    /// The last `requestedAt` token passed on, per source.
    triggered: BTreeMap<SourceKey, String>,
    /// Sources with a request the controller could not take yet (it does not run them yet).
    pending: BTreeSet<SourceKey>,
}

impl Feed {
    async fn rebuild(&mut self, refresh_secrets: bool) -> Result<(), FeedError> {
        let allowed: Option<BTreeSet<String>> = self
            .namespaces
            .as_ref()
            .map(|s| s.state().iter().map(|n| n.name_any()).collect());
        let mut docs = Vec::new();
        let mut secret_refs = BTreeSet::new();
        let mut requests = Vec::new();
        let mut sharing = BTreeMap::new();
        for k in &self.kinds {
            let mut objects = k.store.state();
            objects.sort_by_key(|o| (o.namespace(), o.name_any()));
            for o in objects {
                let Some(ns) = o.namespace() else { continue };
                if allowed.as_ref().is_some_and(|a| !a.contains(&ns)) {
                    continue;
                }
                let spec = o.data.get("spec").cloned().unwrap_or(Value::Null);
                for field in ["secretRef", "certSecretRef"] {
                    if let Some(name) = spec
                        .pointer(&format!("/{field}/name"))
                        .and_then(Value::as_str)
                    {
                        secret_refs.insert((ns.clone(), name.to_string()));
                    }
                }
                if let Some(kind) = k.source {
                    let key = SourceKey::of(kind, &ns, o.name_any());
                    if let Some(v) = o.annotations().get(SHARED_WITH) {
                        sharing.insert(key.clone(), Sharing::parse(v));
                    }
                    if let Some(token) = o.annotations().get(RECONCILE_REQUESTED_AT) {
                        let handled = o
                            .data
                            .pointer("/status/lastHandledReconcileAt")
                            .and_then(Value::as_str);
                        requests.push((key, token.clone(), handled == Some(token.as_str())));
                    }
                }
                docs.push(json!({
                    "apiVersion": k.resource.api_version,
                    "kind": k.kind,
                    "metadata": {
                        "name": o.name_any(),
                        "namespace": ns,
                        "generation": o.metadata.generation,
                        "labels": o.labels(),
                    },
                    "spec": spec,
                }));
            }
        }
        self.policy.set_sharing(sharing);
        let text = to_documents(&docs);
        if refresh_secrets || self.fingerprint.as_deref() != Some(text.as_str()) {
            let mut all = text.clone();
            for (ns, name) in &secret_refs {
                if let Some(doc) = self.secret(ns, name).await {
                    all.push_str("---\n");
                    all.push_str(&to_documents(&[doc]));
                }
            }
            let previous = self.tx.borrow().clone();
            let state = config::parse_with("cluster", &all, &previous, self.refs)?;
            for e in &state.errors {
                tracing::warn!(error = %e, "source object refused");
            }
            self.tx.send_if_modified(|current| {
                if **current == state {
                    return false;
                }
                *current = Arc::new(state);
                true
            });
            self.fingerprint = Some(text);
        }
        self.request(requests);
        Ok(())
    }

    /// Passes `reconcile.fluxcd.io/requestedAt` changes on to the controller, once each.
    fn request(&mut self, requests: Vec<(SourceKey, String, bool)>) {
        let present: BTreeSet<SourceKey> = requests.iter().map(|r| r.0.clone()).collect();
        self.triggered.retain(|k, _| present.contains(k));
        self.pending.retain(|k| present.contains(k));
        for (key, token, handled) in requests {
            if handled || self.triggered.get(&key) == Some(&token) {
                continue;
            }
            let result = match key.kind {
                SourceKind::HelmRepository => self.controller.trigger_helm(&key),
                _ => self.controller.trigger(&key, &token),
            };
            match result {
                Err(TriggerError::NotFound) => {
                    self.pending.insert(key);
                }
                other => {
                    if let Err(e) = other {
                        tracing::info!(source = %key, ?e, "reconcile request not taken");
                    }
                    self.pending.remove(&key);
                    self.triggered.insert(key, token);
                }
            }
        }
    }

    /// A Secret of the source's own namespace as a document (`None` when it is missing or
    /// unreadable: the source then reports the missing Secret, naming it).
    async fn secret(&self, ns: &str, name: &str) -> Option<Value> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        match api.get_opt(name).await {
            Ok(Some(s)) => Some(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": ns},
                "data": s.data.unwrap_or_default(),
            })),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(secret = %format!("{ns}/{name}"), error = %e, "cannot read Secret");
                None
            }
        }
    }
}

fn to_documents(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml::to_string(d).expect("JSON values are representable in YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}
