//! The in-memory object store: objects by (resource, namespace, name), one global
//! monotonically increasing `resourceVersion`, and a bounded event log so watches can resume
//! from any recent resourceVersion. Everything here is synchronous and runs under one mutex;
//! the HTTP layer never holds the lock across an `.await`, and computes PATCHes outside it
//! (`patching`). Stored objects are immutable `Arc`s shared with the event log and the write's
//! response, so a write copies no object.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::registry::{Registry, ResourceDef};

/// How many events the log keeps for watch resume; older resourceVersions get 410 Gone.
const EVENT_LOG_CAP: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as recorded in the log and broadcast to watches.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    /// Storage key of the resource (`deployments.apps`).
    pub key: String,
    pub namespace: String,
    pub kind: EventType,
    /// Shared with the store (and the response that wrote it): an event costs no copy.
    pub object: Arc<Value>,
    /// The object before a MODIFIED event, so filtered watches can tell an object entering
    /// or leaving their selector (ADDED/DELETED for them).
    pub previous: Option<Arc<Value>>,
}

/// The locked state. Mutations go through the methods so RV and events stay consistent.
#[derive(Debug)]
pub struct State {
    pub registry: Registry,
    /// Stored objects are immutable and shared (`Arc`) with the event log, watches and write
    /// responses: a write replaces the `Arc`, it never copies the object.
    objects: BTreeMap<String, BTreeMap<(String, String), Arc<Value>>>,
    rv: u64,
    log: VecDeque<Arc<Event>>,
    tx: broadcast::Sender<Arc<Event>>,
}

/// Shared handle to the state plus the live event feed.
#[derive(Debug, Clone)]
pub struct Store {
    state: Arc<Mutex<State>>,
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(16_384);
        let mut state = State {
            registry: Registry::default(),
            objects: BTreeMap::new(),
            rv: 0,
            log: VecDeque::new(),
            tx: tx.clone(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let def = state
                .registry
                .by_key("namespaces")
                .cloned()
                .expect("namespaces is a built-in resource");
            let obj = json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            state.insert_new(&def, obj);
        }
        Self {
            state: Arc::new(Mutex::new(state)),
            tx,
        }
    }

    /// Locks the state. A panic while locked poisons nothing we care about: the state is
    /// still structurally valid, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn new_uid() -> String {
    use std::fmt::Write;
    let b: [u8; 16] = rand::rng().random();
    let mut h = String::with_capacity(32);
    for x in b {
        let _ = write!(h, "{x:02x}");
    }
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn namespace_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Whether the parts `generation` tracks (everything but metadata, status, apiVersion and
/// kind) are equal. Compared in place: objects are large and this runs on every write.
fn same_spec(a: &Value, b: &Value) -> bool {
    const SKIP: [&str; 4] = ["metadata", "status", "apiVersion", "kind"];
    same_map_except(a, b, &SKIP, |_, x, y| x == y)
}

/// Whether `a` and `b` are objects with equal entries, ignoring keys in `skip`, and comparing
/// the rest with `eq(key, a_value, b_value)`. Non-objects compare with `==`.
fn same_map_except(
    a: &Value,
    b: &Value,
    skip: &[&str],
    eq: impl Fn(&str, &Value, &Value) -> bool,
) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let kept = |m: &'_ serde_json::Map<String, Value>| {
        m.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .count()
    };
    kept(a) == kept(b)
        && a.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .all(|(k, v)| b.get(k).is_some_and(|w| eq(k, v, w)))
}

/// Compares objects ignoring `resourceVersion` and managedFields timestamps, to detect no-op
/// writes — in place, without copying either object.
fn same_content(a: &Value, b: &Value) -> bool {
    fn same_managed_fields(a: &Value, b: &Value) -> bool {
        match (a.as_array(), b.as_array()) {
            (Some(a), Some(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| same_map_except(x, y, &["time"], |_, x, y| x == y))
            }
            _ => a == b,
        }
    }
    same_map_except(a, b, &[], |k, x, y| {
        if k != "metadata" {
            return x == y;
        }
        same_map_except(x, y, &["resourceVersion"], |k, x, y| {
            if k == "managedFields" {
                same_managed_fields(x, y)
            } else {
                x == y
            }
        })
    })
}

impl State {
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch can resume from.
    pub fn oldest_resumable_rv(&self) -> u64 {
        self.log.front().map_or(self.rv, |e| e.rv.saturating_sub(1))
    }

