//! Per-type merge knowledge of the built-in Kubernetes kinds, written once for every consumer.
//!
//! Strategic merge (kustomize patches, `kubectl edit`/`kubectl patch`) and server-side apply
//! both need to know, per field, whether a list is replaced whole or merged item by item (and
//! by which key), whether a map or struct is atomic, and where `retainKeys` applies. This is
//! a type graph: [`lookup`] maps (apiVersion, kind) to the root [`TypeDef`], and each
//! [`Field`] points at the type of its value (for lists and maps: of its items), so a merge
//! walks the object and the schema together without string paths.
//!
//! Source: the Go struct tags and markers of `k8s.io/api` / `k8s.io/apimachinery`
//! (`patchStrategy`/`patchMergeKey` for strategic merge; `+listType`, `+listMapKey`,
//! `+mapType`, `+structType` for server-side apply), cross-checked against the list strategies
//! of the `k8s-openapi` 0.29 (v1_35) `DeepMerge` impls, which encode the same markers (they
//! key list-maps by the patch merge key where one exists, so the multi-key SSA list-maps —
//! container ports, service ports, topology spread constraints — were taken from the markers).
//! Only fields whose behaviour differs from the default are listed: an unlisted list is
//! replaced by strategic merge and atomic for SSA; an unlisted map or struct merges key by
//! key. A kind that [`lookup`] does not know (a CRD) has no schema at all: the apiserver and
//! kustomize (checked against kustomize v5.7.1) then replace every list.

/// How strategic merge combines a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpList {
    /// No `patchStrategy`: the patch's list replaces the original.
    Replace,
    /// `patchStrategy: merge` with `patchMergeKey`: items are matched by this key.
    MergeByKey(&'static str),
    /// `patchStrategy: merge` on a list of scalars (e.g. `finalizers`): set union.
    MergePrimitives,
}

/// How server-side apply treats a list (`+listType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsaList {
    /// Owned and replaced as a whole.
    Atomic,
    /// A set of scalars; each value is owned separately.
    Set,
    /// A list of objects identified by these keys (`+listMapKey`), in order.
    Map(&'static [&'static str]),
}

/// One field of a [`TypeDef`] whose merge behaviour is not the default.
#[derive(Debug)]
pub struct Field {
    /// The JSON name.
    pub name: &'static str,
    /// Type of the value; for a list or a map, of its items. `None`: no further knowledge.
    pub ty: Option<&'static TypeDef>,
    /// Strategic-merge list strategy (meaningful when the value is a list).
    pub smp: SmpList,
    /// Server-side-apply list type (meaningful when the value is a list).
    pub ssa: SsaList,
    /// `patchStrategy: retainKeys`: a patch of this struct (or of each item of this list)
    /// clears the keys it does not mention (used for union types like volume sources).
    pub retain_keys: bool,
    /// `+mapType=atomic`: server-side apply owns this map as one value.
    pub atomic_map: bool,
}

/// A struct type of the Kubernetes API, as far as merging is concerned.
#[derive(Debug)]
pub struct TypeDef {
    /// The Go type name, for error messages and debugging.
    pub name: &'static str,
    /// `+structType=atomic`: server-side apply owns the struct as one value.
    pub atomic: bool,
    /// Fields with non-default behaviour, or leading to such fields.
    pub fields: &'static [Field],
}

