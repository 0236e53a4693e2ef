//! The engine's object tree: a JSON value whose maps are sorted vectors.
//!
//! `serde_json::Value` keeps objects in a `BTreeMap`, whose every node is an 11-slot leaf of
//! ~640 bytes even for a two-key schema map (`{description, type}`); a build that prints 12 MiB
//! of CRDs held 41 MiB of such trees. Here a map is a `Vec` of entries kept sorted by key, so it
//! iterates in the same (byte) order as `BTreeMap` — outputs, hashes and digests are unchanged —
//! and costs 56 bytes per entry. Lookups are binary searches; an insert after the last key (the
//! parsers' common case) is a push, and unsorted input is sorted once ([`Map::from_unsorted`]).
//!
//! The API mirrors `serde_json`'s where the engine uses it. At the crate's edges (the merge
//! in `ferry_proto`, typed kustomization fields, the agent) values convert to and from
//! `serde_json::Value` with `From`.

use std::fmt;

mod convert;
mod index;

pub use convert::{from_value, to_value};
pub use index::ValueIndex;

pub use serde_json::Number;

/// A JSON value (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer or a float, as `serde_json` holds it.
    Number(Number),
    /// A string.
    String(String),
    /// A sequence.
    Array(Vec<Value>),
    /// A map with unique keys, iterated in byte order of the keys.
    Object(Map),
}

/// A map from string keys to values, sorted by key (see the module documentation).
#[derive(Clone, Default, PartialEq)]
pub struct Map {
    entries: Vec<(String, Value)>,
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Map {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        Map {
            entries: Vec::with_capacity(n),
        }
    }

    /// A map from entries in any order; of duplicate keys the last one wins, as with
    /// repeated [`Map::insert`].
    pub fn from_unsorted(mut entries: Vec<(String, Value)>) -> Self {
        if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
            // Stable: duplicates stay in input order, and the last of each run is kept.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out: Vec<(String, Value)> = Vec::with_capacity(entries.len());
            for e in entries {
                match out.last_mut() {
                    Some(last) if last.0 == e.0 => *last = e,
                    _ => out.push(e),
                }
            }
            entries = out;
        }
        entries.shrink_to_fit();
        Map { entries }
    }

    /// A map from entries in any order, or `None` if a key repeats (the YAML fast path then
    /// leaves the document to the general parser, which reports it).
    pub fn from_unique(mut entries: Vec<(String, Value)>) -> Option<Self> {
        if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if entries.windows(2).any(|w| w[0].0 == w[1].0) {
                return None;
            }
        }
        entries.shrink_to_fit();
        Some(Map { entries })
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        // Fast path for in-order building: compare with the last key first.
        match self.entries.last() {
            None => Err(0),
            Some((last, _)) if last.as_str() < key => Err(self.entries.len()),
            _ => self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key)),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    /// The value under `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`, returning the value it replaced.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// The slot for `key`, to fill when empty.
    pub fn entry(&mut self, key: impl Into<String>) -> Entry<'_> {
        let key = key.into();
        let slot = self.find(&key);
        Entry {
            map: self,
            key,
            slot,
        }
    }

    /// Keeps the entries for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut Value) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    /// Moves every entry of `other` into this map (replacing equal keys).
    pub fn append(&mut self, other: &mut Map) {
        let taken = std::mem::take(&mut other.entries);
        self.extend(taken);
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &Value)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Entries in key order, values mutable.
    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&String, &mut Value)> + ExactSizeIterator {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Values in key order, mutable.
    pub fn values_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut Value> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Releases spare capacity (parsed trees are kept for the whole build).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }
}

/// A slot of a [`Map`], from [`Map::entry`].
pub struct Entry<'a> {
    map: &'a mut Map,
    key: String,
    slot: Result<usize, usize>,
}

impl<'a> Entry<'a> {
    /// The value, inserting `make()` if the key was absent.
    pub fn or_insert_with(self, make: impl FnOnce() -> Value) -> &'a mut Value {
        let i = match self.slot {
            Ok(i) => i,
            Err(i) => {
                self.map.entries.insert(i, (self.key, make()));
                i
            }
        };
        &mut self.map.entries[i].1
    }

    /// The value, inserting `v` if the key was absent.
    pub fn or_insert(self, v: Value) -> &'a mut Value {
        self.or_insert_with(|| v)
    }
}

impl Extend<(String, Value)> for Map {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl FromIterator<(String, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Map::from_unsorted(iter.into_iter().collect())
    }
}

impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = (&'a String, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Value)>,
        fn(&'a (String, Value)) -> (&'a String, &'a Value),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<'a> IntoIterator for &'a mut Map {
    type Item = (&'a String, &'a mut Value);
    type IntoIter = std::iter::Map<
        std::slice::IterMut<'a, (String, Value)>,
        fn(&'a mut (String, Value)) -> (&'a String, &'a mut Value),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }
}

impl Value {
    /// The element under a map key or at a sequence position.
    pub fn get<I: ValueIndex>(&self, i: I) -> Option<&Value> {
        i.index_into(self)
    }

    /// The element under a map key or at a sequence position, mutably.
    pub fn get_mut<I: ValueIndex>(&mut self, i: I) -> Option<&mut Value> {
        i.index_into_mut(self)
    }

    /// The map, if this is one.
    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The map, mutably, if this is one.
    pub fn as_object_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The sequence, if this is one.
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The sequence, mutably, if this is one.
    pub fn as_array_mut(&mut self) -> Option<&mut Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number as an `i64`, if it is one that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The number as a `u64`, if it is one that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The number as an `f64`, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether this is a map.
    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }

    /// Whether this is a sequence.
    pub fn is_array(&self) -> bool {
        matches!(self, Value::Array(_))
    }

    /// Whether this is a string.
    pub fn is_string(&self) -> bool {
        matches!(self, Value::String(_))
    }

    /// Replaces this value with `null`, returning it.
    pub fn take(&mut self) -> Value {
        std::mem::take(self)
    }

    /// The element at a JSON pointer (RFC 6901), like `serde_json::Value::pointer`.
    pub fn pointer(&self, pointer: &str) -> Option<&Value> {
        if pointer.is_empty() {
            return Some(self);
        }
        let rest = pointer.strip_prefix('/')?;
        rest.split('/')
            .map(unescape_token)
            .try_fold(self, |v, t| match v {
                Value::Object(m) => m.get(&t),
                Value::Array(a) => parse_position(&t).and_then(|i| a.get(i)),
                _ => None,
            })
    }

    /// The element at a JSON pointer, mutably.
    pub fn pointer_mut(&mut self, pointer: &str) -> Option<&mut Value> {
        if pointer.is_empty() {
            return Some(self);
        }
        let rest = pointer.strip_prefix('/')?;
        rest.split('/')
            .map(unescape_token)
            .try_fold(self, |v, t| match v {
                Value::Object(m) => m.get_mut(&t),
                Value::Array(a) => parse_position(&t).and_then(move |i| a.get_mut(i)),
                _ => None,
            })
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a sequence",
            Value::Object(_) => "a map",
        }
    }
}

fn unescape_token(t: &str) -> String {
    t.replace("~1", "/").replace("~0", "~")
}

fn parse_position(t: &str) -> Option<usize> {
    if t.starts_with('+') || (t.starts_with('0') && t.len() > 1) {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_iterate_in_key_order_whatever_the_insertion_order() {
        let mut m = Map::new();
        for k in ["b", "a", "c", "aa", "B"] {
            m.insert(k.to_string(), Value::Bool(true));
        }
        assert_eq!(
            m.keys().map(String::as_str).collect::<Vec<_>>(),
            ["B", "a", "aa", "b", "c"]
        );
        assert_eq!(m.insert("a".into(), Value::Null), Some(Value::Bool(true)));
        assert_eq!(m.remove("aa"), Some(Value::Bool(true)));
        assert_eq!(m.len(), 4);
        let unsorted = Map::from_unsorted(vec![
            ("z".into(), 1i64.into()),
            ("a".into(), 2i64.into()),
            ("z".into(), 3i64.into()),
        ]);
        assert_eq!(
            serde_json::to_string(&unsorted).expect("serializes"),
            r#"{"a":2,"z":3}"#
        );
    }

    #[test]
    fn converts_to_and_from_serde_json_without_change() {
        let j =
            serde_json::json!({"k": [1, -2, 1.5, "s", null, true, {"y": {}, "x": []}], "a": {}});
        let v = Value::from(j.clone());
        assert_eq!(v, j);
        assert_eq!(serde_json::Value::from(v.clone()), j);
        assert_eq!(
            serde_json::to_string(&v).expect("serializes"),
            serde_json::to_string(&j).expect("serializes")
        );
        assert_eq!(v.pointer("/k/6/y"), Some(&Value::Object(Map::new())));
        assert_eq!(v["k"][3], "s");
        assert!(v["nope"]["deeper"].is_null());
    }
}
