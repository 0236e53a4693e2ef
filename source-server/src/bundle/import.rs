//! Importing a bundle into a store. Nothing becomes visible before everything is verified:
//!
//! 1. a first pass over the file checks the layout (only `index.json`, `index.json.sig` and
//!    `artifacts/sha256/<hex>.tar.gz` regular files, in that order, bounded in size and count),
//!    the index, the signature when `--verify-key` is given, and every artifact entry against
//!    its digest (sha256 of the uncompressed tar, [`ferry_proto::verify`]) and the index's
//!    sizes; every included artifact must be present, every left-out one already stored;
//! 2. the artifacts the store lacks are written, create-only, each verified again as it is
//!    read (the file may change between passes);
//! 3. only then the source state records, which are what make a revision visible to a server
//!    serving from that store, and last the pointers agents reading the store follow.
//!
//! A failure in 2 or 3 removes the artifacts this import wrote and restores the states it
//! replaced, so a refused import leaves the store as it was. Importing the same bundle again
//! writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use ferry_proto::{ArtifactLimits, ArtifactRef, Digest, SourceKey, SourceKind};

use super::check::{
    DeltaSource, Entry, Verified, check_artifact, classify, open, read_bounded, rebuild, since_of,
    truncated, verify_file,
};
use super::{BundleError, INDEX_ENTRY, Index, IndexArtifact, MAX_INDEX_BYTES, VerifyingKey};
use crate::storage::{SourceState, Storage};

/// Bounds on what an import reads.
#[derive(Clone, Debug)]
pub struct ImportLimits {
    /// Largest bundle file.
    pub max_bundle_size: u64,
    /// Bounds on each artifact (its uncompressed size).
    pub artifact: ArtifactLimits,
}

/// Default of [`ImportLimits::max_bundle_size`]: 32 GiB.
pub const DEFAULT_MAX_BUNDLE_SIZE: u64 = 32 << 30;

impl Default for ImportLimits {
    fn default() -> Self {
        Self {
            max_bundle_size: DEFAULT_MAX_BUNDLE_SIZE,
            artifact: ArtifactLimits::default(),
        }
    }
}

/// How to import.
#[derive(Default)]
pub struct ImportOptions {
    /// When set, the bundle must carry a signature that verifies with it.
    pub verify_key: Option<VerifyingKey>,
    pub limits: ImportLimits,
}

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    /// The bundle's identity (sha256 of its index).
    pub identity: Digest,
    /// Each source with the artifact now current, and whether its record changed.
    pub sources: Vec<(SourceKey, Option<ArtifactRef>, bool)>,
    /// Artifacts written.
    pub written: usize,
    /// Artifacts the store already had.
    pub present: usize,
}

/// The identity and index of `file`: a bundle (its first entry) or a bare `index.json`.
pub(super) fn read_index_file(file: &Path) -> Result<(Digest, Index), BundleError> {
    let bad = |reason: String| BundleError::Index {
        bundle: file.to_path_buf(),
        reason,
    };
    let io = |source| BundleError::Io {
        file: file.to_path_buf(),
        source,
    };
    let mut head = [0u8; 1];
    let n = std::fs::File::open(file)
        .and_then(|mut f| f.read(&mut head))
        .map_err(io)?;
    let bytes = if n == 1 && head[0] == b'{' {
        let mut buf = Vec::new();
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_INDEX_BYTES + 1).read_to_end(&mut buf))
            .map_err(io)?;
        buf
    } else {
        let mut archive = open(file)?;
        let mut entries = archive.entries().map_err(truncated(file, "start"))?;
        let mut entry = entries
            .next()
            .ok_or_else(|| bad("empty bundle".into()))?
            .map_err(truncated(file, "start"))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if name != INDEX_ENTRY {
            return Err(bad(format!(
                "the first entry is {name:?}, not {INDEX_ENTRY}"
            )));
        }
        let size = entry
            .header()
            .size()
            .map_err(truncated(file, INDEX_ENTRY))?;
        read_bounded(file, INDEX_ENTRY, &mut entry, size, MAX_INDEX_BYTES)?
    };
    if bytes.len() as u64 > MAX_INDEX_BYTES {
        return Err(bad(format!("above the limit of {MAX_INDEX_BYTES} bytes")));
    }
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    Ok((Digest::of(&bytes), index))
}

