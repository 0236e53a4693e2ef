//! The local copy of a remote store's artifacts (`<cache>/.artifacts/<hex>.tar.gz`), bounded in
//! bytes, least recently used evicted first.
//!
//! An artifact is downloaded once into a temporary file next to its final name and renamed
//! when complete, so a crash never leaves a truncated artifact under a served name; leftovers
//! are removed at start, and what is complete is indexed again (oldest modification first).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ferry_proto::Digest;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::ServeError;
use super::lru::Lru;
use crate::storage::Storage;

const SUFFIX: &str = ".tar.gz";
const PARTIAL: &str = ".partial";

pub(super) struct Disk {
    dir: PathBuf,
    index: Mutex<Lru<()>>,
}

/// What a download left.
#[derive(Clone, Debug)]
pub(super) enum Fetched {
    /// In the cache: its path and size.
    Cached(PathBuf, u64),
    /// Not in the store.
    Missing,
    /// Larger than the whole cache: streamed from the store instead.
    TooLarge,
}

impl Disk {
    /// Indexes what an earlier run left in `dir` (missing is fine: created on first download).
    pub(super) fn open(dir: PathBuf, budget: u64) -> Self {
        let mut found = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(meta) = entry.metadata() else { continue };
                if name.ends_with(PARTIAL) {
                    let _ = std::fs::remove_file(entry.path());
                    continue;
                }
                let digest = name
                    .strip_suffix(SUFFIX)
                    .and_then(|hex| Digest::from_hex(hex).ok());
                if let (Some(digest), true) = (digest, meta.is_file()) {
                    found.push((meta.modified().ok(), digest, meta.len()));
                }
            }
        }
        found.sort();
        let mut index = Lru::new(budget);
        let mut evicted = Vec::new();
        for (_, digest, size) in found {
            evicted.extend(index.insert(digest, (), size));
        }
        let disk = Self {
            dir,
            index: Mutex::new(index),
        };
        disk.delete(evicted);
        disk
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}{SUFFIX}", digest.hex()))
    }

    /// The cached copy of `digest`, marking it used.
    pub(super) fn get(&self, digest: &Digest) -> Option<(PathBuf, u64)> {
        let (_, size) = self.lock().get(digest)?;
        Some((self.path(digest), size))
    }

    /// Bytes held now.
    pub(super) fn used(&self) -> u64 {
        self.lock().used()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru<()>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn delete(&self, evicted: Vec<(Digest, ())>) -> usize {
        let n = evicted.len();
        for (digest, ()) in evicted {
            // A request still reading it keeps its open file; the name goes now.
            let _ = std::fs::remove_file(self.path(&digest));
        }
        n
    }

    /// Downloads `digest` from `storage` into the cache; returns what it left and how many
    /// artifacts it evicted for room.
    pub(super) async fn download(
        &self,
        storage: &Storage,
        digest: &Digest,
    ) -> Result<(Fetched, usize), ServeError> {
        let Some(read) = storage.read_artifact(digest, None).await? else {
            return Ok((Fetched::Missing, 0));
        };
        if read.total > self.lock().budget() {
            return Ok((Fetched::TooLarge, 0));
        }
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| ServeError::Io { path, source }
        };
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(io(&self.dir))?;
        let partial = self.dir.join(format!(
            "{}.{:016x}{PARTIAL}",
            digest.hex(),
            rand::random::<u64>()
        ));
        let written = async {
            let mut file = tokio::fs::File::create(&partial)
                .await
                .map_err(io(&partial))?;
            let mut body = read.body;
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                if size > read.total {
                    break; // reported below
                }
                file.write_all(&chunk).await.map_err(io(&partial))?;
            }
            file.flush().await.map_err(io(&partial))?;
            if size != read.total {
                return Err(ServeError::Truncated {
                    digest: *digest,
                    expected: read.total,
                    got: size,
                });
            }
            let path = self.path(digest);
            tokio::fs::rename(&partial, &path)
                .await
                .map_err(io(&path))?;
            Ok((path, size))
        }
        .await;
        let (path, size) = match written {
            Ok(done) => done,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
        };
        let evicted = self.lock().insert(*digest, (), size);
        Ok((Fetched::Cached(path, size), self.delete(evicted)))
    }
}
