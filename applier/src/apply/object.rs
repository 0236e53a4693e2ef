//! Object identity ([`ferry_proto::ObjectRef`], read from a rendered object) and the
//! per-object knobs users set with annotations.

use ferry_proto::ObjectRef;

use kube::api::DynamicObject;
use serde_json::Value;

use super::ApplyError;

/// Annotation selecting how an object is applied (`Override` when absent).
pub const SSA_ANNOTATION: &str = "ferry.dev/ssa";
/// Annotation that protects an object from pruning (`disabled`).
pub const PRUNE_ANNOTATION: &str = "ferry.dev/prune";
/// Annotation that allows delete-and-recreate on immutable-field errors for one object
/// (`enabled`), like the Kustomization's `force` does for all of them.
pub const FORCE_ANNOTATION: &str = "ferry.dev/force";
/// Labels recording which Kustomization owns an object, so pruning never deletes an object that
/// another Kustomization has taken over since.
pub const OWNER_NAME_LABEL: &str = "apply.ferry.dev/name";
pub const OWNER_NAMESPACE_LABEL: &str = "apply.ferry.dev/namespace";

/// The identity of a rendered object and the version it is written in; `apiVersion`, `kind`
/// and `metadata.name` are required.
pub fn object_ref(obj: &DynamicObject) -> Result<(ObjectRef, String), ApplyError> {
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    let types = obj.types.as_ref();
    let api_version = types.map(|t| t.api_version.as_str()).unwrap_or("");
    let kind = types.map(|t| t.kind.as_str()).unwrap_or("");
    if name.is_empty() || api_version.is_empty() || kind.is_empty() {
        return Err(ApplyError::InvalidObject {
            object: format!("{kind}/{name}"),
            message: "apiVersion, kind and metadata.name are required".into(),
        });
    }
    let (id, version) =
        ObjectRef::from_api_version(api_version, kind, obj.metadata.namespace.as_deref(), name);
    Ok((id, version.to_string()))
}

/// How one object is applied, from its `ferry.dev/ssa` annotation (Flux's values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SsaPolicy {
    /// Apply, taking back fields other tools changed (the default).
    Override,
    /// Apply, but leave fields other managers (kubectl edit & co.) own alone.
    Merge,
    /// Create when absent, never update.
    IfNotPresent,
    /// Never apply; the object stays in the inventory so it is not pruned either.
    Ignore,
}

impl SsaPolicy {
    pub fn of(id: &ObjectRef, obj: &DynamicObject) -> Result<Self, ApplyError> {
        let Some(value) = annotation(obj, SSA_ANNOTATION) else {
            return Ok(SsaPolicy::Override);
        };
        match value.to_ascii_lowercase().as_str() {
            "override" => Ok(SsaPolicy::Override),
            "merge" => Ok(SsaPolicy::Merge),
            "ifnotpresent" => Ok(SsaPolicy::IfNotPresent),
            "ignore" => Ok(SsaPolicy::Ignore),
            _ => Err(ApplyError::InvalidObject {
                object: id.to_string(),
                message: format!(
                    "annotation {SSA_ANNOTATION}: {value:?} is not one of Override, Merge, IfNotPresent, Ignore"
                ),
            }),
        }
    }
}

pub fn annotation<'a>(obj: &'a DynamicObject, key: &str) -> Option<&'a str> {
    obj.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Whether a live object opted out of pruning.
pub fn prune_disabled(obj: &DynamicObject) -> bool {
    annotation(obj, PRUNE_ANNOTATION).is_some_and(|v| v.eq_ignore_ascii_case("disabled"))
}

/// Whether an object opted in to delete-and-recreate on immutable-field errors.
pub fn force_enabled(obj: &DynamicObject) -> bool {
    annotation(obj, FORCE_ANNOTATION).is_some_and(|v| v.eq_ignore_ascii_case("enabled"))
}

/// Marks `obj` as owned by Kustomization `namespace/name`.
pub fn set_owner_labels(obj: &mut DynamicObject, namespace: &str, name: &str) {
    let labels = obj.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(OWNER_NAME_LABEL.to_string(), name.to_string());
    labels.insert(OWNER_NAMESPACE_LABEL.to_string(), namespace.to_string());
}

/// Whether a live object is (still) owned by Kustomization `namespace/name`. Objects without
/// owner labels are treated as owned: they were applied before labels existed or by hand and
/// are in our inventory, which is the stronger record.
pub fn owned_by(obj: &DynamicObject, namespace: &str, name: &str) -> bool {
    let Some(labels) = obj.metadata.labels.as_ref() else {
        return true;
    };
    match (
        labels.get(OWNER_NAME_LABEL),
        labels.get(OWNER_NAMESPACE_LABEL),
    ) {
        (Some(n), Some(ns)) => n == name && ns == namespace,
        _ => true,
    }
}

