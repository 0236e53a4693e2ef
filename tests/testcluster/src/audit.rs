//! A count of the resource requests the server answered, by verb and resource — what a test
//! reads to prove that a client asked only what it had to (a reconcile with nothing to do should
//! cost a LIST per kind, not a GET and a dry-run per object). Dry-runs count under their own verb
//! (`patch (dry-run)`), since they write nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct Audit {
    counts: Arc<Mutex<BTreeMap<(String, String), usize>>>,
}

impl Audit {
    pub fn record(&self, verb: &str, resource: &str, dry_run: bool) {
        let verb = if dry_run {
            format!("{verb} (dry-run)")
        } else {
            verb.to_string()
        };
        *self
            .counts
            .lock()
            .expect("audit lock poisoned")
            .entry((verb, resource.to_string()))
            .or_default() += 1;
    }

    /// Requests with `verb` (e.g. `list`, `patch`, `patch (dry-run)`) on `resource` (plural).
    pub fn count(&self, verb: &str, resource: &str) -> usize {
        self.counts
            .lock()
            .expect("audit lock poisoned")
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Every `(verb, resource)` seen with its count, sorted.
    pub fn snapshot(&self) -> BTreeMap<(String, String), usize> {
        self.counts.lock().expect("audit lock poisoned").clone()
    }

    pub fn reset(&self) {
        self.counts.lock().expect("audit lock poisoned").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_verb_and_resource_with_dry_runs_apart() {
        let a = Audit::default();
        a.record("list", "configmaps", false);
        a.record("patch", "configmaps", true);
        a.record("patch", "configmaps", false);
        a.record("patch", "configmaps", false);
        assert_eq!(a.count("list", "configmaps"), 1);
        assert_eq!(a.count("patch", "configmaps"), 2);
        assert_eq!(a.count("patch (dry-run)", "configmaps"), 1);
        assert_eq!(a.count("get", "configmaps"), 0);
        assert_eq!(a.snapshot().len(), 3);
        a.reset();
        assert_eq!(a.count("list", "configmaps"), 0);
    }
}
