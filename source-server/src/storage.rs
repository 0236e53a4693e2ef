//! Artifact and state storage on any `object_store` backend (a local directory or S3).
//!
//! Layout under the store's root (the shared part is defined in `ferry-store`, which agents
//! read with `--artifact-store`):
//! - `artifacts/sha256/<hex>.tar.gz` — content-addressed, written create-only: two writers of
//!   the same digest write the same content, so `AlreadyExists` is success.
//! - `pointers/<gitrepositories|buckets>/<namespace>/<name>.json` — the source's current
//!   artifact as its event announces it, written after the artifact and the state record, for
//!   agents that poll the bucket (`ferry_store::pointer`). Its own small object rather than the
//!   state record: the record changes with history and skipped entries, and a reader's
//!   conditional GET should answer `304` until the artifact changes.
//! - `state/sources/<namespace>/<name>.json` — a [`SourceState`] per GitRepository (current
//!   artifact plus history), so a restarted server serves the same artifacts without refetching.
//! - `state/buckets/<namespace>/<name>.json` — the same record per Bucket.
//! - `state/helmrepositories/<namespace>/<name>.json` — a [`SourceState`] per HelmRepository:
//!   its registered chart resolutions ([`ChartRecord`]) and their artifacts.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use serde::{Deserialize, Serialize};

use ferry_proto::api::ArtifactEvent;
use ferry_proto::{ArtifactRef, Digest, SkippedEntry, SourceKind};
pub use ferry_store::StorageLocation;

use crate::SourceKey;

/// A state file larger than this is refused: it holds one source's record, a few KiB at most.
const MAX_STATE_BYTES: u64 = 1 << 20;

/// Why a storage operation failed; every variant names the location or path.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `--storage` cannot be used.
    #[error(transparent)]
    Location(#[from] ferry_store::LocationError),
    /// The object store refused an operation.
    #[error("storage: {op} {path}: {source}")]
    Store {
        /// The operation (`put`, `get`, ...).
        op: &'static str,
        /// The object's path.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A pointer record could not be read or written.
    #[error("storage: {0}")]
    Pointer(#[from] ferry_store::pointer::PointerError),
    /// A source's state record cannot be read back.
    #[error("storage: state file {path} is invalid: {reason}")]
    BadState {
        /// The state file's path.
        path: String,
        /// Why it is refused.
        reason: String,
    },
}

/// What the server remembers about a source across restarts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceState {
    /// The artifact served now (the last good one).
    #[serde(default)]
    pub artifact: Option<ArtifactRef>,
    /// Earlier artifacts, newest first, without the current one. GC trims it to `--keep`.
    #[serde(default)]
    pub history: Vec<Digest>,
    /// The ignore patterns `artifact` was built with (`spec.ignore`).
    #[serde(default)]
    pub observed_ignore: Option<String>,
    #[serde(default)]
    pub skipped: Vec<SkippedEntry>,
    /// HelmRepository only: the chart resolutions agents asked for, with their artifacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<ChartRecord>,
    /// HelmRepository only: the index the charts were resolved from, so replicas that do not
    /// poll the repository show what its poller fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<ferry_proto::HelmIndexArtifact>,
}

/// A registered chart resolution of a HelmRepository: `(chart, range)`, what it resolved to,
/// and the artifacts it resolved to before (newest first, trimmed to `--keep`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartRecord {
    pub chart: String,
    /// The range as the agent gave it (`*` when it gave none).
    pub range: String,
    /// The chart version as written in the index.
    pub version: String,
    /// The index entry's `digest` (or its first URL when it has none): the same version
    /// re-published with other bytes is packed again.
    pub source: String,
    pub artifact: ArtifactRef,
    #[serde(default)]
    pub history: Vec<Digest>,
    /// When an agent last asked for this resolution.
    pub last_resolved: chrono::DateTime<chrono::Utc>,
}

/// Where artifacts and state live.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    describe: String,
    /// The root directory of directory storage (artifacts are served from its files).
    dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// Size and byte range of an artifact read.
pub struct ArtifactRead {
    pub total: u64,
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes, StorageError>>,
}

impl Storage {
    /// Opens `location`; for S3, credentials, region and endpoint come from the standard
    /// `AWS_*` environment variables (e.g. `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`).
    pub fn open(location: &StorageLocation) -> Result<Self, StorageError> {
        Self::open_with_env(location, std::env::vars())
    }

