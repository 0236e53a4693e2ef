//! Walking an object together with its schema: which fields an applied configuration sets,
//! what changed between two versions, merging a configuration into a live object, and
//! removing fields nobody owns any more.
//!
//! The schema is `ferry_proto::merge::schema` (list types, list-map keys, atomic structs and
//! maps of the built-in kinds). What it does not list follows the apiserver's defaults for
//! schemaless data: lists are atomic, maps merge key by key.

use std::collections::HashMap;

use ferry_proto::merge::schema::{self, SsaList, TypeDef};
use serde_json::{Map, Value};

use super::fieldset::{FieldSet, Path, PathElement, canonical_json};

/// A malformed object: a list-map item without its key, duplicate items, a non-object item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ShapeError {
    /// Where, e.g. `.spec.template.spec.containers`.
    pub path: String,
    pub message: String,
}

/// What the schema says about the value at one place in an object.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Type of the value (for a list: of its items); `None` when the schema says nothing.
    ty: Option<&'static TypeDef>,
    list: SsaList,
    atomic_map: bool,
}

impl Shape {
    /// The shape of a whole object of this kind (`None` for kinds the schema does not know).
    pub fn root(api_version: &str, kind: &str) -> Shape {
        Shape {
            ty: schema::lookup(api_version, kind),
            list: SsaList::Atomic,
            atomic_map: false,
        }
    }

    fn unknown() -> Shape {
        Shape {
            ty: None,
            list: SsaList::Atomic,
            atomic_map: false,
        }
    }

    fn field(&self, name: &str) -> Shape {
        match self.ty.and_then(|ty| ty.field(name)) {
            Some(f) => Shape {
                ty: f.ty,
                list: f.ssa,
                atomic_map: f.atomic_map,
            },
            None => Shape::unknown(),
        }
    }

    fn item(&self) -> Shape {
        Shape {
            ty: self.ty,
            list: SsaList::Atomic,
            atomic_map: false,
        }
    }

    fn map_is_atomic(&self) -> bool {
        self.atomic_map || self.ty.is_some_and(|t| t.atomic)
    }

    /// Whether a value of this shape is owned as one leaf.
    fn is_leaf(&self, v: &Value) -> bool {
        match v {
            Value::Object(_) => self.map_is_atomic(),
            Value::Array(_) => self.list == SsaList::Atomic,
            _ => true,
        }
    }
}

fn describe(path: &[PathElement]) -> String {
    if path.is_empty() {
        ".".to_string()
    } else {
        super::fieldset::path_string(path)
    }
}

/// The path element of a list item: `k:{…}` for list-maps, `v:…` for sets.
fn item_element(
    shape: &Shape,
    item: &Value,
    path: &[PathElement],
) -> Result<PathElement, ShapeError> {
    match shape.list {
        SsaList::Set => Ok(PathElement::Value(canonical_json(item))),
        SsaList::Map(keys) => {
            let Value::Object(obj) = item else {
                return Err(ShapeError {
                    path: describe(path),
                    message: "associative list item is not an object".to_string(),
                });
            };
            let mut key = Map::new();
            for k in keys {
                match obj.get(*k) {
                    Some(v) => {
                        key.insert((*k).to_string(), v.clone());
                    }
                    // The apiserver fills list-map keys from their schema default; protocol
                    // (ports) is the only defaulted key among the built-in list-maps.
                    None if *k == "protocol" => {
                        key.insert("protocol".to_string(), Value::String("TCP".to_string()));
                    }
                    None => {
                        return Err(ShapeError {
                            path: describe(path),
                            message: format!(
                                "associative list with keys has an element that omits key field {k:?} (and doesn't have default value)"
                            ),
                        });
                    }
                }
            }
            Ok(PathElement::Key(canonical_json(&Value::Object(key))))
        }
        // Atomic lists are leaves and never indexed; reaching here is a bug in the walker.
        SsaList::Atomic => Err(ShapeError {
            path: describe(path),
            message: "internal: atomic list indexed by item".to_string(),
        }),
    }
}

/// Items of a granular list by path element, rejecting duplicates.
fn index_items<'v>(
    shape: &Shape,
    items: &'v [Value],
    path: &[PathElement],
) -> Result<Vec<(PathElement, &'v Value)>, ShapeError> {
    let mut out: Vec<(PathElement, &Value)> = Vec::with_capacity(items.len());
    let mut seen = HashMap::new();
    for item in items {
        let pe = item_element(shape, item, path)?;
        if seen.insert(pe.clone(), ()).is_some() {
            return Err(ShapeError {
                path: describe(path),
                message: format!("duplicate entries for key {pe}"),
            });
        }
        out.push((pe, item));
    }
    Ok(out)
}

/// The fields an applied configuration sets (structured-merge-diff's `ToFieldSet`): every
/// leaf, every list item, and empty or null values; atomic values count as one leaf.
pub fn field_set(v: &Value, shape: Shape) -> Result<FieldSet, ShapeError> {
    let mut out = FieldSet::new();
    collect(v, shape, &mut Vec::new(), &mut out)?;
    Ok(out)
}

