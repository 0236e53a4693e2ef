//! The `build DIR` command shared by `ferry-applier build` and the benchmark binary: pick the
//! build root (`--root`, else the enclosing Git work tree, else `/`), build, and return the
//! YAML plus warnings for stderr.

use std::path::{Path, PathBuf};

use crate::fs::{FsError, RealFs};
use crate::loader::LoadRestrictor;
use crate::target::{BuildOptions, build};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("'{}' is not a directory", .0.display())]
    NotADir(PathBuf),
    #[error("build root '{}': {source}", path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("'{}': {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: FsError,
    },
    #[error(transparent)]
    Build(#[from] crate::Error),
}

/// The directory holding `.git` above (or at) `dir`, if any.
pub fn enclosing_work_tree(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// Builds `dir` and returns (YAML, warnings).
pub fn build_dir(
    dir: &Path,
    root: Option<&Path>,
    load_restrictor: LoadRestrictor,
) -> Result<(String, Vec<String>), CliError> {
    if !dir.is_dir() {
        return Err(CliError::NotADir(dir.to_path_buf()));
    }
    let root = match root {
        Some(r) => r.to_path_buf(),
        None => enclosing_work_tree(dir).unwrap_or_else(|| PathBuf::from("/")),
    };
    let fs = RealFs::new(&root).map_err(|source| CliError::Root {
        path: root.clone(),
        source,
    })?;
    let rel = fs.rel_path_of(dir).map_err(|source| CliError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let out = build(&fs, &rel, &BuildOptions { load_restrictor })?;
    Ok((out.to_yaml(), out.warnings))
}
