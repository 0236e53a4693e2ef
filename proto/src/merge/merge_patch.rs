//! JSON Merge Patch (RFC 7386): objects merge recursively, `null` deletes, anything else
//! (lists included) replaces. The `json-patch` crate implements it exactly.

use serde_json::Value;

/// Applies a merge patch to `doc` in place.
pub fn apply(doc: &mut Value, patch: &Value) {
    json_patch::merge(doc, patch);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rfc7386_semantics() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        apply(
            &mut doc,
            &json!({"a": "z", "c": {"f": null, "h": 1}, "l": [3]}),
        );
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e", "h": 1}, "l": [3]}));
    }

    #[test]
    fn non_object_patch_replaces_the_document() {
        let mut doc = json!({"a": 1});
        apply(&mut doc, &json!(["x"]));
        assert_eq!(doc, json!(["x"]));
    }
}
