//! The HTTP API between the source server and agents (JSON bodies).
//!
//! - `GET /v1/sources` → [`SourceList`]; `GET /v1/sources/{namespace}/{name}` → [`SourceView`]
//! - `GET /v1/artifacts/sha256/{hex}` → the artifact's `.tar.gz` (ETag = digest, immutable)
//! - `GET /v1/events` → server-sent events, `event: artifact`, data [`ArtifactEvent`], `id` an
//!   [`EventId`] (`<epoch>-<sequence>`) usable as `Last-Event-ID`
//! - `POST /v1/sources/{namespace}/{name}/reconcile` → 202, fetch now

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Digest, GitRepositorySpec, GitRepositoryStatus, Revision, SourceKey};

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

impl ArtifactEvent {
    /// The source this event is about.
    pub fn source(&self) -> SourceKey {
        SourceKey::new(&self.namespace, &self.name)
    }
}

impl SourceView {
    /// The source this view shows.
    pub fn key(&self) -> SourceKey {
        SourceKey::new(&self.namespace, &self.name)
    }
}

/// SSE event name for [`ArtifactEvent`].
pub const ARTIFACT_EVENT: &str = "artifact";

/// The `id` of an artifact event: `<epoch>-<sequence>`, the epoch in 16 hex digits. The server
/// picks a new random epoch each time it starts and numbers events from 1 within it, so a
/// `Last-Event-ID` from a previous incarnation is recognised as such (and answered with a
/// snapshot) instead of being mistaken for a position in the current sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventId {
    /// Identifies one run of the server.
    pub epoch: u64,
    /// Position in that run's sequence, from 1; 0 means "before any event".
    pub seq: u64,
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}-{}", self.epoch, self.seq)
    }
}

/// Why a `Last-Event-ID` is not an [`EventId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an event id (expected <16 hex digits>-<sequence>)")]
pub struct EventIdError(pub String);

impl std::str::FromStr for EventId {
    type Err = EventIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || EventIdError(s.chars().take(64).collect());
        let (epoch, seq) = s.trim().split_once('-').ok_or_else(bad)?;
        if epoch.len() != 16 {
            return Err(bad());
        }
        Ok(Self {
            epoch: u64::from_str_radix(epoch, 16).map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_and_old_style_ids_are_refused() {
        let id = EventId {
            epoch: 0x00ab_cdef_0123_4567,
            seq: 42,
        };
        assert_eq!(id.to_string(), "00abcdef01234567-42");
        assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
        for bad in ["42", "", "abc-1", "00abcdef01234567-", "00abcdef01234567-x"] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?}");
        }
    }
}
