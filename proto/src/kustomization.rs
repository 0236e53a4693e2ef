//! The `Kustomization` custom resource (`apply.ferry.dev/v1`): which path of which source an
//! agent renders and applies into its namespace, and what happened when it did. Spec field names
//! and meanings follow Flux's `kustomize.toolkit.fluxcd.io` Kustomization.
//!
//! The inventory is Ferry's own shape: Flux stores one `{id, v}` entry per object, which grows
//! past the 1.5 MiB object limit at a few thousand objects. Ferry groups names under their
//! `apiVersion`+`kind` with the namespace implied, so 10k objects stay in the hundreds of KiB.

use std::collections::{BTreeMap, BTreeSet};

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::{FieldError, GoDuration};
use crate::object::ObjectRef;
use crate::{Condition, Digest};

/// Desired state: render `path` of the source's artifact and apply it.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "apply.ferry.dev",
    version = "v1",
    kind = "Kustomization",
    plural = "kustomizations",
    shortname = "ks",
    namespaced,
    status = "KustomizationStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationSpec {
    /// The source whose artifact is rendered.
    pub source_ref: CrossNamespaceSourceReference,
    /// Directory inside the artifact to render (relative; default: the artifact root). With a
    /// `kustomization.yaml` it is built with kustomize, otherwise every YAML/JSON file below it
    /// is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How often to reconcile even when nothing changed (Go duration, e.g. `5m`).
    pub interval: GoDuration,
    /// How soon to retry after a failure (Go duration). Default: `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<GoDuration>,
    /// Deadline for apply, health checks and garbage collection (Go duration). Default:
    /// `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Delete objects applied by an earlier revision that the current one no longer has.
    #[serde(default)]
    pub prune: bool,
    /// Wait for every applied object to become ready (within `timeout`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wait: bool,
    /// Objects whose readiness decides this Kustomization's health (ignored when `wait`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<NamespacedObjectKindReference>,
    /// Kustomizations that must be ready at their latest revision before this one is applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyReference>,
    /// Stop reconciling; nothing is applied, pruned or corrected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Namespace set on every namespaced object (must be the agent's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    /// Variable substitution after the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_build: Option<PostBuild>,
    /// Delete and recreate objects whose change hits an immutable field.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// What to do when live objects differ from the desired state. Default `correct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_mode: Option<DriftMode>,
}

/// The durations of a [`KustomizationSpec`], validated, with Flux's defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KustomizationIntervals {
    /// `spec.interval`.
    pub interval: std::time::Duration,
    /// `spec.retryInterval`, default `interval`.
    pub retry_interval: std::time::Duration,
    /// `spec.timeout`, default `interval`.
    pub timeout: std::time::Duration,
}

impl KustomizationSpec {
    /// The spec's durations, or an error naming the first refused field (a `Stalled`
    /// condition's message: retrying cannot fix a bad value).
    pub fn intervals(&self) -> Result<KustomizationIntervals, FieldError> {
        let interval = self.interval.field("spec.interval")?;
        Ok(KustomizationIntervals {
            interval,
            retry_interval: GoDuration::field_or(
                self.retry_interval.as_ref(),
                "spec.retryInterval",
                interval,
            )?,
            timeout: GoDuration::field_or(self.timeout.as_ref(), "spec.timeout", interval)?,
        })
    }
}

/// A reference to a source, possibly in another namespace (Flux's
/// `CrossNamespaceSourceReference`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrossNamespaceSourceReference {
    /// API version of the source, e.g. `source.ferry.dev/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the source: `GitRepository` or `Bucket` (a HelmRelease's chart may also name a
    /// `HelmRepository`).
    pub kind: String,
    pub name: String,
    /// Default: the Kustomization's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl CrossNamespaceSourceReference {
    /// The referenced source; `namespace` defaults to the referrer's. An unknown `kind` is an
    /// error (whether the referrer accepts a known kind is its own decision).
    pub fn key(
        &self,
        referrer_namespace: &str,
    ) -> Result<crate::SourceKey, crate::source::UnknownSourceKind> {
        Ok(crate::SourceKey::of(
            self.kind.parse()?,
            self.namespace.as_deref().unwrap_or(referrer_namespace),
            &self.name,
        ))
    }
}

