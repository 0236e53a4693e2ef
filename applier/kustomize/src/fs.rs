//! The input tree. The engine never touches `std::fs` directly: it sees a [`FileSystem`]
//! addressed by [`RelPath`]s, which are normalised paths relative to the build root and can
//! never name anything outside it. The agent implements the trait over the verified artifact
//! it holds in memory ([`MemFs`]); the CLI uses [`RealFs`], which additionally resolves
//! symlinks and refuses those that point out of the root.

use std::collections::BTreeMap;
use std::fmt;

mod real;

pub use real::RealFs;

/// Largest single input file the engine reads: bounds memory on hostile trees.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// A normalised, `/`-separated path relative to the build root (`""` is the root).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct RelPath(String);

/// Why a relative path could not be resolved inside the build root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    Absolute,
    EscapesRoot,
    Empty,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Absolute => {
                f.write_str("is absolute; only paths inside the build root are allowed")
            }
            PathError::EscapesRoot => f.write_str("leaves the build root"),
            PathError::Empty => f.write_str("is empty"),
        }
    }
}

impl RelPath {
    pub fn root() -> Self {
        RelPath(String::new())
    }

    /// Parses a path given relative to the root (`a/b/../c` → `a/c`).
    pub fn parse(s: &str) -> Result<Self, PathError> {
        if s.is_empty() {
            return Ok(Self::root());
        }
        Self::root().join(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Resolves `rel` (as written in a kustomization) against this directory, lexically.
    pub fn join(&self, rel: &str) -> Result<Self, PathError> {
        if rel.is_empty() {
            return Err(PathError::Empty);
        }
        if rel.starts_with('/') || rel.starts_with('\\') {
            return Err(PathError::Absolute);
        }
        let mut parts: Vec<&str> = self.components().collect();
        for c in rel.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(PathError::EscapesRoot);
                    }
                }
                c => parts.push(c),
            }
        }
        Ok(RelPath(parts.join("/")))
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    pub fn parent(&self) -> Option<Self> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(i) => RelPath(self.0[..i].to_string()),
            None => RelPath::root(),
        })
    }

    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// Component-wise prefix test: `a/b` is under `a`, `ab` is not.
    pub fn is_within(&self, dir: &RelPath) -> bool {
        dir.is_root()
            || self.0 == dir.0
            || (self.0.starts_with(&dir.0) && self.0.as_bytes().get(dir.0.len()) == Some(&b'/'))
    }

    /// Path of `self` relative to the directory `base`, with `..` where needed.
    pub fn relative_to(&self, base: &RelPath) -> String {
        let a: Vec<&str> = self.components().collect();
        let b: Vec<&str> = base.components().collect();
        let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let mut out: Vec<&str> = vec![".."; b.len() - common];
        out.extend(&a[common..]);
        if out.is_empty() {
            ".".to_string()
        } else {
            out.join("/")
        }
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(".")
        } else {
            f.write_str(&self.0)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("does not exist")]
    NotFound,
    #[error("{0}")]
    Escapes(String),
    #[error("is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A read-only tree rooted at the build root.
pub trait FileSystem: Sync {
    /// `Ok(None)` when nothing exists at `path`.
    fn kind(&self, path: &RelPath) -> Result<Option<EntryKind>, FsError>;
    /// Whole file contents (at most [`MAX_FILE_BYTES`]).
    fn read(&self, path: &RelPath) -> Result<Vec<u8>, FsError>;
    /// Where `path` really is, symlinks resolved (kustomize's load restrictor compares real
    /// paths); trees without symlinks return it unchanged.
    fn real_path(&self, path: &RelPath) -> Result<RelPath, FsError> {
        Ok(path.clone())
    }
}

/// An in-memory tree (the agent's verified artifact). Directories are implied by file paths.
#[derive(Debug, Clone, Default)]
pub struct MemFs {
    files: BTreeMap<RelPath, Vec<u8>>,
}

impl MemFs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file; `path` is relative to the root and must stay inside it.
    pub fn insert(&mut self, path: &str, data: impl Into<Vec<u8>>) -> Result<(), PathError> {
        let p = RelPath::parse(path)?;
        if p.is_root() {
            return Err(PathError::Empty);
        }
        self.files.insert(p, data.into());
        Ok(())
    }
}

