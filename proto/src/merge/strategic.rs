//! Strategic merge patch on `serde_json::Value`, as apimachinery's `strategicpatch` applies it.
//!
//! Maps merge key by key (`null` deletes a key); lists follow the field's [`SmpList`]
//! strategy from the [`schema`](super::schema): replaced, merged by a merge key, or merged as a
//! set of scalars. Directives: `$patch: replace|merge|delete` (on a map, or as a list item),
//! `$retainKeys`, `$setElementOrder/<field>`, `$deleteFromPrimitiveList/<field>`.
//! Without a schema (custom resources) every list is replaced, by the apiserver and by
//! kustomize alike. Merged lists put the items the patch mentions first, in the patch's order
//! (or `$setElementOrder`'s); the apiserver then interleaves the items only the original has
//! by their original positions, kustomize appends them ([`ListOrder`]).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

pub use super::error::StrategicMergeError;
use super::schema::{Field, SmpList, SsaList, TypeDef};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Where a merged list puts the items that only the original has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOrder {
    /// apimachinery's `normalizeElementOrder`: interleaved with the patch's items by their
    /// positions in the original.
    Interleave,
    /// kustomize (kyaml): after all of the patch's items.
    PatchFirst,
}

/// Behaviour that differs between the apiserver and kustomize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub order: ListOrder,
    /// Honour `$retainKeys`, `$setElementOrder/…` and `$deleteFromPrimitiveList/…`. kustomize
    /// (kyaml) knows only `$patch` and copies the others into the object as ordinary fields.
    pub list_directives: bool,
    /// Match items of lists keyed by several fields (ports: number + protocol) the way
    /// kustomize does ([`kyaml_lists`](super::kyaml_lists)) instead of by the patch merge key.
    pub multi_key_lists: bool,
}

