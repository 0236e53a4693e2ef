//! The resource model: a Kubernetes object as a `serde_json::Value` (the representation the
//! shared strategic-merge code in `ferry_proto::merge` works on) plus the bookkeeping
//! kustomize keeps beside it — previous ids (to re-point references after renames), the
//! prefixes/suffixes applied, whether a generator wants a content-hash suffix, and the
//! generator merge behaviour. [`ResMap`] is an ordered list: kustomize's output order is
//! insertion order until the final sort.

use std::collections::HashSet;
use std::fmt;

use crate::value::{Map, Value};
use ferry_proto::ObjectRef;

use crate::fs::RelPath;

/// Group/version/kind; empty fields in a selector mean "any".
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        let gv = ferry_proto::GroupVersion::parse(api_version);
        Gvk {
            group: gv.group.to_string(),
            version: gv.version.to_string(),
            kind: kind.to_string(),
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Selector semantics: every non-empty field of `self` must equal `other`'s.
    pub fn selects(&self, other: &Gvk) -> bool {
        self.selects_parts(&other.group, &other.version, &other.kind)
    }

    /// [`Gvk::selects`] for a resource id, without building its `Gvk`.
    pub fn selects_id(&self, id: &ResId) -> bool {
        self.selects_parts(&id.group, &id.version, &id.kind)
    }

    fn selects_parts(&self, group: &str, version: &str, kind: &str) -> bool {
        (self.group.is_empty() || self.group == group)
            && (self.version.is_empty() || self.version == version)
            && (self.kind.is_empty() || self.kind == kind)
    }

    /// Cluster-scoped kinds of the Kubernetes API kustomize knows; anything else (CRs
    /// included) is treated as namespaced, as kustomize does without a schema.
    pub fn is_cluster_scoped(&self) -> bool {
        crate::scope::is_cluster_scoped(&self.group, &self.version, &self.kind)
    }
}

/// Identity of a resource as kustomize matches it: Ferry's one object identity
/// ([`ObjectRef`], reached through `Deref`) plus the version, which kustomize's ids include.
/// The namespace is `None` when the object sets none (kustomize's `""`), which for namespaced
/// kinds compares equal to `default`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ResId {
    pub object: ObjectRef,
    pub version: String,
}

impl std::ops::Deref for ResId {
    type Target = ObjectRef;

    fn deref(&self) -> &ObjectRef {
        &self.object
    }
}

impl ResId {
    pub fn new(gvk: &Gvk, namespace: &str, name: &str) -> Self {
        ResId {
            object: ObjectRef::new(&gvk.group, &gvk.kind, Some(namespace), name),
            version: gvk.version.clone(),
        }
    }

    pub fn gvk(&self) -> Gvk {
        Gvk {
            group: self.object.group.clone(),
            version: self.version.clone(),
            kind: self.object.kind.clone(),
        }
    }

    pub fn api_version(&self) -> String {
        self.object.api_version(&self.version)
    }

    /// See [`Gvk::is_cluster_scoped`].
    pub fn is_cluster_scoped(&self) -> bool {
        crate::scope::is_cluster_scoped(&self.object.group, &self.version, &self.object.kind)
    }

    pub fn ns_equals(&self, other: &ResId) -> bool {
        fn norm(ns: &str) -> &str {
            if ns.is_empty() { "default" } else { ns }
        }
        if self.is_cluster_scoped() || other.is_cluster_scoped() {
            return self.is_cluster_scoped() == other.is_cluster_scoped();
        }
        norm(self.namespace_or_empty()) == norm(other.namespace_or_empty())
    }

    /// Same object for kustomize's uniqueness rules.
    pub fn same_as(&self, other: &ResId) -> bool {
        self.version == other.version
            && self.object.group == other.object.group
            && self.object.kind == other.object.kind
            && self.object.name == other.object.name
            && self.ns_equals(other)
    }
}

impl fmt::Display for ResId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.api_version(), self.kind, self.name)?;
        if let Some(ns) = &self.namespace {
            write!(f, " (namespace {ns})")?;
        }
        Ok(())
    }
}

