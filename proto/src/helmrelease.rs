//! The `HelmRelease` custom resource (`apply.ferry.dev/v1`): which chart of which source an
//! agent renders with `helm template` and applies into its namespace, with which values, and
//! what happened when it did. Spec field names and meanings follow Flux's
//! `helm.toolkit.fluxcd.io/v2` HelmRelease; the status keeps Flux's `history[]` snapshots but
//! no Helm storage Secret exists: the inventory (the same shape as a Kustomization's) is the
//! record of what the release owns.

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::duration::{FieldError, GoDuration};
use crate::kustomization::{DependencyReference, Inventory};
use crate::{Condition, Digest};

/// Desired state: render `chart` with `values` and apply it as release `releaseName`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "apply.ferry.dev",
    version = "v1",
    kind = "HelmRelease",
    plural = "helmreleases",
    shortname = "hr",
    namespaced,
    status = "HelmReleaseStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAttemptedRevision"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HelmReleaseSpec {
    /// The chart to render.
    pub chart: HelmChartTemplate,
    /// Release name (`.Release.Name`). Default `[targetNamespace-]name`, shortened as Flux does
    /// past 53 characters (see [`HelmReleaseSpec::release_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// Namespace the release is rendered for (`.Release.Namespace`); must be the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    /// How often to reconcile even when nothing changed (Go duration, e.g. `5m`).
    pub interval: GoDuration,
    /// Deadline for rendering, hooks, apply and health checks (Go duration). Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Stop reconciling; nothing is rendered, applied, pruned or corrected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Kustomizations and HelmReleases that must be Ready first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyReference>,
    /// Inline values, merged last (they win over `valuesFrom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::helmrelease::any_object")]
    pub values: Option<serde_json::Value>,
    /// ConfigMaps and Secrets whose values are merged in list order, before `values`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_from: Vec<ValuesReference>,
    /// Settings of a first install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallSpec>,
    /// Settings of an upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeSpec>,
    /// Settings of an uninstall (what removing the HelmRelease does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uninstall: Option<UninstallSpec>,
    /// Helm test hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<TestSpec>,
    /// Kustomize patches and images applied to `helm template`'s output (native engine).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_renderers: Vec<PostRenderer>,
    /// Whether live objects are compared with the rendered ones each interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_detection: Option<DriftDetection>,
    /// Snapshots kept in `status.history` (Flux's default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_history: Option<u32>,
    /// Charts calling `lookup` get answers from the cluster, read with the agent's own
    /// credentials (helm's `--dry-run=server`). Default false: `lookup` answers empty, as in
    /// `helm template`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lookup: bool,
}

/// Flux's `HelmChartTemplate`: a chart's spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HelmChartTemplate {
    pub spec: HelmChartTemplateSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartTemplateSpec {
    /// Chart name in a HelmRepository, or a directory path (`./charts/app`) in a GitRepository.
    pub chart: String,
    /// Semver range of chart versions (HelmRepository only). Default `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The source holding the chart: `HelmRepository` or `GitRepository`.
    pub source_ref: ChartSourceReference,
}

/// Flux's `CrossNamespaceObjectReference` of a chart source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChartSourceReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `HelmRepository` or `GitRepository`.
    pub kind: String,
    pub name: String,
    /// Default: the HelmRelease's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Chart source kinds a HelmRelease may name.
pub const HELM_REPOSITORY: &str = "HelmRepository";
pub const GIT_REPOSITORY: &str = "GitRepository";

/// Values from a ConfigMap or Secret in the HelmRelease's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValuesReference {
    /// `ConfigMap` or `Secret`.
    pub kind: String,
    pub name: String,
    /// Data key holding the values. Default `values.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_key: Option<String>,
    /// Where the key's value is put (Helm `--set` path syntax, e.g. `a.b[0].c`); the key
    /// then holds one flat value, taken as a string. Default: the key holds YAML merged at
    /// the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    /// A missing object or key is not an error (any other failure still is).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// Default `valuesFrom[].valuesKey`.
pub const DEFAULT_VALUES_KEY: &str = "values.yaml";

/// What happens to the chart's `crds/` directory (Flux's `CRDsPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CrdsPolicy {
    /// Leave `crds/` alone.
    Skip,
    /// Create CRDs that do not exist; never update existing ones.
    Create,
    /// Create new CRDs and update existing ones; never delete any.
    CreateReplace,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InstallSpec {
    /// Default `Create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crds: Option<CrdsPolicy>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UpgradeSpec {
    /// Default `Skip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crds: Option<CrdsPolicy>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UninstallSpec {
    /// Do not run the chart's pre-delete and post-delete hooks (Helm's `--no-hooks`). Also the
    /// way out of an uninstall that a failing pre-delete hook holds up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_hooks: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TestSpec {
    /// Run the chart's `helm.sh/hook: test` objects after each install or upgrade.
    #[serde(default)]
    pub enable: bool,
}

