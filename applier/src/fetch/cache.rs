//! The on-disk content-addressed cache: `<root>/sha256/<hex>.tar.gz`, the bytes as served.
//!
//! Writes go to a temp file in the same directory and are renamed into place, so a crash never
//! leaves a half-written entry under a digest name. Entries are not trusted on read: the caller
//! verifies them like a download and calls [`Cache::remove`] when they fail. The modification
//! time records the last use, which makes eviction least-recently-used across restarts.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ferry_proto::Digest;

const SUFFIX: &str = ".tar.gz";
const TMP_PREFIX: &str = ".tmp-";
/// Temp files older than this are leftovers of a crashed write.
const STALE_TMP: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
#[error("artifact cache {path}: {source}")]
pub struct CacheError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
}

impl Cache {
    /// Opens (creating) the cache under `root`, holding at most `max_bytes` of entries.
    pub fn open(root: &Path, max_bytes: u64) -> Result<Self, CacheError> {
        let dir = root.join("sha256");
        std::fs::create_dir_all(&dir).map_err(err(&dir))?;
        let cache = Self { dir, max_bytes };
        cache.remove_stale_temp_files();
        Ok(cache)
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}{SUFFIX}", digest.hex()))
    }

    /// The path of the entry for `digest`, marking it as just used; `None` when absent. The
    /// caller streams it (it is verified on every read, so it is never read whole).
    pub fn lookup(&self, digest: &Digest) -> Result<Option<PathBuf>, CacheError> {
        let path = self.path(digest);
        match std::fs::metadata(&path) {
            Ok(_) => {
                self.touch(&path);
                Ok(Some(path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(&path)(e)),
        }
    }

    /// A new temp file next to the entries, for a download in progress: it becomes an entry
    /// with [`Cache::persist`] once verified, and disappears when dropped otherwise.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, CacheError> {
        tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&self.dir)
            .map_err(err(&self.dir))
    }

    /// Makes the verified temp file `tmp` the entry for `digest` (fsync + rename).
    pub fn persist(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<(), CacheError> {
        let path = self.path(digest);
        tmp.as_file().sync_all().map_err(err(&path))?;
        tmp.persist(&path).map_err(|e| err(&path)(e.error))?;
        Ok(())
    }

    /// Stores `bytes` under `digest` atomically (temp file + fsync + rename).
    pub fn write(&self, digest: &Digest, bytes: &[u8]) -> Result<(), CacheError> {
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes).map_err(err(tmp.path()))?;
        self.persist(tmp, digest)
    }

    /// Deletes an entry (e.g. one that failed verification). Absent is fine.
    pub fn remove(&self, digest: &Digest) -> Result<(), CacheError> {
        let path = self.path(digest);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Deletes least-recently-used entries until the cache fits its bound, never one in `keep`.
    /// Returns what was evicted.
    pub fn evict(&self, keep: &HashSet<Digest>) -> Result<Vec<Digest>, CacheError> {
        let mut entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        if total <= self.max_bytes {
            return Ok(vec![]);
        }
        entries.sort_by_key(|e| e.used);
        let mut evicted = vec![];
        for e in entries {
            if total <= self.max_bytes {
                break;
            }
            if keep.contains(&e.digest) {
                continue;
            }
            self.remove(&e.digest)?;
            total -= e.size;
            evicted.push(e.digest);
        }
        Ok(evicted)
    }

    /// Total bytes of all entries.
    pub fn size(&self) -> Result<u64, CacheError> {
        Ok(self.entries()?.iter().map(|e| e.size).sum())
    }

    fn entries(&self) -> Result<Vec<Entry>, CacheError> {
        let mut out = vec![];
        for item in std::fs::read_dir(&self.dir).map_err(err(&self.dir))? {
            let item = item.map_err(err(&self.dir))?;
            let name = item.file_name();
            let Some(digest) = name
                .to_str()
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|hex| Digest::from_hex(hex).ok())
            else {
                continue;
            };
            // An entry removed concurrently is simply not counted.
            let Ok(md) = item.metadata() else { continue };
            out.push(Entry {
                digest,
                size: md.len(),
                used: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        Ok(out)
    }

    fn touch(&self, path: &Path) {
        // Best effort: a failed touch only makes eviction order less precise.
        if let Ok(f) = std::fs::File::options().write(true).open(path) {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    fn remove_stale_temp_files(&self) {
        let Ok(items) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for item in items.flatten() {
            let is_tmp = item
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TMP_PREFIX));
            let stale = item
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TMP);
            if is_tmp && stale {
                let _ = std::fs::remove_file(item.path());
            }
        }
    }
}

struct Entry {
    digest: Digest,
    size: u64,
    used: SystemTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(cache: &Cache, d: &Digest) -> Option<Vec<u8>> {
        let path = cache.lookup(d).expect("lookup")?;
        Some(std::fs::read(path).expect("read"))
    }

    fn age(cache: &Cache, d: &Digest, secs_ago: u64) {
        let f = std::fs::File::options()
            .write(true)
            .open(cache.path(d))
            .expect("open");
        f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
            .expect("set mtime");
    }

    #[test]
    fn write_read_remove_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::open(dir.path(), 1 << 20).expect("open");
        let d = Digest::of(b"a");
        assert_eq!(read(&cache, &d), None);
        cache.write(&d, b"bytes").expect("write");
        assert!(
            cache
                .path(&d)
                .ends_with(format!("sha256/{}.tar.gz", d.hex()))
        );
        assert_eq!(read(&cache, &d).as_deref(), Some(&b"bytes"[..]));
        cache.remove(&d).expect("remove");
        assert_eq!(read(&cache, &d), None);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sha256"))
            .expect("dir")
            .collect();
        assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
    }

    #[test]
    fn evicts_least_recently_used_but_never_what_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::open(dir.path(), 250).expect("open");
        let [a, b, c] = [b"a", b"b", b"c"].map(|s| Digest::of(s));
        for (d, ago) in [(&a, 300), (&b, 200), (&c, 100)] {
            cache.write(d, &[0u8; 100]).expect("write");
            age(&cache, d, ago);
        }
        // `a` is the oldest but in use; `b` goes instead.
        let evicted = cache.evict(&HashSet::from([a])).expect("evict");
        assert_eq!(evicted, vec![b]);
        assert!(read(&cache, &a).is_some());
        assert_eq!(cache.size().expect("size"), 200);

        // Reading `a` makes it the most recent: `c` is next in line.
        cache.write(&b, &[0u8; 100]).expect("write");
        age(&cache, &b, 50);
        read(&cache, &a);
        let evicted = cache.evict(&HashSet::new()).expect("evict");
        assert_eq!(evicted, vec![c]);
    }

    #[test]
    fn stale_temp_files_are_cleaned_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::open(dir.path(), 1 << 20).expect("open");
        let stale = dir.path().join("sha256/.tmp-crashed");
        let fresh = dir.path().join("sha256/.tmp-writing");
        std::fs::write(&stale, b"x").expect("write");
        std::fs::write(&fresh, b"x").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .expect("open")
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .expect("mtime");
        drop(cache);
        Cache::open(dir.path(), 1 << 20).expect("reopen");
        assert!(!stale.exists());
        assert!(
            fresh.exists(),
            "a concurrent writer's temp file is left alone"
        );
    }
}
