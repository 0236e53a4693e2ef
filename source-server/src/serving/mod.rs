//! Serving artifacts to many agents at once (`GET /v1/artifacts/…`).
//!
//! When a new revision is announced, every agent asks for the same artifact at the same
//! moment. Artifacts are immutable and named by their digest, so a copy keyed by digest never
//! goes stale, and one copy can serve them all:
//! - **memory**: an artifact up to `--artifact-memory-budget` is read once into a shared
//!   buffer (`Bytes`) that every response borrows; least recently used ones leave first. A
//!   buffer evicted while responses still send it lives until they are done, so memory is the
//!   budget plus what evicted artifacts are still being sent from.
//! - **local file**: with directory storage the stored file itself; with S3, a copy downloaded
//!   once into `<cache>/.artifacts` (bounded by `--artifact-cache-size`, least recently used
//!   evicted) while every concurrent request for it waits on that one download. A failed
//!   download fails every request that waited on it (500); the next request tries again.
//!   Beyond the memory budget, responses read the file in 64 KiB pieces.
//! - an S3 artifact larger than the whole disk cache is streamed from the bucket per request.
//!
//! `HEAD` and conditional requests that need no body answer from what is cached, else from the
//! store's metadata, never by downloading. Loads run once per digest ([`flight`]).

mod disk;
mod flight;
mod lru;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use ferry_proto::Digest;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::Metrics;
use crate::storage::{Storage, StorageError};
use disk::{Disk, Fetched};
use flight::{Flights, Joined};
use lru::Lru;

/// Default `--artifact-memory-budget`.
pub const DEFAULT_MEMORY_BUDGET: u64 = 512 << 20;
/// Default `--artifact-cache-size`.
pub const DEFAULT_DISK_BUDGET: u64 = 4 << 30;
/// Read size when a response is sent from a file.
const CHUNK: u64 = 64 << 10;

/// Bounds of the artifact caches.
#[derive(Clone, Debug)]
pub struct ServingOptions {
    /// Bytes of artifacts held in memory; 0 sends every response from a file.
    pub memory_budget: u64,
    /// Where artifacts of a remote store are copied (`None`: each request streams from it).
    pub cache_dir: Option<PathBuf>,
    /// Bytes of artifacts in `cache_dir`.
    pub cache_size: u64,
}

impl Default for ServingOptions {
    fn default() -> Self {
        Self {
            memory_budget: DEFAULT_MEMORY_BUDGET,
            cache_dir: None,
            cache_size: DEFAULT_DISK_BUDGET,
        }
    }
}

/// Why an artifact cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store refused the read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A local file could not be read or written.
    #[error("artifact cache: {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The store sent fewer or more bytes than it announced.
    #[error("artifact {digest}: the store announced {expected} bytes and sent {got}")]
    Truncated {
        /// The artifact.
        digest: Digest,
        /// The announced size.
        expected: u64,
        /// What arrived.
        got: u64,
    },
    /// The artifact was deleted between its size check and its read.
    #[error("artifact {0} was collected while being served")]
    Collected(Digest),
    /// The task loading the artifact ended without a result.
    #[error("artifact load: {0}")]
    Task(String),
}

/// Where the artifacts served come from.
enum Local {
    /// Directory storage: its `artifacts/sha256/<hex>.tar.gz` files.
    Dir(PathBuf),
    /// A remote store with a local copy.
    Disk(Disk),
    /// A remote store read per request (no cache directory given).
    Remote,
}

type Labels = Vec<(&'static str, &'static str)>;

struct Counters {
    fetches: Family<Labels, Counter>,
    waits: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    evictions: Family<Labels, Counter>,
    bytes: Family<Labels, Gauge>,
}

fn tier(t: &'static str) -> Labels {
    vec![("tier", t)]
}

impl Counters {
    fn new(metrics: &Metrics) -> Self {
        let c = Self {
            fetches: Family::default(),
            waits: Family::default(),
            failures: Family::default(),
            evictions: Family::default(),
            bytes: Family::default(),
        };
        metrics.register(
            "artifact_cache_fetches",
            "Artifact loads into a cache tier: disk = downloads from the remote store, memory = \
             reads of a local file into the shared buffer",
            c.fetches.clone(),
        );
        metrics.register(
            "artifact_cache_waits",
            "Requests that waited for a load another request had started instead of loading",
            c.waits.clone(),
        );
        metrics.register(
            "artifact_cache_fetch_failures",
            "Failed artifact loads (every request waiting on one got a 500)",
            c.failures.clone(),
        );
        metrics.register(
            "artifact_cache_evictions",
            "Artifacts evicted from a cache tier to stay within its budget",
            c.evictions.clone(),
        );
        metrics.register(
            "artifact_cache_bytes",
            "Bytes of artifacts held by a cache tier",
            c.bytes.clone(),
        );
        c
    }