    pub fn get(&self, key: &str, ns: &str, name: &str) -> Option<&Value> {
        self.get_shared(key, ns, name).map(Arc::as_ref)
    }

    /// The stored object itself (no copy), e.g. as a snapshot to compute a write from.
    pub fn get_shared(&self, key: &str, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects
            .get(key)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
    }

    /// Objects of a resource, sorted by (namespace, name); `ns = None` lists all namespaces.
    pub fn list(&self, key: &str, ns: Option<&str>) -> Vec<&Value> {
        let Some(m) = self.objects.get(key) else {
            return Vec::new();
        };
        match ns {
            None => m.values().map(Arc::as_ref).collect(),
            Some(ns) => m
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.as_ref())
                .collect(),
        }
    }

    /// Every (resource key, object) pair, for GC and namespace deletion.
    pub fn all_objects(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.objects
            .iter()
            .flat_map(|(k, m)| m.values().map(move |v| (k, v.as_ref())))
    }

    /// Replays logged events after `rv`, oldest first.
    pub fn events_since(&self, rv: u64) -> Vec<Arc<Event>> {
        let start = self.log.partition_point(|e| e.rv <= rv);
        self.log.iter().skip(start).cloned().collect()
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn emit(
        &mut self,
        def: &ResourceDef,
        kind: EventType,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        let ev = Arc::new(Event {
            rv: self.rv,
            key: def.key(),
            namespace: namespace_of(&object).to_string(),
            kind,
            object,
            previous,
        });
        if self.log.len() >= EVENT_LOG_CAP {
            self.log.pop_front();
        }
        self.log.push_back(ev.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    /// What creating `obj` would store, without storing it (dry-run): uid,
    /// creationTimestamp and generation 1 assigned, no resourceVersion.
    pub fn preview_new(&self, mut obj: Value) -> Value {
        let meta = meta_mut(&mut obj);
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        obj
    }

    /// Stores a new object ([`State::preview_new`] plus a fresh RV) and emits ADDED.
    /// The caller has validated name, namespace and uniqueness.
    pub fn insert_new(&mut self, def: &ResourceDef, obj: Value) -> Arc<Value> {
        let mut obj = self.preview_new(obj);
        let rv = self.bump();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let key = (namespace_of(&obj).to_string(), name_of(&obj).to_string());
        let obj = Arc::new(obj);
        self.objects
            .entry(def.key())
            .or_default()
            .insert(key, obj.clone());
        self.emit(def, EventType::Added, obj.clone(), None);
        obj
    }

    /// What replacing `old` by `new` would store, without storing it: server-owned metadata
    /// kept from `old`, `generation` bumped only when the spec part changed, RV unchanged.
    pub fn preview_replace(&self, old: &Value, new: Value) -> Value {
        self.preview_replace_inner(old, new, false)
    }

    fn preview_replace_inner(&self, old: &Value, mut new: Value, set_deletion: bool) -> Value {
        {
            let no_meta = Value::Null;
            let old_meta = old.get("metadata").unwrap_or(&no_meta);
            let meta = meta_mut(&mut new);
            let deletion: &[&str] = if set_deletion {
                &[]
            } else {
                &["deletionTimestamp", "deletionGracePeriodSeconds"]
            };
            let kept = [
                "uid",
                "creationTimestamp",
                "generation",
                "name",
                "namespace",
            ];
            for k in kept.iter().chain(deletion) {
                let k = *k;
                match old_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            meta.insert(
                "resourceVersion".into(),
                old_meta.get("resourceVersion").cloned().unwrap_or_default(),
            );
        }
        if !same_spec(old, &new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        new
    }

    /// Replaces `old` (the stored object) by `new` (same identity): [`State::preview_replace`],
    /// then stores it with a fresh RV and emits MODIFIED — unless nothing changed, in which case
    /// `old` is returned.
    pub fn replace(&mut self, def: &ResourceDef, old: &Arc<Value>, new: Value) -> Arc<Value> {
        let new = self.preview_replace(old, new);
        self.store_replaced(def, old, new)
    }

    /// Like [`State::replace`], but takes `deletionTimestamp` from `new` (deletion marking).
    pub fn replace_keep_deletion(
        &mut self,
        def: &ResourceDef,
        old: &Arc<Value>,
        new: Value,
    ) -> Arc<Value> {
        let new = self.preview_replace_inner(old, new, true);
        self.store_replaced(def, old, new)
    }

    fn store_replaced(
        &mut self,
        def: &ResourceDef,
        old: &Arc<Value>,
        mut new: Value,
    ) -> Arc<Value> {
        if same_content(old, &new) {
            return old.clone();
        }
        let rv = self.bump();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let key = (namespace_of(&new).to_string(), name_of(&new).to_string());
        let new = Arc::new(new);
        self.objects
            .entry(def.key())
            .or_default()
            .insert(key, new.clone());
        self.emit(def, EventType::Modified, new.clone(), Some(old.clone()));
        new
    }

    /// Removes an object for good and emits DELETED (with the deletion's RV). Returns the
    /// removed object, or `Null` if it was not there.
    pub fn remove(&mut self, def: &ResourceDef, ns: &str, name: &str) -> Value {
        let Some(obj) = self
            .objects
            .get_mut(&def.key())
            .and_then(|m| m.remove(&(ns.to_string(), name.to_string())))
        else {
            return Value::Null;
        };
        let mut obj = Arc::unwrap_or_clone(obj);
        let rv = self.bump();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let obj = Arc::new(obj);
        self.emit(def, EventType::Deleted, obj.clone(), None);
        Arc::unwrap_or_clone(obj)
    }

    /// Drops every object of a resource (its CRD went away) without events per object.
    pub fn drop_resource(&mut self, key: &str) {
        self.objects.remove(key);
    }
}

/// `metadata` as a mutable map, created if missing or not an object.
pub fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let o = obj.as_object_mut().expect("just made an object");
    let m = o.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut().expect("just made an object")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm_def(s: &State) -> ResourceDef {
        s.registry
            .by_key("configmaps")
            .cloned()
            .expect("configmaps")
    }

    #[test]
    fn writes_bump_rv_and_generation_only_when_needed() {
        let store = Store::new();
        let mut s = store.lock();
        let def = cm_def(&s);
        let created = s.insert_new(
            &def,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "a", "namespace": "default"}, "data": {"k": "1"}}),
        );
        let rv1: u64 = created["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("rv");
        assert_eq!(created["metadata"]["generation"], 1);
        // Label change: new RV, same generation.
        let mut labelled = Value::clone(&created);
        labelled["metadata"]["labels"] = json!({"x": "y"});
        let l = s.replace(&def, &created, labelled);
        assert_eq!(l["metadata"]["generation"], 1);
        assert_eq!(l["metadata"]["resourceVersion"], (rv1 + 1).to_string());
        // No-op: nothing changes.
        let same = s.replace(&def, &l, Value::clone(&l));
        assert_eq!(
            same["metadata"]["resourceVersion"],
            l["metadata"]["resourceVersion"]
        );
        assert_eq!(s.current_rv(), rv1 + 1);
        // Data change: generation bumps.
        let mut changed = Value::clone(&l);
        changed["data"]["k"] = json!("2");
        let c = s.replace(&def, &l, changed);
        assert_eq!(c["metadata"]["generation"], 2);
        // The log replays everything after rv1.
        let evs = s.events_since(rv1);
        let kinds: Vec<_> = evs.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventType::Modified, EventType::Modified]);
        let removed = s.remove(&def, "default", "a");
        assert_eq!(removed["data"]["k"], "2");
        assert!(s.get("configmaps", "default", "a").is_none());
    }

    #[test]
    fn no_op_writes_are_recognised_without_timestamps_and_versions() {
        let obj = |rv: &str, time: &str, data: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "a", "resourceVersion": rv,
                    "managedFields": [{"manager": "m", "operation": "Apply", "time": time}]},
                "data": {"k": data}})
        };
        assert!(same_content(&obj("1", "t1", "x"), &obj("2", "t2", "x")));
        assert!(!same_content(&obj("1", "t1", "x"), &obj("1", "t1", "y")));
        let mut other_manager = obj("1", "t1", "x");
        other_manager["metadata"]["managedFields"][0]["manager"] = json!("n");
        assert!(!same_content(&obj("1", "t1", "x"), &other_manager));
        let mut extra = obj("1", "t1", "x");
        extra["metadata"]["labels"] = json!({"l": "v"});
        assert!(!same_content(&obj("1", "t1", "x"), &extra));
        assert!(!same_content(&extra, &obj("1", "t1", "x")));

        let mut status = obj("1", "t1", "x");
        status["status"] = json!({"ready": true});
        assert!(
            same_spec(&obj("1", "t1", "x"), &status),
            "status is not spec"
        );
        assert!(!same_content(&obj("1", "t1", "x"), &status));
        assert!(!same_spec(&obj("1", "t1", "x"), &obj("1", "t1", "y")));
    }
}
