//! The artifact store an agent may read straight from (`--artifact-store s3://bucket/prefix`):
//! artifacts by digest (verified by the fetcher exactly like a download from the source
//! server) and sources' pointer records (`ferry_store::pointer`), polled with conditional
//! GETs so an unchanged pointer costs a `304`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_proto::SourceKey;
use ferry_proto::api::ArtifactEvent;
use ferry_store::object_store::{self, ObjectStore};
use ferry_store::pointer::{self, PointerError, PointerRead};
use ferry_store::{LocationError, StorageLocation};

/// A read-only view of the store the source servers write.
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    describe: String,
    /// Per source: the last pointer read and its ETag, for `If-None-Match`.
    pointers: Mutex<HashMap<SourceKey, (Option<String>, ArtifactEvent)>>,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

impl ArtifactStore {
    /// Opens `location` with the S3 settings of the `AWS_*` variables in `env`, as the source
    /// server opens its `--storage`. Retries are the fetcher's (the project's backoff), so the
    /// client's own are off; one request may take `timeout`.
    pub fn open(
        location: &StorageLocation,
        env: impl IntoIterator<Item = (String, String)>,
        timeout: Duration,
    ) -> Result<Self, LocationError> {
        let retry = object_store::RetryConfig {
            max_retries: 0,
            retry_timeout: timeout,
            ..Default::default()
        };
        Ok(Self::from_store(
            ferry_store::open(location, env, Some(retry))?,
            location.to_string(),
        ))
    }

    /// Over an existing store (tests).
    pub fn from_store(store: Arc<dyn ObjectStore>, describe: impl Into<String>) -> Self {
        Self {
            store,
            describe: describe.into(),
            pointers: Mutex::default(),
        }
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }

    pub(super) fn object_store(&self) -> &dyn ObjectStore {
        self.store.as_ref()
    }

    /// `key`'s current artifact as its pointer says (`None`: no pointer), read again only when
    /// the pointer's ETag changed.
    pub async fn current(&self, key: &SourceKey) -> Result<Option<ArtifactEvent>, PointerError> {
        let cached = self
            .pointers
            .lock()
            .expect("pointer cache lock poisoned")
            .get(key)
            .cloned();
        let etag = cached.as_ref().and_then(|(e, _)| e.as_deref());
        match pointer::read(self.store.as_ref(), key, etag).await? {
            PointerRead::NotModified => Ok(cached.map(|(_, ev)| ev)),
            PointerRead::Missing => {
                self.forget(key);
                Ok(None)
            }
            PointerRead::Current { event, etag } => {
                self.pointers
                    .lock()
                    .expect("pointer cache lock poisoned")
                    .insert(key.clone(), (etag, event.clone()));
                Ok(Some(event))
            }
        }
    }

    fn forget(&self, key: &SourceKey) {
        self.pointers
            .lock()
            .expect("pointer cache lock poisoned")
            .remove(key);
    }
}
