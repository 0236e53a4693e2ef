//! Kind → REST resource, from the API server's discovery documents.
//!
//! Discovery is cached for the life of the agent (a reconcile with nothing to do must stay
//! cheap) and refreshed when a kind is unknown, which is what happens right after a CRD in the
//! same revision was established.

use std::collections::HashMap;
use std::sync::Arc;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::discovery::{Discovery, Scope};
use tokio::sync::{Mutex, RwLock};

use super::{ApplyError, ObjectRef};

/// A resolved kind: how to reach it and whether it lives in a namespace.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

impl Resolved {
    /// The API for this kind, in `namespace` when the kind is namespaced.
    pub fn api(&self, client: &Client, namespace: &str) -> Api<DynamicObject> {
        if self.namespaced {
            Api::namespaced_with(client.clone(), namespace, &self.resource)
        } else {
            Api::all_with(client.clone(), &self.resource)
        }
    }

    /// The collection URL of this kind, in `namespace` when the kind is namespaced.
    pub fn url(&self, namespace: &str) -> String {
        use kube::Resource;
        DynamicObject::url_path(&self.resource, self.namespaced.then_some(namespace))
    }
}

pub struct Resolver {
    client: Client,
    cache: RwLock<Option<Arc<Discovery>>>,
    /// Kinds already resolved against `cache`: `Discovery::resolve_gvk` copies its group's
    /// whole resource list on every call, and a reconcile resolves every object.
    resolved: std::sync::Mutex<HashMap<GroupVersionKind, Resolved>>,
    refreshing: Mutex<u64>,
    /// When discovery last ran.
    refreshed_at: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Resolver {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: RwLock::new(None),
            resolved: Default::default(),
            refreshing: Mutex::new(0),
            refreshed_at: Default::default(),
        }
    }

    /// Resolves `id` at `version`, refreshing discovery once if the kind is not known yet.
    pub async fn resolve(&self, id: &ObjectRef, version: &str) -> Result<Resolved, ApplyError> {
        let gvk = GroupVersionKind::gvk(&id.group, version, &id.kind);
        let seen = *self.refreshing.lock().await;
        if let Some(found) = self.lookup(&gvk).await {
            return Ok(found);
        }
        self.refresh_after(seen).await?;
        self.lookup(&gvk)
            .await
            .ok_or_else(|| ApplyError::UnknownKind {
                object: id.to_string(),
                api_version: id.api_version(version),
            })
    }

    /// The current discovery snapshot, running discovery if there is none yet.
    pub async fn snapshot(&self) -> Result<Arc<Discovery>, ApplyError> {
        let seen = *self.refreshing.lock().await;
        if let Some(d) = self.cache.read().await.as_ref() {
            return Ok(d.clone());
        }
        self.refresh_after(seen).await
    }

    /// Runs discovery again when the snapshot is older than `min_age` (a kind was not found
    /// in it); `None` when it is younger, so the answer would not change.
    pub async fn refresh_if_older(
        &self,
        min_age: std::time::Duration,
    ) -> Result<Option<Arc<Discovery>>, ApplyError> {
        let seen = *self.refreshing.lock().await;
        let fresh = self
            .refreshed_at
            .lock()
            .expect("resolver lock poisoned")
            .is_some_and(|at| at.elapsed() < min_age);
        if fresh {
            return Ok(None);
        }
        self.refresh_after(seen).await.map(Some)
    }

    /// Forgets the cached discovery (after CRDs changed).
    pub async fn invalidate(&self) {
        let mut cache = self.cache.write().await;
        *cache = None;
        self.forget_resolved();
    }

    fn forget_resolved(&self) {
        self.resolved
            .lock()
            .expect("resolver lock poisoned")
            .clear();
    }

    async fn lookup(&self, gvk: &GroupVersionKind) -> Option<Resolved> {
        let cache = self.cache.read().await;
        let discovery = cache.as_ref()?;
        if let Some(r) = self
            .resolved
            .lock()
            .expect("resolver lock poisoned")
            .get(gvk)
        {
            return Some(r.clone());
        }
        let (resource, caps) = discovery.resolve_gvk(gvk)?;
        let found = Resolved {
            resource,
            namespaced: caps.scope == Scope::Namespaced,
        };
        self.resolved
            .lock()
            .expect("resolver lock poisoned")
            .insert(gvk.clone(), found.clone());
        Some(found)
    }

    /// Runs discovery unless another task already did since generation `seen`, so a burst of
    /// lookups for one new kind costs one discovery.
    async fn refresh_after(&self, seen: u64) -> Result<Arc<Discovery>, ApplyError> {
        let mut generation = self.refreshing.lock().await;
        if *generation != seen
            && let Some(d) = self.cache.read().await.as_ref()
        {
            return Ok(d.clone());
        }
        let discovery = Arc::new(
            Discovery::new(self.client.clone())
                .run()
                .await
                .map_err(ApplyError::Discovery)?,
        );
        let mut cache = self.cache.write().await;
        *cache = Some(discovery.clone());
        self.forget_resolved();
        drop(cache);
        *self.refreshed_at.lock().expect("resolver lock poisoned") =
            Some(std::time::Instant::now());
        *generation += 1;
        Ok(discovery)
    }
}
