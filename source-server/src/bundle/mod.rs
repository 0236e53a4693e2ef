//! Air-gap bundles: a store's artifacts and source states in one tar, carried to a site with
//! no route to the Git servers, and imported into that site's store (README, "Air gap").
//!
//! Layout of a bundle (a plain tar; the artifacts are already gzip):
//! - `index.json` (first): an [`Index`] — format version, the sources with their state records
//!   (kind, namespace, name, current artifact with its revision, history), and every artifact
//!   they name with its digest and sizes. The sha256 of these bytes is the bundle's identity.
//! - `index.json.sig` (optional, second): the raw 64-byte ed25519 signature of `index.json`.
//! - `artifacts/sha256/<hex>.tar.gz`: the artifacts marked `included`, bytes exactly as stored;
//! - `deltas/sha256/<hex>.gz`: in an incremental bundle, an included artifact rebuilt from one
//!   the destination has ([`delta`]), when that is smaller.
//!
//! An incremental bundle (`--since`) names every artifact its sources need, but includes only
//! those the base bundle did not name; the rest must already be in the destination store.
//! Import verifies everything before it writes anything ([`import`]).

mod check;
mod cli;
mod delta;
mod export;
mod import;
mod sign;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use ferry_proto::verify::StreamError;
use ferry_proto::{Digest, SourceKey};
use serde::{Deserialize, Serialize};

use bytes::Bytes;
use futures::TryStreamExt as _;

use crate::storage::{SourceState, Storage, StorageError};

pub use cli::{ExportArgs, ImportArgs, KeygenArgs, run_export, run_import, run_keygen};
pub use export::{ExportOptions, Exported, export};
pub use import::{ImportLimits, ImportOptions, Imported, import};
pub use sign::{SigningKey, VerifyingKey, generate_key};

/// `Index::format` of this version of the layout.
pub const FORMAT: &str = "ferry.dev/bundle/v1";
/// The index's entry name.
pub const INDEX_ENTRY: &str = "index.json";
/// The signature's entry name.
pub const SIGNATURE_ENTRY: &str = "index.json.sig";
/// Largest index accepted: ~300 bytes per artifact and source, so far beyond any real store.
pub const MAX_INDEX_BYTES: u64 = 16 << 20;
/// Most sources in one bundle.
pub const MAX_SOURCES: usize = 10_000;
/// Most artifacts in one bundle (entries are bounded by this plus the index and signature).
pub const MAX_ARTIFACTS: usize = 50_000;

/// The entry name of an artifact.
pub fn artifact_entry(digest: &Digest) -> String {
    format!("artifacts/sha256/{}.tar.gz", digest.hex())
}

/// The entry name of an artifact carried as a delta.
pub fn delta_entry(digest: &Digest) -> String {
    format!("deltas/sha256/{}.gz", digest.hex())
}

/// `Kind namespace/name`, for messages.
fn owner(key: &SourceKey) -> String {
    format!("{} {key}", key.kind)
}

/// An artifact's stored bytes, whole (bounded by what was stored: artifacts and deltas of one
/// source are at most its size limit).
async fn read_stored(storage: &Storage, digest: &Digest) -> Result<Option<Bytes>, StorageError> {
    let Some(read) = storage.read_artifact(digest, None).await? else {
        return Ok(None);
    };
    let chunks: Vec<Bytes> = read.body.try_collect().await?;
    Ok(Some(chunks.concat().into()))
}

/// What a bundle holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// [`FORMAT`].
    pub format: String,
    /// The identity of the bundle this one is incremental to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Digest>,
    /// Sources in key order.
    pub sources: Vec<IndexSource>,
    /// Every artifact the sources name, once each.
    pub artifacts: Vec<IndexArtifact>,
}

/// A source and its state record, as the exporting store has it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexSource {
    #[serde(flatten)]
    pub key: SourceKey,
    pub state: SourceState,
}

