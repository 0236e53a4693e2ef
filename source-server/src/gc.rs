//! Garbage collection of stored artifacts: what to delete, and one pass over the storage. The
//! controller decides when (`reconcile::Inner::collect_garbage`).
//!
//! The keep set is read from the persisted source states, not from memory: every artifact that
//! is current for, or in the recent history of, any recorded source (or any registered chart
//! resolution of a HelmRepository) is kept (a source's history
//! is trimmed to `--keep` when a new artifact arrives), and every artifact a pointer record
//! names (whoever wrote it: another server on the same bucket, an import). Everything else under
//! `artifacts/sha256/` goes. GC runs under the controller's storage lock, which writers hold
//! from writing an artifact until its state record is saved, so an artifact is never collected
//! between those two steps.

use std::collections::BTreeSet;

use ferry_proto::Digest;

use crate::storage::{SourceState, Storage, StorageError};

/// Digests to delete: stored ones that no state references.
pub fn plan<'a>(
    states: impl IntoIterator<Item = &'a SourceState>,
    pointed: &[Digest],
    stored: &[Digest],
    keep: usize,
) -> Vec<Digest> {
    let mut keep_set: BTreeSet<Digest> = pointed.iter().copied().collect();
    for s in states {
        keep_set.extend(s.artifact.as_ref().map(|a| a.digest));
        keep_set.extend(s.history.iter().take(keep).copied());
        for c in &s.charts {
            keep_set.insert(c.artifact.digest);
            keep_set.extend(c.history.iter().take(keep).copied());
        }
    }
    stored
        .iter()
        .filter(|d| !keep_set.contains(*d))
        .copied()
        .collect()
}

/// One GC pass over `storage`, sparing artifacts written within `grace`; returns the deleted
/// digests.
pub async fn run(
    storage: &Storage,
    keep: usize,
    grace: std::time::Duration,
) -> Result<Vec<Digest>, StorageError> {
    let mut states = Vec::new();
    for key in storage.list_states().await? {
        // An unreadable state must not make its artifacts collectable: abort the pass.
        if let Some(s) = storage.load_state(&key).await? {
            states.push(s);
        }
    }
    // An unreadable pointer aborts the pass the same way.
    let pointed = storage.pointed_artifacts().await?;
    let stored = storage.list_artifacts_older_than(grace).await?;
    let doomed = plan(&states, &pointed, &stored, keep);
    for d in &doomed {
        storage.delete_artifact(d).await?;
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use ferry_proto::{ArtifactRef, Revision};

    fn d(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn state(current: u8, history: &[u8]) -> SourceState {
        SourceState {
            artifact: Some(ArtifactRef {
                digest: d(current),
                size: 1,
                compressed_size: None,
                revision: Revision::new(None, "0".repeat(40)).expect("valid"),
                url: String::new(),
                last_update_time: Utc::now(),
            }),
            history: history.iter().map(|n| d(*n)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_current_and_last_n_and_anything_current_elsewhere() {
        // Source A moved 1 -> 2 -> 3 -> 4; source B is still on 2.
        let a = state(4, &[3, 2, 1]);
        let b = state(2, &[]);
        let stored: Vec<Digest> = (1..=5).map(d).collect();
        let mut doomed = plan([&a, &b], &[], &stored, 1);
        doomed.sort();
        let mut want = vec![d(1), d(5)];
        want.sort();
        assert_eq!(doomed, want);
        // keep = 0 still keeps every current artifact.
        let doomed = plan([&a, &b], &[], &stored, 0);
        assert!(!doomed.contains(&d(4)) && !doomed.contains(&d(2)));
        assert!(doomed.contains(&d(3)));
        // A pointer written by another writer keeps its artifact though no state names it.
        let doomed = plan([&a, &b], &[d(5)], &stored, 1);
        assert!(!doomed.contains(&d(5)) && doomed.contains(&d(1)));
    }
}