    fn joined<T>(&self, t: &'static str, joined: Joined<T>) -> flight::Outcome<T> {
        match joined {
            Joined::Cached(v) => Ok(v),
            Joined::Started(outcome) => {
                if outcome.is_err() {
                    self.failures.get_or_create(&tier(t)).inc();
                }
                outcome
            }
            Joined::Waited(outcome) => outcome,
        }
    }

    /// Counts a request that started a load, or one that waits for another's.
    fn note(&self, t: &'static str, started: bool) {
        let family = if started { &self.fetches } else { &self.waits };
        family.get_or_create(&tier(t)).inc();
    }

    fn set_bytes(&self, t: &'static str, n: u64) {
        self.bytes
            .get_or_create(&tier(t))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// The artifact caches of one server; cheap to clone.
#[derive(Clone)]
pub struct Artifacts {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    local: Local,
    memory: Mutex<Lru<Bytes>>,
    memory_loads: Flights<Bytes>,
    downloads: Flights<Fetched>,
    counters: Counters,
}

/// An artifact ready to send.
pub struct Served {
    /// Its size in bytes.
    pub size: u64,
    content: Content,
}

enum Content {
    Memory(Bytes),
    File(Arc<std::fs::File>),
    Remote(Storage, Digest),
}

impl Artifacts {
    pub fn new(storage: Storage, opts: &ServingOptions, metrics: &Metrics) -> Self {
        let local = match (storage.local_dir(), &opts.cache_dir) {
            (Some(dir), _) => Local::Dir(dir.to_path_buf()),
            (None, Some(cache)) => Local::Disk(Disk::open(cache.clone(), opts.cache_size)),
            (None, None) => Local::Remote,
        };
        let counters = Counters::new(metrics);
        if let Local::Disk(disk) = &local {
            counters.set_bytes("disk", disk.used());
        }
        Self {
            inner: Arc::new(Inner {
                storage,
                local,
                memory: Mutex::new(Lru::new(opts.memory_budget)),
                memory_loads: Flights::new(),
                downloads: Flights::new(),
                counters,
            }),
        }
    }

    /// The size of `digest`, or `None` when it is not stored; downloads nothing.
    pub async fn size(&self, digest: &Digest) -> Result<Option<u64>, Arc<ServeError>> {
        let inner = &self.inner;
        if let Local::Dir(root) = &inner.local {
            return stat(&artifact_file(root, digest)).await;
        }
        if let Some(bytes) = inner.memory_get(digest) {
            return Ok(Some(bytes.len() as u64));
        }
        if let Local::Disk(disk) = &inner.local
            && let Some((_, size)) = disk.get(digest)
        {
            return Ok(Some(size));
        }
        inner
            .storage
            .artifact_size(digest)
            .await
            .map_err(|e| Arc::new(e.into()))
    }

    /// `digest`'s bytes, or `None` when it is not stored.
    pub async fn open(&self, digest: &Digest) -> Result<Option<Served>, Arc<ServeError>> {
        let inner = &self.inner;
        let (path, size) = match &inner.local {
            // A file of the store: checked on every request, so a collected artifact is not
            // served from memory.
            Local::Dir(root) => {
                let path = artifact_file(root, digest);
                match stat(&path).await? {
                    Some(size) => (path, size),
                    None => return Ok(None),
                }
            }
            Local::Disk(disk) => {
                if let Some(bytes) = inner.memory_get(digest) {
                    return Ok(Some(Served::memory(bytes)));
                }
                let this = self.clone();
                let d = *digest;
                let joined = inner
                    .downloads
                    .join(
                        digest,
                        || disk.get(digest).map(|(p, s)| Fetched::Cached(p, s)),
                        move || async move { this.download(&d).await },
                        |started| inner.counters.note("disk", started),
                    )
                    .await;
                match inner.counters.joined("disk", joined)? {
                    Fetched::Cached(path, size) => (path, size),
                    Fetched::Missing => return Ok(None),
                    Fetched::TooLarge => return self.remote(digest).await,
                }
            }
            Local::Remote => return self.remote(digest).await,
        };
        if size <= inner.memory_budget() {
            let this = self.clone();
            let (d, p) = (*digest, path.clone());
            let joined = inner
                .memory_loads
                .join(
                    digest,
                    || inner.memory_get(digest),
                    move || async move { this.load(&d, p).await },
                    |started| inner.counters.note("memory", started),
                )
                .await;
            let bytes = inner.counters.joined("memory", joined)?;
            return Ok(Some(Served::memory(bytes)));
        }
        let file = tokio::task::spawn_blocking({
            let path = path.clone();
            move || std::fs::File::open(&path)
        })
        .await
        .map_err(|e| Arc::new(ServeError::Task(e.to_string())))?
        .map_err(|source| io_error(&path, source))?;
        Ok(Some(Served {
            size,
            content: Content::File(Arc::new(file)),
        }))
    }

    async fn remote(&self, digest: &Digest) -> Result<Option<Served>, Arc<ServeError>> {
        let size = self.inner.storage.artifact_size(digest).await;
        Ok(size.map_err(|e| Arc::new(e.into()))?.map(|size| Served {
            size,
            content: Content::Remote(self.inner.storage.clone(), *digest),
        }))
    }

    async fn download(&self, digest: &Digest) -> flight::Outcome<Fetched> {
        let Local::Disk(disk) = &self.inner.local else {
            unreachable!("downloads run only with a disk cache");
        };
        let (fetched, evicted) = disk.download(&self.inner.storage, digest).await?;
        let c = &self.inner.counters;
        c.evictions
            .get_or_create(&tier("disk"))
            .inc_by(evicted as u64);
        c.set_bytes("disk", disk.used());
        Ok(fetched)
    }

    async fn load(&self, digest: &Digest, path: PathBuf) -> flight::Outcome<Bytes> {
        let bytes = Bytes::from(
            tokio::fs::read(&path)
                .await
                .map_err(|source| io_error(&path, source))?,
        );
        let inner = &self.inner;
        let mut memory = inner.memory.lock().unwrap_or_else(|p| p.into_inner());
        let evicted = memory.insert(*digest, bytes.clone(), bytes.len() as u64);
        let c = &inner.counters;
        c.evictions
            .get_or_create(&tier("memory"))
            .inc_by(evicted.len() as u64);
        c.set_bytes("memory", memory.used());
        Ok(bytes)
    }
}

impl Inner {
    fn memory_get(&self, digest: &Digest) -> Option<Bytes> {
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        memory.get(digest).map(|(bytes, _)| bytes)
    }

    fn memory_budget(&self) -> u64 {
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .budget()
    }
}

fn artifact_file(root: &std::path::Path, digest: &Digest) -> PathBuf {
    root.join(Storage::artifact_path(digest).as_ref())
}

fn io_error(path: &std::path::Path, source: std::io::Error) -> Arc<ServeError> {
    Arc::new(ServeError::Io {
        path: path.display().to_string(),
        source,
    })
}

async fn stat(path: &std::path::Path) -> Result<Option<u64>, Arc<ServeError>> {
    match tokio::fs::metadata(path).await {
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io_error(path, source)),
    }
}

impl Served {
    fn memory(bytes: Bytes) -> Self {
        Self {
            size: bytes.len() as u64,
            content: Content::Memory(bytes),
        }
    }

