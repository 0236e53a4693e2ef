//! The HTTP API between the source server and agents (JSON bodies; errors are
//! `{"error": "<message>"}`).
//!
//! - `GET /v1/sources` → [`SourceList`] (GitRepositories); `GET /v1/sources/{namespace}/{name}`
//!   → [`SourceView`] of the `GitRepository` `namespace/name` (the path has no kind: it predates
//!   other kinds and keeps its meaning)
//! - `GET /v1/helmrepositories` → [`HelmRepositoryList`];
//!   `GET /v1/helmrepositories/{namespace}/{name}` → [`HelmRepositoryView`]
//! - `GET /v1/helmrepositories/{namespace}/{name}/charts/{chart}?version=<range>` →
//!   [`HelmChartArtifact`]: the highest version of `chart` in the repository's index that
//!   satisfies `range` (default `*`), packed into an artifact. 404 when the repository, the
//!   chart or a matching version does not exist, 422 when the range is not a valid constraint,
//!   503 while the repository has no index yet, 502 when the chart cannot be downloaded or
//!   packed; the message names the repository, the chart and the range.
//! - `GET /v1/buckets` → [`BucketList`]; `GET /v1/buckets/{namespace}/{name}` → [`BucketView`]
//!   (its `status.artifact` is the artifact of the objects under the prefix, announced on the
//!   event stream with kind `Bucket`)
//! - `GET /v1/artifacts/sha256/{hex}` → the artifact's `.tar.gz` (ETag = digest, immutable)
//! - `GET /v1/events` → server-sent events, `event: artifact`, data [`ArtifactEvent`], `id` an
//!   [`EventId`] (`<epoch>-<sequence>`) usable as `Last-Event-ID`
//! - `POST /v1/sources/{namespace}/{name}/reconcile`, `POST
//!   /v1/buckets/{namespace}/{name}/reconcile`, `POST
//!   /v1/helmrepositories/{namespace}/{name}/reconcile` → 202, fetch now; an optional
//!   `?requestedAt=<token>` (default: the time) is answered in the body and, once that fetch is
//!   done, echoed in `status.lastHandledReconcileAt` (Flux's annotation protocol, over HTTP)
//! - `POST /v1/agents/{namespace}/events` ← [`EventBatch`] (at most [`MAX_EVENTS_PER_POST`]
//!   events, [`MAX_AGENT_BODY`] bytes): the events an agent recorded as Kubernetes Events, for
//!   alerting → 202
//! - `PUT /v1/agents/{namespace}/status` ← [`AgentReport`] (at most [`MAX_REPORTED_OBJECTS`]
//!   objects): the agent's whole namespace, replacing what it reported before → 204
//! - `GET /v1/agents` → [`AgentList`]; `GET /v1/agents/{namespace}` → [`AgentView`]
//!
//! - `GET /v1/receivers` → [`ReceiverList`] (webhook paths and status; never a token)
//! - `POST /hook/<hex>` → [`HookReply`]: a webhook call (see `source-server/README.md#receivers`)
//!
//! # Helm charts
//!
//! Agents never download or parse a repository index. The source server fetches each
//! `HelmRepository`'s index (conditional GET), parses it once into a table of chart versions,
//! and resolves `(repository, chart, range)` on request. Ranges are Helm's (Masterminds semver
//! constraints: `^1.2`, `~1.2`, `>=1.0 <2.0`, `1.x`, `*`, `,` or space for AND, `||` for OR;
//! prereleases only match a range that names one).
//!
//! **Artifact.** The resolved chart version is downloaded once, its digest checked against the
//! index's `digest`, and its files re-packed as a canonical tar (docs/artifact-format.md) with
//! the top-level `<chart>/` directory **stripped**: `Chart.yaml` is at the artifact's root, as
//! in a chart directory of a Git repository — so an agent renders either with the root (or a
//! Git path such as `./charts/app`) as the chart directory. The digest is over the
//! uncompressed tar and does not depend on how the `.tgz` was compressed or ordered. The
//! revision is `<version>@sha256:<digest>`; Flux's HelmChart prints the bare chart version
//! (`1.2.3`), which does not change when a repository re-publishes different bytes under the
//! same version — Ferry's does.
//!
//! **Events.** Each resolve registers `(repository, chart, range)` with the server. After
//! every index change, the server re-resolves every registration and, when the answer changed,
//! packs the new version and sends an `artifact` event of kind `HelmChart` whose source key is
//! [`SourceKey::helm_chart`] (name `<repository>/<chart>@<range>`, in the repository's
//! namespace). An agent only has to listen: it computes the same key from its HelmRelease
//! (`SourceKey::helm_chart`) and matches events exactly, as Kustomizations match their
//! GitRepository's events. Registrations are kept in the server's state (they survive a
//! restart) and keep their chart artifacts from garbage collection; an agent keeps its
//! registration alive by resolving on each reconcile (one nobody asked for within the server's
//! `--helm-registration-ttl`, default 7 days, is dropped).
//!
//! **Charts from Git.** A HelmRelease whose `sourceRef` is a `GitRepository` with `chart:
//! ./charts/app` needs nothing beyond the GitRepository's artifact: the chart is that
//! directory of it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bucket::{BucketSpec, BucketStatus};
use crate::helm_repository::{HelmRepositorySpec, HelmRepositoryStatus};
use crate::receiver::{ReceiverSpec, ReceiverStatus};
use crate::source::SourceKind;
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

