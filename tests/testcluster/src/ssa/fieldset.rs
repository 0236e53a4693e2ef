//! Sets of field paths, the currency of server-side apply, and their `FieldsV1` encoding.
//!
//! A set is a tree: at each level, `members` are the paths that end here and `children` the
//! subtrees below. A path may be both a member and a parent — that is what the `".": {}`
//! marker of `FieldsV1` records (a list item or map that is owned as such, and fields in it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// One step of a field path.
///
/// Keys and values are kept as canonical JSON text (object keys sorted, compact) so the set
/// can be ordered and compared without a JSON ordering; the variant order is the order
/// structured-merge-diff sorts in (fields, then keys, then values, then indices).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// `f:name` — a struct field or map key.
    Field(String),
    /// `k:{"name":"nginx"}` — an item of a list-map, by its key fields.
    Key(String),
    /// `v:"x"` — an item of a set.
    Value(String),
    /// `i:0` — a list item by position (never produced here; accepted when decoding).
    Index(usize),
}

impl PathElement {
    fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(json) => format!("k:{json}"),
            PathElement::Value(json) => format!("v:{json}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Result<Self, String> {
        let (prefix, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("field path element {s:?} has no type prefix"))?;
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "k" | "v" => {
                let parsed: Value = serde_json::from_str(rest)
                    .map_err(|e| format!("field path element {s:?}: {e}"))?;
                if prefix == "k" {
                    if !parsed.is_object() {
                        return Err(format!("field path element {s:?}: key is not an object"));
                    }
                    Ok(PathElement::Key(canonical_json(&parsed)))
                } else {
                    Ok(PathElement::Value(canonical_json(&parsed)))
                }
            }
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|e| format!("field path element {s:?}: {e}")),
            _ => Err(format!(
                "field path element {s:?} has unknown prefix {prefix:?}"
            )),
        }
    }
}

impl fmt::Display for PathElement {
    /// The notation of structured-merge-diff's `Path.String()`, used in conflict messages:
    /// `.spec`, `[name="nginx"]`, `[=x]`, `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(json) => {
                let parsed: Value = serde_json::from_str(json).unwrap_or(Value::Null);
                let mut parts = Vec::new();
                if let Value::Object(map) = parsed {
                    let mut keys: Vec<_> = map.keys().collect();
                    keys.sort();
                    for k in keys {
                        parts.push(format!("{k}={}", canonical_json(&map[k])));
                    }
                }
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(json) => write!(f, "[={json}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the object root.
pub type Path = Vec<PathElement>;

/// Renders a path like `.spec.template.spec.containers[name="nginx"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// Compact JSON with object keys sorted, so equal values have equal text.
pub fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String(k.clone()),
                        canonical_json(&map[k.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds a path; the empty path (the object itself) is never a member.
    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut node = self;
        for pe in parents {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.members.insert(last.clone());
    }

    pub fn contains(&self, path: &[PathElement]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        self.subtree(parents)
            .is_some_and(|node| node.members.contains(last))
    }

    /// The subtree below a path, if any path of the set runs through it.
    pub fn subtree(&self, path: &[PathElement]) -> Option<&FieldSet> {
        let mut node = self;
        for pe in path {
            node = node.children.get(pe)?;
        }
        Some(node)
    }

    /// The subtree of paths below one element (empty if none).
    pub fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// Whether the set holds this path or anything below it.
    pub fn touches(&self, pe: &PathElement) -> bool {
        self.members.contains(pe) || self.children.contains_key(pe)
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// Paths of `self` that are not paths of `other` (descendants are compared one by one).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    /// Paths of `self` that are neither paths of `other` nor below one of them.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            let rest = match other.children.get(pe) {
                Some(theirs) => child.recursive_difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(pe.clone(), both);
                }
            }
        }
        out
    }

