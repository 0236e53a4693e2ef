//! JSON Patch (RFC 6902): `add`, `remove`, `replace`, `move`, `copy`, `test`, with JSON
//! pointers (`~0`, `~1`, `-` for the end of a list). Parsing and applying are the `json-patch`
//! crate's; this module parses from an already decoded value (kustomize writes these patches
//! in YAML as well as JSON) and reports which operation failed, where, and why.

use serde_json::Value;

pub use json_patch::{Patch, PatchOperation};

/// Why a JSON patch could not be parsed or applied.
#[derive(Debug, thiserror::Error)]
pub enum JsonPatchError {
    /// The patch is not a JSON patch document.
    #[error("invalid JSON patch: {0}")]
    Parse(#[source] serde_json::Error),
    /// An operation failed (a missing path, a failed `test`).
    #[error("JSON patch operation {index} ({op} {path}) failed: {reason}")]
    Apply {
        /// Zero-based index of the failing operation.
        index: usize,
        /// The operation (`add`, `remove`, ...).
        op: &'static str,
        /// Its path.
        path: String,
        /// Why it failed.
        reason: String,
    },
}

/// Parses a JSON patch from a decoded document: a list of operation objects.
pub fn parse(value: &Value) -> Result<Patch, JsonPatchError> {
    if !value.is_array() {
        return Err(JsonPatchError::Parse(serde::de::Error::custom(
            "a JSON patch must be a list of operations",
        )));
    }
    serde_json::from_value(value.clone()).map_err(JsonPatchError::Parse)
}

/// Applies `patch` to `doc`. On error `doc` is left as it was.
///
/// A `test` of `null` at a path that does not exist succeeds, as in the Go implementation the
/// API server and kustomize use (evanphx/json-patch): kube-rs adds a first finalizer with
/// `test /metadata/finalizers null` then `add`.
pub fn apply(doc: &mut Value, patch: &Patch) -> Result<(), JsonPatchError> {
    let mut work = doc.clone();
    for (index, op) in patch.0.iter().enumerate() {
        if let PatchOperation::Test(t) = op
            && t.value.is_null()
            && work.pointer(t.path.as_str()).is_none()
        {
            continue;
        }
        json_patch::patch(&mut work, std::slice::from_ref(op)).map_err(|e| {
            JsonPatchError::Apply {
                index,
                op: op_name(op),
                path: op.path().to_string(),
                reason: e.kind.to_string(),
            }
        })?;
    }
    *doc = work;
    Ok(())
}

fn op_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_null_test_of_a_missing_path_succeeds_as_in_go() {
        let ops = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
        ]);
        let out = run(json!({"metadata": {"name": "a"}}), ops.clone()).expect("applies");
        assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
        let err = run(json!({"metadata": {"finalizers": ["x"]}}), ops).expect_err("not null");
        assert!(err.to_string().contains("operation 0 (test"), "{err}");
    }

    fn run(doc: Value, ops: Value) -> Result<Value, JsonPatchError> {
        let mut doc = doc;
        let patch = parse(&ops)?;
        apply(&mut doc, &patch)?;
        Ok(doc)
    }

    #[test]
    fn all_operations_and_pointer_escapes() {
        let doc = json!({
            "metadata": {"annotations": {"a/b": "1", "c~d": "2"}},
            "spec": {"items": [1, 2, 3], "old": "x"}
        });
        let out = run(
            doc,
            json!([
                {"op": "add", "path": "/spec/items/-", "value": 4},
                {"op": "add", "path": "/spec/items/0", "value": 0},
                {"op": "remove", "path": "/spec/items/2"},
                {"op": "replace", "path": "/metadata/annotations/a~1b", "value": "one"},
                {"op": "remove", "path": "/metadata/annotations/c~0d"},
                {"op": "move", "from": "/spec/old", "path": "/spec/new"},
                {"op": "copy", "from": "/spec/new", "path": "/spec/copy"},
                {"op": "test", "path": "/spec/copy", "value": "x"}
            ]),
        )
        .expect("applies");
        assert_eq!(
            out,
            json!({
                "metadata": {"annotations": {"a/b": "one"}},
                "spec": {"items": [0, 1, 3, 4], "new": "x", "copy": "x"}
            })
        );
    }

    #[test]
    fn failing_operation_is_named_and_document_unchanged() {
        let original = json!({"spec": {"replicas": 1}});
        let mut doc = original.clone();
        let patch = parse(&json!([
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "remove", "path": "/spec/missing"}
        ]))
        .expect("parses");
        let err = apply(&mut doc, &patch).expect_err("missing path");
        let text = err.to_string();
        assert!(
            text.contains("operation 1 (remove /spec/missing)"),
            "{text}"
        );
        assert_eq!(doc, original);
    }

    #[test]
    fn test_operation_mismatch_fails() {
        let err = run(
            json!({"a": 1}),
            json!([{"op": "test", "path": "/a", "value": 2}]),
        )
        .expect_err("mismatch");
        assert!(err.to_string().contains("did not match"), "{err}");
    }

    #[test]
    fn malformed_patches_are_rejected() {
        assert!(matches!(
            parse(&json!({"op": "add"})),
            Err(JsonPatchError::Parse(_))
        ));
        assert!(matches!(
            parse(&json!([{"op": "frobnicate", "path": "/a"}])),
            Err(JsonPatchError::Parse(_))
        ));
        assert!(matches!(
            parse(&json!([{"op": "add", "path": "/a"}])),
            Err(JsonPatchError::Parse(_))
        ));
    }
}