    /// The response body: all of it, or `range` (validated against [`Served::size`]).
    pub async fn body(self, range: Option<Range<u64>>) -> Result<Body, Arc<ServeError>> {
        let range = range.unwrap_or(0..self.size);
        Ok(match self.content {
            Content::Memory(bytes) => {
                let (start, end) = (to_usize(range.start), to_usize(range.end));
                Body::from(bytes.slice(start..end))
            }
            Content::File(file) => Body::from_stream(read_at(file, range)),
            Content::Remote(storage, digest) => {
                let whole = range == (0..self.size);
                match storage
                    .read_artifact(&digest, (!whole).then_some(range))
                    .await
                {
                    Ok(Some(read)) => Body::from_stream(read.body),
                    Ok(None) => {
                        return Err(Arc::new(ServeError::Collected(digest)));
                    }
                    Err(e) => return Err(Arc::new(e.into())),
                }
            }
        })
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).expect("an artifact in memory fits the address space")
}

/// `range` of `file` in [`CHUNK`] pieces, read at their offsets (requests share the file).
fn read_at(
    file: Arc<std::fs::File>,
    range: Range<u64>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::try_unfold(range.start, move |pos| {
        let file = file.clone();
        let end = range.end;
        async move {
            if pos >= end {
                return Ok(None);
            }
            let n = CHUNK.min(end - pos);
            let chunk = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt as _;
                let mut buf = vec![0; to_usize(n)];
                file.read_exact_at(&mut buf, pos).map(|()| Bytes::from(buf))
            })
            .await
            .map_err(std::io::Error::other)??;
            Ok(Some((chunk, pos + n)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(served: Served, range: Option<Range<u64>>) -> Vec<u8> {
        let body = served.body(range).await.expect("body");
        axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("collect")
            .to_vec()
    }

    fn counter(metrics: &Metrics, name: &str, tier: &str) -> String {
        let needle = format!("ferry_source_artifact_cache_{name}{{tier=\"{tier}\"}} ");
        metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&needle).map(str::to_string))
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn directory_artifacts_from_memory_or_in_pieces_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage =
            Storage::open(&crate::storage::StorageLocation::Dir(dir.path().into())).expect("open");
        // Several read pieces, the last one short.
        let data: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        let digest = Digest::of(b"artifact");
        storage
            .put_artifact(&digest, Bytes::from(data.clone()))
            .await
            .expect("put");
        for budget in [0, DEFAULT_MEMORY_BUDGET] {
            let metrics = Metrics::new();
            let opts = ServingOptions {
                memory_budget: budget,
                ..Default::default()
            };
            let artifacts = Artifacts::new(storage.clone(), &opts, &metrics);
            let open = || async { artifacts.open(&digest).await.expect("open").expect("found") };
            assert_eq!(read(open().await, None).await, data);
            let range = CHUNK - 3..2 * CHUNK + 5;
            let part = read(open().await, Some(range.clone())).await;
            assert_eq!(part, &data[range.start as usize..range.end as usize]);
            assert_eq!(
                artifacts.size(&digest).await.expect("size"),
                Some(data.len() as u64)
            );
            let loads = if budget == 0 { "" } else { "1" };
            assert_eq!(counter(&metrics, "fetches_total", "memory"), loads);
            let missing = Digest::of(b"missing");
            assert!(artifacts.open(&missing).await.expect("open").is_none());
        }
    }

    #[tokio::test]
    async fn a_remote_artifact_is_downloaded_once_and_evicted_by_size() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let storage = Storage::from_store(store, "memory");
        let cache = tempfile::tempdir().expect("tempdir");
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        for d in [a, b] {
            storage
                .put_artifact(&d, Bytes::from(vec![7u8; 600]))
                .await
                .expect("put");
        }
        let metrics = Metrics::new();
        let opts = ServingOptions {
            memory_budget: 0,
            cache_dir: Some(cache.path().join(".artifacts")),
            cache_size: 1000,
        };
        let artifacts = Artifacts::new(storage.clone(), &opts, &metrics);
        for _ in 0..3 {
            let served = artifacts.open(&a).await.expect("open").expect("found");
            assert_eq!(read(served, None).await, vec![7u8; 600]);
        }
        assert_eq!(counter(&metrics, "fetches_total", "disk"), "1");
        // The store loses `a`: the copy still serves it (it is immutable).
        storage.delete_artifact(&a).await.expect("delete");
        assert_eq!(artifacts.size(&a).await.expect("size"), Some(600));
        // `b` needs the room: `a` is evicted, and gone with the store's copy.
        artifacts.open(&b).await.expect("open").expect("found");
        assert_eq!(counter(&metrics, "evictions_total", "disk"), "1");
        assert_eq!(counter(&metrics, "bytes", "disk"), "600");
        assert!(artifacts.open(&a).await.expect("open").is_none());
        // A restart indexes what is on disk.
        let again = Artifacts::new(storage, &opts, &Metrics::new());
        assert_eq!(again.size(&b).await.expect("size"), Some(600));
    }
}