/// An object to health-check (Flux's `NamespacedObjectKindReference`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedObjectKindReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    /// Default: the Kustomization's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Another Kustomization or HelmRelease this one waits for. Flux allows only the same kind;
/// Ferry lets either kind depend on the other (`kind` defaults to the dependent's own kind,
/// so Flux-shaped specs keep their meaning).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DependencyReference {
    /// `Kustomization` or `HelmRelease`. Default: the kind of the object that depends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    /// Default: the dependent's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Kinds a `dependsOn` entry may name.
pub const DEPENDENCY_KINDS: [&str; 2] = ["Kustomization", "HelmRelease"];

impl DependencyReference {
    /// The dependency's kind, `own` (the dependent's kind) when not given.
    pub fn kind_or<'a>(&'a self, own: &'a str) -> &'a str {
        self.kind
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or(own)
    }
}

/// Post-build variable substitution: `${VAR}`, `${VAR:=default}`, `$${VAR}` for a literal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostBuild {
    /// Variables inline; these win over `substituteFrom`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub substitute: BTreeMap<String, String>,
    /// ConfigMaps and Secrets (same namespace) whose data are variables, later entries winning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub substitute_from: Vec<SubstituteReference>,
}

/// A ConfigMap or Secret holding substitution variables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubstituteReference {
    /// `ConfigMap` or `Secret`.
    pub kind: String,
    pub name: String,
    /// A missing object is not an error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// `correct` re-applies drifted objects; `detect` only reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DriftMode {
    #[default]
    Correct,
    Detect,
}

/// Observed state of a Kustomization.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Source revision of the last successful apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// Source revision of the last attempt, successful or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// Artifact digest of the last successful apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_digest: Option<Digest>,
    /// Every object the last successful apply owns (what prune compares against).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    /// Objects whose live state differs from the desired state (`driftMode: detect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftReport>,
    /// The value of the [`RECONCILE_REQUESTED_AT`] annotation the last reconcile handled
    /// (Flux's field: `flux reconcile` waits for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// Annotation that asks for a reconcile now (any new value), as `flux reconcile` sets it; the
/// same name as Flux's, so the same tooling works.
pub const RECONCILE_REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// The objects a Kustomization applied, grouped by type to stay small.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Inventory {
    /// Sorted by `apiVersion`, `kind`, `namespace`; names sorted within a group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<InventoryGroup>,
}

/// Objects of one type in one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryGroup {
    /// e.g. `apps/v1`, `v1`.
    pub api_version: String,
    pub kind: String,
    /// Absent: the Kustomization's own namespace. `""`: cluster-scoped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub names: Vec<String>,
}