    /// [`Self::open`] with the `AWS_*` variables taken from `env` instead of the process.
    pub fn open_with_env(
        location: &StorageLocation,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, StorageError> {
        let store = ferry_store::open(location, env, None)?;
        let dir = match location {
            StorageLocation::Dir(dir) => Some(dir.clone()),
            StorageLocation::S3 { .. } => None,
        };
        Ok(Self {
            store,
            describe: location.to_string(),
            dir,
        })
    }

    /// A storage over an existing store (tests, other backends).
    pub fn from_store(store: Arc<dyn ObjectStore>, describe: impl Into<String>) -> Self {
        Self {
            store,
            describe: describe.into(),
            dir: None,
        }
    }

    /// The directory of directory storage; `None` for a remote store.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    pub fn artifact_path(digest: &Digest) -> Path {
        ferry_store::artifact_path(digest)
    }

    /// Records `event` as its source's current artifact for agents reading the store; call it
    /// after the artifact is stored.
    pub async fn put_pointer(&self, event: &ArtifactEvent) -> Result<(), StorageError> {
        Ok(ferry_store::pointer::write(self.store.as_ref(), event).await?)
    }

    /// Removes a deleted source's pointer.
    pub async fn delete_pointer(&self, key: &SourceKey) -> Result<(), StorageError> {
        if ferry_store::pointer::pointer_path(key).is_err() {
            return Ok(()); // kinds without pointers
        }
        Ok(ferry_store::pointer::delete(self.store.as_ref(), key).await?)
    }

    /// Digests every pointer in the store names (GC keeps them, whoever wrote the pointer).
    pub async fn pointed_artifacts(&self) -> Result<Vec<Digest>, StorageError> {
        let pointers = ferry_store::pointer::list(self.store.as_ref()).await?;
        Ok(pointers.into_iter().map(|p| p.digest).collect())
    }

