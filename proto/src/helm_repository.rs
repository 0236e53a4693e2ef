//! The `HelmRepository` custom resource (`source.ferry.dev/v1`): an HTTP(S) Helm chart repository
//! (a server with an `index.yaml`). Field names and meanings follow Flux's `HelmRepository`
//! (`source.toolkit.fluxcd.io/v1`); OCI registries (`type: oci`) are not supported yet.
//!
//! Unlike Flux, the repository's index is never an artifact agents download: the source server
//! parses it once into a compact table and answers chart resolutions from it (see [`crate::api`]);
//! `status.artifact` records which index that table was built from.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::{FieldError, GoDuration};
use crate::{Condition, LocalObjectReference, Revision};

/// `spec.interval` when absent (Flux's default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// `spec.timeout` when absent (Flux's default): the deadline for one index download.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Desired state of a Helm chart repository.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "source.ferry.dev",
    version = "v1",
    kind = "HelmRepository",
    plural = "helmrepositories",
    shortname = "helmrepo",
    namespaced,
    status = "HelmRepositoryStatus",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.artifact.revision"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HelmRepositorySpec {
    /// The repository's URL, `http://` or `https://`; `<url>/index.yaml` is its index.
    pub url: String,
    /// How often to check the index (Go duration). Default `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Deadline for one index download (Go duration). Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// A Secret (same namespace) with `username` and `password` for HTTP basic auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// A Secret (same namespace) with TLS material: `ca.crt` (CA bundle, PEM), and `tls.crt` +
    /// `tls.key` (client certificate and key, PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
    /// Send the `secretRef` credentials to chart URLs on other hosts than the repository's
    /// (default false: they go only to the repository's own host, scheme and port).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pass_credentials: bool,
    /// Stop polling the index; chart versions already resolved stay served.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

impl HelmRepositorySpec {
    /// `spec.interval` and `spec.timeout`, validated, with the defaults applied; or an error
    /// naming the refused field.
    pub fn intervals(&self) -> Result<(Duration, Duration), FieldError> {
        Ok((
            GoDuration::field_or(self.interval.as_ref(), "spec.interval", DEFAULT_INTERVAL)?,
            GoDuration::field_or(self.timeout.as_ref(), "spec.timeout", DEFAULT_TIMEOUT)?,
        ))
    }
}

/// Observed state of a Helm chart repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmRepositoryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The index chart versions are resolved from (the last good one after a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<HelmIndexArtifact>,
}

/// The index a repository's chart table was built from. Not served: agents resolve charts
/// through the source server instead of downloading the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmIndexArtifact {
    /// `sha256:<hex>` of the index bytes as downloaded (Flux's HelmRepository revision).
    pub revision: Revision,
    /// Size of the index in bytes.
    pub size: u64,
    /// Charts in the index.
    pub charts: u64,
    /// Chart versions in the index (entries with a valid semver version).
    pub versions: u64,
    /// When the index last changed.
    pub last_update_time: DateTime<Utc>,
}