impl Inventory {
    /// The grouped, sorted, de-duplicated inventory of `objects` (each with the version it was
    /// applied in) for a Kustomization in `ks_namespace`, whose own namespace is implied to
    /// keep the status small.
    pub fn from_objects<'a>(
        ks_namespace: &str,
        objects: impl IntoIterator<Item = (&'a ObjectRef, &'a str)>,
    ) -> Self {
        let mut grouped: BTreeMap<(String, &str, Option<&str>), BTreeSet<&str>> = BTreeMap::new();
        for (id, version) in objects {
            let namespace = match id.namespace.as_deref() {
                Some(ns) if ns == ks_namespace => None,
                Some(ns) => Some(ns),
                None => Some(""),
            };
            grouped
                .entry((id.api_version(version), &id.kind, namespace))
                .or_default()
                .insert(&id.name);
        }
        Self {
            groups: grouped
                .into_iter()
                .map(|((api_version, kind, namespace), names)| InventoryGroup {
                    api_version,
                    kind: kind.to_string(),
                    namespace: namespace.map(str::to_string),
                    names: names.into_iter().map(str::to_string).collect(),
                })
                .collect(),
        }
    }

    /// Every object, with the version it was applied in, for a Kustomization in
    /// `ks_namespace` (see [`InventoryGroup::namespace`]).
    pub fn objects<'a>(
        &'a self,
        ks_namespace: &'a str,
    ) -> impl Iterator<Item = (ObjectRef, &'a str)> + 'a {
        self.groups.iter().flat_map(move |g| {
            let namespace = match g.namespace.as_deref() {
                None => Some(ks_namespace),
                Some("") => None,
                Some(ns) => Some(ns),
            };
            g.names
                .iter()
                .map(move |n| ObjectRef::from_api_version(&g.api_version, &g.kind, namespace, n))
        })
    }

    /// The union of two inventories of a Kustomization in `ks_namespace`.
    pub fn union(&self, other: &Inventory, ks_namespace: &str) -> Inventory {
        let objects: Vec<_> = self
            .objects(ks_namespace)
            .chain(other.objects(ks_namespace))
            .collect();
        Inventory::from_objects(ks_namespace, objects.iter().map(|(id, v)| (id, *v)))
    }

    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.names.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.iter().all(|g| g.names.is_empty())
    }

    /// Objects of `self` that `newer` no longer has — what prune deletes — with the version
    /// they were applied in. Objects are matched by identity, not version, so
    /// `apps/v1beta1` → `apps/v1` is not a removal.
    pub fn minus<'a>(
        &'a self,
        newer: &Inventory,
        ks_namespace: &'a str,
    ) -> Vec<(ObjectRef, &'a str)> {
        let keep: BTreeSet<ObjectRef> = newer.objects(ks_namespace).map(|(id, _)| id).collect();
        self.objects(ks_namespace)
            .filter(|(id, _)| !keep.contains(id))
            .collect()
    }
}