/// An artifact named by the index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexArtifact {
    /// sha256 of the uncompressed canonical tar.
    pub digest: Digest,
    /// The uncompressed tar's size (checked at export; bounds decompression at import).
    pub size: u64,
    /// The stored `.tar.gz`'s size: the entry's size when included.
    pub compressed_size: u64,
    /// Whether the bundle carries it; when not, the destination must already have it.
    pub included: bool,
    /// When set, the bundle carries it as a delta against this artifact (which the destination
    /// has), in `deltas/sha256/<hex>.gz`, and `compressedSize` is the delta's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Digest>,
}

impl Index {
    /// Every digest a source state names: current, history, charts' current and history.
    pub fn digests_of(state: &SourceState) -> Vec<Digest> {
        let mut all: Vec<Digest> = state.artifact.iter().map(|a| a.digest).collect();
        all.extend(state.history.iter().copied());
        for c in &state.charts {
            all.push(c.artifact.digest);
            all.extend(c.history.iter().copied());
        }
        all
    }
}

/// Why an export or import failed; each names the bundle entry, source, digest or file.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The store could not be read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A file (bundle, key, index) could not be read or written.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// `--source NS/NAME` names nothing in the store.
    #[error("--source {0}: no source of that namespace/name in the store")]
    NoSuchSource(String),
    /// A stored artifact a source names is missing or not what its name says.
    #[error("{owner}: stored artifact {digest}: {reason}")]
    StoredArtifact {
        /// The source, `Kind namespace/name`.
        owner: String,
        /// The artifact.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// A key file is unreadable or not a key of the expected kind.
    #[error("key file {file}: {reason}")]
    Key {
        /// The key file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The bundle or one of its entries is larger than the import allows.
    #[error("bundle {bundle}: {what} is {size} bytes, above the limit of {limit}")]
    TooLarge {
        /// The bundle file.
        bundle: PathBuf,
        /// What is too large (the bundle, or an entry's name).
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An entry that is not part of the layout (a path outside the store's layout, a link, a
    /// directory, a second index, ...).
    #[error("bundle {bundle}: entry {entry:?}: {reason}")]
    UnexpectedEntry {
        /// The bundle file.
        bundle: PathBuf,
        /// The entry's name as written in the tar.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// An artifact entry whose bytes are not the artifact its name and the index promise.
    #[error("bundle {bundle}: entry {entry}: {source}")]
    Artifact {
        /// The bundle file.
        bundle: PathBuf,
        /// The entry.
        entry: String,
        /// The verification failure (digest mismatch, corrupt or truncated gzip, too large).
        source: StreamError,
    },
    /// The tar itself is damaged or ends early.
    #[error("bundle {bundle}: {at}: {detail} (truncated or not a tar?)")]
    Truncated {
        /// The bundle file.
        bundle: PathBuf,
        /// The last entry read, or `start`.
        at: String,
        /// The reader's error.
        detail: String,
    },
    /// The index is missing, unreadable or inconsistent.
    #[error("bundle {bundle}: {INDEX_ENTRY}: {reason}")]
    Index {
        /// The bundle (or index) file.
        bundle: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The index names an artifact as included that the bundle does not carry.
    #[error(
        "bundle {bundle}: {INDEX_ENTRY} names artifact {digest} (of {owner}) but the bundle has no entry for it"
    )]
    MissingArtifact {
        /// The bundle file.
        bundle: PathBuf,
        /// The missing artifact.
        digest: Digest,
        /// A source naming it, `Kind namespace/name`.
        owner: String,
    },
    /// An incremental bundle relies on an artifact the destination does not have.
    #[error(
        "bundle {bundle}: artifact {digest} (of {owner}) is left out of this incremental bundle (since {since}) and is not in the storage: import the bundles before it first"
    )]
    NotInStorage {
        /// The bundle file.
        bundle: PathBuf,
        /// The artifact (or the base of a delta).
        digest: Digest,
        /// A source naming it, `Kind namespace/name`.
        owner: String,
        /// The base bundle's identity, as the index gives it.
        since: String,
    },
    /// A delta entry that does not rebuild an artifact.
    #[error("bundle {bundle}: entry {entry}: {reason}")]
    Delta {
        /// The bundle file.
        bundle: PathBuf,
        /// The entry.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// The signature is required but missing, or does not verify.
    #[error("bundle {bundle}: signature: {reason}")]
    Signature {
        /// The bundle file.
        bundle: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
