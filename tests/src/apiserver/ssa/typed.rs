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
            let l_pos: HashMap<&PathElement, usize> =
                l.iter().enumerate().map(|(i, (p, _))| (p, i)).collect();
            let r_set: HashMap<&PathElement, ()> = r.iter().map(|(p, _)| (p, ())).collect();
            let mut out = Vec::with_capacity(l.len().max(r.len()));
            let mut next_live = 0;
            for (pe, item) in &r {
                match l_pos.get(pe) {
                    Some(&j) => {
                        // Live-only items before this shared one keep their place.
                        while next_live < j {
                            let (lpe, litem) = &l[next_live];
                            if !r_set.contains_key(lpe) {
                                out.push((*litem).clone());
                            }
                            next_live += 1;
                        }
                        next_live = next_live.max(j + 1);
                        path.push(pe.clone());
                        out.push(merge_at(Some(l[j].1), item, shape.item(), path)?);
                        path.pop();
                    }
                    None => out.push((*item).clone()),
                }
            }
            for (lpe, litem) in &l[next_live.min(l.len())..] {
                if !r_set.contains_key(lpe) {
                    out.push((*litem).clone());
                }
            }
            Ok(Value::Array(out))
        }
        _ => {
            // Nothing live to merge with: the configuration, minus its nulls.
            merge_at(Some(&empty_like(rhs)), rhs, shape, path)
        }
    }
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
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Shape {
        Shape::root("apps/v1", "Deployment")
    }

    fn fs(v: Value) -> FieldSet {
        FieldSet::from_fields_v1(&v).expect("valid")
    }

    fn nginx(image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx", "image": image,
                        "ports": [{"containerPort": 80}],
                        "resources": {}
                    }]}
                }
            }
        })
    }

    #[test]
    fn field_set_of_a_deployment_matches_the_apiserver() {
        let set = field_set(&nginx("nginx:1"), deploy()).expect("valid");
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:apiVersion": {}, "f:kind": {},
                "f:metadata": {"f:labels": {"f:app": {}}, "f:name": {}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {}, "f:containerPort": {}
                            }},
                            "f:resources": {}
                        }}}
                    }
                }
            })
        );
    }

    #[test]
    fn sets_and_atomic_maps() {
        let obj = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"finalizers": ["a", "b"]},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "protocol": "UDP"}]}});
        let set = field_set(&obj, Shape::root("v1", "Service")).expect("valid");
        let v1 = set.to_fields_v1();
        assert_eq!(
            v1["f:metadata"]["f:finalizers"],
            json!({"v:\"a\"": {}, "v:\"b\"": {}})
        );
        assert_eq!(v1["f:spec"]["f:selector"], json!({}));
        assert!(
            v1["f:spec"]["f:ports"]
                .get("k:{\"port\":80,\"protocol\":\"UDP\"}")
                .is_some()
        );
    }

    #[test]
    fn unknown_kinds_have_atomic_lists() {
        let obj = json!({"spec": {"items": [{"name": "a"}], "m": {"x": 1}}});
        let set = field_set(&obj, Shape::root("example.com/v1", "Widget")).expect("valid");
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:spec": {"f:items": {}, "f:m": {"f:x": {}}}})
        );
    }

    #[test]
    fn missing_list_map_key_and_duplicates_are_errors_naming_the_list() {
        let mut obj = nginx("a");
        obj["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .expect("object")
            .remove("name");
        let err = field_set(&obj, deploy()).expect_err("no key");
        assert_eq!(err.path, ".spec.template.spec.containers");
        assert!(err.message.contains("omits key field \"name\""), "{err}");

        let mut obj = nginx("a");
        let c = obj["spec"]["template"]["spec"]["containers"][0].clone();
        obj["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("list")
            .push(c);
        let err = field_set(&obj, deploy()).expect_err("dup");
        assert!(
            err.message
                .contains("duplicate entries for key [name=\"nginx\"]"),
            "{err}"
        );
    }

    #[test]
    fn compare_reports_leaf_changes_and_added_containers() {
        let old = nginx("nginx:1");
        let mut new = nginx("nginx:2");
        new["spec"]["replicas"] = json!(2);
        new["metadata"]["annotations"] = json!({"a": "b"});
        let cmp = compare(&old, &new, deploy()).expect("valid");
        assert_eq!(
            cmp.modified.to_fields_v1(),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"nginx\"}": {"f:image": {}}}}}}})
        );
        assert_eq!(
            cmp.added.to_fields_v1(),
            json!({"f:metadata": {"f:annotations": {".": {}, "f:a": {}}}})
        );
        assert!(cmp.removed.is_empty());
        let back = compare(&new, &old, deploy()).expect("valid");
        assert_eq!(back.removed, cmp.added);
    }

    #[test]
    fn atomic_selector_changes_as_one_leaf() {
        let old = nginx("a");
        let mut new = nginx("a");
        new["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
        let cmp = compare(&old, &new, deploy()).expect("valid");
        assert_eq!(
            cmp.modified.to_fields_v1(),
            json!({"f:spec": {"f:selector": {}}})
        );
    }

    #[test]
    fn merge_follows_list_types() {
        let mut live = nginx("nginx:1");
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("list")
            .push(json!({"name": "sidecar", "image": "s:1"}));
        live["spec"]["selector"]["matchLabels"]["old"] = json!("yes");
        let config = json!({"spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [
                {"name": "first", "image": "f:1"},
                {"name": "nginx", "image": "nginx:2"}
            ]}}
        }});
        let merged = merge(&live, &config, deploy()).expect("valid");
        let names: Vec<&str> = merged["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("list")
            .iter()
            .map(|c| c["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["first", "nginx", "sidecar"]);
        let nginx = &merged["spec"]["template"]["spec"]["containers"][1];
        assert_eq!(nginx["image"], "nginx:2");
        assert_eq!(nginx["ports"][0]["containerPort"], 80, "live fields kept");
        assert_eq!(
            merged["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}}),
            "atomic selector replaced whole"
        );
        assert_eq!(merged["spec"]["replicas"], 2);
    }

    #[test]
    fn merge_keeps_live_only_items_in_place() {
        let shape = Shape::root("v1", "Service");
        let live = json!({"spec": {"ports": [{"port": 1}, {"port": 2}, {"port": 3}]}});
        let config = json!({"spec": {"ports": [{"port": 3, "name": "c"}, {"port": 1}]}});
        let merged = merge(&live, &config, shape).expect("valid");
        let ports: Vec<i64> = merged["spec"]["ports"]
            .as_array()
            .expect("list")
            .iter()
            .map(|p| p["port"].as_i64().expect("port"))
            .collect();
        assert_eq!(ports, [2, 3, 1]);
        assert_eq!(merged["spec"]["ports"][1]["name"], "c");
    }

    #[test]
    fn prune_removes_unkept_fields_and_emptied_parents() {
        let mut obj = nginx("a");
        obj["metadata"]["annotations"] = json!({"x": "1"});
        let remove = fs(json!({
            "f:metadata": {"f:annotations": {"f:x": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}
        }));
        // Another manager still owns the container's image: the item stays, image too.
        let keep = fs(
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"nginx\"}": {"f:image": {}}}}}}}),
        );
        prune(&mut obj, &remove, &keep, deploy()).expect("valid");
        assert!(obj["metadata"].get("annotations").is_none(), "{obj}");
        assert!(obj["spec"].get("replicas").is_none());
        let c = &obj["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "a");
        assert_eq!(c["name"], "nginx");

        let mut obj = nginx("a");
        prune(&mut obj, &remove, &FieldSet::new(), deploy()).expect("valid");
        assert_eq!(
            obj["spec"]["template"],
            json!({"metadata": {"labels": {"app": "web"}}}),
            "item removed with everything in it, emptied parents too"
        );
    }
}
