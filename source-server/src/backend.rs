//! The seam between the reconcile loop and a kind of source: "is there something new, and if
//! so, build its artifact". Git ([`GitBackend`]: the mirror in [`crate::git`] and the canonical
//! tar in [`crate::artifact`]) and S3 buckets ([`crate::bucket::BucketBackend`]);
//! [`ByKind`] sends each source to the backend of its kind.
//!
//! Implementations are blocking (gix is); the controller calls them in `spawn_blocking`, at most
//! one call per source at a time, and sets `interrupt` when the source's timeout expires.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use ferry_proto::{Digest, Revision, SkippedEntry};

use crate::config::DesiredSource;

/// A freshly built artifact, gzip bytes in memory.
#[derive(Clone, Debug)]
pub struct Built {
    pub digest: Digest,
    /// Uncompressed canonical tar size.
    pub tar_size: u64,
    pub gz: Bytes,
    pub skipped: Vec<SkippedEntry>,
    /// What was downloaded to build it (buckets; zero for Git, whose fetch is counted by pack).
    pub downloaded: Downloaded,
}

/// Objects and bytes a bucket reconcile downloaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Downloaded {
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Debug)]
pub enum Outcome {
    /// The remote ref still points at the revision already served: nothing fetched or built.
    Unchanged(Revision),
    Built(Revision, Built),
}

/// A failure, already classified for the `Ready` condition.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// Condition reason, one of [`ferry_proto::condition::reason`].
    pub reason: &'static str,
    /// Names the (credential-free) URL and the cause.
    pub message: String,
    /// Retrying with backoff may help (network trouble); otherwise only a change of spec, a
    /// push, or an explicit reconcile request will.
    pub transient: bool,
}

impl BackendError {
    /// Whether the source is retried with backoff (`Reconciling`) rather than left `Stalled`
    /// until its spec changes or a reconcile is requested. A missing ref is not transient in
    /// the network sense, but a push fixes it: it is retried too.
    pub fn retryable(&self) -> bool {
        self.transient || self.reason == ferry_proto::condition::reason::REF_NOT_FOUND
    }
}

/// A kind of source.
pub trait SourceBackend: Send + Sync + 'static {
    /// Resolves the source's ref on the remote. When `current` is the same revision, returns
    /// [`Outcome::Unchanged`] without fetching; otherwise fetches it and builds the artifact.
    fn sync(
        &self,
        source: &DesiredSource,
        current: Option<&Revision>,
        interrupt: &AtomicBool,
    ) -> Result<Outcome, BackendError>;
}

mod git_backend;
pub use git_backend::GitBackend;

/// The backends of a server: each source goes to the one of its kind.
pub struct ByKind {
    pub git: Arc<dyn SourceBackend>,
    pub bucket: Arc<dyn SourceBackend>,
    /// GitRepositories that follow another source server ([`crate::mirror`]).
    pub mirror: Arc<dyn SourceBackend>,
}

impl SourceBackend for ByKind {
    fn sync(
        &self,
        source: &DesiredSource,
        current: Option<&Revision>,
        interrupt: &AtomicBool,
    ) -> Result<Outcome, BackendError> {
        match &source.spec {
            crate::config::SourceSpec::Git(g) if crate::mirror::is_mirror(&g.url) => {
                self.mirror.sync(source, current, interrupt)
            }
            crate::config::SourceSpec::Git(_) => self.git.sync(source, current, interrupt),
            crate::config::SourceSpec::Bucket(_) => self.bucket.sync(source, current, interrupt),
        }
    }
}