/// Turns a rendered manifest into a [`DynamicObject`], naming the object on failure.
///
/// Done by hand rather than through `DynamicObject`'s derived `Deserialize`: its flattened
/// fields make serde buffer the whole object once more, and this runs for every object of
/// every reconcile.
pub fn from_value(value: Value) -> Result<DynamicObject, ApplyError> {
    let label = format!(
        "{}/{}",
        value.get("kind").and_then(Value::as_str).unwrap_or("?"),
        value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
    );
    let invalid = |message: String| ApplyError::InvalidObject {
        object: label.clone(),
        message,
    };
    let Value::Object(mut map) = value else {
        return Err(invalid("not a mapping".into()));
    };
    let mut text = |key: &str| match map.remove(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(invalid(format!("{key} must be a string, not {other}"))),
        None => Err(invalid(format!("{key} is required"))),
    };
    let api_version = text("apiVersion")?;
    let kind = text("kind")?;
    let metadata = match map.remove("metadata") {
        Some(m) => serde_json::from_value(m).map_err(|e| invalid(format!("metadata: {e}")))?,
        None => Default::default(),
    };
    Ok(DynamicObject {
        types: Some(kube::api::TypeMeta { api_version, kind }),
        metadata,
        data: Value::Object(map),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> DynamicObject {
        from_value(v).expect("valid object")
    }

    #[test]
    fn identity_and_display_follow_flux() {
        let d = obj(json!({"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"my-app","namespace":"team-a"}}));
        let (id, v) = object_ref(&d).expect("id");
        assert_eq!(id.group, "apps");
        assert_eq!(v, "v1");
        assert_eq!(id.to_string(), "Deployment/team-a/my-app");
        let ns = obj(json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}));
        let (id, _) = object_ref(&ns).expect("id");
        assert_eq!(id.group, "");
        assert_eq!(id.to_string(), "Namespace/x");
    }

    #[test]
    fn missing_name_is_an_error_naming_the_kind() {
        let d = obj(json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{}}));
        let err = object_ref(&d).expect_err("no name");
        assert!(err.to_string().contains("ConfigMap/"), "{err}");
    }

    #[test]
    fn ssa_policy_from_annotation() {
        let mk = |v: &str| {
            obj(json!({"apiVersion":"v1","kind":"ConfigMap",
                "metadata":{"name":"c","annotations":{SSA_ANNOTATION: v}}}))
        };
        let id = object_ref(&mk("Merge")).expect("id").0;
        assert_eq!(
            SsaPolicy::of(&id, &mk("Merge")).ok(),
            Some(SsaPolicy::Merge)
        );
        assert_eq!(
            SsaPolicy::of(&id, &mk("IfNotPresent")).ok(),
            Some(SsaPolicy::IfNotPresent)
        );
        assert_eq!(
            SsaPolicy::of(&id, &mk("Ignore")).ok(),
            Some(SsaPolicy::Ignore)
        );
        let err = SsaPolicy::of(&id, &mk("Sometimes")).expect_err("bad value");
        assert!(err.to_string().contains("ConfigMap/c"), "{err}");
        assert!(err.to_string().contains(SSA_ANNOTATION), "{err}");
    }

    #[test]
    fn conversion_matches_the_derived_deserializer() {
        let v = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "labels": {"a": "b"},
                         "annotations": {SSA_ANNOTATION: "Merge"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c"}]}}}});
        let ours = from_value(v.clone()).expect("converts");
        let derived: DynamicObject = serde_json::from_value(v.clone()).expect("derives");
        assert_eq!(ours, derived);
        assert_eq!(serde_json::to_value(&ours).expect("encodes"), v);

        let err = from_value(json!({"kind": "ConfigMap", "metadata": {"name": "c"}}))
            .expect_err("no apiVersion");
        assert!(
            err.to_string().contains("ConfigMap/c") && err.to_string().contains("apiVersion"),
            "{err}"
        );
        let err = from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": "oops"}}))
        .expect_err("bad metadata");
        assert!(err.to_string().contains("metadata"), "{err}");
    }

    #[test]
    fn ownership_labels() {
        let mut o = obj(json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}));
        assert!(owned_by(&o, "ns", "ks"), "unlabelled objects count as ours");
        set_owner_labels(&mut o, "ns", "ks");
        assert!(owned_by(&o, "ns", "ks"));
        assert!(!owned_by(&o, "ns", "other"));
    }
}