    fn state_dir(kind: SourceKind) -> &'static str {
        match kind {
            SourceKind::GitRepository => "state/sources",
            SourceKind::Bucket => "state/buckets",
            // Chart resolutions are recorded in their repository's state.
            SourceKind::HelmRepository | SourceKind::HelmChart => "state/helmrepositories",
        }
    }

    fn state_path(key: &SourceKey) -> Path {
        Path::from(format!(
            "{}/{}/{}.json",
            Self::state_dir(key.kind),
            key.namespace,
            key.name
        ))
    }

    fn err(op: &'static str, path: &Path) -> impl FnOnce(object_store::Error) -> StorageError {
        let path = path.to_string();
        move |source| StorageError::Store { op, path, source }
    }

    /// Stores a gzip artifact under its digest. Create-only: an existing object of the same
    /// digest has the same content, so that is success.
    pub async fn put_artifact(&self, digest: &Digest, gz: Bytes) -> Result<(), StorageError> {
        let path = Self::artifact_path(digest);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from_bytes(gz), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(Self::err("writing", &path)(e)),
        }
    }

    /// The compressed size of an artifact, or `None` when it is not stored.
    pub async fn artifact_size(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        let path = Self::artifact_path(digest);
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Self::err("reading", &path)(e)),
        }
    }

    /// Streams an artifact, or the byte `range` of it (already validated against its size).
    pub async fn read_artifact(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<Option<ArtifactRead>, StorageError> {
        let path = Self::artifact_path(digest);
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let result = match self.store.get_opts(&path, opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Self::err("reading", &path)(e)),
        };
        let total = result.meta.size;
        let range = result.range.clone();
        let p = path.clone();
        let body = result
            .into_stream()
            .map_err(move |e| Self::err("reading", &p)(e))
            .boxed();
        Ok(Some(ArtifactRead { total, range, body }))
    }

    /// Every stored artifact's digest.
    pub async fn list_artifacts(&self) -> Result<Vec<Digest>, StorageError> {
        self.list_artifacts_older_than(std::time::Duration::ZERO)
            .await
    }

    /// The digests of artifacts written at least `age` ago.
    pub async fn list_artifacts_older_than(
        &self,
        age: std::time::Duration,
    ) -> Result<Vec<Digest>, StorageError> {
        let cutoff = chrono::Duration::from_std(age)
            .ok()
            .and_then(|d| chrono::Utc::now().checked_sub_signed(d));
        let prefix = Path::from("artifacts/sha256");
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(Self::err("listing", &prefix))?;
        Ok(metas
            .iter()
            .filter(|m| age.is_zero() || cutoff.is_some_and(|c| m.last_modified <= c))
            .filter_map(|m| {
                let name = m.location.filename()?;
                Digest::from_hex(name.strip_suffix(".tar.gz")?).ok()
            })
            .collect())
    }

    pub async fn delete_artifact(&self, digest: &Digest) -> Result<(), StorageError> {
        let path = Self::artifact_path(digest);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Self::err("deleting", &path)(e)),
        }
    }

    pub async fn load_state(&self, key: &SourceKey) -> Result<Option<SourceState>, StorageError> {
        let path = Self::state_path(key);
        let result = match self.store.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Self::err("reading", &path)(e)),
        };
        if result.meta.size > MAX_STATE_BYTES {
            return Err(StorageError::BadState {
                path: path.to_string(),
                reason: format!("{} bytes, limit {MAX_STATE_BYTES}", result.meta.size),
            });
        }
        let bytes = result.bytes().await.map_err(Self::err("reading", &path))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StorageError::BadState {
                path: path.to_string(),
                reason: e.to_string(),
            })
    }

    pub async fn save_state(
        &self,
        key: &SourceKey,
        state: &SourceState,
    ) -> Result<(), StorageError> {
        let path = Self::state_path(key);
        let json = serde_json::to_vec_pretty(state).expect("SourceState serializes");
        self.store
            .put(&path, PutPayload::from(json))
            .await
            .map(|_| ())
            .map_err(Self::err("writing", &path))
    }

    /// Forgets a removed source: its pointer first (readers stop following it), then its state.
    pub async fn delete_state(&self, key: &SourceKey) -> Result<(), StorageError> {
        self.delete_pointer(key).await?;
        let path = Self::state_path(key);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Self::err("deleting", &path)(e)),
        }
    }

    /// Keys of every persisted source state, of every kind.
    pub async fn list_states(&self) -> Result<Vec<SourceKey>, StorageError> {
        let mut keys = Vec::new();
        for kind in [
            SourceKind::GitRepository,
            SourceKind::Bucket,
            SourceKind::HelmRepository,
        ] {
            let prefix = Path::from(Self::state_dir(kind));
            let metas: Vec<_> = self
                .store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(Self::err("listing", &prefix))?;
            keys.extend(metas.iter().filter_map(|m| {
                let mut parts = m.location.parts();
                let (_, _) = (parts.next()?, parts.next()?);
                let namespace = parts.next()?.as_ref().to_string();
                let file = parts.next()?;
                let name = file.as_ref().strip_suffix(".json")?.to_string();
                Some(SourceKey::of(kind, namespace, name))
            }));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn key() -> SourceKey {
        SourceKey {
            kind: Default::default(),
            namespace: "team-a".into(),
            name: "app".into(),
        }
    }

    #[tokio::test]
    async fn artifacts_are_create_only_and_ranges_read_back() {
        let storage = Storage::from_store(Arc::new(InMemory::new()), "memory");
        let digest = Digest::of(b"tar");
        storage
            .put_artifact(&digest, Bytes::from_static(b"0123456789"))
            .await
            .expect("first write");
        // A second write of the same digest is fine and does not replace the first bytes.
        storage
            .put_artifact(&digest, Bytes::from_static(b"other"))
            .await
            .expect("second write is AlreadyExists = ok");
        assert_eq!(
            storage.artifact_size(&digest).await.expect("head"),
            Some(10)
        );
        let read = storage
            .read_artifact(&digest, Some(2..5))
            .await
            .expect("read")
            .expect("present");
        assert_eq!(read.total, 10);
        let body: Vec<Bytes> = read.body.try_collect().await.expect("stream");
        assert_eq!(body.concat(), b"234");
        assert_eq!(storage.list_artifacts().await.expect("list"), vec![digest]);
        storage.delete_artifact(&digest).await.expect("delete");
        assert_eq!(storage.artifact_size(&digest).await.expect("head"), None);
    }

    #[tokio::test]
    async fn state_round_trips_and_lists() {
        let storage = Storage::from_store(Arc::new(InMemory::new()), "memory");
        assert_eq!(storage.load_state(&key()).await.expect("load"), None);
        let state = SourceState {
            history: vec![Digest::of(b"a")],
            observed_ignore: Some("*.md".into()),
            ..Default::default()
        };
        storage.save_state(&key(), &state).await.expect("save");
        assert_eq!(storage.load_state(&key()).await.expect("load"), Some(state));
        assert_eq!(storage.list_states().await.expect("list"), vec![key()]);
        storage.delete_state(&key()).await.expect("delete");
        assert!(storage.list_states().await.expect("list").is_empty());
    }
}

#[cfg(test)]
mod local_tests {
    use super::*;

    #[tokio::test]
    async fn local_directory_lists_and_deletes_states() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(&StorageLocation::Dir(dir.path().into())).expect("open");
        let key = SourceKey::new("team-a", "a");
        storage
            .save_state(&key, &SourceState::default())
            .await
            .expect("save");
        assert_eq!(
            storage.list_states().await.expect("list"),
            vec![key.clone()]
        );
        storage.delete_state(&key).await.expect("delete");
        assert!(storage.list_states().await.expect("list").is_empty());
    }
}