/// One `Bucket` as the server sees it (the Secret's keys are never shown).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketView {
    pub namespace: String,
    pub name: String,
    /// `Bucket`.
    pub kind: String,
    pub spec: BucketSpec,
    pub status: BucketStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BucketList {
    pub buckets: Vec<BucketView>,
}

/// One `HelmRepository` as the server sees it (credentials are never shown).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmRepositoryView {
    pub namespace: String,
    pub name: String,
    /// `HelmRepository`.
    pub kind: String,
    pub spec: HelmRepositorySpec,
    pub status: HelmRepositoryStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HelmRepositoryList {
    pub repositories: Vec<HelmRepositoryView>,
}

/// Query of `GET /v1/helmrepositories/{namespace}/{name}/charts/{chart}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartQuery {
    /// A semver range (Helm's constraint syntax); absent or empty means `*`.
    #[serde(default)]
    pub version: Option<String>,
}

/// The answer to a chart resolution: which version, and the artifact holding its files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartArtifact {
    /// The chart's name.
    pub chart: String,
    /// The chart version the range resolved to (as written in the index).
    pub version: String,
    /// `<version>@sha256:<digest>`.
    pub revision: Revision,
    /// sha256 of the canonical uncompressed tar (the chart's files, `Chart.yaml` at the root).
    pub digest: Digest,
    /// Uncompressed tar size, the bound for the fetcher.
    pub size: u64,
    /// Where to GET it: `<server>/v1/artifacts/sha256/<hex>`.
    pub url: String,
    /// The index revision (`sha256:<hex>`) the range was resolved against.
    pub index_revision: Revision,
}

/// Sent on `/v1/events` when a source gets a new artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactEvent {
    /// The source's kind: `GitRepository` (when absent, for servers that predate kinds),
    /// `Bucket`, or `HelmChart` (then `name` is `<repository>/<chart>@<range>`, see the module
    /// doc).
    #[serde(default)]
    pub kind: SourceKind,
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
        SourceKey::of(self.kind, &self.namespace, &self.name)
    }
}

impl SourceView {
    /// The source this view shows.
    pub fn key(&self) -> SourceKey {
        SourceKey::new(&self.namespace, &self.name)
    }
}

impl SourceKey {
    /// The key of the resolution of `range` (empty means `*`) for `chart` in the
    /// `HelmRepository` `namespace/repository`: kind `HelmChart`, name
    /// `<repository>/<chart>@<range>`. The server's events and an agent's HelmRelease use this
    /// one function, so they agree on it.
    pub fn helm_chart(namespace: &str, repository: &str, chart: &str, range: &str) -> Self {
        let range = match range.trim() {
            "" => "*",
            r => r,
        };
        SourceKey::of(
            SourceKind::HelmChart,
            namespace,
            format!("{repository}/{chart}@{range}"),
        )
    }
}

/// One `Receiver` as the server sees it (the token is never shown; the spec only names its
/// Secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverView {
    pub namespace: String,
    pub name: String,
    /// `Receiver`.
    pub kind: String,
    pub spec: ReceiverSpec,
    pub status: ReceiverStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReceiverList {
    pub receivers: Vec<ReceiverView>,
}

/// What became of a webhook call (the body of every answer on a known hook path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HookOutcome {
    /// Authenticated; the sources were asked to fetch (200).
    Accepted,
    /// Authenticated, but the event is not in `spec.events` or is GitHub's `ping` (200).
    Ignored,
    /// A delivery id seen within the replay window: nothing triggered again (200).
    Duplicate,
    /// Over the receiver's rate; `Retry-After` says when to come back (429).
    RateLimited,
    /// Signature or token missing or wrong (401).
    Unauthorized,
    /// The body is over the limit (413).
    TooLarge,
    /// Malformed request: headers over the limit, a body that could not be read in time (400,
    /// 408, 431).
    BadRequest,
    /// `spec.suspend` is set (503).
    Suspended,
    /// A named source could not be asked to fetch (500; the others were).
    Failed,
}

impl HookOutcome {
    /// The metric label value (the serialized name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Ignored => "ignored",
            Self::Duplicate => "duplicate",
            Self::RateLimited => "rate_limited",
            Self::Unauthorized => "unauthorized",
            Self::TooLarge => "too_large",
            Self::BadRequest => "bad_request",
            Self::Suspended => "suspended",
            Self::Failed => "failed",
        }
    }
}

/// The answer to a webhook call on a known path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HookReply {
    pub outcome: HookOutcome,
    /// Why, naming the receiver.
    pub message: String,
    /// The sources asked to fetch (`Kind/namespace/name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggered: Vec<String>,
    /// The token of this request: the GitRepositories asked to fetch echo it in
    /// `status.lastHandledReconcileAt` once a fetch that started after it is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<String>,
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

