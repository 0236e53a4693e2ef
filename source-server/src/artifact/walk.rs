//! The tree walk: from a commit's root tree to canonical tar entries, in canonical order,
//! without a checkout.
//!
//! Each directory's entries are sorted by their tar name (directories compare with a trailing
//! `/`, Git's own tree order), so a depth-first pre-order walk yields every path in byte order
//! of its tar name — even for a tree object that is not sorted as Git requires.

use std::io::Write;

use ferry_proto::{LimitError, SkippedEntry};
use gix::bstr::{BString, ByteSlice};
use gix::object::tree::EntryKind;

use super::ignore::{Rules, SOURCEIGNORE};
use super::tar::{Kind, MAX_ENTRY_SIZE, TarWriter, entry_len};
use super::{ArtifactError, Limits};

/// Bounds on a `.sourceignore` file, whatever the other limits say.
const MAX_SOURCEIGNORE: u64 = 1 << 20;

pub(crate) struct Walk<'a, W: Write> {
    pub repo: &'a gix::Repository,
    pub limits: &'a Limits,
    pub rules: Rules,
    pub tar: TarWriter<W>,
    pub skipped: Vec<SkippedEntry>,
    pub entries: u64,
    pub tar_size: u64,
}

struct Child {
    /// The tar name: the path, with `/` appended for directories.
    name: BString,
    kind: EntryKind,
    oid: gix::ObjectId,
}

impl<W: Write> Walk<'_, W> {
    /// Walks the tree `tree` of directory `dir` ("" for the root, else "a/b") at `depth`.
    pub fn dir(
        &mut self,
        tree: gix::ObjectId,
        dir: &[u8],
        depth: usize,
    ) -> Result<(), ArtifactError> {
        if depth > self.limits.max_depth {
            return Err(LimitError::TooDeep {
                path: dir.to_str_lossy().into_owned(),
                limit: self.limits.max_depth,
            }
            .into());
        }
        let tree_obj = self
            .repo
            .find_tree(tree)
            .map_err(|e| ArtifactError::git(format!("reading tree of {:?}", dir.as_bstr()), e))?;
        let decoded = tree_obj
            .decode()
            .map_err(|e| ArtifactError::git(format!("decoding tree of {:?}", dir.as_bstr()), e))?;
        let mut children = Vec::with_capacity(decoded.entries.len());
        let mut sourceignore = None;
        for e in &decoded.entries {
            let file = e.filename;
            if file.is_empty()
                || file == "."
                || file == ".."
                || file.contains(&b'/')
                || file.contains(&b'\\')
                || file.contains(&0)
            {
                return Err(ArtifactError::UnsafePath(format!(
                    "{}{}{:?}",
                    dir.as_bstr(),
                    if dir.is_empty() { "" } else { "/" },
                    file
                )));
            }
            let mut name = BString::from(dir);
            if !dir.is_empty() {
                name.push(b'/');
            }
            name.extend_from_slice(file);
            let kind = e.mode.kind();
            if kind == EntryKind::Tree {
                name.push(b'/');
            }
            if file == SOURCEIGNORE && matches!(kind, EntryKind::Blob | EntryKind::BlobExecutable) {
                sourceignore = Some(e.oid.to_owned());
            }
            children.push(Child {
                name,
                kind,
                oid: e.oid.to_owned(),
            });
        }
        drop(decoded);
        drop(tree_obj);
        children.sort_by(|a, b| a.name.cmp(&b.name));

        if let Some(oid) = sourceignore {
            let data = self.blob(oid, SOURCEIGNORE.as_bytes(), MAX_SOURCEIGNORE)?;
            self.rules.push_sourceignore(depth, dir.as_bstr(), &data);
        }
        for child in children {
            let is_dir = child.kind == EntryKind::Tree;
            let path = if is_dir {
                &child.name[..child.name.len() - 1]
            } else {
                &child.name[..]
            };
            if self.rules.is_ignored(path.as_bstr(), is_dir) {
                continue;
            }
            match child.kind {
                EntryKind::Tree => {
                    self.add(&child.name, Kind::Dir, &[])?;
                    self.dir(child.oid, path, depth + 1)?;
                }
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let limit = self.limits.max_file_size;
                    let data = self.blob(child.oid, &child.name, limit)?;
                    let executable = child.kind == EntryKind::BlobExecutable;
                    self.add(&child.name, Kind::File { executable }, &data)?;
                }
                EntryKind::Link => self.skip(&child.name, "symlink"),
                EntryKind::Commit => self.skip(&child.name, "submodule"),
            }
        }
        self.rules.leave(depth);
        Ok(())
    }

    fn skip(&mut self, name: &[u8], kind: &str) {
        self.skipped.push(SkippedEntry {
            path: name.to_str_lossy().into_owned(),
            kind: kind.to_string(),
        });
    }

    fn add(&mut self, name: &[u8], kind: Kind, data: &[u8]) -> Result<(), ArtifactError> {
        self.entries += 1;
        self.limits.check_entries(self.entries)?;
        self.limits.check_path(name)?;
        self.tar_size += entry_len(name.len(), data.len() as u64);
        // The two zero blocks that end every tar count too.
        self.limits.check_total(self.tar_size + 1024)?;
        self.tar
            .append(name, kind, data)
            .map_err(|e| ArtifactError::Io(format!("writing {:?}: {e}", name.as_bstr())))
    }

    /// A blob's bytes, refusing blobs over `limit` before inflating them.
    fn blob(&self, oid: gix::ObjectId, name: &[u8], limit: u64) -> Result<Vec<u8>, ArtifactError> {
        let header = self
            .repo
            .find_header(oid)
            .map_err(|e| ArtifactError::git(format!("looking up {:?}", name.as_bstr()), e))?;
        let size = header.size();
        if size > limit || size > MAX_ENTRY_SIZE {
            return Err(LimitError::FileTooLarge {
                path: name.to_str_lossy().into_owned(),
                size,
                limit: limit.min(MAX_ENTRY_SIZE),
            }
            .into());
        }
        let blob = self
            .repo
            .find_blob(oid)
            .map_err(|e| ArtifactError::git(format!("reading {:?}", name.as_bstr()), e))?;
        Ok(blob.detach().data)
    }
}