/// Generator merge behaviour (`behavior:` of configMapGenerator/secretGenerator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behavior {
    #[default]
    Create,
    Merge,
    Replace,
}

/// A Kubernetes object plus kustomize's bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The object; always a JSON object.
    pub obj: Value,
    /// File it was read from (or the kustomization that generated it).
    pub origin: RelPath,
    /// Ids before each rename/re-namespace, oldest first.
    pub prev_ids: Vec<ResId>,
    /// Name prefixes / suffixes applied, innermost first (used to disambiguate references).
    pub name_prefixes: Vec<String>,
    pub name_suffixes: Vec<String>,
    /// Set by generators unless `disableNameSuffixHash`.
    pub needs_hash: bool,
    /// Set by generators; consumed when the resource is absorbed into the accumulator.
    pub behavior: Behavior,
    /// Generated by a configMap/secret generator (affects merge and options semantics).
    pub generated: bool,
}

impl Resource {
    /// Wraps a parsed object; fails unless it is a map with `kind` (and usually `apiVersion`).
    pub fn new(obj: Value, origin: RelPath) -> Result<Self, String> {
        let Value::Object(map) = &obj else {
            return Err("document is not a YAML mapping".to_string());
        };
        match map.get("kind") {
            Some(Value::String(k)) if !k.is_empty() => {}
            _ => return Err("missing kind".to_string()),
        }
        Ok(Resource {
            obj,
            origin,
            prev_ids: Vec::new(),
            name_prefixes: Vec::new(),
            name_suffixes: Vec::new(),
            needs_hash: false,
            behavior: Behavior::Create,
            generated: false,
        })
    }

