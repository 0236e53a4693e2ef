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
use std::ops::{Index, IndexMut};

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

impl Index<&str> for Map {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

static NULL: Value = Value::Null;

/// What [`Value::get`] and indexing accept: a map key or a sequence position.
pub trait ValueIndex {
    /// The element, if present.
    fn index_into<'v>(&self, v: &'v Value) -> Option<&'v Value>;
    /// The element, mutably, if present.
    fn index_into_mut<'v>(&self, v: &'v mut Value) -> Option<&'v mut Value>;
    /// The element for assignment: a map key is inserted (null turns into an empty map).
    fn index_or_insert<'v>(&self, v: &'v mut Value) -> &'v mut Value;
}

impl ValueIndex for str {
    fn index_into<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        v.as_object()?.get(self)
    }
    fn index_into_mut<'v>(&self, v: &'v mut Value) -> Option<&'v mut Value> {
        v.as_object_mut()?.get_mut(self)
    }
    fn index_or_insert<'v>(&self, v: &'v mut Value) -> &'v mut Value {
        if v.is_null() {
            *v = Value::Object(Map::new());
        }
        match v {
            Value::Object(m) => m.entry(self).or_insert(Value::Null),
            other => panic!("cannot index {} with key {self:?}", other.kind()),
        }
    }
}

impl ValueIndex for String {
    fn index_into<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        self.as_str().index_into(v)
    }
    fn index_into_mut<'v>(&self, v: &'v mut Value) -> Option<&'v mut Value> {
        self.as_str().index_into_mut(v)
    }
    fn index_or_insert<'v>(&self, v: &'v mut Value) -> &'v mut Value {
        self.as_str().index_or_insert(v)
    }
}

impl ValueIndex for usize {
    fn index_into<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        v.as_array()?.get(*self)
    }
    fn index_into_mut<'v>(&self, v: &'v mut Value) -> Option<&'v mut Value> {
        v.as_array_mut()?.get_mut(*self)
    }
    fn index_or_insert<'v>(&self, v: &'v mut Value) -> &'v mut Value {
        match v {
            Value::Array(a) => {
                let len = a.len();
                a.get_mut(*self)
                    .unwrap_or_else(|| panic!("index {self} out of range for a sequence of {len}"))
            }
            other => panic!("cannot index {} with {self}", other.kind()),
        }
    }
}

impl<T: ValueIndex + ?Sized> ValueIndex for &T {
    fn index_into<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        (**self).index_into(v)
    }
    fn index_into_mut<'v>(&self, v: &'v mut Value) -> Option<&'v mut Value> {
        (**self).index_into_mut(v)
    }
    fn index_or_insert<'v>(&self, v: &'v mut Value) -> &'v mut Value {
        (**self).index_or_insert(v)
    }
}

impl<I: ValueIndex> Index<I> for Value {
    type Output = Value;
    fn index(&self, i: I) -> &Value {
        i.index_into(self).unwrap_or(&NULL)
    }
}

impl<I: ValueIndex> IndexMut<I> for Value {
    fn index_mut(&mut self, i: I) -> &mut Value {
        i.index_or_insert(self)
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

impl fmt::Display for Value {
    /// Compact JSON, as `serde_json::Value` displays.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => n.serialize(s),
            Value::String(t) => s.serialize_str(t),
            Value::Array(a) => s.collect_seq(a),
            Value::Object(m) => m.serialize(s),
        }
    }
}

impl serde::Serialize for Map {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(d).map(Value::from)
    }
}

/// Deserializes a typed value from a tree (through `serde_json`, for the small typed parts of
/// a kustomization).
pub fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> serde_json::Result<T> {
    serde_json::from_value(serde_json::Value::from(v))
}

/// Serializes a typed value into a tree.
pub fn to_value<T: serde::Serialize>(t: T) -> serde_json::Result<Value> {
    serde_json::to_value(t).map(Value::from)
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            // BTreeMap iterates sorted and unique: no sort needed.
            serde_json::Value::Object(m) => Value::Object(Map {
                entries: m.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
            }),
        }
    }
}

impl From<Value> for serde_json::Value {
    fn from(v: Value) -> Self {
        match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Number(n) => serde_json::Value::Number(n),
            Value::String(s) => serde_json::Value::String(s),
            Value::Array(a) => serde_json::Value::Array(a.into_iter().map(Into::into).collect()),
            Value::Object(m) => serde_json::Value::Object(m.into()),
        }
    }
}

impl From<&Value> for serde_json::Value {
    fn from(v: &Value) -> Self {
        v.clone().into()
    }
}

impl From<Map> for serde_json::Map<String, serde_json::Value> {
    fn from(m: Map) -> Self {
        m.entries.into_iter().map(|(k, v)| (k, v.into())).collect()
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for Map {
    fn from(m: serde_json::Map<String, serde_json::Value>) -> Self {
        Map {
            entries: m.into_iter().map(|(k, v)| (k, Value::from(v))).collect(),
        }
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Object(m)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Number(n.into())
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Number(n.into())
    }
}

impl PartialEq<i32> for Value {
    fn eq(&self, other: &i32) -> bool {
        self.as_i64() == Some(i64::from(*other))
    }
}

impl PartialEq<i64> for Value {
    fn eq(&self, other: &i64) -> bool {
        self.as_i64() == Some(*other)
    }
}

impl PartialEq<bool> for Value {
    fn eq(&self, other: &bool) -> bool {
        self.as_bool() == Some(*other)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Number(n.into())
    }
}

impl PartialEq<serde_json::Value> for Value {
    fn eq(&self, other: &serde_json::Value) -> bool {
        match (self, other) {
            (Value::Null, serde_json::Value::Null) => true,
            (Value::Bool(a), serde_json::Value::Bool(b)) => a == b,
            (Value::Number(a), serde_json::Value::Number(b)) => a == b,
            (Value::String(a), serde_json::Value::String(b)) => a == b,
            (Value::Array(a), serde_json::Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
            }
            (Value::Object(a), serde_json::Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka == kb && va == vb)
            }
            _ => false,
        }
    }
}

impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<str> for Value {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

/// `serde_json::json!`, producing this module's [`Value`].
#[macro_export]
macro_rules! json {
    ($($t:tt)*) => {
        $crate::value::Value::from(::serde_json::json!($($t)*))
    };
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
            serde_json::to_string(&unsorted).unwrap(),
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
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string(&j).unwrap()
        );
        assert_eq!(v.pointer("/k/6/y"), Some(&Value::Object(Map::new())));
        assert_eq!(v["k"][3], "s");
        assert!(v["nope"]["deeper"].is_null());
    }
}