impl FileSystem for MemFs {
    fn kind(&self, path: &RelPath) -> Result<Option<EntryKind>, FsError> {
        if self.files.contains_key(path) {
            return Ok(Some(EntryKind::File));
        }
        let is_dir = path.is_root()
            || self
                .files
                .range(path.clone()..)
                .take_while(|(k, _)| k.as_str().starts_with(path.as_str()))
                .any(|(k, _)| k.is_within(path));
        Ok(is_dir.then_some(EntryKind::Dir))
    }

    fn read(&self, path: &RelPath) -> Result<Vec<u8>, FsError> {
        match self.files.get(path) {
            Some(d) if d.len() as u64 > MAX_FILE_BYTES => Err(FsError::TooLarge),
            Some(d) => Ok(d.clone()),
            None => Err(FsError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_normalises_and_refuses_escapes() {
        let d = RelPath::parse("overlays/prod").expect("valid");
        assert_eq!(d.join("../../base").expect("inside").as_str(), "base");
        assert_eq!(
            d.join("./a//b.yaml").expect("inside").as_str(),
            "overlays/prod/a/b.yaml"
        );
        assert_eq!(d.join("../../../x"), Err(PathError::EscapesRoot));
        assert_eq!(d.join("/etc/passwd"), Err(PathError::Absolute));
    }

    #[test]
    fn relative_to_walks_up() {
        let a = RelPath::parse("base/cm.yaml").expect("valid");
        let b = RelPath::parse("overlays/prod").expect("valid");
        assert_eq!(a.relative_to(&b), "../../base/cm.yaml");
        assert!(
            RelPath::parse("ab/c")
                .expect("valid")
                .is_within(&RelPath::parse("ab").expect("valid"))
        );
        assert!(
            !RelPath::parse("abc")
                .expect("valid")
                .is_within(&RelPath::parse("ab").expect("valid"))
        );
    }

    #[test]
    fn memfs_directories_are_implied() {
        let mut fs = MemFs::new();
        fs.insert("base/kustomization.yaml", "resources: []")
            .expect("valid");
        assert_eq!(
            fs.kind(&RelPath::parse("base").expect("valid"))
                .ok()
                .flatten(),
            Some(EntryKind::Dir)
        );
        assert_eq!(
            fs.kind(&RelPath::parse("bas").expect("valid"))
                .ok()
                .flatten(),
            None
        );
        assert_eq!(
            fs.kind(&RelPath::parse("base/kustomization.yaml").expect("valid"))
                .ok()
                .flatten(),
            Some(EntryKind::File)
        );
    }

    #[test]
    fn realfs_refuses_symlinks_out_of_root() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret.yaml"), "a: b").expect("write");
        let root = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(
            outside.path().join("secret.yaml"),
            root.path().join("link.yaml"),
        )
        .expect("symlink");
        std::fs::write(root.path().join("ok.yaml"), "a: b").expect("write");
        std::os::unix::fs::symlink("ok.yaml", root.path().join("inside.yaml")).expect("symlink");
        let fs = RealFs::new(root.path()).expect("root");
        assert!(matches!(
            fs.read(&RelPath::parse("link.yaml").expect("valid")),
            Err(FsError::Escapes(_))
        ));
        assert_eq!(
            fs.read(&RelPath::parse("inside.yaml").expect("valid"))
                .expect("inside"),
            b"a: b"
        );
    }

    #[test]
    fn realfs_answers_repeated_questions_the_same_through_symlinked_directories() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("real")).expect("mkdir");
        std::fs::write(root.path().join("real/cm.yaml"), "a: b").expect("write");
        std::os::unix::fs::symlink("real", root.path().join("alias")).expect("symlink");
        std::os::unix::fs::symlink("gone.yaml", root.path().join("dangling.yaml"))
            .expect("symlink");
        let fs = RealFs::new(root.path()).expect("root");
        let p = |s: &str| RelPath::parse(s).expect("valid");
        for _ in 0..2 {
            assert_eq!(fs.kind(&p("alias")).expect("kind"), Some(EntryKind::Dir));
            assert_eq!(
                fs.kind(&p("alias/cm.yaml")).expect("kind"),
                Some(EntryKind::File)
            );
            assert_eq!(fs.read(&p("alias/cm.yaml")).expect("read"), b"a: b");
            assert_eq!(
                fs.real_path(&p("alias/cm.yaml")).expect("real"),
                p("real/cm.yaml")
            );
            assert_eq!(fs.kind(&p("alias/missing.yaml")).expect("kind"), None);
            assert_eq!(fs.kind(&p("dangling.yaml")).expect("kind"), None);
            assert!(matches!(
                fs.read(&p("dangling.yaml")),
                Err(FsError::NotFound)
            ));
        }
    }
}
