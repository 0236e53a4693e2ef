//! `ArtifactTree`: a verified artifact held in memory as path → bytes, read from the tar without
//! ever touching the disk. Everything an attacker controls in a tar header is checked here:
//! names (absolute, `..`, backslashes, NUL, non-UTF-8), entry types (only regular files and
//! directories), per-file and total sizes, and the number of entries.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use ferry_proto::{ArtifactLimits, Digest, LimitError};

/// Why a tar was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("tar entry {path:?}: {why}")]
    BadPath { path: String, why: &'static str },
    #[error("tar entry {path:?} is a {kind}; only regular files and directories are allowed")]
    BadType { path: String, kind: String },
    /// Over one of the artifact limits: the message the source server gives for the same tree.
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("tar entry {path:?} appears twice or clashes with a directory of the same name")]
    Duplicate { path: String },
    #[error("malformed tar: {0}")]
    Malformed(String),
}

/// The files of one artifact, by normalised relative path (`dir/file.yaml`, no leading `./`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactTree {
    digest: Digest,
    files: BTreeMap<String, Vec<u8>>,
    dirs: BTreeSet<String>,
}

impl ArtifactTree {
    /// Reads the tar stream `tar` (already digest-verified) into memory, entry by entry,
    /// refusing unsafe or oversized entries: only the files' contents are kept.
    pub fn from_reader<R: Read>(
        digest: Digest,
        tar: R,
        limits: &ArtifactLimits,
    ) -> Result<Self, TreeError> {
        let mut archive = tar::Archive::new(tar);
        // Raw: the tar crate would read a GNU long-name or pax header whole into memory,
        // bounded only by the artifact; here a long name is read up to the path limit.
        let entries = archive
            .entries()
            .map_err(|e| TreeError::Malformed(e.to_string()))?
            .raw(true);
        let mut files = BTreeMap::new();
        let mut dirs = BTreeSet::new();
        let mut total = 0u64;
        let mut count = 0u64;
        let mut long_name: Option<Vec<u8>> = None;
        for entry in entries {
            let mut entry = entry.map_err(|e| TreeError::Malformed(e.to_string()))?;
            let kind = entry.header().entry_type();
            if kind.is_gnu_longname() {
                if long_name.is_some() {
                    return Err(TreeError::Malformed(
                        "two long-name headers for one entry".into(),
                    ));
                }
                long_name = Some(read_long_name(&mut entry, limits)?);
                continue;
            }
            count += 1;
            limits.check_entries(count)?;
            let raw = match long_name.take() {
                Some(name) => name,
                None => entry.path_bytes().into_owned(),
            };
            let path = normalise(&raw, limits)?;
            if kind.is_dir() {
                if !path.is_empty() {
                    if files.contains_key(&path) {
                        return Err(TreeError::Duplicate { path });
                    }
                    dirs.insert(path);
                }
                continue;
            }
            if !kind.is_file() {
                return Err(TreeError::BadType {
                    path,
                    kind: type_name(kind),
                });
            }
            if path.is_empty() {
                return Err(TreeError::BadPath {
                    path,
                    why: "a file must have a name",
                });
            }
            let size = entry
                .header()
                .size()
                .map_err(|e| TreeError::Malformed(e.to_string()))?;
            limits.check_file(&path, size)?;
            total += size;
            limits.check_total(total)?;
            let mut data = Vec::with_capacity(size as usize);
            // The header's size was checked above; `take` keeps a lying header from reading more.
            (&mut entry)
                .take(limits.max_file_size)
                .read_to_end(&mut data)
                .map_err(|e| TreeError::Malformed(format!("{path}: {e}")))?;
            if dirs.contains(&path) || files.insert(path.clone(), data).is_some() {
                return Err(TreeError::Duplicate { path });
            }
        }
        if long_name.is_some() {
            return Err(TreeError::Malformed(
                "a long-name header is the last entry".into(),
            ));
        }
        // A file used as a directory by another entry (`a` and `a/b`) is ambiguous: refuse it.
        for path in files.keys() {
            let mut prefix = path.as_str();
            while let Some((parent, _)) = prefix.rsplit_once('/') {
                if files.contains_key(parent) {
                    return Err(TreeError::Duplicate {
                        path: parent.to_string(),
                    });
                }
                dirs.insert(parent.to_string());
                prefix = parent;
            }
        }
        Ok(Self {
            digest,
            files,
            dirs,
        })
    }

