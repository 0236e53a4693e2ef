//! What happens around a write that is not the write itself: defaulting new objects,
//! deletion (finalizers, `deletionTimestamp`, propagation policies), ownerReferences garbage
//! collection, namespace termination, and CRDs registering/unregistering their kinds.

use std::sync::Arc;

use rand::Rng;
use serde_json::{Value, json};

use super::registry::ResourceDef;
use super::status::ApiError;
use super::store::{State, meta_mut, name_of, namespace_of, now_rfc3339};

/// How dependents of a deleted owner are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "Background" => Ok(Self::Background),
            "Foreground" => Ok(Self::Foreground),
            "Orphan" => Ok(Self::Orphan),
            other => Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Background\", \"Foreground\", \"Orphan\""
            ))),
        }
    }
}

/// Server-side defaults applied to a new object before it is stored.
pub fn default_new(def: &ResourceDef, obj: &mut Value) {
    if def.status_subresource && def.kind != "Namespace" {
        // Status is written through the status subresource only (what real strategies do).
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Namespace") => {
            let name = name_of(obj).to_string();
            let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            if obj.pointer("/spec/finalizers").is_none() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "Secret") if obj.get("type").is_none() => obj["type"] = json!("Opaque"),
        ("", "Service") => default_service(obj),
        ("", "PersistentVolumeClaim") => obj["status"] = json!({"phase": "Bound"}),
        _ => {}
    }
    default_spec(def, obj);
}

/// Spec defaults the real server applies on every write (kubectl's rollout status and
/// readiness checks depend on them).
pub fn default_spec(def: &ResourceDef, obj: &mut Value) {
    if def.group != "apps" || !obj.get("spec").is_some_and(Value::is_object) {
        return;
    }
    let spec = &mut obj["spec"];
    let kind = def.kind.as_str();
    if matches!(kind, "Deployment" | "StatefulSet" | "ReplicaSet") && spec.get("replicas").is_none()
    {
        spec["replicas"] = json!(1);
    }
    let (field, strategy) = match kind {
        "Deployment" => (
            "strategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
        ),
        "StatefulSet" => (
            "updateStrategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
        ),
        "DaemonSet" => (
            "updateStrategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
        ),
        _ => return,
    };
    if spec.get(field).is_none() {
        spec[field] = strategy;
    }
}

fn default_service(obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    if spec.get("type").is_none() {
        spec["type"] = json!("ClusterIP");
    }
    if spec["type"] != "ExternalName" && spec.get("clusterIP").is_none() {
        let mut r = rand::rng();
        let ip = format!(
            "10.96.{}.{}",
            r.random_range(0..=255),
            r.random_range(1..=254)
        );
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if p.get("protocol").is_none() {
                p["protocol"] = json!("TCP");
            }
            if p.get("targetPort").is_none()
                && let Some(port) = p.get("port").cloned()
            {
                p["targetPort"] = port;
            }
        }
    }
    if spec["type"] == "LoadBalancer" {
        obj["status"] = json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}});
    }
}

fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// Deletes an object: with finalizers it only gets a `deletionTimestamp` (and stays until
/// they are removed); otherwise it is removed and [`after_removal`] runs. Returns the object
/// as it is after the call.
pub fn delete(
    st: &mut State,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    propagation: Propagation,
) -> Value {
    let Some(old) = st.get_shared(&def.key(), ns, name).cloned() else {
        return Value::Null;
    };
    if propagation == Propagation::Orphan {
        orphan_dependents(st, &old);
    }
    if def.kind == "Namespace" && def.group.is_empty() {
        return terminate_namespace(st, def, &old);
    }
    if has_finalizers(&old) {
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return Value::clone(&old);
        }
        let mut marked = Value::clone(&old);
        let meta = meta_mut(&mut marked);
        meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        return Value::clone(&st.replace_keep_deletion(def, &old, marked));
    }
    let removed = st.remove(def, ns, name);
    after_removal(st, def, &removed);
    removed
}

/// An update left an object that is being deleted without finalizers: it goes away now.
pub fn finish_if_released(st: &mut State, def: &ResourceDef, obj: &Value) -> Option<Value> {
    if obj.pointer("/metadata/deletionTimestamp").is_none() || has_finalizers(obj) {
        return None;
    }
    if def.kind == "Namespace" && def.group.is_empty() {
        return None;
    }
    let removed = st.remove(def, namespace_of(obj), name_of(obj));
    after_removal(st, def, &removed);
    Some(removed)
}

