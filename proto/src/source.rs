//! The `GitRepository` custom resource (`source.ferry.dev/v1`): a Git repository to mirror and the
//! ref to follow. Field names and meanings follow Flux's `GitRepository`.

use std::time::Duration;

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::{FieldError, GoDuration};
use crate::{ArtifactRef, Condition};

/// The kind of a source, serialized with Flux's kind names.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum SourceKind {
    /// A Git repository mirrored into artifacts (one per tracked revision).
    #[default]
    GitRepository,
    /// A Helm chart repository (an HTTP(S) `index.yaml`); it has no artifact of its own: the
    /// server resolves chart versions in it (see [`crate::api`]).
    HelmRepository,
    /// A chart version of a `HelmRepository`, packed by the server into an artifact. Not an
    /// object anyone writes: the server makes one per resolved `(repository, chart, range)`;
    /// its key's name is `<repository>/<chart>` (see [`crate::api`]).
    HelmChart,
    /// The objects under a prefix of an S3-protocol bucket, served as one artifact.
    Bucket,
}

impl SourceKind {
    /// Flux's kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GitRepository => "GitRepository",
            Self::HelmRepository => "HelmRepository",
            Self::HelmChart => "HelmChart",
            Self::Bucket => "Bucket",
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that is not a [`SourceKind`] Ferry serves.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("source kind {0:?} is not supported (GitRepository, HelmRepository, Bucket)")]
pub struct UnknownSourceKind(pub String);

impl std::str::FromStr for SourceKind {
    type Err = UnknownSourceKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "GitRepository" => Ok(Self::GitRepository),
            "HelmRepository" => Ok(Self::HelmRepository),
            "HelmChart" => Ok(Self::HelmChart),
            "Bucket" => Ok(Self::Bucket),
            _ => Err(UnknownSourceKind(s.chars().take(64).collect())),
        }
    }
}

/// A source's identity, `kind` + `namespace/name`: the one type the server, the HTTP API and
/// the agents use for it. Serialized without `kind` it reads as a `GitRepository` (the only
/// kind before sources had kinds).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourceKey {
    /// The source's kind.
    #[serde(default)]
    pub kind: SourceKind,
    /// The source's namespace.
    pub namespace: String,
    /// The source's name.
    pub name: String,
}

impl SourceKey {
    /// The key of the `GitRepository` `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self::of(SourceKind::GitRepository, namespace, name)
    }

    /// The key of the `kind` `namespace/name`.
    pub fn of(kind: SourceKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// `namespace/name`, without the kind: messages name the kind themselves
/// (`GitRepository team-a/app`).
impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `spec.interval` when absent.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// `spec.timeout` when absent.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl GitRepositorySpec {
    /// `spec.interval` and `spec.timeout`, validated, with the defaults applied; or an error
    /// naming the refused field.
    pub fn intervals(&self) -> Result<(Duration, Duration), FieldError> {
        Ok((
            GoDuration::field_or(self.interval.as_ref(), "spec.interval", DEFAULT_INTERVAL)?,
            GoDuration::field_or(self.timeout.as_ref(), "spec.timeout", DEFAULT_TIMEOUT)?,
        ))
    }
}

/// Desired state of a mirrored Git repository.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "source.ferry.dev",
    version = "v1",
    kind = "GitRepository",
    plural = "gitrepositories",
    shortname = "gitrepo",
    namespaced,
    status = "GitRepositoryStatus",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.artifact.revision"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositorySpec {
    /// Repository URL: `file://`, `git://`, `http(s)://` or `ssh://`.
    pub url: String,
    /// How often to check the remote ref (Go duration). Default `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Deadline for one Git operation (Go duration). Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Which ref to follow. Default: branch `main`.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<GitRepositoryRef>,
    /// A Secret (same namespace) with `username`/`password`, `bearerToken`, or SSH `identity` +
    /// `known_hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Extra ignore patterns (gitignore syntax), applied after `.sourceignore` files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,
    /// Stop polling; the last artifact stays served.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// The Git ref to follow. Precedence as in Flux: `commit` > `name` > `semver` > `tag` > `branch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A semver range; the highest matching tag is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// Any ref name, e.g. `refs/pull/42/head`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A commit SHA-1 (40 hex); with `branch`, the commit must be on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LocalObjectReference {
    pub name: String,
}

/// Observed state of a mirrored Git repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The artifact currently served for this source (the last good one after a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactRef>,
    /// Tree entries left out of the artifact because they cannot be represented safely
    /// (symlinks, submodules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedEntry>,
    /// The ignore patterns the artifact was built with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_ignore: Option<String>,
    /// The token of the last reconcile requested (`POST .../reconcile?requestedAt=`, Flux's
    /// `reconcile.fluxcd.io/requestedAt`) whose reconcile is done: a client that asked waits for
    /// its token here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// A tree entry that is not in the artifact, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SkippedEntry {
    pub path: String,
    /// `symlink` or `submodule`.
    pub kind: String,
}
