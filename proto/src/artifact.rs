//! `ArtifactRef`: where an artifact is and what it is — the record a source's status carries and
//! an agent fetches by.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Digest, Revision};

/// A built artifact: the canonical tar's digest and size, the revision it was built from, and
/// the URL it is served at (gzip-compressed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRef {
    /// sha256 of the uncompressed canonical tar.
    pub digest: Digest,
    /// Size in bytes of the uncompressed tar (what a fetcher bounds decompression by).
    pub size: u64,
    /// Size in bytes of the served .tar.gz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compressed_size: Option<u64>,
    pub revision: Revision,
    /// Where to GET it: `<server>/v1/artifacts/sha256/<hex>`.
    pub url: String,
    pub last_update_time: DateTime<Utc>,
}

/// The path, relative to a source server's base URL, an artifact is served at.
pub fn artifact_path(digest: &Digest) -> String {
    format!("/v1/artifacts/sha256/{}", digest.hex())
}
