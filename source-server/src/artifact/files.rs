//! The canonical tar of a set of files that do not come from Git (a Helm chart's files): the
//! same entries, order and bytes as a Git tree with those files would give
//! (docs/artifact-format.md), directory entries derived from the paths.

use std::collections::BTreeMap;

use ferry_proto::LimitError;

use super::tar::{Kind, MAX_ENTRY_SIZE, TarWriter};
use super::{ArtifactError, BuiltArtifact, Limits, sink::Sink};

/// One file: its relative `/`-separated path, whether it is executable, and its bytes.
pub struct File {
    pub path: Vec<u8>,
    pub executable: bool,
    pub data: Vec<u8>,
}

/// Whether `path` is a relative path of plain names (no empty, `.` or `..` component, no
/// backslash or NUL): the names a Git tree can hold.
pub fn safe_path(path: &[u8]) -> bool {
    !path.is_empty()
        && path.split(|b| *b == b'/').all(|c| {
            !c.is_empty() && c != b"." && c != b".." && !c.iter().any(|b| *b == b'\\' || *b == 0)
        })
}

/// Builds the canonical artifact of `files` (a later file with the same path replaces an
/// earlier one). Paths must pass [`safe_path`].
pub fn build_from_files(
    files: impl IntoIterator<Item = File>,
    limits: &Limits,
) -> Result<BuiltArtifact, ArtifactError> {
    // Entry name → (kind, data); directories end with '/'. Byte order of entry names is the
    // canonical order (a parent sorts before its contents, `a-b` before `a/`).
    let mut entries: BTreeMap<Vec<u8>, (Kind, Vec<u8>)> = BTreeMap::new();
    for f in files {
        if !safe_path(&f.path) {
            return Err(ArtifactError::UnsafePath(format!(
                "{:?}",
                String::from_utf8_lossy(&f.path)
            )));
        }
        let name = String::from_utf8_lossy(&f.path).into_owned();
        let size = f.data.len() as u64;
        if size > MAX_ENTRY_SIZE {
            return Err(LimitError::FileTooLarge {
                path: name,
                size,
                limit: MAX_ENTRY_SIZE,
            }
            .into());
        }
        limits.check_file(&name, size)?;
        let depth = f.path.iter().filter(|b| **b == b'/').count();
        if depth > limits.max_depth {
            return Err(LimitError::TooDeep {
                path: name,
                limit: limits.max_depth,
            }
            .into());
        }
        for (i, b) in f.path.iter().enumerate() {
            if *b == b'/' {
                entries.insert(f.path[..=i].to_vec(), (Kind::Dir, Vec::new()));
            }
        }
        let kind = Kind::File {
            executable: f.executable,
        };
        entries.insert(f.path, (kind, f.data));
    }
    let mut tar = TarWriter::new(Sink::new());
    let mut tar_size = 1024u64;
    let mut count = 0u64;
    for (name, (kind, data)) in &entries {
        count += 1;
        limits.check_entries(count)?;
        limits.check_path(name)?;
        tar_size += super::tar::entry_len(name.len(), data.len() as u64);
        limits.check_total(tar_size)?;
        tar.append(name, *kind, data).map_err(|e| {
            ArtifactError::Io(format!("writing {:?}: {e}", String::from_utf8_lossy(name)))
        })?;
    }
    super::seal(tar, Vec::new(), count)
}