fn collect(v: &Value, shape: Shape, path: &mut Path, out: &mut FieldSet) -> Result<(), ShapeError> {
    if shape.is_leaf(v) {
        out.insert(path);
        return Ok(());
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                path.push(PathElement::Field(k.clone()));
                collect(child, shape.field(k), path, out)?;
                let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
                if empty {
                    out.insert(path);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            for (pe, item) in index_items(&shape, items, path)? {
                path.push(pe);
                collect(item, shape.item(), path, out)?;
                out.insert(path);
                path.pop();
            }
        }
        _ => out.insert(path),
    }
    Ok(())
}

/// What differs between two versions of an object.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// Compares two versions of an object field by field (structured-merge-diff's `Compare`).
pub fn compare(old: &Value, new: &Value, shape: Shape) -> Result<Comparison, ShapeError> {
    let mut cmp = Comparison::default();
    compare_at(Some(old), Some(new), shape, &mut Vec::new(), &mut cmp)?;
    Ok(cmp)
}

fn compare_at(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    shape: Shape,
    path: &mut Path,
    cmp: &mut Comparison,
) -> Result<(), ShapeError> {
    let leaf = match (lhs, rhs) {
        (None, None) => return Ok(()),
        (Some(l), Some(r)) => {
            shape.is_leaf(l)
                || shape.is_leaf(r)
                || std::mem::discriminant(l) != std::mem::discriminant(r)
        }
        (Some(v), None) | (None, Some(v)) => shape.is_leaf(v),
    };
    if leaf {
        match (lhs, rhs) {
            (None, Some(_)) => cmp.added.insert(path),
            (Some(_), None) => cmp.removed.insert(path),
            (Some(l), Some(r)) if l != r => cmp.modified.insert(path),
            _ => {}
        }
        return Ok(());
    }
    let empty_map = Map::new();
    match (lhs, rhs) {
        (Some(Value::Object(_)), _) | (_, Some(Value::Object(_))) => {
            let l = lhs.and_then(Value::as_object).unwrap_or(&empty_map);
            let r = rhs.and_then(Value::as_object).unwrap_or(&empty_map);
            for k in l.keys().chain(r.keys().filter(|k| !l.contains_key(*k))) {
                path.push(PathElement::Field(k.clone()));
                compare_at(l.get(k), r.get(k), shape.field(k), path, cmp)?;
                path.pop();
            }
        }
        _ => {
            let l = lhs
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let r = rhs
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let l = index_items(&shape, l, path)?;
            let r = index_items(&shape, r, path)?;
            let l_map: HashMap<&PathElement, &Value> = l.iter().map(|(p, v)| (p, *v)).collect();
            let r_map: HashMap<&PathElement, &Value> = r.iter().map(|(p, v)| (p, *v)).collect();
            let mut order: Vec<&PathElement> = l.iter().map(|(p, _)| p).collect();
            order.extend(r.iter().map(|(p, _)| p).filter(|p| !l_map.contains_key(p)));
            for pe in order {
                path.push(pe.clone());
                compare_at(
                    l_map.get(pe).copied(),
                    r_map.get(pe).copied(),
                    shape.item(),
                    path,
                    cmp,
                )?;
                path.pop();
            }
        }
    }
    match (lhs, rhs) {
        (None, Some(_)) => cmp.added.insert(path),
        (Some(_), None) => cmp.removed.insert(path),
        _ => {}
    }
    Ok(())
}

/// Merges an applied configuration into a live object: the configuration's values win,
/// granular maps merge key by key, list-maps and sets merge item by item (shared items keep
/// the configuration's order, live-only items stay where they were), atomic values are
/// replaced. A `null` in the configuration removes the key.
pub fn merge(live: &Value, config: &Value, shape: Shape) -> Result<Value, ShapeError> {
    merge_at(Some(live), config, shape, &mut Vec::new())
}

fn merge_at(
    lhs: Option<&Value>,
    rhs: &Value,
    shape: Shape,
    path: &mut Path,
) -> Result<Value, ShapeError> {
    if shape.is_leaf(rhs) {
        return Ok(rhs.clone());
    }
    match (lhs, rhs) {
        (Some(Value::Object(l)), Value::Object(r)) => {
            let mut out = l.clone();
            for (k, v) in r {
                if v.is_null() {
                    out.remove(k);
                    continue;
                }
                path.push(PathElement::Field(k.clone()));
                let merged = merge_at(l.get(k), v, shape.field(k), path)?;
                path.pop();
                out.insert(k.clone(), merged);
            }
            Ok(Value::Object(out))
        }
        (Some(Value::Array(l)), Value::Array(r)) => {
            let l = index_items(&shape, l, path)?;
            let r = index_items(&shape, r, path)?;
            Ok(Value::Array(merge_items(&l, &r, shape, path)?))
        }
        _ => {
            // Nothing live to merge with: the configuration, minus its nulls.
            merge_at(Some(&empty_like(rhs)), rhs, shape, path)
        }
    }
}

