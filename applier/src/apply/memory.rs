//! What the agent last applied, per object — so a reconcile where nothing changed costs one
//! metadata LIST per kind instead of a GET and a dry-run per object.
//!
//! The API server bumps an object's `resourceVersion` on every write, whoever writes. So when the
//! live resourceVersion is still the one the server answered our last apply (or dry-run
//! comparison) with, and what we would apply now is byte-for-byte what we applied then, nothing
//! can differ: nobody touched the object and Git did not change it. Anything else — a
//! `kubectl edit`, a controller's write, a new revision, an agent restart (memory is not kept) —
//! falls back to the full dry-run comparison. A stale entry can only cost a dry-run, never skip
//! one that was needed.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::io;
use std::sync::Mutex;

use serde::Serialize;

use super::ObjectRef;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    resource_version: String,
    fingerprint: u64,
}

/// Per object: the resourceVersion it had when it last matched what we apply, and a fingerprint
/// of that manifest.
#[derive(Debug, Default)]
pub struct Memory {
    seen: Mutex<HashMap<ObjectRef, Seen>>,
}

impl Memory {
    /// Whether `id` is known to match the manifest with `fingerprint` at `resource_version`.
    pub fn in_sync(&self, id: &ObjectRef, resource_version: &str, fingerprint: u64) -> bool {
        let seen = self.seen.lock().expect("apply memory lock poisoned");
        seen.get(id)
            .is_some_and(|s| s.fingerprint == fingerprint && s.resource_version == resource_version)
    }

    /// Records that `id` matched the manifest with `fingerprint` at `resource_version` (an
    /// answer without a resourceVersion forgets the object instead).
    pub fn record(&self, id: &ObjectRef, resource_version: Option<String>, fingerprint: u64) {
        let mut seen = self.seen.lock().expect("apply memory lock poisoned");
        match resource_version.filter(|rv| !rv.is_empty()) {
            Some(resource_version) => {
                seen.insert(
                    id.clone(),
                    Seen {
                        resource_version,
                        fingerprint,
                    },
                );
            }
            None => {
                seen.remove(id);
            }
        }
    }

    pub fn forget(&self, id: &ObjectRef) {
        self.seen
            .lock()
            .expect("apply memory lock poisoned")
            .remove(id);
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.seen
            .lock()
            .expect("apply memory lock poisoned")
            .is_empty()
    }
}

/// A 64-bit fingerprint of `value`'s JSON encoding (what is sent to the server), computed
/// without building the encoding.
pub fn fingerprint(value: &impl Serialize) -> u64 {
    struct HashWriter(DefaultHasher);
    impl io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut w = HashWriter(DefaultHasher::new());
    // Writing to a hasher cannot fail; a value that cannot be encoded cannot be applied either,
    // and its fingerprint then only has to be stable.
    let _ = serde_json::to_writer(&mut w, value);
    w.0.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(name: &str) -> ObjectRef {
        ObjectRef::new("", "ConfigMap", Some("ns"), name)
    }

    #[test]
    fn in_sync_only_at_the_same_version_and_manifest() {
        let m = Memory::default();
        let a = fingerprint(&json!({"data": {"k": "v1"}}));
        let b = fingerprint(&json!({"data": {"k": "v2"}}));
        assert_ne!(a, b);
        assert_eq!(a, fingerprint(&json!({"data": {"k": "v1"}})));
        assert!(
            !m.in_sync(&id("c"), "5", a),
            "unknown objects are never in sync"
        );
        m.record(&id("c"), Some("5".into()), a);
        assert!(m.in_sync(&id("c"), "5", a));
        assert!(!m.in_sync(&id("c"), "6", a), "someone wrote the object");
        assert!(!m.in_sync(&id("c"), "5", b), "Git changed the object");
        assert!(!m.in_sync(&id("other"), "5", a));
        m.record(&id("c"), None, a);
        assert!(
            !m.in_sync(&id("c"), "5", a),
            "no resourceVersion: forgotten"
        );
        m.record(&id("c"), Some("7".into()), a);
        m.forget(&id("c"));
        assert!(m.is_empty());
    }
}