impl TypeDef {
    /// The listed field of this name, if any.
    pub fn field(&'static self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Walks a path of field names from this type (list items and map values are addressed by
    /// the field name alone, since a field's type is that of its items).
    pub fn field_at(&'static self, path: &[&str]) -> Option<&'static Field> {
        let (last, parents) = path.split_last()?;
        let mut ty = self;
        for name in parents {
            ty = ty.field(name)?.ty?;
        }
        ty.field(last)
    }
}

// Builders, so the table below reads like the Go markers it transcribes.

const fn plain(name: &'static str, ty: &'static TypeDef) -> Field {
    Field {
        name,
        ty: Some(ty),
        smp: SmpList::Replace,
        ssa: SsaList::Atomic,
        retain_keys: false,
        atomic_map: false,
    }
}

/// `patchStrategy:"merge" patchMergeKey:key` + `+listType=map` with `ssa_keys`.
const fn merge_list(
    name: &'static str,
    key: &'static str,
    ssa_keys: &'static [&'static str],
    ty: Option<&'static TypeDef>,
) -> Field {
    Field {
        name,
        ty,
        smp: SmpList::MergeByKey(key),
        ssa: SsaList::Map(ssa_keys),
        retain_keys: false,
        atomic_map: false,
    }
}

/// `+listType=map` without a patch strategy: strategic merge replaces it.
const fn ssa_map_list(
    name: &'static str,
    ssa_keys: &'static [&'static str],
    ty: Option<&'static TypeDef>,
) -> Field {
    Field {
        name,
        ty,
        smp: SmpList::Replace,
        ssa: SsaList::Map(ssa_keys),
        retain_keys: false,
        atomic_map: false,
    }
}

/// A list of structs without any strategy (replace / atomic), listed only to reach its items.
const fn atomic_list(name: &'static str, ty: &'static TypeDef) -> Field {
    plain(name, ty)
}

const fn atomic_map(name: &'static str) -> Field {
    Field {
        name,
        ty: None,
        smp: SmpList::Replace,
        ssa: SsaList::Atomic,
        retain_keys: false,
        atomic_map: true,
    }
}

const fn merge_primitives(name: &'static str) -> Field {
    Field {
        name,
        ty: None,
        smp: SmpList::MergePrimitives,
        ssa: SsaList::Set,
        retain_keys: false,
        atomic_map: false,
    }
}

const fn with_retain_keys(mut f: Field) -> Field {
    f.retain_keys = true;
    f
}

const fn ty(name: &'static str, fields: &'static [Field]) -> TypeDef {
    TypeDef {
        name,
        atomic: false,
        fields,
    }
}

const fn atomic_ty(name: &'static str) -> TypeDef {
    TypeDef {
        name,
        atomic: true,
        fields: &[],
    }
}

const CONDITIONS: Field = merge_list("conditions", "type", &["type"], None);

// --- meta/v1 ---

pub static OWNER_REFERENCE: TypeDef = atomic_ty("OwnerReference");
pub static LABEL_SELECTOR: TypeDef = atomic_ty("LabelSelector");
pub static OBJECT_META: TypeDef = ty(
    "ObjectMeta",
    &[
        merge_primitives("finalizers"),
        merge_list("ownerReferences", "uid", &["uid"], Some(&OWNER_REFERENCE)),
    ],
);

// --- core/v1: references ---

static LOCAL_OBJECT_REFERENCE: TypeDef = atomic_ty("LocalObjectReference");
static OBJECT_REFERENCE: TypeDef = atomic_ty("ObjectReference");
static KEY_SELECTOR: TypeDef = atomic_ty("KeySelector");
static NODE_SELECTOR: TypeDef = atomic_ty("NodeSelector");

// --- core/v1: containers ---

static ENV_VAR_SOURCE: TypeDef = ty(
    "EnvVarSource",
    &[
        plain("configMapKeyRef", &KEY_SELECTOR),
        plain("secretKeyRef", &KEY_SELECTOR),
        plain("fieldRef", &KEY_SELECTOR),
        plain("resourceFieldRef", &KEY_SELECTOR),
    ],
);
static ENV_VAR: TypeDef = ty("EnvVar", &[plain("valueFrom", &ENV_VAR_SOURCE)]);
static RESOURCE_REQUIREMENTS: TypeDef = ty(
    "ResourceRequirements",
    &[ssa_map_list("claims", &["name"], None)],
);
pub static CONTAINER: TypeDef = ty(
    "Container",
    &[
        merge_list(
            "ports",
            "containerPort",
            &["containerPort", "protocol"],
            None,
        ),
        merge_list("env", "name", &["name"], Some(&ENV_VAR)),
        merge_list("volumeMounts", "mountPath", &["mountPath"], None),
        merge_list("volumeDevices", "devicePath", &["devicePath"], None),
        plain("resources", &RESOURCE_REQUIREMENTS),
    ],
);

