//! `meta.k8s.io/v1 Table` responses, which kubectl asks for (`Accept: …;as=Table;…`) to print
//! `kubectl get`: the generic columns every real server offers (Name, Age), one row per object
//! with its metadata as `PartialObjectMetadata`. Watches get one single-row Table per event.

use serde_json::{Value, json};

fn age(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()) else {
        return "<unknown>".to_string();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn row(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    json!({
        "cells": [
            meta.get("name").cloned().unwrap_or(json!("")),
            age(meta.get("creationTimestamp").and_then(Value::as_str)),
        ],
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta},
    })
}

fn table(rows: Vec<Value>, list_meta: Value) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "priority": 0,
             "description": "Name must be unique within a namespace."},
            {"name": "Age", "type": "string", "format": "", "priority": 0,
             "description": "Time since the object was created."},
        ],
        "rows": rows,
    })
}

/// A list (`items`) or a single object as a Table.
pub fn from_response(v: &Value) -> Value {
    match v.get("items").and_then(Value::as_array) {
        Some(items) => table(
            items.iter().map(row).collect(),
            v.get("metadata").cloned().unwrap_or_else(|| json!({})),
        ),
        None => table(
            vec![row(v)],
            json!({"resourceVersion": v.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_become_tables_with_name_and_age() {
        let list = json!({"metadata": {"resourceVersion": "7"}, "items": [
            {"metadata": {"name": "a", "namespace": "n", "creationTimestamp": "2000-01-01T00:00:00Z"}}]});
        let t = from_response(&list);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert_eq!(t["rows"][0]["cells"][0], "a");
        assert!(
            t["rows"][0]["cells"][1]
                .as_str()
                .is_some_and(|a| a.ends_with('d'))
        );
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "n");
    }
}
