//! Strategic merge patch on `serde_json::Value`, as apimachinery's `strategicpatch` applies it.
//!
//! Maps merge key by key (`null` deletes a key); lists follow the field's [`SmpList`]
//! strategy from the [`schema`](super::schema): replaced, merged by a merge key, or merged as a
//! set of scalars. Directives: `$patch: replace|merge|delete` (on a map, or as a list item),
//! `$retainKeys`, `$setElementOrder/<field>`, `$deleteFromPrimitiveList/<field>`.
//! Without a schema (custom resources) the apiserver replaces lists, while kustomize infers a
//! merge key from the items; [`Options`] selects which.

use serde_json::{Map, Value};

use super::schema::{Field, INFERRED_MERGE_KEYS, SmpList, TypeDef};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Behaviour that differs between the apiserver and kustomize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Where the schema says nothing, merge lists of objects by a key all items share (one of
    /// [`INFERRED_MERGE_KEYS`]) instead of replacing them (kustomize does; the apiserver does
    /// not).
    pub infer_list_keys: bool,
}

impl Options {
    /// As the Kubernetes apiserver applies `application/strategic-merge-patch+json`.
    pub const APISERVER: Options = Options {
        infer_list_keys: false,
    };
    /// As kustomize applies strategic-merge patches.
    pub const KUSTOMIZE: Options = Options {
        infer_list_keys: true,
    };
}

/// A patch that cannot be applied; `path` is where, in JSON-pointer-like dotted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicMergeError {
    #[error("strategic merge at {path}: unknown $patch directive {directive:?}")]
    UnknownDirective { path: String, directive: String },
    #[error("strategic merge at {path}: list item {item} lacks the merge key {key:?}")]
    MissingMergeKey {
        path: String,
        key: String,
        item: String,
    },
    #[error("strategic merge at {path}: {message}")]
    Invalid { path: String, message: String },
}

fn invalid(path: &str, message: impl Into<String>) -> StrategicMergeError {
    StrategicMergeError::Invalid {
        path: display_path(path),
        message: message.into(),
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        ".".to_string()
    } else {
        path.to_string()
    }
}

/// Applies `patch` to `original`. `schema` is the root type of the object (see
/// [`lookup`](super::schema::lookup)); `None` for kinds without one. Returns `None` when
/// the patch deletes the whole object (`$patch: delete` at the top).
pub fn apply(
    original: &Value,
    patch: &Value,
    schema: Option<&'static TypeDef>,
    options: Options,
) -> Result<Option<Value>, StrategicMergeError> {
    let Value::Object(patch_map) = patch else {
        return Err(invalid("", "a strategic merge patch must be an object"));
    };
    let original_map = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(invalid("", "the patched document must be an object")),
    };
    let walker = Walker {
        options,
        known: schema.is_some(),
    };
    Ok(walker
        .merge_map(original_map, patch_map, schema, false, "")?
        .map(Value::Object))
}

/// Like [`apply`], choosing the schema from the original's `apiVersion` and `kind`.
pub fn apply_to_object(
    original: &Value,
    patch: &Value,
    options: Options,
) -> Result<Option<Value>, StrategicMergeError> {
    let api_version = original.get("apiVersion").and_then(Value::as_str);
    let kind = original.get("kind").and_then(Value::as_str);
    let schema = match (api_version, kind) {
        (Some(v), Some(k)) => super::schema::lookup(v, k),
        _ => None,
    };
    apply(original, patch, schema, options)
}

struct Walker {
    options: Options,
    /// The object's kind has a schema: unlisted fields have the default behaviour rather
    /// than inferred merge keys.
    known: bool,
}

