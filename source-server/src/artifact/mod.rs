//! Canonical artifacts: the tree of one commit as a byte-exact tar, identified by the sha256
//! of those uncompressed bytes and stored gzip-compressed.
//!
//! The tar is built straight from Git objects (no checkout, no `.gitattributes` filters) by a
//! walk ([`walk`]) that applies the ignore rules ([`ignore`]) and writes entries with the
//! encoder in [`tar`]; `docs/artifact-format.md` specifies every byte so another
//! implementation can rebuild the same digest. Compression happens on a second thread while
//! the walk produces bytes, so building costs about as long as the slower of the two.

mod files;
mod ignore;
mod sink;
mod tar;
mod walk;

use ferry_proto::condition::reason;
use ferry_proto::{Digest, LimitError, Revision, SkippedEntry};

pub use files::{File, build_from_files, safe_path};
pub use ignore::{DEFAULT_EXCLUDES, KeyRules, SOURCEIGNORE};

use crate::git::Mirror;

/// Bounds on what one artifact may contain: the agents' limits, so the server never serves
/// what they would refuse.
pub use ferry_proto::ArtifactLimits as Limits;

/// A built artifact.
#[derive(Clone, Debug)]
pub struct BuiltArtifact {
    /// sha256 of the uncompressed canonical tar.
    pub digest: Digest,
    /// Size of the uncompressed canonical tar.
    pub tar_size: u64,
    /// The tar, gzip level 6 with a fixed header (mtime 0, OS 255).
    pub gz: Vec<u8>,
    /// Symlinks and submodules left out, in canonical order.
    pub skipped: Vec<SkippedEntry>,
    /// Files and directories in the tar.
    pub entries: u64,
}

/// Why an artifact could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The tree exceeds an artifact limit (the message agents would give).
    #[error("{context}{source}")]
    Limit {
        /// Where, e.g. `revision main@sha1:…: ` (empty or ending in `: `).
        context: String,
        /// Which limit.
        source: LimitError,
    },
    /// A tree entry's name cannot be represented safely.
    #[error("unsafe path in tree: {0}")]
    UnsafePath(String),
    /// Reading Git objects failed.
    #[error("{context}: {detail}")]
    Git {
        /// What was being read.
        context: String,
        /// gix's error.
        detail: String,
    },
    /// Writing or compressing the tar failed.
    #[error("{0}")]
    Io(String),
}

impl From<LimitError> for ArtifactError {
    fn from(source: LimitError) -> Self {
        ArtifactError::Limit {
            context: String::new(),
            source,
        }
    }
}

impl ArtifactError {
    fn git(context: String, err: impl std::fmt::Display) -> Self {
        ArtifactError::Git {
            context,
            detail: err.to_string(),
        }
    }

    /// A `Ready=False` condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ArtifactError::Limit { .. } => reason::ARTIFACT_TOO_LARGE,
            ArtifactError::UnsafePath(_) => reason::UNSAFE_PATH,
            ArtifactError::Git { .. } | ArtifactError::Io(_) => reason::ARTIFACT_FAILED,
        }
    }
}

/// Builds the artifact of `rev`'s commit from `mirror` with the extra `ignore` rules.
/// Errors are prefixed with the revision.
pub fn build_artifact(
    mirror: &Mirror,
    rev: &Revision,
    ignore: Option<&str>,
    limits: &Limits,
) -> Result<BuiltArtifact, ArtifactError> {
    build_from_repo(&mirror.repo(), rev.commit(), ignore, limits).map_err(|e| match e {
        ArtifactError::Limit { context, source } => ArtifactError::Limit {
            context: format!("revision {rev}: {context}"),
            source,
        },
        ArtifactError::UnsafePath(m) => ArtifactError::UnsafePath(format!("revision {rev}: {m}")),
        ArtifactError::Git { context, detail } => ArtifactError::Git {
            context: format!("revision {rev}: {context}"),
            detail,
        },
        ArtifactError::Io(m) => ArtifactError::Io(format!("revision {rev}: {m}")),
    })
}

/// Builds the artifact of `commit` (40 hex) in any repository.
pub fn build_from_repo(
    repo: &gix::Repository,
    commit: &str,
    ignore: Option<&str>,
    limits: &Limits,
) -> Result<BuiltArtifact, ArtifactError> {
    let id = gix::ObjectId::from_hex(commit.as_bytes())
        .map_err(|e| ArtifactError::git(format!("commit {commit:?}"), e))?;
    let tree = repo
        .find_commit(id)
        .and_then(|c| c.tree_id().map(|t| t.detach()))
        .map_err(|e| ArtifactError::git(format!("commit {commit}"), e))?;
    let sink = sink::Sink::new();
    let mut walk = walk::Walk {
        repo,
        limits,
        rules: ignore::Rules::new(ignore),
        tar: tar::TarWriter::new(sink),
        skipped: Vec::new(),
        entries: 0,
        tar_size: 0,
    };
    walk.dir(tree, b"", 0)?;
    let entries = walk.entries;
    let skipped = walk.skipped;
    seal(walk.tar, skipped, entries)
}

/// Compresses a whole canonical tar as every stored artifact is compressed (the same tar, the
/// same gzip bytes as a fresh build): `(digest, tar size, gzip bytes)`. For artifacts rebuilt
/// from something other than a tree walk (bundle deltas).
pub fn compress(tar: &[u8]) -> std::io::Result<(ferry_proto::Digest, u64, Vec<u8>)> {
    use std::io::Write as _;
    let mut sink = sink::Sink::new();
    sink.write_all(tar)?;
    sink.finish()
}

/// Ends the tar and its compression: the artifact's digest, sizes and bytes. Every builder (Git
/// trees, chart files) finishes through here.
pub(crate) fn seal(
    tar: tar::TarWriter<sink::Sink>,
    skipped: Vec<SkippedEntry>,
    entries: u64,
) -> Result<BuiltArtifact, ArtifactError> {
    let sink = tar
        .finish()
        .map_err(|e| ArtifactError::Io(format!("finishing the tar: {e}")))?;
    let (digest, tar_size, gz) = sink
        .finish()
        .map_err(|e| ArtifactError::Io(format!("compressing: {e}")))?;
    Ok(BuiltArtifact {
        digest,
        tar_size,
        gz,
        skipped,
        entries,
    })
}
