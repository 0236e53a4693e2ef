//! CustomResourceDefinitions: validating one, registering its kind (so discovery, OpenAPI and
//! the REST paths serve it) and reporting `Established`. Custom resources are stored as written;
//! the CRD's OpenAPI schema is not enforced (see tests/README.md).

use serde_json::{Value, json};

use super::registry::ResourceDef;
use super::status::ApiError;
use super::store::{State, name_of};

/// The resource a CRD defines, or 422 naming the offending field.
pub fn resource_def(crd: &Value) -> Result<ResourceDef, ApiError> {
    let name = name_of(crd).to_string();
    let invalid = |field: &str, msg: &str| {
        ApiError::invalid(
            "CustomResourceDefinition.apiextensions.k8s.io",
            &name,
            &[(field, msg.to_string())],
        )
    };
    let spec = crd
        .get("spec")
        .ok_or_else(|| invalid("spec", "Required value"))?;
    let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let group = s(spec, "/group").ok_or_else(|| invalid("spec.group", "Required value"))?;
    let plural =
        s(spec, "/names/plural").ok_or_else(|| invalid("spec.names.plural", "Required value"))?;
    let kind =
        s(spec, "/names/kind").ok_or_else(|| invalid("spec.names.kind", "Required value"))?;
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            "metadata.name",
            &format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = s(spec, "/scope").unwrap_or_default();
    let namespaced = match scope.as_str() {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            return Err(invalid(
                "spec.scope",
                &format!(
                    "Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
                ),
            ));
        }
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            invalid(
                "spec.versions",
                "Required value: must have exactly one version marked as storage version",
            )
        })?;
    let storage: Vec<&Value> = versions.iter().filter(|v| v["storage"] == true).collect();
    if storage.len() != 1 {
        return Err(invalid(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    let mut served: Vec<String> = Vec::new();
    // Storage version first: it is the preferred one in discovery.
    for v in storage.iter().copied().chain(versions.iter()) {
        if v["served"] == true
            && let Some(n) = v["name"].as_str()
            && !served.iter().any(|s| s == n)
        {
            served.push(n.to_string());
        }
    }
    let status_subresource = versions
        .iter()
        .any(|v| v.pointer("/subresources/status").is_some());
    let strs = |p: &str| -> Vec<String> {
        spec.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ResourceDef {
        singular: s(spec, "/names/singular").unwrap_or_else(|| kind.to_lowercase()),
        list_kind: s(spec, "/names/listKind").unwrap_or_else(|| format!("{kind}List")),
        group,
        versions: served,
        plural,
        kind,
        namespaced,
        short_names: strs("/names/shortNames"),
        categories: strs("/names/categories"),
        status_subresource,
        crd: Some(name),
    })
}

/// Registers the kind and returns the CRD with its `status` (NamesAccepted, Established).
/// Changing group/names/scope of an existing CRD is rejected (real servers make most of it
/// immutable, too).
pub fn register(st: &mut State, crd: &mut Value) -> Result<(), ApiError> {
    let def = resource_def(crd)?;
    if let Some(existing) = st.registry.by_key(&def.key())
        && existing.crd.is_none()
    {
        return Err(ApiError::invalid(
            "CustomResourceDefinition.apiextensions.k8s.io",
            name_of(crd),
            &[(
                "spec.group",
                "Invalid value: collides with a built-in resource".into(),
            )],
        ));
    }
    let stored: Vec<Value> = def.versions.iter().take(1).map(|v| json!(v)).collect();
    let names = crd.pointer("/spec/names").cloned().unwrap_or_default();
    let now = super::store::now_rfc3339();
    crd["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
    st.registry.insert(def);
    Ok(())
}

/// The CRD is gone: its custom resources (each with a DELETED event, so watchers notice)
/// and its kind go with it.
pub fn unregister(st: &mut State, crd: &Value) {
    let Ok(def) = resource_def(crd) else {
        return;
    };
    let objects: Vec<(String, String)> = st
        .list(&def.key(), None)
        .into_iter()
        .map(|o| {
            (
                super::store::namespace_of(o).to_string(),
                name_of(o).to_string(),
            )
        })
        .collect();
    for (ns, name) in objects {
        st.remove(&def, &ns, &name);
    }
    st.drop_resource(&def.key());
    st.registry.remove(&def.key());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_defines_a_namespaced_kind_with_status() {
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}
        });
        let def = resource_def(&crd).expect("valid");
        assert_eq!(def.versions, vec!["v1", "v1beta1"]);
        assert!(def.namespaced && def.status_subresource);
        assert_eq!(def.key(), "widgets.example.com");
        let mut bad = crd.clone();
        bad["metadata"]["name"] = json!("gadgets.example.com");
        let err = resource_def(&bad).expect_err("name mismatch");
        assert_eq!(err.code, 422);
        assert!(err.message.contains("metadata.name"), "{}", err.message);
    }
}