impl Walker {
    /// Merges a patch map into an original map. `retain_keys` is the schema's marker for this
    /// struct; it only acts through an explicit `$retainKeys` directive, as in apimachinery.
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
        ty: Option<&'static TypeDef>,
        _retain_keys: bool,
        path: &str,
    ) -> Result<Option<Map<String, Value>>, StrategicMergeError> {
        if let Some(directive) = patch.get(PATCH) {
            match directive.as_str() {
                Some("replace") => return Ok(Some(strip_directives(patch))),
                Some("delete") => return Ok(None),
                Some("merge") => {}
                _ => {
                    return Err(StrategicMergeError::UnknownDirective {
                        path: display_path(path),
                        directive: directive.to_string(),
                    });
                }
            }
        }
        if let Some(retain) = patch.get(RETAIN_KEYS) {
            let Value::Array(keys) = retain else {
                return Err(invalid(path, "$retainKeys must be a list of field names"));
            };
            let keep: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
            if keep.len() != keys.len() {
                return Err(invalid(path, "$retainKeys must be a list of field names"));
            }
            original.retain(|k, _| keep.contains(&k.as_str()));
        }
        let mut orders: Vec<(&str, &Vec<Value>)> = Vec::new();
        for (key, value) in patch {
            if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                let Value::Array(remove) = value else {
                    return Err(invalid(path, format!("{key} must be a list")));
                };
                if let Some(Value::Array(items)) = original.get_mut(field) {
                    items.retain(|item| !remove.contains(item));
                }
            } else if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
                let Value::Array(order) = value else {
                    return Err(invalid(path, format!("{key} must be a list")));
                };
                orders.push((field, order));
            }
        }
        for (key, value) in patch {
            if key.starts_with('$') {
                continue;
            }
            let child_path = format!("{path}.{key}");
            let field = ty.and_then(|t| t.field(key));
            if value.is_null() {
                original.remove(key);
                continue;
            }
            let merged = self.merge_value(original.remove(key), value, field, &child_path)?;
            if let Some(merged) = merged {
                original.insert(key.clone(), merged);
            }
        }
        for (field, order) in orders {
            if let Some(Value::Array(items)) = original.get_mut(field) {
                let key = match ty.and_then(|t| t.field(field)).map(|f| f.smp) {
                    Some(SmpList::MergeByKey(k)) => Some(k),
                    _ if self.known => None,
                    _ => self.inferred_key(order, items),
                };
                apply_element_order(items, order, key);
            }
        }
        Ok(Some(original))
    }

    /// Merges one field's patch value into its original value (`None`: absent). Returns
    /// `None` when the field is to be removed.
    fn merge_value(
        &self,
        original: Option<Value>,
        patch: &Value,
        field: Option<&'static Field>,
        path: &str,
    ) -> Result<Option<Value>, StrategicMergeError> {
        let ty = field.and_then(|f| f.ty);
        match patch {
            Value::Object(patch_map) => {
                let original_map = match original {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                let retain = field.is_some_and(|f| f.retain_keys);
                Ok(self
                    .merge_map(original_map, patch_map, ty, retain, path)?
                    .map(Value::Object))
            }
            Value::Array(patch_items) => {
                let original_items = match original {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                self.merge_list(original_items, patch_items, field, path)
                    .map(|items| Some(Value::Array(items)))
            }
            scalar => Ok(Some(scalar.clone())),
        }
    }

    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: &[Value],
        field: Option<&'static Field>,
        path: &str,
    ) -> Result<Vec<Value>, StrategicMergeError> {
        let strategy = match field {
            Some(f) => f.smp,
            // Inside a built-in kind an unlisted list has no merge strategy.
            None if self.known => SmpList::Replace,
            None => match self.inferred_key(patch, &original) {
                Some(key) => SmpList::MergeByKey(key),
                None => SmpList::Replace,
            },
        };
        let item_ty = field.and_then(|f| f.ty);
        let item_retain = field.is_some_and(|f| f.retain_keys);
        match strategy {
            SmpList::Replace => patch
                .iter()
                .filter(|item| !is_directive_item(item, "replace"))
                .enumerate()
                .map(|(i, item)| self.fresh(item, item_ty, item_retain, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(|items| items.into_iter().flatten().collect()),
            SmpList::MergePrimitives => {
                if patch.iter().any(|item| is_directive_item(item, "replace")) {
                    return Ok(patch
                        .iter()
                        .filter(|i| !is_directive_item(i, "replace"))
                        .cloned()
                        .collect());
                }
                let mut merged = original;
                for item in patch {
                    if item.is_object() {
                        return Err(invalid(
                            path,
                            "a list merged as a set of values cannot hold objects",
                        ));
                    }
                    if !merged.contains(item) {
                        merged.push(item.clone());
                    }
                }
                Ok(merged)
            }
            SmpList::MergeByKey(key) => {
                self.merge_keyed(original, patch, key, item_ty, item_retain, path)
            }
        }
    }

    fn merge_keyed(
        &self,
        mut original: Vec<Value>,
        patch: &[Value],
        key: &str,
        item_ty: Option<&'static TypeDef>,
        item_retain: bool,
        path: &str,
    ) -> Result<Vec<Value>, StrategicMergeError> {
        if patch.iter().any(|item| is_directive_item(item, "replace")) {
            return patch
                .iter()
                .filter(|item| !is_directive_item(item, "replace"))
                .enumerate()
                .map(|(i, item)| self.fresh(item, item_ty, item_retain, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(|items| items.into_iter().flatten().collect());
        }
        // A list of scalars under a merge strategy merges as a set (apimachinery does the same).
        if patch.iter().all(|item| !item.is_object()) && original.iter().all(|i| !i.is_object()) {
            for item in patch {
                if !original.contains(item) {
                    original.push(item.clone());
                }
            }
            return Ok(original);
        }
        for (i, item) in patch.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let Value::Object(item_map) = item else {
                return Err(invalid(
                    &item_path,
                    format!("expected an object with merge key {key:?}"),
                ));
            };
            let Some(key_value) = item_map.get(key) else {
                return Err(StrategicMergeError::MissingMergeKey {
                    path: display_path(path),
                    key: key.to_string(),
                    item: Value::Object(item_map.clone()).to_string(),
                });
            };
            let item_path = format!("{path}[{key}={}]", scalar_text(key_value));
            let position = original.iter().position(|o| o.get(key) == Some(key_value));
            match item_map.get(PATCH).and_then(Value::as_str) {
                Some("delete") => {
                    original.retain(|o| o.get(key) != Some(key_value));
                    continue;
                }
                Some("replace") => {
                    let replacement = Value::Object(strip_directives(item_map));
                    match position {
                        Some(p) => original[p] = replacement,
                        None => original.push(replacement),
                    }
                    continue;
                }
                _ => {}
            }
            match position {
                Some(p) => {
                    let Value::Object(existing) = std::mem::take(&mut original[p]) else {
                        return Err(invalid(&item_path, "original list item is not an object"));
                    };
                    match self.merge_map(existing, item_map, item_ty, item_retain, &item_path)? {
                        Some(merged) => original[p] = Value::Object(merged),
                        None => {
                            original.remove(p);
                        }
                    }
                }
                None => {
                    if let Some(fresh) = self.fresh(item, item_ty, item_retain, &item_path)? {
                        original.push(fresh);
                    }
                }
            }
        }
        Ok(original)
    }

    /// A patch value with no original: directives resolved, nulls dropped.
    fn fresh(
        &self,
        item: &Value,
        ty: Option<&'static TypeDef>,
        retain: bool,
        path: &str,
    ) -> Result<Option<Value>, StrategicMergeError> {
        match item {
            Value::Object(map) => Ok(self
                .merge_map(Map::new(), map, ty, retain, path)?
                .map(Value::Object)),
            other => Ok(Some(other.clone())),
        }
    }

    /// The inferred merge key of a list without schema: the first of [`INFERRED_MERGE_KEYS`]
    /// that every object item (of patch and original) carries.
    fn inferred_key(&self, patch: &[Value], original: &[Value]) -> Option<&'static str> {
        if !self.options.infer_list_keys {
            return None;
        }
        let items: Vec<&Map<String, Value>> = patch
            .iter()
            .chain(original)
            .filter(|i| !is_directive_item(i, "replace"))
            .map(Value::as_object)
            .collect::<Option<Vec<_>>>()?;
        if items.is_empty() {
            return None;
        }
        INFERRED_MERGE_KEYS
            .iter()
            .copied()
            .find(|key| items.iter().all(|item| item.contains_key(*key)))
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_directive_item(item: &Value, directive: &str) -> bool {
    item.as_object()
        .is_some_and(|m| m.len() == 1 && m.get(PATCH).and_then(Value::as_str) == Some(directive))
}

/// A copy of `map` without directive keys, recursively.
fn strip_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), strip_value(v)))
        .collect()
}

fn strip_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives(m)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|i| !i.as_object().is_some_and(|m| m.contains_key(PATCH)))
                .map(strip_value)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Reorders `items` as `$setElementOrder` lists them; items it does not mention keep their
/// relative order after the listed ones.
fn apply_element_order(items: &mut [Value], order: &[Value], key: Option<&str>) {
    let identity = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let rank = |v: &Value| -> usize {
        let id = identity(v);
        order
            .iter()
            .position(|o| identity(o) == id)
            .unwrap_or(order.len())
    };
    // Stable: unlisted items keep their order among themselves.
    items.sort_by_key(|v| rank(v));
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
