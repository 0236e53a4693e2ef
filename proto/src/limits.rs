//! Bounds on what one artifact may contain, defined once for both sides: the source server
//! refuses to build an artifact beyond them (`Ready=False`, `ArtifactTooLarge`) and an agent
//! refuses to read one, with the same [`LimitError`] message. When the two disagreed, a
//! repository between the two sets of numbers was Ready on the server and failed on every
//! agent.
//!
//! The defaults are the agent's: it runs under a 64 MiB memory limit in every tenant
//! namespace, while the server is one well-provisioned process. Both binaries take the same
//! flags (`--max-artifact-size`, `--max-file-size`, `--max-artifact-entries`); raise them on
//! the server only together with the agents.

/// Bounds on one artifact (Git content is untrusted on the server, artifacts on the agent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactLimits {
    /// Largest uncompressed canonical tar, in bytes (the artifact's `size`).
    pub max_total_size: u64,
    /// Largest single file, in bytes.
    pub max_file_size: u64,
    /// Most entries (files and directories).
    pub max_entries: u64,
    /// Longest path, in bytes.
    pub max_path_len: usize,
    /// Deepest directory nesting.
    pub max_depth: usize,
}

/// Default of [`ArtifactLimits::max_total_size`]: 16 MiB. An agent holds a verified tree's
/// files in memory (streaming bounds only what it refuses), under its Deployment's 64 MiB
/// limit: 128 MiB of files could never fit. `e2e_hostile_artifacts` measures an artifact at
/// this bound applied within the limit.
pub const DEFAULT_MAX_TOTAL_SIZE: u64 = 16 << 20;
/// Default of [`ArtifactLimits::max_file_size`]: 16 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 16 << 20;
/// Default of [`ArtifactLimits::max_entries`].
pub const DEFAULT_MAX_ENTRIES: u64 = 20_000;

impl Default for ArtifactLimits {
    fn default() -> Self {
        Self {
            max_total_size: DEFAULT_MAX_TOTAL_SIZE,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_path_len: 4096,
            max_depth: 128,
        }
    }
}

/// An artifact exceeds one of the [`ArtifactLimits`]. The same message on the server and the
/// agent; each side prefixes it with the source or the digest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A file is larger than [`ArtifactLimits::max_file_size`].
    #[error(
        "file {path:?} is {size} bytes, over the {limit}-byte per-file limit (--max-file-size)"
    )]
    FileTooLarge {
        /// The file's path in the artifact.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// More entries than [`ArtifactLimits::max_entries`].
    #[error("more than {limit} entries (--max-artifact-entries)")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// The uncompressed tar is larger than [`ArtifactLimits::max_total_size`].
    #[error("the uncompressed artifact exceeds {limit} bytes (--max-artifact-size)")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// A path longer than [`ArtifactLimits::max_path_len`].
    #[error("path {path:?} is longer than {limit} bytes")]
    PathTooLong {
        /// The path (cut to the limit).
        path: String,
        /// The limit.
        limit: usize,
    },
    /// Directories nested deeper than [`ArtifactLimits::max_depth`].
    #[error("directory {path:?} is nested deeper than {limit} levels")]
    TooDeep {
        /// The directory's path.
        path: String,
        /// The limit.
        limit: usize,
    },
}

impl ArtifactLimits {
    /// Checks one file's size.
    pub fn check_file(&self, path: &str, size: u64) -> Result<(), LimitError> {
        if size > self.max_file_size {
            return Err(LimitError::FileTooLarge {
                path: path.to_string(),
                size,
                limit: self.max_file_size,
            });
        }
        Ok(())
    }

    /// Checks the number of entries seen so far.
    pub fn check_entries(&self, entries: u64) -> Result<(), LimitError> {
        if entries > self.max_entries {
            return Err(LimitError::TooManyEntries {
                limit: self.max_entries,
            });
        }
        Ok(())
    }

    /// Checks a path's length; the error carries the path cut to the limit.
    pub fn check_path(&self, path: &[u8]) -> Result<(), LimitError> {
        if path.len() > self.max_path_len {
            return Err(LimitError::PathTooLong {
                path: String::from_utf8_lossy(&path[..self.max_path_len]).into_owned(),
                limit: self.max_path_len,
            });
        }
        Ok(())
    }

    /// Checks the uncompressed size reached so far.
    pub fn check_total(&self, total: u64) -> Result<(), LimitError> {
        if total > self.max_total_size {
            return Err(LimitError::TooLarge {
                limit: self.max_total_size,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_path_is_refused_with_the_path_cut_to_the_limit() {
        let l = ArtifactLimits {
            max_path_len: 8,
            ..ArtifactLimits::default()
        };
        assert!(l.check_path(b"12345678").is_ok());
        assert_eq!(
            l.check_path(b"123456789"),
            Err(LimitError::PathTooLong {
                path: "12345678".into(),
                limit: 8
            })
        );
    }

    #[test]
    fn checks_name_the_limit_and_the_flag() {
        let l = ArtifactLimits::default();
        assert!(l.check_file("a", DEFAULT_MAX_FILE_SIZE).is_ok());
        let e = l
            .check_file("big.bin", DEFAULT_MAX_FILE_SIZE + 1)
            .expect_err("over");
        assert!(e.to_string().contains("\"big.bin\"") && e.to_string().contains("--max-file-size"));
        assert!(l.check_entries(DEFAULT_MAX_ENTRIES).is_ok());
        assert_eq!(
            l.check_entries(DEFAULT_MAX_ENTRIES + 1),
            Err(LimitError::TooManyEntries {
                limit: DEFAULT_MAX_ENTRIES
            })
        );
        assert!(l.check_total(DEFAULT_MAX_TOTAL_SIZE + 1).is_err());
    }
}
