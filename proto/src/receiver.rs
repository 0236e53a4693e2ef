//! The `Receiver` custom resource (`notification.ferry.dev/v1`): a webhook that asks the source
//! server to fetch sources now. Field names and meanings follow Flux's `Receiver`
//! (`notification.toolkit.fluxcd.io/v1`), for the types `generic`, `generic-hmac`, `github` and
//! `gitlab`; the webhook path is Flux's ([`webhook_path`]), so Git hosting settings carry over.

use std::collections::BTreeMap;

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::duration::GoDuration;
use crate::{Condition, LocalObjectReference, SourceKind};

/// The prefix of every webhook path.
pub const WEBHOOK_PATH_PREFIX: &str = "/hook/";

/// Flux's webhook path of the Receiver `namespace/name` with `token`:
/// `/hook/<hex sha256(token + name + namespace)>`.
pub fn webhook_path(token: &[u8], name: &str, namespace: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(token);
    h.update(name.as_bytes());
    h.update(namespace.as_bytes());
    format!("{WEBHOOK_PATH_PREFIX}{}", hex::encode(h.finalize()))
}

/// How a call is authenticated (Flux's receiver types Ferry implements).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReceiverType {
    /// The secret path alone.
    #[default]
    #[serde(rename = "generic")]
    Generic,
    /// `X-Signature: sha1|sha256|sha512=<hex>`: an HMAC of the body keyed with the token.
    #[serde(rename = "generic-hmac")]
    GenericHmac,
    /// GitHub: `X-Hub-Signature-256` (or `X-Hub-Signature`, sha1), events from `X-GitHub-Event`.
    #[serde(rename = "github")]
    Github,
    /// GitLab: `X-Gitlab-Token` equals the token, events from `X-Gitlab-Event`.
    #[serde(rename = "gitlab")]
    Gitlab,
}

impl ReceiverType {
    /// Flux's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::GenericHmac => "generic-hmac",
            Self::Github => "github",
            Self::Gitlab => "gitlab",
        }
    }
}

/// The kinds a Receiver may name in `spec.resources`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum ReceiverResourceKind {
    /// A `GitRepository` of the source server.
    GitRepository,
    /// A `HelmRepository` of the source server.
    HelmRepository,
    /// A `Bucket` of the source server.
    Bucket,
}

impl ReceiverResourceKind {
    /// The source kind it names.
    pub fn source_kind(self) -> SourceKind {
        match self {
            Self::GitRepository => SourceKind::GitRepository,
            Self::HelmRepository => SourceKind::HelmRepository,
            Self::Bucket => SourceKind::Bucket,
        }
    }

    /// Flux's kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GitRepository => "GitRepository",
            Self::HelmRepository => "HelmRepository",
            Self::Bucket => "Bucket",
        }
    }
}

/// One entry of `spec.resources` (Flux's `CrossNamespaceObjectReference`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverResource {
    /// Accepted and ignored (the kind says what is meant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The source's kind.
    pub kind: ReceiverResourceKind,
    /// The source's name, or `*` for every source of the kind in the namespace whose labels
    /// match `matchLabels` (required with `*`).
    pub name: String,
    /// The source's namespace; default the Receiver's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// With name `*`: the labels a source must carry (all of them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// Desired state of a webhook receiver.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "notification.ferry.dev",
    version = "v1",
    kind = "Receiver",
    plural = "receivers",
    namespaced,
    status = "ReceiverStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverSpec {
    /// How calls are authenticated: `generic`, `generic-hmac`, `github` or `gitlab`.
    #[serde(rename = "type")]
    pub type_: ReceiverType,
    /// Accepted for Flux compatibility and not used: the source server follows its Secret
    /// without polling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Event types to act on (`X-GitHub-Event`, `X-Gitlab-Event`; compared ignoring case);
    /// empty means every event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// The sources to fetch when a call is accepted.
    pub resources: Vec<ReceiverResource>,
    /// A Secret in the Receiver's namespace whose `token` key is the shared secret.
    pub secret_ref: LocalObjectReference,
    /// Refuse calls (503) without forgetting the receiver.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// Observed state of a webhook receiver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `/hook/<hex sha256(token + name + namespace)>`, relative to the server's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_path_is_fluxs_formula() {
        // sha256("tokenappflux-system"), computed with coreutils' sha256sum.
        assert_eq!(
            webhook_path(b"token", "app", "flux-system"),
            "/hook/3abdcd363ade7e61ed68975052bd1a75d8eeb1efa71fc6201901c8b575c159b9"
        );
    }
}