/// One post-renderer (only `kustomize`, as in Flux).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PostRenderer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizePostRenderer>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KustomizePostRenderer {
    /// Kustomize `patches` entries (strategic merge or JSON 6902, with an optional target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::helmrelease::any_objects")]
    pub patches: Vec<serde_json::Value>,
    /// Kustomize `images` entries (`name`, `newName`, `newTag`, `digest`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::helmrelease::any_objects")]
    pub images: Vec<serde_json::Value>,
}

/// Flux's `driftDetection`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DriftDetection {
    /// Default `disabled` in Flux; Ferry defaults to `enabled`, as its Kustomizations correct
    /// drift by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DriftDetectionMode>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DriftDetectionMode {
    /// Drift is corrected each interval.
    #[default]
    Enabled,
    /// Drift is reported (condition `Drifted`, an event) and left.
    Warn,
    /// Live objects are not compared.
    Disabled,
}

/// `spec.timeout` when absent (Flux's).
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);
/// `spec.maxHistory` when absent (Flux's).
pub const DEFAULT_MAX_HISTORY: u32 = 5;
/// Helm's limit on release names; longer defaults are shortened the way Flux does.
pub const MAX_RELEASE_NAME: usize = 53;

/// The durations of a [`HelmReleaseSpec`], validated, with Flux's defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelmReleaseIntervals {
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
}

impl HelmReleaseSpec {
    /// The spec's durations, or an error naming the first refused field.
    pub fn intervals(&self) -> Result<HelmReleaseIntervals, FieldError> {
        Ok(HelmReleaseIntervals {
            interval: self.interval.field("spec.interval")?,
            timeout: GoDuration::field_or(self.timeout.as_ref(), "spec.timeout", DEFAULT_TIMEOUT)?,
        })
    }

    /// `spec.releaseName`, or Flux's default `[targetNamespace-]name`; a default longer than 53
    /// characters becomes its first 40, `-`, and the first 12 hex digits of its sha256.
    pub fn release_name(&self, name: &str) -> String {
        if let Some(n) = self.release_name.as_deref().filter(|n| !n.is_empty()) {
            return n.to_string();
        }
        let full = match self.target_namespace.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => format!("{t}-{name}"),
            None => name.to_string(),
        };
        if full.len() <= MAX_RELEASE_NAME {
            return full;
        }
        let sum = hex::encode(sha2::Sha256::digest(full.as_bytes()));
        format!("{}-{}", &full[..40], &sum[..12])
    }

    /// The CRD policy of an install (`upgrade == false`) or an upgrade, Flux's defaults.
    pub fn crds_policy(&self, upgrade: bool) -> CrdsPolicy {
        if upgrade {
            self.upgrade
                .as_ref()
                .and_then(|u| u.crds)
                .unwrap_or(CrdsPolicy::Skip)
        } else {
            self.install
                .as_ref()
                .and_then(|i| i.crds)
                .unwrap_or(CrdsPolicy::Create)
        }
    }

    pub fn drift_mode(&self) -> DriftDetectionMode {
        self.drift_detection
            .as_ref()
            .and_then(|d| d.mode)
            .unwrap_or_default()
    }

    /// `spec.uninstall.disableHooks`.
    pub fn uninstall_hooks_disabled(&self) -> bool {
        self.uninstall.as_ref().is_some_and(|u| u.disable_hooks)
    }

    pub fn tests_enabled(&self) -> bool {
        self.test.as_ref().is_some_and(|t| t.enable)
    }
}

/// Observed state of a HelmRelease.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmReleaseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Releases, newest first, at most `spec.maxHistory`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Snapshot>,
    /// Source revision of the last attempt (`<chartVersion>@<artifact revision>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// Config digest of the values of the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_config_digest: Option<Digest>,
    /// Generation of the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_generation: Option<i64>,
    /// Digest of the release inputs (chart artifact, values, post-renderers, spec) of the last
    /// successful release: when it is unchanged, nothing is rendered again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_release_inputs: Option<Digest>,
    /// The name of the release (`.Release.Name`) last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// Every object the last release owns (what prune compares against); hooks excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    /// See [`crate::kustomization::RECONCILE_REQUESTED_AT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// One release in `status.history` (Flux's `Snapshot`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Release number, 1 for the first install.
    pub version: u32,
    /// Release name.
    pub name: String,
    /// Release namespace.
    pub namespace: String,
    pub chart_name: String,
    pub chart_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Digest of the merged values.
    pub config_digest: Digest,
    /// Digest of the applied manifest (the rendered objects after post-renderers).
    pub digest: Digest,
    /// `deployed`, `superseded` or `failed` (Helm's words).
    pub status: String,
    pub first_deployed: chrono::DateTime<chrono::Utc>,
    pub last_deployed: chrono::DateTime<chrono::Utc>,
}

/// Condition types a HelmRelease has besides Ready/Reconciling/Stalled.
pub const RELEASED: &str = "Released";
pub const DRIFTED: &str = "Drifted";
pub const TEST_SUCCESS: &str = "TestSuccess";

