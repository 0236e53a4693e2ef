//! Taking fields back from imperative edits.
//!
//! `kubectl edit` / `kubectl patch` / client-side `kubectl apply` record themselves as field
//! managers. Server-side apply never removes a field another manager owns, so a field they added
//! would survive every later apply. Like Flux, Ferry hands those managers' fields to its own
//! apply entry (a JSON patch on `metadata.managedFields`); the next apply then sets the values
//! from Git and removes what Git does not declare.

use serde_json::{Map, Value, json};

/// Managers whose fields Ferry takes over before applying.
pub const FOREIGN_MANAGERS: &[&str] = &[
    "kubectl",
    "kubectl-edit",
    "kubectl-patch",
    "kubectl-client-side-apply",
    "before-first-apply",
    // `helm install`/`helm upgrade`: a release installed by helm is adopted by a HelmRelease
    // (or a Kustomization) and what the chart no longer sets is then removed.
    "helm",
];

/// Returns the JSON patch that moves every [`FOREIGN_MANAGERS`] entry into `manager`'s Apply
/// entry, or `None` when the object has no such entry. `live_managed_fields` is the live object's
/// `metadata.managedFields`; `api_version` is used when `manager` has no entry yet.
pub fn takeover_patch(
    live_managed_fields: &[Value],
    manager: &str,
    api_version: &str,
) -> Option<Value> {
    let is_foreign = |e: &Value| {
        let name = e.get("manager").and_then(Value::as_str).unwrap_or("");
        let subresource = e.get("subresource").and_then(Value::as_str).unwrap_or("");
        subresource.is_empty() && FOREIGN_MANAGERS.contains(&name)
    };
    if !live_managed_fields.iter().any(is_foreign) {
        return None;
    }
    let is_ours = |e: &Value| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Apply")
            && e.get("subresource")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
    };
    let mut taken = Value::Object(Map::new());
    let mut kept = Vec::with_capacity(live_managed_fields.len());
    let mut ours: Option<Value> = None;
    for entry in live_managed_fields {
        if is_foreign(entry) {
            if let Some(fields) = entry.get("fieldsV1") {
                union(&mut taken, fields);
            }
        } else if is_ours(entry) && ours.is_none() {
            ours = Some(entry.clone());
        } else {
            kept.push(entry.clone());
        }
    }
    let mut ours = ours.unwrap_or_else(|| {
        json!({
            "manager": manager,
            "operation": "Apply",
            "apiVersion": api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": {},
        })
    });
    let mut fields = ours.get("fieldsV1").cloned().unwrap_or_else(|| json!({}));
    union(&mut fields, &taken);
    ours["fieldsV1"] = fields;
    ours["time"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    kept.insert(0, ours);
    Some(json!([
        {"op": "replace", "path": "/metadata/managedFields", "value": kept}
    ]))
}

/// Whether any foreign manager owns fields of the live object.
pub fn has_foreign_managers(live_managed_fields: &[Value]) -> bool {
    takeover_patch(live_managed_fields, "", "").is_some()
}

/// Set union of two FieldsV1 trees (nested maps whose leaves are `{}`).
fn union(into: &mut Value, from: &Value) {
    let (Value::Object(into), Value::Object(from)) = (into, from) else {
        return;
    };
    for (k, v) in from {
        match into.get_mut(k) {
            Some(existing) => union(existing, v),
            None => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, op: &str, fields: Value) -> Value {
        json!({"manager": manager, "operation": op, "apiVersion": "apps/v1",
               "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    #[test]
    fn nothing_to_do_without_foreign_managers() {
        let mf = vec![
            entry("ferry", "Apply", json!({"f:spec": {"f:replicas": {}}})),
            entry(
                "hpa-controller",
                "Update",
                json!({"f:spec": {"f:replicas": {}}}),
            ),
        ];
        assert!(takeover_patch(&mf, "ferry", "apps/v1").is_none());
        assert!(!has_foreign_managers(&mf));
    }

    #[test]
    fn kubectl_edit_fields_move_into_ferrys_apply_entry() {
        let mf = vec![
            entry(
                "ferry",
                "Apply",
                json!({"f:spec": {"f:template": {"f:metadata": {}}}}),
            ),
            entry(
                "kubectl-edit",
                "Update",
                json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {
                    "f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}}}}}}}),
            ),
            entry(
                "other",
                "Update",
                json!({"f:metadata": {"f:labels": {"f:x": {}}}}),
            ),
        ];
        let patch = takeover_patch(&mf, "ferry", "apps/v1").expect("patch");
        assert_eq!(patch[0]["op"], "replace");
        assert_eq!(patch[0]["path"], "/metadata/managedFields");
        let list = patch[0]["value"].as_array().expect("list");
        assert_eq!(list.len(), 2, "kubectl-edit entry removed, others kept");
        assert_eq!(list[0]["manager"], "ferry");
        let f = &list[0]["fieldsV1"];
        assert!(f.pointer("/f:spec/f:replicas").is_some());
        assert!(f.pointer("/f:spec/f:template/f:metadata").is_some());
        assert!(
            f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]["f:image"]
                .is_object()
        );
        assert_eq!(list[1]["manager"], "other");
    }

    #[test]
    fn creates_an_apply_entry_when_ferry_had_none() {
        let mf = vec![entry(
            "kubectl-client-side-apply",
            "Update",
            json!({"f:data": {}}),
        )];
        let patch = takeover_patch(&mf, "ferry", "v1").expect("patch");
        let list = patch[0]["value"].as_array().expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["manager"], "ferry");
        assert_eq!(list[0]["operation"], "Apply");
        assert_eq!(list[0]["apiVersion"], "v1");
        assert!(list[0]["fieldsV1"]["f:data"].is_object());
    }
}