// --- core/v1: pods ---

static NODE_AFFINITY: TypeDef = ty(
    "NodeAffinity",
    &[plain(
        "requiredDuringSchedulingIgnoredDuringExecution",
        &NODE_SELECTOR,
    )],
);
static AFFINITY: TypeDef = ty("Affinity", &[plain("nodeAffinity", &NODE_AFFINITY)]);
static VOLUME: TypeDef = ty("Volume", &[]);
pub static POD_SPEC: TypeDef = ty(
    "PodSpec",
    &[
        merge_list("containers", "name", &["name"], Some(&CONTAINER)),
        merge_list("initContainers", "name", &["name"], Some(&CONTAINER)),
        merge_list("ephemeralContainers", "name", &["name"], Some(&CONTAINER)),
        with_retain_keys(merge_list("volumes", "name", &["name"], Some(&VOLUME))),
        merge_list(
            "imagePullSecrets",
            "name",
            &["name"],
            Some(&LOCAL_OBJECT_REFERENCE),
        ),
        merge_list("hostAliases", "ip", &["ip"], None),
        merge_list(
            "topologySpreadConstraints",
            "topologyKey",
            &["topologyKey", "whenUnsatisfiable"],
            Some(&TOPOLOGY_SPREAD_CONSTRAINT),
        ),
        merge_list("schedulingGates", "name", &["name"], None),
        with_retain_keys(merge_list("resourceClaims", "name", &["name"], None)),
        atomic_map("nodeSelector"),
        plain("affinity", &AFFINITY),
    ],
);
static TOPOLOGY_SPREAD_CONSTRAINT: TypeDef = ty(
    "TopologySpreadConstraint",
    &[plain("labelSelector", &LABEL_SELECTOR)],
);
static POD_STATUS: TypeDef = ty(
    "PodStatus",
    &[
        CONDITIONS,
        merge_list("podIPs", "ip", &["ip"], None),
        merge_list("hostIPs", "ip", &["ip"], None),
    ],
);
pub static POD: TypeDef = ty(
    "Pod",
    &[
        plain("metadata", &OBJECT_META),
        plain("spec", &POD_SPEC),
        plain("status", &POD_STATUS),
    ],
);
pub static POD_TEMPLATE_SPEC: TypeDef = ty(
    "PodTemplateSpec",
    &[plain("metadata", &OBJECT_META), plain("spec", &POD_SPEC)],
);
static POD_TEMPLATE: TypeDef = ty(
    "PodTemplate",
    &[
        plain("metadata", &OBJECT_META),
        plain("template", &POD_TEMPLATE_SPEC),
    ],
);

// --- workloads ---

/// `metadata`, `spec` and `status` of a top-level object.
macro_rules! object {
    ($name:literal, $spec:expr, $status:expr) => {
        ty(
            $name,
            &[
                plain("metadata", &OBJECT_META),
                plain("spec", $spec),
                plain("status", $status),
            ],
        )
    };
}

static WITH_CONDITIONS: TypeDef = ty("Status", &[CONDITIONS]);
static EMPTY: TypeDef = ty("Object", &[]);