/// Merges two granular lists in structured-merge-diff's order: walk both; live-only items
/// are emitted where they stand, shared items in the configuration's order (a shared live
/// item met before its turn waits), configuration-only items where the configuration has them.
fn merge_items(
    l: &[(PathElement, &Value)],
    r: &[(PathElement, &Value)],
    shape: Shape,
    path: &mut Path,
) -> Result<Vec<Value>, ShapeError> {
    let l_map: HashMap<&PathElement, &Value> = l.iter().map(|(p, v)| (p, *v)).collect();
    let r_map: HashMap<&PathElement, &Value> = r.iter().map(|(p, v)| (p, *v)).collect();
    let mut shared = r.iter().map(|(p, _)| p).filter(|p| l_map.contains_key(p));
    let mut next_shared = shared.next();
    let mut merged: HashMap<&PathElement, ()> = HashMap::new();
    let mut out = Vec::with_capacity(l.len().max(r.len()));
    let mut item = |pe: &PathElement, live: Option<&Value>, cfg: &Value, out: &mut Vec<Value>| {
        path.push(pe.clone());
        let v = merge_at(live, cfg, shape.item(), path);
        path.pop();
        v.map(|v| out.push(v))
    };
    let (mut li, mut ri) = (0, 0);
    while li < l.len() || ri < r.len() {
        if li < l.len() && ri < r.len() {
            let pe = &l[li].0;
            if *pe == r[ri].0 {
                merged.insert(pe, ());
                item(pe, Some(l[li].1), r[ri].1, &mut out)?;
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if r_map.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                // Shared, but not its turn yet.
                li += 1;
                continue;
            }
        }
        if li < l.len() {
            let pe = &l[li].0;
            if !r_map.contains_key(pe) {
                out.push(l[li].1.clone());
                li += 1;
                continue;
            }
            if merged.contains_key(pe) {
                li += 1;
                continue;
            }
        }
        if ri < r.len() {
            let pe = &r[ri].0;
            merged.insert(pe, ());
            item(pe, l_map.get(pe).copied(), r[ri].1, &mut out)?;
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        } else {
            // Unreachable with duplicate-free lists; guarantees progress regardless.
            li += 1;
        }
    }
    Ok(out)
}

fn empty_like(v: &Value) -> Value {
    match v {
        Value::Array(_) => Value::Array(Vec::new()),
        _ => Value::Object(Map::new()),
    }
}

/// Removes the paths of `remove` from an object, except where `keep` still holds the path or
/// something below it (then only what is not kept below is removed). Maps and lists emptied
/// by the removal go too, unless kept themselves.
pub fn prune(
    obj: &mut Value,
    remove: &FieldSet,
    keep: &FieldSet,
    shape: Shape,
) -> Result<(), ShapeError> {
    prune_at(obj, remove, Some(keep), shape, &mut Vec::new())
}

fn prune_at(
    v: &mut Value,
    remove: &FieldSet,
    keep: Option<&FieldSet>,
    shape: Shape,
    path: &mut Path,
) -> Result<(), ShapeError> {
    if shape.is_leaf(v) {
        return Ok(());
    }
    let kept = |pe: &PathElement| keep.is_some_and(|k| k.touches(pe));
    let kept_member = |pe: &PathElement| keep.is_some_and(|k| k.has_member(pe));
    match v {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let pe = PathElement::Field(k.clone());
                if remove.has_member(&pe) && !kept(&pe) {
                    map.remove(&k);
                    continue;
                }
                if let (Some(sub), Some(child)) = (remove.child(&pe), map.get_mut(&k)) {
                    path.push(pe.clone());
                    let was_empty = is_empty_container(child);
                    prune_at(
                        child,
                        sub,
                        keep.and_then(|k| k.child(&pe)),
                        shape.field(&k),
                        path,
                    )?;
                    path.pop();
                    if !was_empty && is_empty_container(child) && !kept_member(&pe) {
                        map.remove(&k);
                    }
                }
            }
        }
        Value::Array(items) => {
            let pes: Vec<PathElement> = index_items(&shape, items, path)?
                .into_iter()
                .map(|(pe, _)| pe)
                .collect();
            let mut out = Vec::with_capacity(items.len());
            for (pe, mut item) in pes.into_iter().zip(std::mem::take(items)) {
                if remove.has_member(&pe) && !kept(&pe) {
                    continue;
                }
                if let Some(sub) = remove.child(&pe) {
                    // A list-map item that stays keeps its key fields, owned or not.
                    let keys: Vec<(String, Value)> = match (shape.list, item.as_object()) {
                        (SsaList::Map(names), Some(obj)) => names
                            .iter()
                            .filter_map(|n| obj.get(*n).map(|v| ((*n).to_string(), v.clone())))
                            .collect(),
                        _ => Vec::new(),
                    };
                    path.push(pe.clone());
                    prune_at(
                        &mut item,
                        sub,
                        keep.and_then(|k| k.child(&pe)),
                        shape.item(),
                        path,
                    )?;
                    path.pop();
                    if let Some(obj) = item.as_object_mut() {
                        obj.extend(keys);
                    }
                }
                out.push(item);
            }
            *items = out;
        }
        _ => {}
    }
    Ok(())
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
