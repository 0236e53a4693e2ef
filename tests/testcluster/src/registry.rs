//! The resource registry: which kinds the server serves, under which group/version/plural.
//!
//! Built-in kinds are fixed; CustomResourceDefinitions add (and remove) entries at run time.
//! Every resource has one storage key (`plural.group`), shared by all its served versions, so
//! objects written through one version are visible through the others (no schema conversion:
//! only `apiVersion` is rewritten).

use ferry_proto::GroupVersion;
use std::collections::BTreeMap;

use serde_json::{Value, json};

/// One served resource (a kind in one group, all its served versions).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDef {
    pub group: String,
    /// Served versions, the preferred (storage) one first.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Whether `status` is a subresource (main-resource writes ignore it).
    pub status_subresource: bool,
    /// Set for resources defined by a CRD (the CRD's name).
    pub crd: Option<String>,
}

impl ResourceDef {
    /// Storage key shared by all versions: `plural` for core, `plural.group` otherwise.
    pub fn key(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `apiVersion` for a version: `v1` for core, `group/version` otherwise.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// What Kubernetes puts in `details.kind` of a Status and in messages
    /// (`deployments.apps`, `configmaps`).
    pub fn qualified(&self) -> String {
        self.key()
    }
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    all: bool,
}

#[allow(clippy::too_many_arguments)] // a table row constructor
const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    all: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        kind,
        namespaced,
        short,
        status,
        all,
    }
}

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    b("", "v1", "namespaces", "Namespace", false, &["ns"], true, false),
    b("", "v1", "configmaps", "ConfigMap", true, &["cm"], false, false),
    b("", "v1", "secrets", "Secret", true, &[], false, false),
    b("", "v1", "services", "Service", true, &["svc"], true, true),
    b("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"], false, false),
    b("", "v1", "events", "Event", true, &["ev"], false, false),
    b("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, &["pvc"], true, false),
    b("", "v1", "pods", "Pod", true, &["po"], true, true),
    b("", "v1", "endpoints", "Endpoints", true, &["ep"], false, false),
    b("apps", "v1", "deployments", "Deployment", true, &["deploy"], true, true),
    b("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"], true, true),
    b("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], true, true),
    b("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"], true, true),
    b("batch", "v1", "jobs", "Job", true, &[], true, true),
    b("batch", "v1", "cronjobs", "CronJob", true, &["cj"], true, true),
    b("networking.k8s.io", "v1", "ingresses", "Ingress", true, &["ing"], true, false),
    b("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"], false, false),
    b("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"], true, false),
    b("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, &["hpa"], true, true),
    b("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[], false, false),
    b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[], false, false),
    b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[], false, false),
    b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[], false, false),
    b("coordination.k8s.io", "v1", "leases", "Lease", true, &[], false, false),
    b("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, &["crd", "crds"], true, false),
];

/// All served resources, by storage key.
#[derive(Debug, Clone)]
pub struct Registry {
    by_key: BTreeMap<String, ResourceDef>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut by_key = BTreeMap::new();
        for bi in BUILTINS {
            let def = ResourceDef {
                group: bi.group.to_string(),
                versions: vec![bi.version.to_string()],
                plural: bi.plural.to_string(),
                singular: bi.kind.to_lowercase(),
                kind: bi.kind.to_string(),
                list_kind: format!("{}List", bi.kind),
                namespaced: bi.namespaced,
                short_names: bi.short.iter().map(|s| s.to_string()).collect(),
                categories: if bi.all { vec!["all".into()] } else { vec![] },
                status_subresource: bi.status,
                crd: None,
            };
            by_key.insert(def.key(), def);
        }
        Self { by_key }
    }
}

impl Registry {
    /// The resource served at `group/version/plural`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        let key = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        self.by_key
            .get(&key)
            .filter(|d| d.versions.iter().any(|v| v == version))
    }

    pub fn by_key(&self, key: &str) -> Option<&ResourceDef> {
        self.by_key.get(key)
    }

    /// The resource for an object's `apiVersion` + `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceDef> {
        let GroupVersion { group, version } = GroupVersion::parse(api_version);
        self.by_key
            .values()
            .find(|d| d.group == group && d.kind == kind && d.versions.iter().any(|v| v == version))
    }

    pub fn all(&self) -> impl Iterator<Item = &ResourceDef> {
        self.by_key.values()
    }

    /// Groups with their versions (preferred first), core group excluded, in a stable order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for d in self.by_key.values().filter(|d| !d.group.is_empty()) {
            match out.iter_mut().find(|(g, _)| *g == d.group) {
                Some((_, vs)) => {
                    for v in &d.versions {
                        if !vs.contains(v) {
                            vs.push(v.clone());
                        }
                    }
                }
                None => out.push((d.group.clone(), d.versions.clone())),
            }
        }
        out
    }

    /// Group/versions (`v1`, `apps/v1`, …) served.
    pub fn group_versions(&self) -> Vec<(String, String)> {
        let mut out = vec![(String::new(), "v1".to_string())];
        for (g, vs) in self.groups() {
            for v in vs {
                out.push((g.clone(), v));
            }
        }
        out
    }

    pub fn insert(&mut self, def: ResourceDef) {
        self.by_key.insert(def.key(), def);
    }

    pub fn remove(&mut self, key: &str) -> Option<ResourceDef> {
        self.by_key.remove(key)
    }
}

/// An `APIResourceList` entry for discovery.
pub fn api_resource_json(def: &ResourceDef) -> Vec<Value> {
    let mut out = vec![json!({
        "name": def.plural,
        "singularName": def.singular,
        "namespaced": def.namespaced,
        "kind": def.kind,
        "verbs": VERBS,
        "shortNames": def.short_names,
        "categories": def.categories,
    })];
    if def.group == "apps"
        && matches!(
            def.kind.as_str(),
            "Deployment" | "StatefulSet" | "ReplicaSet"
        )
    {
        out.push(json!({
            "name": format!("{}/scale", def.plural),
            "singularName": "",
            "namespaced": def.namespaced,
            "group": "autoscaling",
            "version": "v1",
            "kind": "Scale",
            "verbs": ["get", "patch", "update"],
        }));
    }
    if def.status_subresource {
        out.push(json!({
            "name": format!("{}/status", def.plural),
            "singularName": "",
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_found_by_path_and_kind() {
        let r = Registry::default();
        let d = r.lookup("apps", "v1", "deployments").expect("deployments");
        assert_eq!(d.kind, "Deployment");
        assert!(d.namespaced && d.status_subresource);
        assert!(r.lookup("apps", "v2", "deployments").is_none());
        assert_eq!(
            r.by_kind("v1", "Namespace").map(|d| d.namespaced),
            Some(false)
        );
        assert!(r.groups().iter().any(|(g, _)| g == "apiextensions.k8s.io"));
    }
}
