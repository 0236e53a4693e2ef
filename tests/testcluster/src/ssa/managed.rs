//! `metadata.managedFields`: who owns which fields, decoded into [`FieldSet`]s and encoded
//! back in the apiserver's order.

use serde_json::{Map, Value, json};

use super::fieldset::FieldSet;

/// `Apply` (server-side apply) or `Update` (any other write with a field manager).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub time: Option<String>,
    /// `""` for the main resource, else e.g. `status`.
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagedEntry {
    /// Whether this entry belongs to the same owner as `(manager, operation, apiVersion,
    /// subresource)`: appliers are one owner across API versions, updaters are one per version.
    pub fn same_owner(
        &self,
        manager: &str,
        operation: Operation,
        api_version: &str,
        subresource: &str,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == Operation::Apply || self.api_version == api_version)
    }

    /// How conflict messages name the owner: `"kubectl-patch" using apps/v1`.
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation.as_str()));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }
}

/// Reads `metadata.managedFields`. Entries without fields (e.g. the `[{}]` clients send to
/// reset ownership) decode to empty sets and are dropped later.
pub fn decode(obj: &Value) -> Result<Vec<ManagedEntry>, String> {
    let Some(list) = obj.pointer("/metadata/managedFields") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = list else {
        if list.is_null() {
            return Ok(Vec::new());
        }
        return Err("metadata.managedFields must be a list".to_string());
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = |field: &str| format!("metadata.managedFields[{i}].{field}");
        let text = |field: &str| -> Result<String, String> {
            match item.get(field) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(format!("{}: must be a string", at(field))),
            }
        };
        let operation = match text("operation")?.as_str() {
            "Apply" => Operation::Apply,
            "Update" | "" => Operation::Update,
            other => {
                return Err(format!(
                    "{}: Unsupported value: {other:?}: supported values: \"Apply\", \"Update\"",
                    at("operation")
                ));
            }
        };
        match text("fieldsType")?.as_str() {
            "FieldsV1" | "" => {}
            other => {
                return Err(format!(
                    "{}: Unsupported value: {other:?}: supported values: \"FieldsV1\"",
                    at("fieldsType")
                ));
            }
        }
        let fields = match item.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(v) => {
                FieldSet::from_fields_v1(v).map_err(|e| format!("{}: {e}", at("fieldsV1")))?
            }
        };
        let time = text("time")?;
        out.push(ManagedEntry {
            manager: text("manager")?,
            operation,
            api_version: text("apiVersion")?,
            time: (!time.is_empty()).then_some(time),
            subresource: text("subresource")?,
            fields,
        });
    }
    Ok(out)
}

/// Writes entries into `metadata.managedFields`, dropping empty ones, sorted like the
/// apiserver (Apply before Update, then by time, manager, apiVersion, subresource). No
/// entries → no `managedFields` key.
pub fn encode(obj: &mut Value, mut entries: Vec<ManagedEntry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (
            a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(meta) = obj
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(ManagedEntry::to_json).collect()),
        );
    }
}

/// The object without `metadata.managedFields` (what ownership is computed over).
pub fn strip(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_encode_round_trip_and_order() {
        let mut obj = json!({"metadata": {"name": "x", "managedFields": [
            {"manager": "kubectl-patch", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2026-01-01T00:00:02Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
             "time": "2026-01-01T00:00:03Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:template": {}}}},
            {"manager": "ctl", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2026-01-01T00:00:01Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:status": {"f:replicas": {}}}, "subresource": "status"}
        ]}});
        let entries = decode(&obj).expect("valid");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].subresource, "status");
        assert_eq!(entries[0].describe(), "\"kubectl-patch\" using apps/v1");
        assert_eq!(entries[1].describe(), "\"kubectl\"");
        assert_eq!(
            entries[2].describe(),
            "\"ctl\" with subresource \"status\" using apps/v1"
        );
        encode(&mut obj, entries);
        let managers: Vec<&str> = obj["metadata"]["managedFields"]
            .as_array()
            .expect("list")
            .iter()
            .map(|e| e["manager"].as_str().expect("manager"))
            .collect();
        assert_eq!(managers, ["kubectl", "ctl", "kubectl-patch"]);
    }

    #[test]
    fn reset_entries_decode_empty_and_vanish() {
        let mut obj = json!({"metadata": {"managedFields": [{}]}});
        let entries = decode(&obj).expect("valid");
        assert_eq!(entries.len(), 1);
        assert!(entries[0].fields.is_empty());
        encode(&mut obj, entries);
        assert_eq!(obj, json!({"metadata": {}}));
    }

    #[test]
    fn invalid_entries_name_the_field() {
        let obj = json!({"metadata": {"managedFields": [{"operation": "Merge"}]}});
        let err = decode(&obj).expect_err("bad op");
        assert!(
            err.starts_with("metadata.managedFields[0].operation"),
            "{err}"
        );
        let obj = json!({"metadata": {"managedFields": [{"fieldsV1": {"q:x": {}}}]}});
        let err = decode(&obj).expect_err("bad fields");
        assert!(err.contains("managedFields[0].fieldsV1"), "{err}");
    }
}