    /// Builds a tree from files directly, for tests. Paths are normalised and checked like tar
    /// entries.
    #[cfg(test)]
    pub(crate) fn from_files<P: AsRef<str>, D: Into<Vec<u8>>>(
        digest: Digest,
        files: impl IntoIterator<Item = (P, D)>,
    ) -> Result<Self, TreeError> {
        let mut out = BTreeMap::new();
        let mut dirs = BTreeSet::new();
        for (p, d) in files {
            let path = normalise(p.as_ref().as_bytes(), &ArtifactLimits::default())?;
            let mut prefix = path.as_str();
            while let Some((parent, _)) = prefix.rsplit_once('/') {
                dirs.insert(parent.to_string());
                prefix = parent;
            }
            out.insert(path, d.into());
        }
        Ok(Self {
            digest,
            files: out,
            dirs,
        })
    }

    pub fn digest(&self) -> Digest {
        self.digest
    }

    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// True for the root (`""`) and every directory that holds something.
    pub fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || self.dirs.contains(path)
    }

    /// All files, sorted by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(p, d)| (p.as_str(), d.as_slice()))
    }

    /// Files below directory `dir` (recursively, sorted by path); `""` is the root.
    pub fn files_under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.files().filter(move |(p, _)| {
            dir.is_empty() || (p.starts_with(dir) && p.as_bytes().get(dir.len()) == Some(&b'/'))
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Bytes held in memory by file contents.
    pub fn content_size(&self) -> usize {
        self.files.values().map(Vec::len).sum()
    }
}

/// The name a GNU long-name header (`././@LongLink`, what the source server writes for paths
/// over 100 bytes) gives the next entry, without its terminating NUL. A header announcing more
/// than the path limit is refused after reading only that much, for the message.
fn read_long_name<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    limits: &ArtifactLimits,
) -> Result<Vec<u8>, TreeError> {
    let size = entry
        .header()
        .size()
        .map_err(|e| TreeError::Malformed(e.to_string()))?;
    let max = limits.max_path_len as u64;
    let mut name = Vec::new();
    // The NUL terminator is one byte past the longest allowed path.
    entry
        .by_ref()
        .take(size.min(max + 1))
        .read_to_end(&mut name)
        .map_err(|e| TreeError::Malformed(format!("long-name header: {e}")))?;
    if size > max + 1 {
        name.truncate(limits.max_path_len);
        return Err(LimitError::PathTooLong {
            path: String::from_utf8_lossy(&name).into_owned(),
            limit: limits.max_path_len,
        }
        .into());
    }
    if name.last() == Some(&0) {
        name.pop();
    }
    limits.check_path(&name)?;
    Ok(name)
}

