//! A byte-weighted least-recently-used index of artifacts, for both cache tiers.
//!
//! Hand-written rather than the `lru` crate: the bound here is bytes, not entries, and an
//! entry must be able to stay over the bound alone (one artifact larger than the budget is
//! still served once it is admitted by the caller). A `BTreeMap` by last use makes eviction
//! `O(log n)`; inserts happen once per new artifact, lookups once per request.

use std::collections::{BTreeMap, HashMap};

use ferry_proto::Digest;

struct Slot<V> {
    value: V,
    size: u64,
    last_use: u64,
}

pub(super) struct Lru<V> {
    entries: HashMap<Digest, Slot<V>>,
    by_use: BTreeMap<u64, Digest>,
    used: u64,
    budget: u64,
    clock: u64,
}

impl<V: Clone> Lru<V> {
    pub(super) fn new(budget: u64) -> Self {
        Self {
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            used: 0,
            budget,
            clock: 0,
        }
    }

    pub(super) fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes held now.
    pub(super) fn used(&self) -> u64 {
        self.used
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The value and size of `digest`, marking it used.
    pub(super) fn get(&mut self, digest: &Digest) -> Option<(V, u64)> {
        let now = self.tick();
        let slot = self.entries.get_mut(digest)?;
        self.by_use.remove(&slot.last_use);
        slot.last_use = now;
        self.by_use.insert(now, *digest);
        Some((slot.value.clone(), slot.size))
    }

    /// Adds (or replaces) `digest`, then evicts the least recently used others until the
    /// total fits the budget; returns what was evicted.
    pub(super) fn insert(&mut self, digest: Digest, value: V, size: u64) -> Vec<(Digest, V)> {
        self.remove(&digest);
        let now = self.tick();
        self.by_use.insert(now, digest);
        self.entries.insert(
            digest,
            Slot {
                value,
                size,
                last_use: now,
            },
        );
        self.used += size;
        let mut evicted = Vec::new();
        while self.used > self.budget {
            let Some((_, oldest)) = self.by_use.first_key_value() else {
                break;
            };
            if *oldest == digest {
                break; // only the new entry is left
            }
            let oldest = *oldest;
            if let Some(value) = self.remove(&oldest) {
                evicted.push((oldest, value));
            }
        }
        evicted
    }

    pub(super) fn remove(&mut self, digest: &Digest) -> Option<V> {
        let slot = self.entries.remove(digest)?;
        self.by_use.remove(&slot.last_use);
        self.used -= slot.size;
        Some(slot.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let d = |s: &str| Digest::of(s.as_bytes());
        let mut lru = Lru::new(100);
        assert!(lru.insert(d("a"), 'a', 40).is_empty());
        assert!(lru.insert(d("b"), 'b', 40).is_empty());
        // `a` used after `b`: `b` is the one to go.
        assert_eq!(lru.get(&d("a")), Some(('a', 40)));
        let evicted = lru.insert(d("c"), 'c', 40);
        assert_eq!(evicted, vec![(d("b"), 'b')]);
        assert_eq!(lru.used(), 80);
        // Larger than the budget: everything else goes, the new entry stays.
        let evicted = lru.insert(d("big"), 'x', 150);
        assert_eq!(evicted.len(), 2);
        assert_eq!(lru.get(&d("big")), Some(('x', 150)));
        assert_eq!(lru.used(), 150);
        assert_eq!(lru.remove(&d("big")), Some('x'));
        assert_eq!(lru.used(), 0);
    }
}
