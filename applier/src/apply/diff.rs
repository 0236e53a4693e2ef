//! What differs between a live object and the same object after a (dry-run) apply.
//!
//! The server's dry-run answer is the object as it would be stored, so comparing it with the live
//! object — minus bookkeeping the server changes on every write — tells whether an apply would
//! change anything, and which fields drifted.

use serde_json::Value;

/// Metadata fields the server maintains itself; they never count as a change.
const NOISE: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
];

/// Paths (`.spec.replicas`, `.spec.template.spec.containers[name="app"].image`) whose values
/// differ between `live` and `desired`, in document order. Empty means "unchanged". `status` is
/// ignored: it is not ours to apply.
pub fn changed_paths(live: &Value, desired: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let (live, desired) = (clean(live), clean(desired));
    walk(&live, &desired, String::new(), &mut out);
    out
}

fn clean(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in NOISE {
                meta.remove(*k);
            }
            // An empty map and an absent one are the same object to the server.
            meta.retain(|_, v| !matches!(v, Value::Object(m) if m.is_empty()));
        }
    }
    v
}

fn walk(live: &Value, desired: &Value, path: String, out: &mut Vec<String>) {
    if live == desired {
        return;
    }
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            for (k, dv) in d {
                let p = format!("{path}.{k}");
                match l.get(k) {
                    Some(lv) => walk(lv, dv, p, out),
                    None => out.push(p),
                }
            }
            for k in l.keys() {
                if !d.contains_key(k) {
                    out.push(format!("{path}.{k}"));
                }
            }
        }
        (Value::Array(l), Value::Array(d)) if l.len() == d.len() => {
            for (i, (lv, dv)) in l.iter().zip(d).enumerate() {
                walk(lv, dv, format!("{path}{}", item_label(dv, i)), out);
            }
        }
        _ => out.push(if path.is_empty() { ".".into() } else { path }),
    }
}

/// `[name="app"]` for named list items (containers, env, ports…), `[3]` otherwise.
fn item_label(item: &Value, index: usize) -> String {
    match item.get("name").and_then(Value::as_str) {
        Some(name) => format!("[name={name:?}]"),
        None => format!("[{index}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i64, image: &str, rv: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "my-app", "namespace": "ns", "resourceVersion": rv,
                         "generation": 3, "managedFields": [{"manager": rv}], "annotations": {}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "app", "image": image}
            ]}}},
            "status": {"readyReplicas": replicas}
        })
    }

    #[test]
    fn bookkeeping_and_status_are_not_changes() {
        let a = deployment(2, "x:v1", "10");
        let mut b = deployment(2, "x:v1", "11");
        b["status"]["readyReplicas"] = json!(0);
        b["metadata"]
            .as_object_mut()
            .expect("meta")
            .remove("annotations");
        assert!(changed_paths(&a, &b).is_empty());
    }

    #[test]
    fn reports_drifted_fields_with_readable_paths() {
        let live = deployment(5, "x:hacked", "10");
        let desired = deployment(2, "x:v1", "10");
        assert_eq!(
            changed_paths(&live, &desired),
            vec![
                ".spec.replicas".to_string(),
                ".spec.template.spec.containers[name=\"app\"].image".to_string()
            ]
        );
    }

    #[test]
    fn added_and_removed_fields_count() {
        let live = json!({"data": {"a": "1", "extra": "x"}});
        let desired = json!({"data": {"a": "1", "b": "2"}});
        assert_eq!(
            changed_paths(&live, &desired),
            vec![".data.b", ".data.extra"]
        );
        let live = json!({"spec": {"ports": [1, 2]}});
        let desired = json!({"spec": {"ports": [1]}});
        assert_eq!(changed_paths(&live, &desired), vec![".spec.ports"]);
    }
}