/// Most events in one `POST /v1/agents/{namespace}/events`.
pub const MAX_EVENTS_PER_POST: usize = 100;
/// Most objects in one `PUT /v1/agents/{namespace}/status`.
pub const MAX_REPORTED_OBJECTS: usize = 10_000;
/// Largest body of either agent request, in bytes.
pub const MAX_AGENT_BODY: usize = 8 << 20;

/// An event's `severity` (Flux's values; Kubernetes `Normal` is `info`, `Warning` is `error`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Error,
}

/// The object an [`Event`] is about (the fields of Kubernetes' `ObjectReference` Flux fills).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// An event in Flux's shape (`fluxcd/pkg/apis/event/v1beta1.Event`): what agents report and
/// what the `generic` alert providers POST, so receivers written for Flux read it unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub involved_object: InvolvedObject,
    pub severity: Severity,
    pub timestamp: DateTime<Utc>,
    pub message: String,
    pub reason: String,
    /// `revision` (the source revision the event is about) and, from an Alert,
    /// `eventMetadata` and `summary`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// `ferry-applier` or `ferry-source-server`.
    pub reporting_controller: String,
    /// The reporting process (the agent's pod name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reporting_instance: String,
}

/// The metadata key of the source revision an event is about.
pub const META_REVISION: &str = "revision";
/// The metadata key of a reconcile request's token (part of the duplicate key, as in Flux).
pub const META_TOKEN: &str = "token";

/// One event as an agent reports it: the event, and the involved object's labels (what an
/// Alert's `eventSources[].matchLabels` selects on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportedEvent {
    #[serde(flatten)]
    pub event: Event,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Body of `POST /v1/agents/{namespace}/events`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventBatch {
    pub events: Vec<ReportedEvent>,
}

/// One Kustomization or HelmRelease as its agent last saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSummary {
    /// `Kustomization` or `HelmRelease`.
    pub kind: String,
    pub name: String,
    /// The `Ready` condition's status (`Unknown` before the first reconcile).
    pub ready: crate::ConditionStatus,
    /// The `Ready` condition's reason and message.
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// Objects that differ from the desired state, when the agent checked (`driftMode:
    /// detect`, a HelmRelease's `warn` mode); absent when not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifted: Option<u32>,
    /// What it applied (the status's inventory).
    #[serde(default)]
    pub inventory: crate::Inventory,
    /// When the agent last saw this summary change.
    pub updated_at: DateTime<Utc>,
}

/// Body of `PUT /v1/agents/{namespace}/status`: every object of the agent's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AgentReport {
    pub objects: Vec<ObjectSummary>,
}

/// One agent's namespace as the source server last heard of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub namespace: String,
    /// When the last report arrived (agents report on change and at least every minute).
    pub reported_at: DateTime<Utc>,
    /// Sorted by kind, then name.
    pub objects: Vec<ObjectSummary>,
}

/// `GET /v1/agents`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AgentList {
    pub agents: Vec<AgentView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reported_event_is_flux_s_event_with_labels_beside_it() {
        let json = serde_json::json!({
            "involvedObject": {"kind": "Kustomization", "namespace": "team-a", "name": "app"},
            "severity": "error", "timestamp": "2026-12-05T08:00:00Z",
            "message": "kustomize build failed", "reason": "BuildFailed",
            "metadata": {"revision": "main@sha1:abc"},
            "reportingController": "ferry-applier",
            "labels": {"team": "a"},
        });
        let ev: ReportedEvent = serde_json::from_value(json.clone()).expect("parses");
        assert_eq!(ev.event.severity, Severity::Error);
        assert_eq!(ev.labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(serde_json::to_value(&ev).expect("json"), json);
        let flux = serde_json::to_value(&ev.event).expect("json");
        assert!(
            flux.get("labels").is_none(),
            "the event alone is Flux's shape"
        );
        assert_eq!(flux["metadata"]["revision"], "main@sha1:abc");
    }

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

    #[test]
    fn events_without_a_kind_are_git_repositories() {
        let d = crate::Digest::of(b"x");
        let json = serde_json::json!({
            "namespace": "a", "name": "b", "revision": format!("main@sha1:{}", "0".repeat(40)),
            "digest": d.to_string(), "size": 1, "url": "u",
        });
        let ev: ArtifactEvent = serde_json::from_value(json).expect("old event");
        assert_eq!(ev.source(), SourceKey::new("a", "b"));
        let chart = ArtifactEvent {
            kind: SourceKind::HelmChart,
            name: "podinfo/podinfo@^6".into(),
            ..ev
        };
        let back: ArtifactEvent =
            serde_json::from_str(&serde_json::to_string(&chart).expect("json")).expect("back");
        assert_eq!(
            back.source(),
            SourceKey::helm_chart("a", "podinfo", "podinfo", "^6")
        );
        assert_eq!(
            SourceKey::helm_chart("a", "r", "c", " "),
            SourceKey::helm_chart("a", "r", "c", "*")
        );
    }
}
