//! Identity of Kubernetes types: [`GroupVersion`] (the one way an `apiVersion` is split) and
//! the scope of the built-in kinds ([`builtin_scope`], the one list of which kinds are
//! namespaced and which are cluster-scoped).

/// An `apiVersion` split into group and version: `apps/v1` → (`apps`, `v1`), `v1` → (``,
/// `v1`). Borrowed: splitting is on hot paths (every object of every build).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupVersion<'a> {
    /// The API group, `""` for the core group.
    pub group: &'a str,
    /// The version, e.g. `v1`.
    pub version: &'a str,
}

impl<'a> GroupVersion<'a> {
    /// Splits `api_version` at its (only) `/`; without one, the group is the core group.
    pub fn parse(api_version: &'a str) -> Self {
        match api_version.split_once('/') {
            Some((group, version)) => Self { group, version },
            None => Self {
                group: "",
                version: api_version,
            },
        }
    }
}

impl std::fmt::Display for GroupVersion<'_> {
    /// The `apiVersion` form: `apps/v1`, or `v1` for the core group.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(self.version)
        } else {
            write!(f, "{}/{}", self.group, self.version)
        }
    }
}

/// Whether objects of a kind live in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// In a namespace.
    Namespaced,
    /// Cluster-wide.
    Cluster,
}

/// The built-in kinds of current Kubernetes releases (and Ferry's own), by group and kind.
/// kustomize has this knowledge from its bundled OpenAPI document; the agent's tenancy check
/// uses it before asking discovery.
const BUILTIN: &[(&str, &str, Scope)] = &[
    ("", "ComponentStatus", Scope::Cluster),
    ("", "ConfigMap", Scope::Namespaced),
    ("", "Endpoints", Scope::Namespaced),
    ("", "Event", Scope::Namespaced),
    ("", "LimitRange", Scope::Namespaced),
    ("", "Namespace", Scope::Cluster),
    ("", "Node", Scope::Cluster),
    ("", "PersistentVolume", Scope::Cluster),
    ("", "PersistentVolumeClaim", Scope::Namespaced),
    ("", "Pod", Scope::Namespaced),
    ("", "PodTemplate", Scope::Namespaced),
    ("", "ReplicationController", Scope::Namespaced),
    ("", "ResourceQuota", Scope::Namespaced),
    ("", "Secret", Scope::Namespaced),
    ("", "Service", Scope::Namespaced),
    ("", "ServiceAccount", Scope::Namespaced),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicy",
        Scope::Cluster,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicyBinding",
        Scope::Cluster,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        Scope::Cluster,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        Scope::Cluster,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        Scope::Cluster,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        Scope::Cluster,
    ),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        Scope::Cluster,
    ),
    ("apiregistration.k8s.io", "APIService", Scope::Cluster),
    ("apply.ferry.dev", "Kustomization", Scope::Namespaced),
    ("apps", "ControllerRevision", Scope::Namespaced),
    ("apps", "DaemonSet", Scope::Namespaced),
    ("apps", "Deployment", Scope::Namespaced),
    ("apps", "ReplicaSet", Scope::Namespaced),
    ("apps", "StatefulSet", Scope::Namespaced),
    ("authentication.k8s.io", "SelfSubjectReview", Scope::Cluster),
    ("authentication.k8s.io", "TokenReview", Scope::Cluster),
    (
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        Scope::Cluster,
    ),
    (
        "authorization.k8s.io",
        "SelfSubjectRulesReview",
        Scope::Cluster,
    ),
    (
        "authorization.k8s.io",
        "SubjectAccessReview",
        Scope::Cluster,
    ),
    ("autoscaling", "HorizontalPodAutoscaler", Scope::Namespaced),
    ("batch", "CronJob", Scope::Namespaced),
    ("batch", "Job", Scope::Namespaced),
    (
        "certificates.k8s.io",
        "CertificateSigningRequest",
        Scope::Cluster,
    ),
    ("certificates.k8s.io", "ClusterTrustBundle", Scope::Cluster),
    ("coordination.k8s.io", "Lease", Scope::Namespaced),
    ("discovery.k8s.io", "EndpointSlice", Scope::Namespaced),
    ("events.k8s.io", "Event", Scope::Namespaced),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema", Scope::Cluster),
    (
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        Scope::Cluster,
    ),
    (
        "internal.apiserver.k8s.io",
        "StorageVersion",
        Scope::Cluster,
    ),
    ("networking.k8s.io", "IPAddress", Scope::Cluster),
    ("networking.k8s.io", "Ingress", Scope::Namespaced),
    ("networking.k8s.io", "IngressClass", Scope::Cluster),
    ("networking.k8s.io", "NetworkPolicy", Scope::Namespaced),
    ("networking.k8s.io", "ServiceCIDR", Scope::Cluster),
    ("node.k8s.io", "RuntimeClass", Scope::Cluster),
    ("policy", "PodDisruptionBudget", Scope::Namespaced),
    ("policy", "PodSecurityPolicy", Scope::Cluster),
    ("rbac.authorization.k8s.io", "ClusterRole", Scope::Cluster),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        Scope::Cluster,
    ),
    ("rbac.authorization.k8s.io", "Role", Scope::Namespaced),
    (
        "rbac.authorization.k8s.io",
        "RoleBinding",
        Scope::Namespaced,
    ),
    ("resource.k8s.io", "DeviceClass", Scope::Cluster),
    ("resource.k8s.io", "ResourceSlice", Scope::Cluster),
    ("scheduling.k8s.io", "PriorityClass", Scope::Cluster),
    ("source.ferry.dev", "GitRepository", Scope::Namespaced),
    ("storage.k8s.io", "CSIDriver", Scope::Cluster),
    ("storage.k8s.io", "CSINode", Scope::Cluster),
    ("storage.k8s.io", "CSIStorageCapacity", Scope::Namespaced),
    ("storage.k8s.io", "StorageClass", Scope::Cluster),
    ("storage.k8s.io", "VolumeAttachment", Scope::Cluster),
    ("storage.k8s.io", "VolumeAttributesClass", Scope::Cluster),
];

/// The scope of a built-in kind (`group`, `kind`), or `None` for kinds this table does not know
/// (custom resources: ask the API server).
pub fn builtin_scope(group: &str, kind: &str) -> Option<Scope> {
    BUILTIN
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
        .map(|(_, _, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_api_versions_and_prints_them_back() {
        for (av, group, version) in [("apps/v1", "apps", "v1"), ("v1", "", "v1")] {
            let gv = GroupVersion::parse(av);
            assert_eq!((gv.group, gv.version), (group, version));
            assert_eq!(gv.to_string(), av);
        }
    }

    #[test]
    fn knows_the_scope_of_built_in_kinds_once() {
        assert_eq!(builtin_scope("", "ConfigMap"), Some(Scope::Namespaced));
        assert_eq!(builtin_scope("", "Namespace"), Some(Scope::Cluster));
        assert_eq!(
            builtin_scope("rbac.authorization.k8s.io", "ClusterRole"),
            Some(Scope::Cluster)
        );
        assert_eq!(builtin_scope("example.com", "Widget"), None);
        let mut seen = std::collections::HashSet::new();
        for (g, k, _) in BUILTIN {
            assert!(seen.insert((g, k)), "{g}/{k} listed twice");
        }
    }
}