/// Schema of a free-form object (values, patches): `x-kubernetes-preserve-unknown-fields`.
pub(crate) fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

pub(crate) fn any_objects(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> HelmReleaseSpec {
        serde_json::from_value(v).expect("a Flux-shaped spec parses")
    }

    #[test]
    fn spec_reads_flux_field_names() {
        let s = spec(serde_json::json!({
            "chart": {"spec": {"chart": "./charts/app", "version": ">=1.0.0 <2",
                "sourceRef": {"kind": "GitRepository", "name": "repo"}}},
            "releaseName": "web",
            "targetNamespace": "team-a",
            "interval": "5m",
            "timeout": "2m",
            "dependsOn": [{"kind": "Kustomization", "name": "infra"}],
            "values": {"replicaCount": 2, "image": {"tag": "v1"}},
            "valuesFrom": [{"kind": "Secret", "name": "s", "valuesKey": "tag",
                            "targetPath": "image.tag", "optional": true}],
            "install": {"crds": "CreateReplace"},
            "upgrade": {"crds": "Create"},
            "test": {"enable": true},
            "postRenderers": [{"kustomize": {
                "patches": [{"patch": "- op: add\n  path: /x\n  value: 1", "target": {"kind": "Deployment"}}],
                "images": [{"name": "nginx", "newTag": "1.27"}]}}],
            "driftDetection": {"mode": "warn"},
            "maxHistory": 3
        }));
        assert_eq!(s.chart.spec.source_ref.kind, GIT_REPOSITORY);
        assert_eq!(s.values_from[0].target_path.as_deref(), Some("image.tag"));
        assert_eq!(s.crds_policy(false), CrdsPolicy::CreateReplace);
        assert_eq!(s.crds_policy(true), CrdsPolicy::Create);
        assert_eq!(s.drift_mode(), DriftDetectionMode::Warn);
        assert!(s.tests_enabled());
        assert_eq!(s.depends_on[0].kind.as_deref(), Some("Kustomization"));
        assert_eq!(s.intervals().expect("valid").timeout.as_secs(), 120);
    }

    #[test]
    fn flux_defaults() {
        let s = spec(serde_json::json!({
            "chart": {"spec": {"chart": "app", "sourceRef": {"kind": "HelmRepository", "name": "r"}}},
            "interval": "1m"
        }));
        assert_eq!(s.crds_policy(false), CrdsPolicy::Create);
        assert_eq!(s.crds_policy(true), CrdsPolicy::Skip);
        assert_eq!(s.intervals().expect("valid").timeout, DEFAULT_TIMEOUT);
        assert!(!s.tests_enabled());
        assert_eq!(s.release_name("app"), "app");
        let mut t = s.clone();
        t.target_namespace = Some("team-a".into());
        assert_eq!(t.release_name("app"), "team-a-app");
        t.release_name = Some("explicit".into());
        assert_eq!(t.release_name("app"), "explicit");
        let err = spec(serde_json::json!({
            "chart": {"spec": {"chart": "app", "sourceRef": {"kind": "HelmRepository", "name": "r"}}},
            "interval": "1m", "timeout": "soon"
        }))
        .intervals()
        .expect_err("refused");
        assert!(err.to_string().starts_with("spec.timeout"), "{err}");
    }

    #[test]
    fn long_default_release_names_are_shortened_as_flux_does() {
        let mut s = HelmReleaseSpec {
            target_namespace: Some("a-very-long-target-namespace-name".into()),
            ..Default::default()
        };
        let name = "and-a-rather-long-helmrelease-name";
        let full = format!("a-very-long-target-namespace-name-{name}");
        assert!(full.len() > MAX_RELEASE_NAME);
        let short = s.release_name(name);
        let sum = hex::encode(sha2::Sha256::digest(full.as_bytes()));
        assert_eq!(short, format!("{}-{}", &full[..40], &sum[..12]));
        assert_eq!(short.len(), 53);
        s.target_namespace = None;
        assert_eq!(s.release_name(name), name);
    }

    #[test]
    fn crd_carries_free_form_values_and_flux_fields() {
        use kube_core::CustomResourceExt;
        let crd = HelmRelease::crd();
        assert_eq!(crd.spec.group, "apply.ferry.dev");
        assert_eq!(crd.spec.names.kind, "HelmRelease");
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema");
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["values"]["x-kubernetes-preserve-unknown-fields"], true);
        for f in [
            "chart",
            "releaseName",
            "targetNamespace",
            "interval",
            "timeout",
            "suspend",
            "dependsOn",
            "values",
            "valuesFrom",
            "install",
            "upgrade",
            "test",
            "postRenderers",
            "driftDetection",
        ] {
            assert!(spec.get(f).is_some(), "spec.{f} missing");
        }
        let status = &schema["openAPIV3Schema"]["properties"]["status"]["properties"];
        for f in [
            "history",
            "lastAttemptedRevision",
            "lastAttemptedConfigDigest",
            "conditions",
            "inventory",
        ] {
            assert!(status.get(f).is_some(), "status.{f} missing");
        }
    }
}
