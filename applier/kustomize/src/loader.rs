//! Loading files named in a kustomization. One [`KustCtx`] per kustomization directory:
//! it resolves relative paths against that directory, keeps them inside the build root,
//! applies kustomize's load restrictor (files under the kustomization's own directory unless
//! `LoadRestrictionsNone`), and refuses remote references.

use std::cell::RefCell;

use crate::error::{Error, Location, Result};
use crate::fs::{EntryKind, FileSystem, FsError, RelPath};

/// kustomize's `--load-restrictor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadRestrictor {
    /// Files must be in or below the kustomization directory (kustomize's default).
    #[default]
    RootOnly,
    /// Any file inside the build root.
    None,
}

impl std::str::FromStr for LoadRestrictor {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "LoadRestrictionsRootOnly" | "rootOnly" => Ok(LoadRestrictor::RootOnly),
            "LoadRestrictionsNone" | "none" => Ok(LoadRestrictor::None),
            other => Err(format!(
                "unknown load restrictor '{other}' (LoadRestrictionsRootOnly or LoadRestrictionsNone)"
            )),
        }
    }
}

/// Everything needed to read inputs on behalf of one kustomization file.
pub struct KustCtx<'a> {
    pub fs: &'a dyn FileSystem,
    /// Directory holding the kustomization file.
    pub dir: RelPath,
    /// The kustomization file itself.
    pub file: RelPath,
    pub restrictor: LoadRestrictor,
    /// Deprecation and other warnings, printed to stderr by the CLI.
    pub warnings: &'a RefCell<Vec<String>>,
}

/// True for references kustomize would fetch over the network.
pub fn is_remote(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let has_scheme = lower.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    has_scheme
        || lower.starts_with("git@")
        || lower.starts_with("github.com/")
        || lower.starts_with("gitlab.com/")
        || lower.starts_with("bitbucket.org/")
        || lower.contains("?ref=")
        || lower.contains(".git//")
}

impl<'a> KustCtx<'a> {
    pub fn loc(&self, field: impl Into<String>) -> Location {
        Location::new(self.file.to_string(), field)
    }

    pub fn warn(&self, msg: impl Into<String>) {
        self.warnings.borrow_mut().push(msg.into());
    }

    /// Resolves `rel` against the kustomization directory, inside the build root.
    pub fn resolve(&self, rel: &str, field: &str) -> Result<RelPath> {
        if is_remote(rel) {
            return Err(Error::Refused {
                at: self.loc(field),
                msg: format!("remote reference '{rel}'"),
            });
        }
        self.dir.join(rel).map_err(|e| Error::PathEscape {
            at: self.loc(field),
            path: rel.to_string(),
            why: e.to_string(),
        })
    }

    /// What exists at `path` (symlinks resolved), as a kustomize-style error on failure.
    pub fn kind(&self, path: &RelPath, rel: &str, field: &str) -> Result<Option<EntryKind>> {
        self.fs
            .kind(path)
            .map_err(|e| self.fs_error(e, path, rel, field))
    }

    fn fs_error(&self, e: FsError, path: &RelPath, rel: &str, field: &str) -> Error {
        match e {
            FsError::NotFound => Error::NotFound {
                at: self.loc(field),
                path: rel.to_string(),
            },
            FsError::Escapes(why) => Error::PathEscape {
                at: self.loc(field),
                path: rel.to_string(),
                why,
            },
            FsError::TooLarge => Error::Field {
                at: self.loc(field),
                msg: format!("'{rel}' {}", FsError::TooLarge),
            },
            FsError::Io(source) => Error::Io {
                path: path.to_string(),
                source,
            },
        }
    }

    /// Reads a file named in `field`, enforcing the load restrictor.
    pub fn read_bytes(&self, rel: &str, field: &str) -> Result<(RelPath, Vec<u8>)> {
        let path = self.resolve(rel, field)?;
        if self.restrictor == LoadRestrictor::RootOnly {
            // As kustomize: the file's real path (symlinks resolved) must be in or below the
            // kustomization directory's; a link to a sibling directory is outside.
            let real = |p: &RelPath| self.fs.real_path(p).unwrap_or_else(|_| p.clone());
            let (real_path, real_dir) = (real(&path), real(&self.dir));
            let outside = !path.is_within(&self.dir) || !real_path.is_within(&real_dir);
            if outside {
                let shown = if real_path == path {
                    String::new()
                } else {
                    format!("is a symlink to '{real_path}', which ")
                };
                return Err(Error::PathEscape {
                    at: self.loc(field),
                    path: rel.to_string(),
                    why: format!(
                        "{shown}is not in or below '{}' (security: file is outside the kustomization directory; use --load-restrictor LoadRestrictionsNone to allow it)",
                        self.dir
                    ),
                });
            }
        }
        let data = self
            .fs
            .read(&path)
            .map_err(|e| self.fs_error(e, &path, rel, field))?;
        Ok((path, data))
    }

    /// Like [`read_bytes`](Self::read_bytes), as UTF-8 text.
    pub fn read_text(&self, rel: &str, field: &str) -> Result<(RelPath, String)> {
        let (path, data) = self.read_bytes(rel, field)?;
        let text = String::from_utf8(data).map_err(|_| Error::Field {
            at: self.loc(field),
            msg: format!("'{rel}' is not valid UTF-8"),
        })?;
        Ok((path, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_references_are_recognised() {
        assert!(is_remote("https://github.com/org/repo//base?ref=v1"));
        assert!(is_remote("github.com/org/repo/base"));
        assert!(is_remote("git@github.com:org/repo.git"));
        assert!(!is_remote("../base"));
        assert!(!is_remote("deployment.yaml"));
    }
}