/// Imports `bundle` into `storage` (see the module doc).
pub async fn import(
    storage: &Storage,
    bundle: &Path,
    opts: &ImportOptions,
) -> Result<Imported, BundleError> {
    let Verified {
        identity,
        index,
        owners,
    } = verify_file(storage, bundle, opts).await?;
    let mut new = BTreeSet::new();
    let mut present = 0;
    for a in &index.artifacts {
        if storage.artifact_size(&a.digest).await?.is_some() {
            present += 1;
            continue;
        }
        if !a.included {
            return Err(BundleError::NotInStorage {
                bundle: bundle.to_path_buf(),
                digest: a.digest,
                owner: owners.get(&a.digest).cloned().unwrap_or_default(),
                since: since_of(&index),
            });
        }
        new.insert(a.digest);
    }

    let mut written = Vec::new();
    let mut replaced: Vec<(SourceKey, Option<SourceState>)> = Vec::new();
    let result = async {
        write_artifacts(storage, bundle, &index, &new, opts, &mut written).await?;
        let mut report = Vec::new();
        for s in &index.sources {
            let old = storage.load_state(&s.key).await?;
            let merged = merge(old.as_ref(), &s.state);
            let changed = old.as_ref() != Some(&merged);
            if changed {
                replaced.push((s.key.clone(), old));
                storage.save_state(&s.key, &merged).await?;
            }
            report.push((s.key.clone(), merged.artifact, changed));
        }
        // A server's GC running on this store between the artifacts and the records could
        // have taken an artifact no record named yet; the records name them now, so GC leaves
        // a rewritten one alone.
        let mut lost = BTreeSet::new();
        for d in &written {
            if storage.artifact_size(d).await?.is_none() {
                lost.insert(*d);
            }
        }
        if !lost.is_empty() {
            write_artifacts(storage, bundle, &index, &lost, opts, &mut Vec::new()).await?;
        }
        Ok(report)
    }
    .await;
    let sources = match result {
        Ok(sources) => sources,
        Err(e) => {
            roll_back(storage, &written, replaced).await;
            return Err(e);
        }
    };
    // Last, as the server does: pointers for agents that read the store (`--artifact-store`),
    // each naming an artifact and record already written. Rewritten every time (same bytes),
    // so an import interrupted here is completed by running it again.
    for (key, artifact, _) in &sources {
        if let Some(a) = artifact
            && matches!(key.kind, SourceKind::GitRepository | SourceKind::Bucket)
        {
            storage
                .put_pointer(&ferry_proto::api::ArtifactEvent {
                    kind: key.kind,
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    revision: a.revision.clone(),
                    digest: a.digest,
                    size: a.size,
                    url: a.url.clone(),
                })
                .await?;
        }
    }
    Ok(Imported {
        identity,
        sources,
        written: written.len(),
        present,
    })
}

/// Pass 2: writes the artifacts in `new`, verifying each again from the bytes it writes.
async fn write_artifacts(
    storage: &Storage,
    bundle: &Path,
    index: &Index,
    new: &BTreeSet<Digest>,
    opts: &ImportOptions,
    written: &mut Vec<Digest>,
) -> Result<(), BundleError> {
    if new.is_empty() {
        return Ok(());
    }
    let listed: BTreeMap<Digest, &IndexArtifact> =
        index.artifacts.iter().map(|a| (a.digest, a)).collect();
    let source = DeltaSource {
        since: since_of(index),
        owner: String::new(),
    };
    let mut archive = open(bundle)?;
    let entries = archive.entries().map_err(truncated(bundle, "start"))?;
    for entry in entries {
        let mut entry = entry.map_err(truncated(bundle, "second pass"))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let (Entry::Artifact(digest) | Entry::Delta(digest)) =
            classify(bundle, &name, entry.header().entry_type())?
        else {
            continue;
        };
        let Some(a) = listed.get(&digest).filter(|_| new.contains(&digest)) else {
            continue;
        };
        if written.contains(&digest) {
            continue;
        }
        let bytes = read_bounded(
            bundle,
            &name,
            &mut entry,
            a.compressed_size,
            a.compressed_size,
        )?;
        let gz = match a.base {
            None => {
                check_artifact(bundle, &name, &mut &bytes[..], a)?;
                bytes
            }
            Some(base) => {
                let tar = rebuild(storage, bundle, &name, a, base, &bytes, &source, opts).await?;
                crate::artifact::compress(&tar)
                    .map_err(|source| BundleError::Io {
                        file: bundle.to_path_buf(),
                        source,
                    })?
                    .2
            }
        };
        storage.put_artifact(&digest, Bytes::from(gz)).await?;
        written.push(digest);
    }
    if let Some(d) = new.iter().find(|d| !written.contains(d)) {
        return Err(BundleError::Truncated {
            bundle: bundle.to_path_buf(),
            at: super::artifact_entry(d),
            detail: "gone in the second pass (the file changed during the import)".into(),
        });
    }
    Ok(())
}

/// Undoes a failed import: its new artifacts go, replaced states come back.
async fn roll_back(
    storage: &Storage,
    written: &[Digest],
    replaced: Vec<(SourceKey, Option<SourceState>)>,
) {
    for (key, old) in replaced.into_iter().rev() {
        let r = match old {
            Some(s) => storage.save_state(&key, &s).await,
            None => storage.delete_state(&key).await,
        };
        if let Err(e) = r {
            tracing::warn!(source = %key, error = %e, "restoring state after a failed import");
        }
    }
    for d in written {
        if let Err(e) = storage.delete_artifact(d).await {
            tracing::warn!(digest = %d, error = %e, "removing an artifact of a failed import");
        }
    }
}

/// The record after importing `new` over `old`: the bundle's current artifact, the bundle's
/// history, then what the store had (its current artifact first). The same bundle again gives
/// the same record.
fn merge(old: Option<&SourceState>, new: &SourceState) -> SourceState {
    let Some(old) = old else {
        return new.clone();
    };
    let Some(current) = new.artifact.as_ref().map(|a| a.digest) else {
        // Nothing to serve in the bundle: keep what the store serves.
        return old.clone();
    };
    let mut history: Vec<Digest> = Vec::new();
    for d in new
        .history
        .iter()
        .chain(old.artifact.iter().map(|a| &a.digest))
        .chain(&old.history)
    {
        if *d != current && !history.contains(d) {
            history.push(*d);
        }
    }
    let mut charts = new.charts.clone();
    for c in &old.charts {
        if !charts
            .iter()
            .any(|n| n.chart == c.chart && n.range == c.range)
        {
            charts.push(c.clone());
        }
    }
    SourceState {
        artifact: new.artifact.clone(),
        history,
        observed_ignore: new.observed_ignore.clone(),
        skipped: new.skipped.clone(),
        charts,
        index: new.index.clone(),
    }
}