/// Drift found by the last comparison of live objects with the desired state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    /// Source revision the live objects were compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Drifted objects (at most a bounded number; see `omitted`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<DriftedObject>,
    /// How many more drifted objects were left out to keep the status small.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One live object that differs from the desired state, and which fields differ.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftedObject {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// Field paths that differ, e.g. `.spec.replicas`, `.spec.template.spec.containers[name=app].image`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "team-a";

    /// An object as applied (namespace `None`: cluster-scoped) with its version.
    fn obj(api: &str, kind: &str, ns: Option<&str>, name: &str) -> (ObjectRef, String) {
        let (id, version) = ObjectRef::from_api_version(api, kind, ns, name);
        (id, version.to_string())
    }

    fn inventory(objects: &[(ObjectRef, String)]) -> Inventory {
        Inventory::from_objects(NS, objects.iter().map(|(id, v)| (id, v.as_str())))
    }

    #[test]
    fn spec_reads_flux_field_names() {
        let ks: KustomizationSpec = serde_json::from_value(serde_json::json!({
            "sourceRef": {"kind": "GitRepository", "name": "repo"},
            "path": "./clusters/staging",
            "interval": "5m",
            "retryInterval": "30s",
            "timeout": "2m",
            "prune": true,
            "wait": true,
            "healthChecks": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
            "dependsOn": [{"name": "infra"}],
            "targetNamespace": "team-a",
            "postBuild": {
                "substitute": {"ENV": "staging"},
                "substituteFrom": [{"kind": "ConfigMap", "name": "vars", "optional": true}]
            },
            "force": true,
            "driftMode": "detect"
        }))
        .expect("a Flux-shaped spec parses");
        assert_eq!(ks.source_ref.name, "repo");
        assert!(ks.prune && ks.wait && ks.force);
        assert_eq!(ks.drift_mode, Some(DriftMode::Detect));
        let pb = ks.post_build.expect("postBuild");
        assert_eq!(pb.substitute["ENV"], "staging");
        assert!(pb.substitute_from[0].optional);
        assert_eq!(ks.depends_on[0].name, "infra");
        assert!(
            serde_json::from_value::<KustomizationSpec>(serde_json::json!({
                "sourceRef": {"kind": "GitRepository", "name": "r"},
                "interval": "1m",
                "driftMode": "ignore"
            }))
            .is_err(),
            "unknown driftMode must be refused"
        );
    }

    #[test]
    fn bad_durations_are_refused_naming_the_field() {
        let spec = |interval: &str, retry: Option<&str>, timeout: Option<&str>| KustomizationSpec {
            interval: interval.into(),
            retry_interval: retry.map(Into::into),
            timeout: timeout.map(Into::into),
            ..Default::default()
        };
        let ok = spec("1m30s", None, Some("2m")).intervals().expect("valid");
        assert_eq!(ok.interval.as_secs(), 90);
        assert_eq!(
            ok.retry_interval.as_secs(),
            90,
            "retryInterval defaults to interval"
        );
        assert_eq!(ok.timeout.as_secs(), 120);
        let err = |s: KustomizationSpec| s.intervals().expect_err("refused").to_string();
        assert!(err(spec("0s", None, None)).starts_with("spec.interval: \"0s\" is zero"));
        assert!(err(spec("5m", Some("30sec"), None)).starts_with("spec.retryInterval: "));
        assert!(err(spec("5m", None, Some("1d"))).starts_with("spec.timeout: "));
        assert!(err(spec("", None, None)).starts_with("spec.interval: empty"));
    }

    #[test]
    fn crd_is_namespaced_apply_ferry_dev_v1_with_flux_fields() {
        use kube_core::CustomResourceExt;
        let crd = Kustomization::crd();
        assert_eq!(crd.spec.group, "apply.ferry.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.versions[0].name, "v1");
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema");
        let props = &schema["openAPIV3Schema"]["properties"];
        for f in [
            "sourceRef",
            "path",
            "interval",
            "retryInterval",
            "timeout",
            "prune",
            "wait",
            "healthChecks",
            "dependsOn",
            "suspend",
            "targetNamespace",
            "postBuild",
            "force",
            "driftMode",
        ] {
            assert!(
                props["spec"]["properties"].get(f).is_some(),
                "spec.{f} missing"
            );
        }
        for f in ["interval", "retryInterval", "timeout"] {
            assert_eq!(
                props["spec"]["properties"][f]["pattern"],
                crate::duration::PATTERN,
                "spec.{f} must carry the duration pattern"
            );
        }
        for f in [
            "conditions",
            "lastAppliedRevision",
            "lastAttemptedRevision",
            "observedGeneration",
            "inventory",
            "drift",
        ] {
            assert!(
                props["status"]["properties"].get(f).is_some(),
                "status.{f} missing"
            );
        }
    }

    #[test]
    fn inventory_groups_sorts_dedups_and_round_trips() {
        let objects = [
            obj("v1", "Service", Some(NS), "web"),
            obj("apps/v1", "Deployment", Some(NS), "web"),
            obj("v1", "ConfigMap", Some(NS), "b"),
            obj("v1", "ConfigMap", Some(NS), "a"),
            obj("v1", "ConfigMap", Some(NS), "a"),
            obj("v1", "ConfigMap", Some("other"), "a"),
            obj("v1", "Namespace", None, NS),
        ];
        let inv = inventory(&objects);
        assert_eq!(inv.len(), 6);
        assert_eq!(inv.groups.len(), 5);
        assert_eq!(inv.groups[0].api_version, "apps/v1");
        let cm = inv
            .groups
            .iter()
            .find(|g| g.kind == "ConfigMap" && g.namespace.is_none())
            .expect("cm");
        assert_eq!(cm.names, ["a", "b"]);
        // The wire form: the Kustomization's namespace implied, cluster scope as "".
        let ns = inv
            .groups
            .iter()
            .find(|g| g.kind == "Namespace")
            .expect("ns");
        assert_eq!(ns.namespace.as_deref(), Some(""));
        let other = inv
            .groups
            .iter()
            .find(|g| g.namespace.as_deref() == Some("other"))
            .expect("other");
        assert_eq!(other.names, ["a"]);

        let back: Vec<(ObjectRef, String)> =
            inv.objects(NS).map(|(id, v)| (id, v.to_string())).collect();
        assert_eq!(inventory(&back), inv);
        let mut want: Vec<_> = objects.to_vec();
        want.sort();
        want.dedup();
        let mut got = back.clone();
        got.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn minus_ignores_version_changes_and_sees_removals() {
        let old = inventory(&[
            obj("apps/v1beta1", "Deployment", Some(NS), "web"),
            obj("v1", "Service", Some(NS), "web"),
            obj("v1", "ConfigMap", Some("other"), "cfg"),
        ]);
        let new = inventory(&[
            obj("apps/v1", "Deployment", Some(NS), "web"),
            obj("v1", "ConfigMap", Some(NS), "cfg"),
        ]);
        let gone: Vec<String> = old
            .minus(&new, NS)
            .iter()
            .map(|(id, v)| format!("{} {id}", id.api_version(v)))
            .collect();
        assert_eq!(gone, ["v1 ConfigMap/other/cfg", "v1 Service/team-a/web"]);
        assert_eq!(old.union(&new, NS).len(), 5);
    }

    #[test]
    fn ten_thousand_object_inventory_stays_far_below_the_object_limit() {
        // 5k ConfigMaps + 5k Deployments with realistic 40-character names, and the worst case of
        // 63-character names spread over 50 kinds.
        let realistic = inventory(
            &(0..10_000)
                .map(|i| {
                    let (api, kind) = if i % 2 == 0 {
                        ("v1", "ConfigMap")
                    } else {
                        ("apps/v1", "Deployment")
                    };
                    obj(
                        api,
                        kind,
                        Some(NS),
                        &format!("team-payments-service-component-{i:08}"),
                    )
                })
                .collect::<Vec<_>>(),
        );
        let size = serde_json::to_vec(&realistic).expect("serializes").len();
        eprintln!("10k-object inventory, 40-char names: {size} bytes");
        assert_eq!(realistic.len(), 10_000);
        assert!(size < 450 * 1024, "inventory is {size} bytes");

        let worst = inventory(
            &(0..10_000)
                .map(|i| {
                    let kind = format!("Kind{}", i % 50);
                    obj("example.com/v1", &kind, Some(NS), &format!("{i:063}"))
                })
                .collect::<Vec<_>>(),
        );
        let size = serde_json::to_vec(&worst).expect("serializes").len();
        eprintln!("10k-object inventory, 63-char names: {size} bytes");
        assert!(size < 1024 * 1024, "inventory is {size} bytes");
    }

    #[test]
    fn source_references_keep_their_kind_and_refuse_unknown_ones() {
        let r = |kind: &str| CrossNamespaceSourceReference {
            kind: kind.into(),
            name: "app".into(),
            ..Default::default()
        };
        let git = r("GitRepository").key(NS).expect("known kind");
        assert_eq!(git, crate::SourceKey::new(NS, "app"));
        let helm = r("HelmRepository").key(NS).expect("known kind");
        assert_eq!(helm.kind, crate::SourceKind::HelmRepository);
        assert_ne!(helm, git, "same name, other kind: another source");
        let bucket = r("Bucket").key(NS).expect("known kind");
        assert_eq!(bucket.kind, crate::SourceKind::Bucket);
        let e = r("OCIRepository").key(NS).expect_err("no OCI sources yet");
        assert!(e.to_string().contains("\"OCIRepository\""), "{e}");
    }
}
