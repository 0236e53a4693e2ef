//! The one identity of a Kubernetes object: group, kind, namespace and name ([`ObjectRef`]).
//!
//! The version is deliberately not part of it: the same object may be written through another
//! served version after an upgrade (`apps/v1beta1` → `apps/v1` is not a new object), so the
//! agent's apply bookkeeping, prune's inventory comparison and the kustomize engine's ids all
//! carry the version beside an `ObjectRef`, never inside it. Its `Display` is Flux's notation
//! (`Deployment/team-a/my-app`), which events, status messages and the CLI print.

use std::fmt;

use crate::GroupVersion;

/// Group, kind, namespace and name: what identifies an object across versions.
///
/// Ordered by group, kind, namespace, name, so a sorted list groups objects of one type.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// The API group, `""` for the core group.
    pub group: String,
    pub kind: String,
    /// `None` for cluster-scoped objects (never `Some("")`: the constructors normalise it).
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// An object of `kind` in `group`; an empty `namespace` means cluster-scoped.
    pub fn new(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        Self {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_string),
            name: name.to_string(),
        }
    }

    /// The identity of an object written as `apiVersion`/`kind`, and the version it was
    /// written in.
    pub fn from_api_version<'a>(
        api_version: &'a str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> (Self, &'a str) {
        let GroupVersion { group, version } = GroupVersion::parse(api_version);
        (Self::new(group, kind, namespace, name), version)
    }

    /// `apiVersion` for `version` of this object's group.
    pub fn api_version(&self, version: &str) -> String {
        GroupVersion {
            group: &self.group,
            version,
        }
        .to_string()
    }

    /// The namespace as the API paths and kube's `Api` take it: `""` for cluster-scoped.
    pub fn namespace_or_empty(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

/// `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects — the form Flux's events use.
impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_beside_the_identity_and_an_empty_namespace_is_cluster_scope() {
        let (a, v1) = ObjectRef::from_api_version("apps/v1", "Deployment", Some("team-a"), "web");
        let (b, v1beta1) =
            ObjectRef::from_api_version("apps/v1beta1", "Deployment", Some("team-a"), "web");
        assert_eq!(a, b);
        assert_eq!((v1, v1beta1), ("v1", "v1beta1"));
        assert_eq!(a.api_version("v1"), "apps/v1");
        assert_eq!(a.to_string(), "Deployment/team-a/web");

        let (ns, _) = ObjectRef::from_api_version("v1", "Namespace", Some(""), "team-a");
        assert_eq!(ns.namespace, None);
        assert_eq!(ns.namespace_or_empty(), "");
        assert_eq!(ns.api_version("v1"), "v1");
        assert_eq!(ns.to_string(), "Namespace/team-a");
    }

    #[test]
    fn sorting_groups_objects_of_one_type() {
        let mut ids = [
            ObjectRef::new("", "Service", Some("a"), "x"),
            ObjectRef::new("apps", "Deployment", Some("a"), "x"),
            ObjectRef::new("", "ConfigMap", Some("b"), "x"),
            ObjectRef::new("", "ConfigMap", Some("a"), "y"),
        ];
        ids.sort();
        let shown: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "ConfigMap/a/y",
                "ConfigMap/b/x",
                "Service/a/x",
                "Deployment/a/x"
            ]
        );
    }
}