    /// Every member path, in order (a parent before its descendants).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        let keys: BTreeSet<&PathElement> =
            self.members.iter().chain(self.children.keys()).collect();
        for pe in keys {
            prefix.push(pe.clone());
            if self.members.contains(pe) {
                out.push(prefix.clone());
            }
            if let Some(child) = self.children.get(pe) {
                child.collect_paths(prefix, out);
            }
            prefix.pop();
        }
    }

    /// The `FieldsV1` JSON: `{"f:spec":{"f:replicas":{}}}`, with `".": {}` where a path is a
    /// member and also has members below it.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        let keys: BTreeSet<&PathElement> =
            self.members.iter().chain(self.children.keys()).collect();
        for pe in keys {
            let value = match self.children.get(pe) {
                Some(child) => {
                    let mut inner = match child.to_fields_v1() {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    if self.members.contains(pe) {
                        // Keep "." first, as the apiserver prints it.
                        let mut with_dot = Map::new();
                        with_dot.insert(".".to_string(), Value::Object(Map::new()));
                        with_dot.append(&mut inner);
                        inner = with_dot;
                    }
                    Value::Object(inner)
                }
                None => Value::Object(Map::new()),
            };
            map.insert(pe.encode(), value);
        }
        Value::Object(map)
    }

    /// Parses `FieldsV1` JSON.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        let Value::Object(map) = v else {
            return Err("fieldsV1 is not an object".to_string());
        };
        let mut out = FieldSet::new();
        for (key, value) in map {
            if key == "." {
                continue;
            }
            let pe = PathElement::decode(key)?;
            let Value::Object(inner) = value else {
                return Err(format!("fieldsV1 entry {key:?} is not an object"));
            };
            if inner.is_empty() {
                out.members.insert(pe);
                continue;
            }
            if inner.contains_key(".") {
                out.members.insert(pe.clone());
            }
            let child = FieldSet::from_fields_v1(value)?;
            if !child.is_empty() {
                out.children.insert(pe, child);
            }
        }
        Ok(out)
    }
}

/// Shorthand for a field path element.
pub fn field(name: &str) -> PathElement {
    PathElement::Field(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(v: Value) -> FieldSet {
        FieldSet::from_fields_v1(&v).expect("valid fieldsV1")
    }

    #[test]
    fn fields_v1_round_trips_with_markers() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}
        });
        let s = set(v.clone());
        assert_eq!(s.to_fields_v1(), v);
        assert!(s.contains(&[field("metadata"), field("labels")]));
        assert!(!s.contains(&[field("metadata")]));
        assert!(s.contains(&[field("spec"), field("replicas")]));
    }

    #[test]
    fn key_elements_are_canonical_and_print_like_kubernetes() {
        let s = set(json!({"f:ports": {"k:{\"protocol\":\"TCP\",\"containerPort\":80}": {}}}));
        let paths = s.paths();
        assert_eq!(paths.len(), 1);
        assert_eq!(
            path_string(&paths[0]),
            ".ports[containerPort=80,protocol=\"TCP\"]"
        );
        assert_eq!(
            s.to_fields_v1(),
            json!({"f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {}}})
        );
    }

    #[test]
    fn set_algebra() {
        let a = set(json!({"f:spec": {"f:a": {}, "f:b": {}, "f:c": {"f:d": {}}}}));
        let b = set(json!({"f:spec": {"f:b": {}, "f:c": {}}}));
        assert_eq!(
            a.difference(&b),
            set(json!({"f:spec": {"f:a": {}, "f:c": {"f:d": {}}}}))
        );
        assert_eq!(
            a.recursive_difference(&b),
            set(json!({"f:spec": {"f:a": {}}}))
        );
        assert_eq!(a.intersection(&b), set(json!({"f:spec": {"f:b": {}}})));
        assert_eq!(
            b.union(&a),
            set(json!({"f:spec": {"f:a": {}, "f:b": {}, "f:c": {".": {}, "f:d": {}}}}))
        );
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn bad_fields_v1_is_rejected_with_the_element() {
        let err = FieldSet::from_fields_v1(&json!({"x:y": {}})).expect_err("bad prefix");
        assert!(err.contains("x:y"), "{err}");
        let err = FieldSet::from_fields_v1(&json!({"k:[1]": {}})).expect_err("key not object");
        assert!(err.contains("k:[1]"), "{err}");
    }
}