/// Consequences of an object being gone: dependents are collected, a terminating namespace
/// that became empty is removed, a CRD's kind stops being served.
pub fn after_removal(st: &mut State, def: &ResourceDef, removed: &Value) {
    if removed.is_null() {
        return;
    }
    if let Some(uid) = removed.pointer("/metadata/uid").and_then(Value::as_str) {
        collect_dependents(st, uid);
    }
    if def.crd.is_none() && def.kind == "CustomResourceDefinition" {
        super::crd::unregister(st, removed);
    }
    let ns = namespace_of(removed).to_string();
    if !ns.is_empty() {
        maybe_finish_namespace(st, &ns);
    }
}

/// Deletes (background) every object whose ownerReferences point at `owner_uid` and at no
/// other live owner.
fn collect_dependents(st: &mut State, owner_uid: &str) {
    let dependents: Vec<(String, String, String)> = st
        .all_objects()
        .filter(|(_, o)| {
            let refs = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array);
            refs.is_some_and(|refs| {
                refs.iter().any(|r| r["uid"] == owner_uid)
                    && !refs
                        .iter()
                        .any(|r| r["uid"] != owner_uid && uid_exists(st, &r["uid"]))
            })
        })
        .map(|(k, o)| {
            (
                k.clone(),
                namespace_of(o).to_string(),
                name_of(o).to_string(),
            )
        })
        .collect();
    for (key, ns, name) in dependents {
        if let Some(def) = st.registry.by_key(&key).cloned() {
            delete(st, &def, &ns, &name, Propagation::Background);
        }
    }
}

fn uid_exists(st: &State, uid: &Value) -> bool {
    st.all_objects()
        .any(|(_, o)| o.pointer("/metadata/uid") == Some(uid))
}

fn orphan_dependents(st: &mut State, owner: &Value) {
    let Some(uid) = owner.pointer("/metadata/uid").cloned() else {
        return;
    };
    let dependents: Vec<(String, String, String)> = st
        .all_objects()
        .filter(|(_, o)| {
            o.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
        })
        .map(|(k, o)| {
            (
                k.clone(),
                namespace_of(o).to_string(),
                name_of(o).to_string(),
            )
        })
        .collect();
    for (key, ns, name) in dependents {
        let Some(def) = st.registry.by_key(&key).cloned() else {
            continue;
        };
        let Some(old) = st.get_shared(&key, &ns, &name).cloned() else {
            continue;
        };
        let mut new = Value::clone(&old);
        if let Some(refs) = meta_mut(&mut new)
            .get_mut("ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r["uid"] != uid);
        }
        st.replace(&def, &old, new);
    }
}

/// Marks a namespace Terminating, deletes its contents, and removes it once empty.
fn terminate_namespace(st: &mut State, def: &ResourceDef, old: &Arc<Value>) -> Value {
    let name = name_of(old).to_string();
    let mut current = Value::clone(old);
    if old.pointer("/metadata/deletionTimestamp").is_none() {
        let mut marked = Value::clone(old);
        meta_mut(&mut marked).insert("deletionTimestamp".into(), json!(now_rfc3339()));
        marked["status"] = json!({"phase": "Terminating"});
        current = Value::clone(&st.replace_keep_deletion(def, old, marked));
    }
    let contents: Vec<(String, String)> = st
        .all_objects()
        .filter(|(_, o)| namespace_of(o) == name)
        .map(|(k, o)| (k.clone(), name_of(o).to_string()))
        .collect();
    for (key, obj_name) in contents {
        if let Some(d) = st.registry.by_key(&key).cloned() {
            delete(st, &d, &name, &obj_name, Propagation::Background);
        }
    }
    match maybe_finish_namespace(st, &name) {
        Some(removed) => removed,
        None => st.get("namespaces", "", &name).cloned().unwrap_or(current),
    }
}

fn maybe_finish_namespace(st: &mut State, ns: &str) -> Option<Value> {
    let terminating = st
        .get("namespaces", "", ns)
        .is_some_and(|n| n.pointer("/metadata/deletionTimestamp").is_some());
    if !terminating || st.all_objects().any(|(_, o)| namespace_of(o) == ns) {
        return None;
    }
    let def = st.registry.by_key("namespaces").cloned()?;
    Some(st.remove(&def, "", ns))
}

/// Whether a namespace exists and accepts new objects.
pub fn check_namespace_open(st: &State, ns: &str) -> Result<(), ApiError> {
    match st.get("namespaces", "", ns) {
        None => Err(ApiError::not_found("namespaces", ns)),
        Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        )),
        Some(_) => Ok(()),
    }
}