static DEPLOYMENT_STRATEGY: TypeDef = ty("DeploymentStrategy", &[]);
static DEPLOYMENT_SPEC: TypeDef = ty(
    "DeploymentSpec",
    &[
        plain("selector", &LABEL_SELECTOR),
        plain("template", &POD_TEMPLATE_SPEC),
        with_retain_keys(plain("strategy", &DEPLOYMENT_STRATEGY)),
    ],
);
static REPLICA_SET_SPEC: TypeDef = ty(
    "ReplicaSetSpec",
    &[
        plain("selector", &LABEL_SELECTOR),
        plain("template", &POD_TEMPLATE_SPEC),
    ],
);
static STATEFUL_SET_SPEC: TypeDef = ty(
    "StatefulSetSpec",
    &[
        plain("selector", &LABEL_SELECTOR),
        plain("template", &POD_TEMPLATE_SPEC),
        atomic_list("volumeClaimTemplates", &PERSISTENT_VOLUME_CLAIM),
    ],
);
static REPLICATION_CONTROLLER_SPEC: TypeDef = ty(
    "ReplicationControllerSpec",
    &[
        atomic_map("selector"),
        plain("template", &POD_TEMPLATE_SPEC),
    ],
);
static JOB_SPEC: TypeDef = ty(
    "JobSpec",
    &[
        plain("selector", &LABEL_SELECTOR),
        plain("template", &POD_TEMPLATE_SPEC),
    ],
);
static JOB_STATUS: TypeDef = ty(
    "JobStatus",
    // Job conditions merge by type in strategic merge but are atomic for SSA.
    &[merge_list_ssa_atomic("conditions", "type")],
);
static JOB_TEMPLATE_SPEC: TypeDef = ty(
    "JobTemplateSpec",
    &[plain("metadata", &OBJECT_META), plain("spec", &JOB_SPEC)],
);
static CRON_JOB_SPEC: TypeDef = ty("CronJobSpec", &[plain("jobTemplate", &JOB_TEMPLATE_SPEC)]);

pub static DEPLOYMENT: TypeDef = object!("Deployment", &DEPLOYMENT_SPEC, &WITH_CONDITIONS);
pub static REPLICA_SET: TypeDef = object!("ReplicaSet", &REPLICA_SET_SPEC, &WITH_CONDITIONS);
pub static STATEFUL_SET: TypeDef = object!("StatefulSet", &STATEFUL_SET_SPEC, &WITH_CONDITIONS);
pub static DAEMON_SET: TypeDef = object!("DaemonSet", &REPLICA_SET_SPEC, &WITH_CONDITIONS);
pub static REPLICATION_CONTROLLER: TypeDef = object!(
    "ReplicationController",
    &REPLICATION_CONTROLLER_SPEC,
    &WITH_CONDITIONS
);
pub static JOB: TypeDef = object!("Job", &JOB_SPEC, &JOB_STATUS);
pub static CRON_JOB: TypeDef = object!("CronJob", &CRON_JOB_SPEC, &EMPTY);

// --- core/v1: other kinds ---

static SERVICE_SPEC: TypeDef = ty(
    "ServiceSpec",
    &[
        merge_list("ports", "port", &["port", "protocol"], None),
        atomic_map("selector"),
    ],
);
pub static SERVICE: TypeDef = object!("Service", &SERVICE_SPEC, &WITH_CONDITIONS);
pub static SERVICE_ACCOUNT: TypeDef = ty(
    "ServiceAccount",
    &[
        plain("metadata", &OBJECT_META),
        merge_list("secrets", "name", &["name"], Some(&OBJECT_REFERENCE)),
        atomic_list("imagePullSecrets", &LOCAL_OBJECT_REFERENCE),
    ],
);
static PERSISTENT_VOLUME_CLAIM_SPEC: TypeDef = ty(
    "PersistentVolumeClaimSpec",
    &[plain("selector", &LABEL_SELECTOR)],
);
pub static PERSISTENT_VOLUME_CLAIM: TypeDef = object!(
    "PersistentVolumeClaim",
    &PERSISTENT_VOLUME_CLAIM_SPEC,
    &WITH_CONDITIONS
);
static NODE_SPEC: TypeDef = ty("NodeSpec", &[merge_primitives("podCIDRs")]);
static NODE_STATUS: TypeDef = ty(
    "NodeStatus",
    &[CONDITIONS, merge_list("addresses", "type", &["type"], None)],
);
pub static NODE: TypeDef = object!("Node", &NODE_SPEC, &NODE_STATUS);
pub static NAMESPACE: TypeDef = object!("Namespace", &EMPTY, &WITH_CONDITIONS);
/// Kinds with nothing special beyond `metadata` (ConfigMap, Secret, RBAC, Ingress, …): known,
/// so their lists are replaced rather than merged by inferred keys.
pub static PLAIN_OBJECT: TypeDef = ty("Object", &[plain("metadata", &OBJECT_META)]);
static POD_DISRUPTION_BUDGET_SPEC: TypeDef = ty(
    "PodDisruptionBudgetSpec",
    &[plain("selector", &LABEL_SELECTOR)],
);
pub static POD_DISRUPTION_BUDGET: TypeDef = object!(
    "PodDisruptionBudget",
    &POD_DISRUPTION_BUDGET_SPEC,
    &WITH_CONDITIONS
);
static NETWORK_POLICY_SPEC: TypeDef = ty(
    "NetworkPolicySpec",
    &[plain("podSelector", &LABEL_SELECTOR)],
);
pub static NETWORK_POLICY: TypeDef = object!("NetworkPolicy", &NETWORK_POLICY_SPEC, &EMPTY);
pub static HORIZONTAL_POD_AUTOSCALER: TypeDef =
    object!("HorizontalPodAutoscaler", &EMPTY, &WITH_CONDITIONS);
