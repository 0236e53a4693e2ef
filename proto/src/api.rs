//! The HTTP API between the source server and agents (JSON bodies).
//!
//! - `GET /v1/sources` → [`SourceList`]; `GET /v1/sources/{namespace}/{name}` → [`SourceView`]
//! - `GET /v1/artifacts/sha256/{hex}` → the artifact's `.tar.gz` (ETag = digest, immutable)
//! - `GET /v1/events` → server-sent events, `event: artifact`, data [`ArtifactEvent`], `id` a
//!   sequence number usable as `Last-Event-ID`
//! - `POST /v1/sources/{namespace}/{name}/reconcile` → 202, fetch now

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Digest, GitRepositorySpec, GitRepositoryStatus, Revision};

/// One source as the server sees it: identity, the settings in force, and its status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceView {
    pub namespace: String,
    pub name: String,
    pub kind: String,
    pub spec: GitRepositorySpec,
    pub status: GitRepositoryStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SourceList {
    pub sources: Vec<SourceView>,
}

/// Sent on `/v1/events` when a source gets a new artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactEvent {
    pub namespace: String,
    pub name: String,
    pub revision: Revision,
    pub digest: Digest,
    /// Uncompressed tar size, the bound for the fetcher.
    pub size: u64,
    pub url: String,
}

/// SSE event name for [`ArtifactEvent`].
pub const ARTIFACT_EVENT: &str = "artifact";
