//! `Provider` and `Alert` (`notification.ferry.dev/v1`): where events are sent and which ones.
//! Field names and meanings follow Flux's notification-controller (`v1beta3`): a Provider says
//! how to encode an event and where to post it; an Alert selects events by source, severity and
//! message, and names its Provider (in its own namespace).
//!
//! The source server reads these from its config file; how it delivers them is described in
//! its `notification` module.

use std::collections::BTreeMap;
use std::time::Duration;

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::LocalObjectReference;
use crate::api::Severity;
use crate::duration::{FieldError, GoDuration};

/// `spec.timeout` when absent (Flux's): the deadline of one delivery attempt.
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(15);

/// How a Provider encodes events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ProviderType {
    /// POST the event as JSON (Flux's event shape), header `Gotk-Component`.
    #[default]
    #[serde(rename = "generic")]
    Generic,
    /// `generic`, signed: `X-Signature: sha256=<hex HMAC-SHA256 of the body>` keyed by the
    /// Secret's `token`.
    #[serde(rename = "generic-hmac")]
    GenericHmac,
    /// A Slack message (incoming webhook, or `chat.postMessage` with the Secret's `token`).
    #[serde(rename = "slack")]
    Slack,
}

impl ProviderType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::Generic => "generic",
            ProviderType::GenericHmac => "generic-hmac",
            ProviderType::Slack => "slack",
        }
    }
}

/// Where and how events are sent.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "notification.ferry.dev",
    version = "v1",
    kind = "Provider",
    plural = "providers",
    namespaced,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// `generic`, `generic-hmac` or `slack`.
    #[serde(rename = "type")]
    pub type_: ProviderType,
    /// The URL events are posted to (http or https); the Secret's `address` key overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Slack: the channel to post to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Slack: the name to post as (default: the event's reporting controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Deadline of one delivery attempt (Go duration). Default `15s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// A Secret (same namespace) with `address`, `token` (the HMAC key of `generic-hmac`,
    /// Slack's bearer token) and `headers` (a YAML map of extra HTTP headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Send nothing; alerts for this Provider are dropped while suspended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

impl ProviderSpec {
    /// `spec.timeout` validated, with the default applied.
    pub fn timeout(&self) -> Result<Duration, FieldError> {
        GoDuration::field_or(
            self.timeout.as_ref(),
            "spec.timeout",
            DEFAULT_PROVIDER_TIMEOUT,
        )
    }
}

/// Which events go to which Provider.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "notification.ferry.dev",
    version = "v1",
    kind = "Alert",
    plural = "alerts",
    namespaced,
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.providerRef.name"}"#,
    printcolumn = r#"{"name":"Severity","type":"string","jsonPath":".spec.eventSeverity"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AlertSpec {
    /// The Provider (same namespace) events are sent through.
    pub provider_ref: LocalObjectReference,
    /// `info` sends every event, `error` only errors. Default `info`.
    #[serde(default)]
    pub event_severity: Severity,
    /// The objects whose events are sent.
    pub event_sources: Vec<EventSource>,
    /// Regular expressions: when set, only events whose message matches one are sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_list: Vec<String>,
    /// Regular expressions: events whose message matches one are not sent (wins over
    /// `inclusionList`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusion_list: Vec<String>,
    /// Added to each event's metadata; a key the event already has keeps the event's value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub event_metadata: BTreeMap<String, String>,
    /// A short text added to the metadata as `summary` (Flux's older form of
    /// `eventMetadata.summary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Send nothing while true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// Objects an Alert listens to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSource {
    /// `GitRepository`, `HelmRepository`, `Bucket`, `Kustomization` or `HelmRelease`.
    pub kind: String,
    /// The object's name, or `*` for every object of the kind.
    pub name: String,
    /// Default: the Alert's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only objects carrying all these labels (with `name: '*'`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// The kinds whose events Ferry reports.
pub const EVENT_SOURCE_KINDS: [&str; 5] = [
    "GitRepository",
    "HelmRepository",
    "Bucket",
    "Kustomization",
    "HelmRelease",
];
