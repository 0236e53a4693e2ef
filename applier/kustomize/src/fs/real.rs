//! [`RealFs`]: the build root on disk. A build asks about the same entries many times (every
//! file of a base is probed, resolved, checked against the load restrictor and read; every
//! directory is probed for three kustomization file names), so what `lstat` says of each path
//! is kept for the build: resolving a path from scratch costs a `readlink` per component.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{EntryKind, FileSystem, FsError, MAX_FILE_BYTES, RelPath};

/// The real filesystem below `root`; symlinks are followed only while they stay inside it.
#[derive(Debug)]
pub struct RealFs {
    root: PathBuf,
    /// Every path looked at so far: its real path (not yet checked against the root) and
    /// kind, or `None` when nothing is there.
    seen: Mutex<HashMap<RelPath, Option<Entry>>>,
}

#[derive(Debug, Clone)]
struct Entry {
    real: PathBuf,
    /// `None`: neither a regular file nor a directory (a socket, a fifo…).
    kind: Option<EntryKind>,
}

impl RealFs {
    /// `root` must exist; it is canonicalised so symlink checks compare real paths.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Self {
            root: root.canonicalize()?,
            seen: Mutex::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps an absolute or cwd-relative directory to a [`RelPath`] under the root.
    pub fn rel_path_of(&self, path: &Path) -> Result<RelPath, FsError> {
        self.rel_of_real(&path.canonicalize().map_err(io_error)?)
    }

    /// Maps a real (canonical) path to a [`RelPath`] under the root.
    fn rel_of_real(&self, canon: &Path) -> Result<RelPath, FsError> {
        let rel = canon.strip_prefix(&self.root).map_err(|_| {
            FsError::Escapes(format!(
                "'{}' is outside the build root '{}'",
                canon.display(),
                self.root.display()
            ))
        })?;
        let s = rel
            .to_str()
            .ok_or_else(|| FsError::Escapes(format!("'{}' is not valid UTF-8", rel.display())))?;
        RelPath::parse(if s.is_empty() { "." } else { s })
            .map_err(|e| FsError::Escapes(format!("'{s}' {e}")))
    }

    /// What is at `path`, symlinks resolved: the parent's real path (itself remembered) joined
    /// with the name, one `lstat`, and a full resolution only when the name is a symlink.
    fn entry(&self, path: &RelPath) -> Result<Option<Entry>, FsError> {
        let Some(parent) = path.parent() else {
            return Ok(Some(Entry {
                real: self.root.clone(),
                kind: Some(EntryKind::Dir),
            }));
        };
        if let Some(seen) = self.lock().get(path) {
            return Ok(seen.clone());
        }
        let found = match self.entry(&parent)? {
            None => None,
            Some(Entry { real: dir, .. }) => {
                let candidate = dir.join(path.file_name());
                match std::fs::symlink_metadata(&candidate) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(FsError::Io(e)),
                    Ok(md) if md.file_type().is_symlink() => {
                        match (candidate.canonicalize(), std::fs::metadata(&candidate)) {
                            (Ok(real), Ok(md)) => Some(Entry {
                                real,
                                kind: kind_of(&md),
                            }),
                            // A dangling link: nothing is there.
                            (Err(e), _) | (_, Err(e))
                                if e.kind() == std::io::ErrorKind::NotFound =>
                            {
                                None
                            }
                            (Err(e), _) | (_, Err(e)) => return Err(FsError::Io(e)),
                        }
                    }
                    Ok(md) => Some(Entry {
                        real: candidate,
                        kind: kind_of(&md),
                    }),
                }
            }
        };
        self.lock().insert(path.clone(), found.clone());
        Ok(found)
    }

    /// The real path of an existing entry inside the root.
    fn resolve(&self, path: &RelPath) -> Result<Entry, FsError> {
        let entry = self.entry(path)?.ok_or(FsError::NotFound)?;
        if !entry.real.starts_with(&self.root) {
            return Err(FsError::Escapes(format!(
                "is a symlink resolving to '{}', outside the build root",
                entry.real.display()
            )));
        }
        Ok(entry)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RelPath, Option<Entry>>> {
        self.seen
            .lock()
            .expect("the entry cache is plain data, left consistent by every holder")
    }
}

fn kind_of(md: &std::fs::Metadata) -> Option<EntryKind> {
    if md.is_dir() {
        Some(EntryKind::Dir)
    } else if md.is_file() {
        Some(EntryKind::File)
    } else {
        None
    }
}

fn io_error(e: std::io::Error) -> FsError {
    match e.kind() {
        std::io::ErrorKind::NotFound => FsError::NotFound,
        _ => FsError::Io(e),
    }
}

impl FileSystem for RealFs {
    fn kind(&self, path: &RelPath) -> Result<Option<EntryKind>, FsError> {
        match self.resolve(path) {
            Ok(entry) => Ok(entry.kind),
            Err(FsError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn real_path(&self, path: &RelPath) -> Result<RelPath, FsError> {
        self.rel_of_real(&self.resolve(path)?.real)
    }

    fn read(&self, path: &RelPath) -> Result<Vec<u8>, FsError> {
        let f = std::fs::File::open(self.resolve(path)?.real)?;
        // Sized from the file's length: growing from empty reads a small file in a dozen calls.
        let len = f.metadata()?.len();
        if len > MAX_FILE_BYTES {
            return Err(FsError::TooLarge);
        }
        let mut buf = Vec::with_capacity(len as usize + 1);
        f.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > MAX_FILE_BYTES {
            return Err(FsError::TooLarge);
        }
        Ok(buf)
    }
}