/// `./a//b/` → `a/b`; refuses what could name anything outside the tree.
fn normalise(raw: &[u8], limits: &ArtifactLimits) -> Result<String, TreeError> {
    limits.check_path(raw)?;
    let lossy = || String::from_utf8_lossy(raw).into_owned();
    let bad = |why| TreeError::BadPath { path: lossy(), why };
    let s = std::str::from_utf8(raw).map_err(|_| bad("path is not valid UTF-8"))?;
    if s.starts_with('/') {
        return Err(bad("absolute paths are not allowed"));
    }
    if s.contains('\\') {
        return Err(bad("backslashes are not allowed in paths"));
    }
    if s.contains('\0') || s.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed in paths"));
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(bad("`..` is not allowed in paths")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn type_name(t: tar::EntryType) -> String {
    match t {
        tar::EntryType::Symlink => "symlink".into(),
        tar::EntryType::Link => "hardlink".into(),
        tar::EntryType::Char => "character device".into(),
        tar::EntryType::Block => "block device".into(),
        tar::EntryType::Fifo => "fifo".into(),
        tar::EntryType::XHeader | tar::EntryType::XGlobalHeader => "pax extended header".into(),
        tar::EntryType::GNULongLink => "long link name header".into(),
        other => format!("{other:?} entry"),
    }
}

impl ferry_kustomize::fs::FileSystem for ArtifactTree {
    fn kind(
        &self,
        path: &ferry_kustomize::fs::RelPath,
    ) -> Result<Option<ferry_kustomize::fs::EntryKind>, ferry_kustomize::fs::FsError> {
        use ferry_kustomize::fs::EntryKind;
        let p = path.as_str();
        Ok(if self.files.contains_key(p) {
            Some(EntryKind::File)
        } else if self.is_dir(p) {
            Some(EntryKind::Dir)
        } else {
            None
        })
    }

    fn read(
        &self,
        path: &ferry_kustomize::fs::RelPath,
    ) -> Result<Vec<u8>, ferry_kustomize::fs::FsError> {
        use ferry_kustomize::fs::{FsError, MAX_FILE_BYTES};
        match self.files.get(path.as_str()) {
            Some(d) if d.len() as u64 > MAX_FILE_BYTES => Err(FsError::TooLarge),
            Some(d) => Ok(d.clone()),
            None => Err(FsError::NotFound),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a tar with raw header control, so tests can write what a hostile server would.
    pub(crate) fn raw_tar(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_old();
            {
                // Write the name bytes directly: `set_path` itself refuses `..` and absolute paths.
                let old = h.as_old_mut();
                old.name[..name.len()].copy_from_slice(name);
            }
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
                h.set_link_name("target").expect("link name");
            }
            h.set_cksum();
            b.append(&h, *data).expect("append");
        }
        b.into_inner().expect("finish")
    }

    fn read(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Result<ArtifactTree, TreeError> {
        let tar = raw_tar(entries);
        ArtifactTree::from_reader(Digest::of(&tar), &tar[..], &ArtifactLimits::default())
    }

    const F: tar::EntryType = tar::EntryType::Regular;

    #[test]
    fn reads_files_and_normalises_names() {
        let t = read(&[
            (b"./", tar::EntryType::Directory, b""),
            (b"./apps/", tar::EntryType::Directory, b""),
            (b"./apps/web.yaml", F, b"kind: Service"),
            (b"top.yaml", F, b"x"),
        ])
        .expect("valid tar");
        assert_eq!(t.get("apps/web.yaml"), Some(&b"kind: Service"[..]));
        assert!(t.is_dir("apps") && t.is_dir(""));
        assert_eq!(
            t.files_under("apps").map(|(p, _)| p).collect::<Vec<_>>(),
            ["apps/web.yaml"]
        );
        assert_eq!(t.files_under("").count(), 2);
    }

    #[test]
    fn refuses_traversal_absolute_and_backslash_names() {
        for (name, why) in [
            (&b"../etc/passwd"[..], "`..`"),
            (b"a/../../x", "`..`"),
            (b"/etc/passwd", "absolute"),
            (b"a\\..\\b", "backslash"),
            (b"bad\xffname", "UTF-8"),
        ] {
            let err = read(&[(name, F, b"x")]).expect_err("must be refused");
            assert!(
                matches!(&err, TreeError::BadPath { why: w, .. } if w.contains(why)),
                "{name:?}: {err}"
            );
        }
    }

    #[test]
    fn refuses_links_and_devices() {
        for (kind, word) in [
            (tar::EntryType::Symlink, "symlink"),
            (tar::EntryType::Link, "hardlink"),
            (tar::EntryType::Char, "character device"),
            (tar::EntryType::Block, "block device"),
            (tar::EntryType::Fifo, "fifo"),
        ] {
            let err = read(&[(b"evil", kind, b"")]).expect_err("must be refused");
            assert!(err.to_string().contains(word), "{err}");
            assert!(err.to_string().contains("\"evil\""), "{err}");
        }
    }

    #[test]
    fn refuses_oversize_files_too_many_entries_and_too_much_in_total() {
        let tar = raw_tar(&[(b"big", F, &[b'a'; 2048])]);
        let limits = ArtifactLimits {
            max_file_size: 1024,
            ..ArtifactLimits::default()
        };
        let err =
            ArtifactTree::from_reader(Digest::of(&tar), &tar[..], &limits).expect_err("too big");
        assert!(
            matches!(
                err,
                TreeError::Limit(LimitError::FileTooLarge { size: 2048, .. })
            ),
            "{err}"
        );

        let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
        let entries: Vec<(&[u8], tar::EntryType, &[u8])> =
            names.iter().map(|n| (n.as_bytes(), F, &b"x"[..])).collect();
        let tar = raw_tar(&entries);
        let limits = ArtifactLimits {
            max_entries: 10,
            ..ArtifactLimits::default()
        };
        let err =
            ArtifactTree::from_reader(Digest::of(&tar), &tar[..], &limits).expect_err("too many");
        assert_eq!(
            err,
            TreeError::Limit(LimitError::TooManyEntries { limit: 10 })
        );

        // A tar bomb of many files each under the per-file limit.
        let data = vec![b'a'; 1000];
        let entries: Vec<(&[u8], tar::EntryType, &[u8])> = names
            .iter()
            .map(|n| (n.as_bytes(), F, data.as_slice()))
            .collect();
        let tar = raw_tar(&entries);
        let limits = ArtifactLimits {
            max_total_size: 5000,
            ..ArtifactLimits::default()
        };
        let err =
            ArtifactTree::from_reader(Digest::of(&tar), &tar[..], &limits).expect_err("total");
        assert_eq!(err, TreeError::Limit(LimitError::TooLarge { limit: 5000 }));
    }

    #[test]
    fn refuses_duplicates_and_file_directory_clashes() {
        let err = read(&[(b"a.yaml", F, b"1"), (b"./a.yaml", F, b"2")]).expect_err("dup");
        assert!(matches!(err, TreeError::Duplicate { .. }));
        let err = read(&[(b"a", F, b"1"), (b"a/b", F, b"2")]).expect_err("clash");
        assert_eq!(err, TreeError::Duplicate { path: "a".into() });
    }

    /// A tar with one GNU long-name header announcing `name` (`size` bytes of it, the rest
    /// zero) for a regular file.
    fn long_name_tar(name: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, std::str::from_utf8(name).expect("utf8"), &b"x"[..])
            .expect("append");
        b.into_inner().expect("finish")
    }

    /// Counts what the tar reader took from the stream.
    struct Counting<'a>(&'a [u8], usize);

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn long_names_are_read_up_to_the_path_limit_only() {
        // What the source server writes for a path over 100 bytes.
        let name = format!("{}/deploy.yaml", "d".repeat(200));
        let tar = long_name_tar(name.as_bytes());
        let t = ArtifactTree::from_reader(Digest::of(&tar), &tar[..], &ArtifactLimits::default())
            .expect("a long name within the limit");
        assert_eq!(t.get(&name), Some(&b"x"[..]));

        let name = "a".repeat(5000);
        let tar = long_name_tar(name.as_bytes());
        let err = ArtifactTree::from_reader(Digest::of(&tar), &tar[..], &ArtifactLimits::default())
            .expect_err("over the path limit");
        assert_eq!(
            err,
            TreeError::Limit(LimitError::PathTooLong {
                path: "a".repeat(4096),
                limit: 4096
            })
        );

        // A long-name header announcing 64 MiB: refused after reading one path's worth.
        let mut huge = tar::Header::new_gnu();
        huge.as_gnu_mut().expect("gnu").name[..13].copy_from_slice(b"././@LongLink");
        huge.set_entry_type(tar::EntryType::GNULongName);
        huge.set_size(64 << 20);
        huge.set_cksum();
        let mut tar = huge.as_bytes().to_vec();
        tar.resize(tar.len() + (64 << 20), b'b');
        let mut counting = Counting(&tar, 0);
        let err =
            ArtifactTree::from_reader(Digest::of(&tar), &mut counting, &ArtifactLimits::default())
                .expect_err("huge long name");
        assert!(
            matches!(&err, TreeError::Limit(LimitError::PathTooLong { path, limit: 4096 }) if path.len() == 4096),
            "{err}"
        );
        assert!(counting.1 < 1 << 20, "read {} bytes of it", counting.1);
    }

    #[test]
    fn pax_headers_are_refused_without_being_read() {
        let record = b"30 path=pax/overrides/name.yml\n";
        let mut h = tar::Header::new_ustar();
        h.set_path("PaxHeaders/x").expect("path");
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(record.len() as u64);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &record[..]).expect("append");
        let mut f = tar::Header::new_ustar();
        f.set_path("x").expect("path");
        f.set_size(1);
        f.set_cksum();
        b.append(&f, &b"x"[..]).expect("append");
        let tar = b.into_inner().expect("finish");
        let err = ArtifactTree::from_reader(Digest::of(&tar), &tar[..], &ArtifactLimits::default())
            .expect_err("pax");
        assert!(
            err.to_string().contains("pax extended header")
                && err.to_string().contains("PaxHeaders/x"),
            "{err}"
        );
    }

    #[test]
    fn truncated_tar_is_malformed_not_a_partial_tree() {
        let mut tar = raw_tar(&[(b"a.yaml", F, &[b'a'; 4096])]);
        tar.truncate(1024);
        let err = ArtifactTree::from_reader(Digest::of(&tar), &tar[..], &ArtifactLimits::default())
            .expect_err("truncated");
        assert!(matches!(err, TreeError::Malformed(_)), "{err}");
    }
}