pub static WEBHOOK_CONFIGURATION: TypeDef = ty(
    "WebhookConfiguration",
    &[
        plain("metadata", &OBJECT_META),
        merge_list("webhooks", "name", &["name"], None),
    ],
);
static ROLE_BINDING_ROLE_REF: TypeDef = atomic_ty("RoleRef");
pub static ROLE_BINDING: TypeDef = ty(
    "RoleBinding",
    &[
        plain("metadata", &OBJECT_META),
        plain("roleRef", &ROLE_BINDING_ROLE_REF),
    ],
);
static CRD_CONDITIONS: TypeDef = ty(
    "CustomResourceDefinitionStatus",
    &[merge_list_ssa_atomic("conditions", "type")],
);
pub static CUSTOM_RESOURCE_DEFINITION: TypeDef =
    object!("CustomResourceDefinition", &EMPTY, &CRD_CONDITIONS);

/// `patchStrategy:"merge" patchMergeKey:key` without a list-map marker (atomic for SSA).
const fn merge_list_ssa_atomic(name: &'static str, key: &'static str) -> Field {
    Field {
        name,
        ty: None,
        smp: SmpList::MergeByKey(key),
        ssa: SsaList::Atomic,
        retain_keys: false,
        atomic_map: false,
    }
}

/// The schema of a built-in kind, or `None` for kinds this table does not know (CRDs).
/// The version is ignored: merge behaviour is the same across versions of a built-in kind.
pub fn lookup(api_version: &str, kind: &str) -> Option<&'static TypeDef> {
    let group = crate::GroupVersion::parse(api_version).group;
    let ty = match (group, kind) {
        ("", "Pod") => &POD,
        ("", "PodTemplate") => &POD_TEMPLATE,
        ("", "ReplicationController") => &REPLICATION_CONTROLLER,
        ("", "Service") => &SERVICE,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("", "PersistentVolumeClaim") => &PERSISTENT_VOLUME_CLAIM,
        ("", "Node") => &NODE,
        ("", "Namespace") => &NAMESPACE,
        (
            "",
            "ConfigMap" | "Secret" | "Endpoints" | "LimitRange" | "ResourceQuota"
            | "PersistentVolume" | "Event",
        ) => &PLAIN_OBJECT,
        ("apps" | "extensions", "Deployment") => &DEPLOYMENT,
        ("apps" | "extensions", "ReplicaSet") => &REPLICA_SET,
        ("apps" | "extensions", "DaemonSet") => &DAEMON_SET,
        ("apps", "StatefulSet") => &STATEFUL_SET,
        ("apps", "ControllerRevision") => &PLAIN_OBJECT,
        ("batch", "Job") => &JOB,
        ("batch", "CronJob") => &CRON_JOB,
        ("policy", "PodDisruptionBudget") => &POD_DISRUPTION_BUDGET,
        ("networking.k8s.io" | "extensions", "NetworkPolicy") => &NETWORK_POLICY,
        ("networking.k8s.io" | "extensions", "Ingress") => &PLAIN_OBJECT,
        ("networking.k8s.io", "IngressClass") => &PLAIN_OBJECT,
        ("autoscaling", "HorizontalPodAutoscaler") => &HORIZONTAL_POD_AUTOSCALER,
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => &ROLE_BINDING,
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => &PLAIN_OBJECT,
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => &WEBHOOK_CONFIGURATION,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => &CUSTOM_RESOURCE_DEFINITION,
        ("storage.k8s.io", "StorageClass") => &PLAIN_OBJECT,
        ("scheduling.k8s.io", "PriorityClass") => &PLAIN_OBJECT,
        ("coordination.k8s.io", "Lease") => &PLAIN_OBJECT,
        _ => return None,
    };
    Some(ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_template_containers_merge_by_name_everywhere() {
        for (api_version, kind, path) in [
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "containers"][..],
            ),
            (
                "apps/v1",
                "StatefulSet",
                &["spec", "template", "spec", "containers"],
            ),
            (
                "apps/v1",
                "DaemonSet",
                &["spec", "template", "spec", "containers"],
            ),
            (
                "apps/v1",
                "ReplicaSet",
                &["spec", "template", "spec", "containers"],
            ),
            (
                "batch/v1",
                "Job",
                &["spec", "template", "spec", "containers"],
            ),
            (
                "batch/v1",
                "CronJob",
                &[
                    "spec",
                    "jobTemplate",
                    "spec",
                    "template",
                    "spec",
                    "containers",
                ],
            ),
            ("v1", "Pod", &["spec", "containers"]),
            (
                "v1",
                "ReplicationController",
                &["spec", "template", "spec", "containers"],
            ),
        ] {
            let root = lookup(api_version, kind).expect("built-in kind");
            let field = root
                .field_at(path)
                .unwrap_or_else(|| panic!("{kind} {path:?}"));
            assert_eq!(field.smp, SmpList::MergeByKey("name"), "{kind}");
            assert_eq!(field.ssa, SsaList::Map(&["name"]), "{kind}");
        }
    }

    #[test]
    fn ports_differ_between_strategic_merge_and_apply() {
        let deploy = lookup("apps/v1", "Deployment").expect("known");
        let ports = deploy
            .field_at(&["spec", "template", "spec", "containers", "ports"])
            .expect("container ports");
        assert_eq!(ports.smp, SmpList::MergeByKey("containerPort"));
        assert_eq!(ports.ssa, SsaList::Map(&["containerPort", "protocol"]));
        let svc = lookup("v1", "Service").expect("known");
        let ports = svc.field_at(&["spec", "ports"]).expect("service ports");
        assert_eq!(ports.smp, SmpList::MergeByKey("port"));
        assert_eq!(ports.ssa, SsaList::Map(&["port", "protocol"]));
    }

    #[test]
    fn retain_keys_and_atomic_markers() {
        let deploy = lookup("apps/v1", "Deployment").expect("known");
        assert!(
            deploy
                .field_at(&["spec", "strategy"])
                .expect("strategy")
                .retain_keys
        );
        let volumes = deploy
            .field_at(&["spec", "template", "spec", "volumes"])
            .expect("volumes");
        assert!(volumes.retain_keys);
        assert_eq!(volumes.smp, SmpList::MergeByKey("name"));
        let selector = deploy.field_at(&["spec", "selector"]).expect("selector");
        assert!(selector.ty.expect("LabelSelector").atomic);
        let svc = lookup("v1", "Service").expect("known");
        assert!(
            svc.field_at(&["spec", "selector"])
                .expect("selector")
                .atomic_map
        );
        let meta = deploy
            .field_at(&["metadata", "finalizers"])
            .expect("finalizers");
        assert_eq!(meta.smp, SmpList::MergePrimitives);
        assert_eq!(meta.ssa, SsaList::Set);
    }

    #[test]
    fn unlisted_lists_and_unknown_kinds_have_no_merge_strategy() {
        let role = lookup("rbac.authorization.k8s.io/v1", "Role").expect("known");
        assert!(role.field("rules").is_none());
        let deploy = lookup("apps/v1", "Deployment").expect("known");
        assert!(
            deploy
                .field_at(&["spec", "template", "spec", "tolerations"])
                .is_none()
        );
        assert!(lookup("example.com/v1", "Widget").is_none());
        assert!(lookup("v1", "Widget").is_none());
    }
}