    /// The object's fields. A patch may have replaced the whole object with a non-map;
    /// that reads as empty rather than panicking on untrusted input.
    pub fn map(&self) -> &Map {
        static EMPTY: std::sync::OnceLock<Map> = std::sync::OnceLock::new();
        self.obj
            .as_object()
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    /// Mutable fields; a non-map object is replaced by an empty map first.
    pub fn map_mut(&mut self) -> &mut Map {
        if !self.obj.is_object() {
            self.obj = Value::Object(Map::new());
        }
        self.obj.as_object_mut().expect("just ensured an object")
    }

    fn str_field(&self, key: &str) -> &str {
        self.map().get(key).and_then(Value::as_str).unwrap_or("")
    }

    fn meta_str(&self, key: &str) -> &str {
        self.map()
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn api_version(&self) -> &str {
        self.str_field("apiVersion")
    }

    pub fn kind(&self) -> &str {
        self.str_field("kind")
    }

    pub fn name(&self) -> &str {
        self.meta_str("name")
    }

    pub fn namespace(&self) -> &str {
        self.meta_str("namespace")
    }

    pub fn gvk(&self) -> Gvk {
        Gvk::from_api_version(self.api_version(), self.kind())
    }

    /// Current id.
    pub fn id(&self) -> ResId {
        let (object, version) = ObjectRef::from_api_version(
            self.api_version(),
            self.kind(),
            Some(self.namespace()),
            self.name(),
        );
        ResId {
            object,
            version: version.to_string(),
        }
    }

    /// `self.id().same_as(id)` without allocating (hot in large builds).
    pub fn has_id(&self, id: &ResId) -> bool {
        if self.kind() != id.kind || self.name() != id.name {
            return false;
        }
        let av = self.api_version();
        let gv = ferry_proto::GroupVersion::parse(av);
        if gv.group != id.group || gv.version != id.version {
            return false;
        }
        if id.is_cluster_scoped() {
            return true;
        }
        fn norm(ns: &str) -> &str {
            if ns.is_empty() { "default" } else { ns }
        }
        norm(self.namespace()) == norm(id.namespace_or_empty())
    }

    /// Id as first loaded (before any rename).
    pub fn org_id(&self) -> ResId {
        self.prev_ids.first().cloned().unwrap_or_else(|| self.id())
    }

    /// Remembers the current id before a transformer changes name, namespace or kind.
    pub fn store_prev_id(&mut self) {
        self.prev_ids.push(self.id());
    }

    /// `metadata`, created when missing (or replaced when not a map).
    pub fn metadata_mut(&mut self) -> &mut Map {
        let m = self
            .map_mut()
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !m.is_object() {
            *m = Value::Object(Map::new());
        }
        m.as_object_mut().expect("just ensured an object")
    }

    pub fn set_name(&mut self, name: &str) {
        self.metadata_mut()
            .insert("name".into(), Value::String(name.to_string()));
    }

    pub fn set_namespace(&mut self, ns: &str) {
        self.metadata_mut()
            .insert("namespace".into(), Value::String(ns.to_string()));
    }

    fn string_map(&self, key: &str) -> Vec<(String, String)> {
        self.map()
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), scalar_to_string(v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn labels(&self) -> Vec<(String, String)> {
        self.string_map("labels")
    }

    pub fn annotations(&self) -> Vec<(String, String)> {
        self.string_map("annotations")
    }

    /// Value at a `/`-free list of keys, if every step is a map.
    pub fn get_path(&self, path: &[&str]) -> Option<&Value> {
        let mut cur = &self.obj;
        for p in path {
            cur = cur.as_object()?.get(p)?;
        }
        Some(cur)
    }
}

/// Renders a scalar the way kustomize would read it as a string.
pub fn scalar_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Ordered resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResMap {
    pub resources: Vec<Resource>,
}

impl ResMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Resource> {
        self.resources.iter()
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Resource> {
        self.resources.iter_mut()
    }

    /// Index of the resource whose current id is `id`.
    pub fn position(&self, id: &ResId) -> Option<usize> {
        self.resources.iter().position(|r| r.has_id(id))
    }

    /// Appends, refusing a second resource with the same current id.
    pub fn append(&mut self, r: Resource) -> Result<(), ResId> {
        let id = r.id();
        if self.position(&id).is_some() {
            return Err(id);
        }
        self.resources.push(r);
        Ok(())
    }

    /// Appends all of `other`, refusing duplicates.
    pub fn append_all(&mut self, other: ResMap) -> Result<(), ResId> {
        let mut index = IdIndex::of(self);
        self.append_all_indexed(other, &mut index)
    }

    /// [`ResMap::append`] in constant time, with `index` built by [`IdIndex::of`] on this map
    /// and nothing but `*_indexed` calls changing it since.
    pub fn append_indexed(&mut self, r: Resource, index: &mut IdIndex) -> Result<(), ResId> {
        if !index.0.insert(IdKey::of(&r)) {
            return Err(r.id());
        }
        self.resources.push(r);
        Ok(())
    }

    pub fn append_all_indexed(&mut self, other: ResMap, index: &mut IdIndex) -> Result<(), ResId> {
        for r in other.resources {
            self.append_indexed(r, index)?;
        }
        Ok(())
    }
}

/// Identity as [`Resource::has_id`] compares it: gvk, name, and the namespace with `""` read as
/// `default` (no namespace for cluster-scoped kinds).
#[derive(PartialEq, Eq, Hash)]
struct IdKey(ResId);

impl IdKey {
    fn of(r: &Resource) -> Self {
        let mut id = r.id();
        if id.is_cluster_scoped() {
            id.object.namespace = None;
        } else if id.namespace.is_none() {
            id.object.namespace = Some("default".into());
        }
        IdKey(id)
    }
}

/// The ids of a [`ResMap`], so that loading many resources checks uniqueness in constant time
/// each instead of scanning the map (quadratic over a thousand files).
pub struct IdIndex(HashSet<IdKey>);

impl IdIndex {
    pub fn of(map: &ResMap) -> Self {
        IdIndex(map.iter().map(IdKey::of).collect())
    }
}

impl IntoIterator for ResMap {
    type Item = Resource;
    type IntoIter = std::vec::IntoIter<Resource>;
    fn into_iter(self) -> Self::IntoIter {
        self.resources.into_iter()
    }
}