impl Options {
    /// As the Kubernetes apiserver applies `application/strategic-merge-patch+json`.
    pub const APISERVER: Options = Options {
        order: ListOrder::Interleave,
        list_directives: true,
        multi_key_lists: false,
    };
    /// As kustomize v5 applies strategic-merge patches.
    pub const KUSTOMIZE: Options = Options {
        order: ListOrder::PatchFirst,
        list_directives: false,
        multi_key_lists: true,
    };
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
    let walker = Walker { options };
    Ok(walker
        .merge_map(original_map, patch_map, schema, "")?
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
}

impl Walker {
    /// Merges a patch map into an original map. The schema's `retainKeys` marker only acts
    /// through an explicit `$retainKeys` directive, as in apimachinery and kustomize.
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
        ty: Option<&'static TypeDef>,
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
        let directives = self.options.list_directives;
        if let Some(retain) = patch.get(RETAIN_KEYS).filter(|_| directives) {
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
        for (key, value) in patch.iter().filter(|_| directives) {
            if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                let Value::Array(remove) = value else {
                    return Err(invalid(path, format!("{key} must be a list")));
                };
                if let Some(Value::Array(items)) = original.get_mut(field) {
                    let remove: HashSet<String> = remove.iter().map(identity_text).collect();
                    items.retain(|item| !remove.contains(&identity_text(item)));
                }
            } else if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
                let Value::Array(order) = value else {
                    return Err(invalid(path, format!("{key} must be a list")));
                };
                orders.push((field, order));
            }
        }
        for (key, value) in patch {
            if key == PATCH || (directives && key.starts_with('$')) {
                continue;
            }
            let child_path = format!("{path}.{key}");
            let field = ty.and_then(|t| t.field(key));
            if value.is_null() {
                original.remove(key);
                continue;
            }
            let order = orders
                .iter()
                .find(|(f, _)| f == key)
                .map(|(_, o)| o.as_slice());
            let merged =
                self.merge_value(original.remove(key), value, field, order, &child_path)?;
            if let Some(merged) = merged {
                original.insert(key.clone(), merged);
            }
        }
        // An order for a list the patch does not otherwise touch still reorders it.
        for (field, order) in orders {
            if patch.contains_key(field) {
                continue;
            }
            let key = match ty.and_then(|t| t.field(field)).map(|f| f.smp) {
                Some(SmpList::MergeByKey(k)) => Some(k),
                Some(SmpList::MergePrimitives) => None,
                _ => continue,
            };
            if let Some(Value::Array(items)) = original.get_mut(field) {
                let before = items.clone();
                *items = self.order(std::mem::take(items), order, &before, key);
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
        order: Option<&[Value]>,
        path: &str,
    ) -> Result<Option<Value>, StrategicMergeError> {
        let ty = field.and_then(|f| f.ty);
        match patch {
            Value::Object(patch_map) => {
                let original_map = match original {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                Ok(self
                    .merge_map(original_map, patch_map, ty, path)?
                    .map(Value::Object))
            }
            Value::Array(patch_items) => {
                let original_items = match original {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                self.merge_list(original_items, patch_items, field, order, path)
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
        order: Option<&[Value]>,
        path: &str,
    ) -> Result<Vec<Value>, StrategicMergeError> {
        let strategy = field.map_or(SmpList::Replace, |f| f.smp);
        let item_ty = field.and_then(|f| f.ty);
        if strategy == SmpList::Replace || patch.iter().any(|i| is_directive_item(i, "replace")) {
            return patch
                .iter()
                .filter(|item| !is_directive_item(item, "replace"))
                .enumerate()
                .map(|(i, item)| self.fresh(item, item_ty, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(|items| items.into_iter().flatten().collect());
        }
        if let (true, SmpList::MergeByKey(_), Some(SsaList::Map(keys))) =
            (self.options.multi_key_lists, strategy, field.map(|f| f.ssa))
            && keys.len() > 1
        {
            return super::kyaml_lists::merge(
                original,
                patch,
                keys,
                item_ty,
                path,
                |o, p, t, at| self.merge_map(o.unwrap_or_default(), p, t, at),
            );
        }
        let before = original.clone();
        let (merged, key) = match strategy {
            SmpList::MergeByKey(key) if patch.iter().chain(&original).any(Value::is_object) => (
                self.merge_keyed(original, patch, key, item_ty, path)?,
                Some(key),
            ),
            // A list of scalars under a merge strategy merges as a set, as in apimachinery.
            _ => {
                let mut merged = original;
                let mut seen: HashSet<String> = merged.iter().map(identity_text).collect();
                for item in patch {
                    if item.is_object() {
                        return Err(invalid(
                            path,
                            "a list merged as a set of values cannot hold objects",
                        ));
                    }
                    if seen.insert(identity_text(item)) {
                        merged.push(item.clone());
                    }
                }
                (merged, None)
            }
        };
        Ok(self.order(merged, order.unwrap_or(patch), &before, key))
    }

    /// Orders a merged list: items named by `patch_order` first, in that order, then the
    /// items only the original has, placed as [`ListOrder`] says.
    fn order(
        &self,
        merged: Vec<Value>,
        patch_order: &[Value],
        original: &[Value],
        key: Option<&str>,
    ) -> Vec<Value> {
        let identity = |v: &Value| -> String {
            match key {
                Some(k) => v.get(k).map_or_else(String::new, identity_text),
                None => identity_text(v),
            }
        };
        // First position of each identity, so ordering stays O(n log n) on large lists.
        let positions = |list: &[Value]| -> HashMap<String, usize> {
            let mut map = HashMap::with_capacity(list.len());
            for (i, v) in list.iter().enumerate() {
                map.entry(identity(v)).or_insert(i);
            }
            map
        };
        let in_order = positions(patch_order);
        let in_original = positions(original);
        let (mut in_patch, mut server_only): (Vec<Identified>, Vec<Identified>) = merged
            .into_iter()
            .map(|v| (identity(&v), v))
            .partition(|(id, _)| in_order.contains_key(id));
        in_patch.sort_by_key(|(id, _)| in_order.get(id).copied());
        server_only.sort_by_key(|(id, _)| in_original.get(id).copied());
        match self.options.order {
            ListOrder::PatchFirst => in_patch
                .into_iter()
                .chain(server_only)
                .map(|(_, v)| v)
                .collect(),
            ListOrder::Interleave => {
                // apimachinery's mergeSortedSlice: a server-only item goes before the next
                // patch item when both are in the original and it came first there.
                let mut out = Vec::with_capacity(in_patch.len() + server_only.len());
                let mut left = server_only.into_iter().peekable();
                let mut right = in_patch.into_iter().peekable();
                loop {
                    let take_left = match (left.peek(), right.peek()) {
                        (Some(_), None) => true,
                        (None, Some(_)) | (None, None) => false,
                        (Some((l, _)), Some((r, _))) => matches!(
                            (in_original.get(l), in_original.get(r)),
                            (Some(li), Some(ri)) if li < ri
                        ),
                    };
                    let next = if take_left { left.next() } else { right.next() };
                    match next {
                        Some((_, v)) => out.push(v),
                        None => break,
                    }
                }
                out
            }
        }
    }

    fn merge_keyed(
        &self,
        original: Vec<Value>,
        patch: &[Value],
        key: &str,
        item_ty: Option<&'static TypeDef>,
        path: &str,
    ) -> Result<Vec<Value>, StrategicMergeError> {
        // Slots (None: deleted) and an index by key value, so large lists stay linear.
        let mut slots: Vec<Option<Value>> = original.into_iter().map(Some).collect();
        let mut index: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, item) in slots.iter().enumerate() {
            if let Some(k) = item.as_ref().and_then(|v| v.get(key)) {
                index.entry(identity_text(k)).or_default().push(i);
            }
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
            let id = identity_text(key_value);
            let position = index
                .get(&id)
                .and_then(|slots_of| slots_of.iter().copied().find(|&p| slots[p].is_some()));
            match item_map.get(PATCH).and_then(Value::as_str) {
                Some("delete") => {
                    for p in index.remove(&id).unwrap_or_default() {
                        slots[p] = None;
                    }
                    continue;
                }
                Some("replace") => {
                    let replacement = Value::Object(strip_directives(item_map));
                    match position {
                        Some(p) => slots[p] = Some(replacement),
                        None => {
                            index.entry(id).or_default().push(slots.len());
                            slots.push(Some(replacement));
                        }
                    }
                    continue;
                }
                _ => {}
            }
            match position {
                Some(p) => {
                    let Some(Value::Object(existing)) = slots[p].take() else {
                        return Err(invalid(&item_path, "original list item is not an object"));
                    };
                    slots[p] = self
                        .merge_map(existing, item_map, item_ty, &item_path)?
                        .map(Value::Object);
                }
                None => {
                    if let Some(fresh) = self.fresh(item, item_ty, &item_path)? {
                        index.entry(id).or_default().push(slots.len());
                        slots.push(Some(fresh));
                    }
                }
            }
        }
        Ok(slots.into_iter().flatten().collect())
    }

    /// A patch value with no original: directives resolved, nulls dropped.
    fn fresh(
        &self,
        item: &Value,
        ty: Option<&'static TypeDef>,
        path: &str,
    ) -> Result<Option<Value>, StrategicMergeError> {
        match item {
            Value::Object(map) => Ok(self
                .merge_map(Map::new(), map, ty, path)?
                .map(Value::Object)),
            other => Ok(Some(other.clone())),
        }
    }
}

/// A list item with its identity.
type Identified = (String, Value);

/// A hashable identity for a key value or a list element.
fn identity_text(v: &Value) -> String {
    v.to_string()
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

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
