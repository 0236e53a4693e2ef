//! Which kinds are cluster-scoped, as kustomize decides it: from the OpenAPI document it
//! bundles (Kubernetes v1.21.2), by group, version *and* kind. A kind at a version that
//! document does not know — `flowcontrol.apiserver.k8s.io/v1` FlowSchema,
//! `admissionregistration.k8s.io/v1` ValidatingAdmissionPolicy, `resource.k8s.io` kinds —
//! counts as namespaced, exactly as for custom resources, so kustomize gives it a namespace.
//! The table was read back from `kubectl kustomize` (v5.7.1) with `namespace:` set over every
//! cluster-scoped kind of current Kubernetes at versions v1alpha1…v1.

/// `(group, kind, versions)` that are cluster-scoped.
const CLUSTER_SCOPED: &[(&str, &str, &[&str])] = &[
    ("", "ComponentStatus", &["v1"]),
    ("", "Namespace", &["v1"]),
    ("", "Node", &["v1"]),
    ("", "PersistentVolume", &["v1"]),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        &["v1", "v1beta1"],
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        &["v1", "v1beta1"],
    ),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        &["v1", "v1beta1"],
    ),
    ("apiregistration.k8s.io", "APIService", &["v1", "v1beta1"]),
    (
        "certificates.k8s.io",
        "CertificateSigningRequest",
        &["v1", "v1beta1"],
    ),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema", &["v1beta1"]),
    (
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        &["v1beta1"],
    ),
    ("networking.k8s.io", "IngressClass", &["v1", "v1beta1"]),
    ("node.k8s.io", "RuntimeClass", &["v1", "v1beta1"]),
    ("policy", "PodSecurityPolicy", &["v1beta1"]),
    (
        "rbac.authorization.k8s.io",
        "ClusterRole",
        &["v1", "v1beta1"],
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        &["v1", "v1beta1"],
    ),
    ("scheduling.k8s.io", "PriorityClass", &["v1", "v1beta1"]),
    ("storage.k8s.io", "CSIDriver", &["v1", "v1beta1"]),
    ("storage.k8s.io", "CSINode", &["v1", "v1beta1"]),
    ("storage.k8s.io", "StorageClass", &["v1", "v1beta1"]),
    ("storage.k8s.io", "VolumeAttachment", &["v1", "v1beta1"]),
];

pub fn is_cluster_scoped(group: &str, version: &str, kind: &str) -> bool {
    CLUSTER_SCOPED
        .iter()
        .any(|(g, k, vs)| *g == group && *k == kind && vs.contains(&version))
}
