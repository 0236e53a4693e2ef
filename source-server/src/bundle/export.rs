//! Writing a bundle from a store: the selected sources' state records and every artifact they
//! name, each checked against its digest on the way out (a corrupt store is not exported). In
//! an incremental bundle a new artifact travels as a delta against one the destination has
//! when that is smaller.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_proto::verify::unpack_gz;
use ferry_proto::{ArtifactLimits, Digest, SourceKey};

use super::{
    BundleError, FORMAT, INDEX_ENTRY, Index, IndexArtifact, IndexSource, SIGNATURE_ENTRY,
    SigningKey, artifact_entry, delta, delta_entry, owner, read_stored,
};
use crate::storage::Storage;

/// What to export.
pub struct ExportOptions {
    /// `NS/NAME` of the sources to export (every kind of that name); empty: every source.
    pub sources: Vec<String>,
    /// The index (or bundle) of what the destination already has: its artifacts are left out.
    pub since: Option<PathBuf>,
    /// Signs the index.
    pub sign_key: Option<SigningKey>,
    /// Bounds decompression when checking stored artifacts.
    pub limits: ArtifactLimits,
}

/// A written bundle.
#[derive(Debug)]
pub struct Exported {
    /// sha256 of the index: the bundle's identity.
    pub identity: Digest,
    pub sources: usize,
    /// Artifacts named by the index.
    pub artifacts: usize,
    /// Artifacts carried in the bundle (whole or as deltas).
    pub included: usize,
    /// Of those, carried as deltas.
    pub deltas: usize,
    /// The bundle file's size.
    pub bytes: u64,
    pub signed: bool,
}

/// Writes the bundle of `storage` to `out` (through a temporary file next to it, so a failed
/// export leaves no partial bundle).
pub async fn export(
    storage: &Storage,
    opts: &ExportOptions,
    out: &Path,
) -> Result<Exported, BundleError> {
    let keys = select(storage, &opts.sources).await?;
    let base = opts
        .since
        .as_deref()
        .map(super::import::read_index_file)
        .transpose()?;
    // What the destination has, with the uncompressed sizes that bundle verified.
    let already: BTreeMap<Digest, u64> = base
        .iter()
        .flat_map(|(_, i)| i.artifacts.iter().map(|a| (a.digest, a.size)))
        .collect();

    let mut index = Index {
        format: FORMAT.to_string(),
        since: base.map(|(identity, _)| identity),
        sources: Vec::new(),
        artifacts: Vec::new(),
    };
    let mut deltas: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for key in keys {
        let Some(state) = storage.load_state(&key).await? else {
            continue;
        };
        let digests = Index::digests_of(&state);
        // The delta base: the newest of this source's artifacts the destination has.
        let delta_base = digests.iter().find(|d| already.contains_key(d)).copied();
        for digest in digests {
            if !seen.insert(digest) {
                continue;
            }
            if let Some(&size) = already.get(&digest) {
                // Left out: named, not read (the destination has it).
                let compressed_size = storage.artifact_size(&digest).await?.ok_or_else(|| {
                    BundleError::StoredArtifact {
                        owner: owner(&key),
                        digest,
                        reason: "not in the store".into(),
                    }
                })?;
                index.artifacts.push(IndexArtifact {
                    digest,
                    size,
                    compressed_size,
                    included: false,
                    base: None,
                });
                continue;
            }
            let gz = stored(storage, &key, &digest).await?;
            let tar = unpack_gz(&gz[..], digest, opts.limits.max_total_size).map_err(|e| {
                BundleError::StoredArtifact {
                    owner: owner(&key),
                    digest,
                    reason: e.to_string(),
                }
            })?;
            let mut artifact = IndexArtifact {
                digest,
                size: tar.len() as u64,
                compressed_size: gz.len() as u64,
                included: true,
                base: None,
            };
            if let Some(b) = delta_base {
                let base_gz = stored(storage, &key, &b).await?;
                let base_tar =
                    unpack_gz(&base_gz[..], b, opts.limits.max_total_size).map_err(|e| {
                        BundleError::StoredArtifact {
                            owner: owner(&key),
                            digest: b,
                            reason: e.to_string(),
                        }
                    })?;
                if let Some(d) = delta::encode(&base_tar, &tar) {
                    let d = crate::artifact::compress(&d)
                        .map_err(|source| BundleError::Io {
                            file: out.to_path_buf(),
                            source,
                        })?
                        .2;
                    // Worth it only when clearly smaller than the artifact itself.
                    if (d.len() as u64) < artifact.compressed_size / 10 * 9 {
                        artifact.compressed_size = d.len() as u64;
                        artifact.base = Some(b);
                        deltas.insert(digest, d);
                    }
                }
            }
            index.artifacts.push(artifact);
        }
        index.sources.push(IndexSource { key, state });
    }
    let index_bytes = serde_json::to_vec_pretty(&index).expect("an index serializes");
    let identity = Digest::of(&index_bytes);
    let signature = opts.sign_key.as_ref().map(|k| k.sign(&index_bytes));

    let tmp = PathBuf::from(format!("{}.partial", out.display()));
    let result = write(storage, &index, &index_bytes, signature, &deltas, &tmp, out).await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(Exported {
        identity,
        sources: index.sources.len(),
        artifacts: index.artifacts.len(),
        included: index.artifacts.iter().filter(|a| a.included).count(),
        deltas: deltas.len(),
        bytes: std::fs::metadata(out)
            .map_err(|source| BundleError::Io {
                file: out.to_path_buf(),
                source,
            })?
            .len(),
        signed: signature.is_some(),
    })
}

/// Writes the tar to `tmp`, then renames it to `out`.
async fn write(
    storage: &Storage,
    index: &Index,
    index_bytes: &[u8],
    signature: Option<[u8; 64]>,
    deltas: &BTreeMap<Digest, Vec<u8>>,
    tmp: &Path,
    out: &Path,
) -> Result<(), BundleError> {
    let io = |file: &Path| {
        let file = file.to_path_buf();
        move |source| BundleError::Io { file, source }
    };
    let file = std::fs::File::create(tmp).map_err(io(tmp))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    append(&mut tar, INDEX_ENTRY, index_bytes).map_err(io(tmp))?;
    if let Some(sig) = &signature {
        append(&mut tar, SIGNATURE_ENTRY, sig).map_err(io(tmp))?;
    }
    let owners: BTreeMap<Digest, &SourceKey> = index
        .sources
        .iter()
        .flat_map(|s| {
            Index::digests_of(&s.state)
                .into_iter()
                .map(move |d| (d, &s.key))
        })
        .collect();
    for a in index.artifacts.iter().filter(|a| a.included) {
        if let Some(d) = deltas.get(&a.digest) {
            append(&mut tar, &delta_entry(&a.digest), d).map_err(io(tmp))?;
            continue;
        }
        let key = owners[&a.digest];
        let gz = stored(storage, key, &a.digest).await?;
        if gz.len() as u64 != a.compressed_size {
            return Err(BundleError::StoredArtifact {
                owner: owner(key),
                digest: a.digest,
                reason: "changed size while exporting".into(),
            });
        }
        append(&mut tar, &artifact_entry(&a.digest), &gz).map_err(io(tmp))?;
    }
    let mut w = tar.into_inner().map_err(io(tmp))?;
    w.flush().map_err(io(tmp))?;
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .map_err(io(tmp))?;
    std::fs::rename(tmp, out).map_err(io(out))
}

/// The stored keys matching the `NS/NAME` selectors (all when none); a selector matching
/// nothing is an error.
async fn select(storage: &Storage, selectors: &[String]) -> Result<Vec<SourceKey>, BundleError> {
    let mut keys = storage.list_states().await?;
    keys.sort();
    if selectors.is_empty() {
        return Ok(keys);
    }
    let mut chosen = Vec::new();
    for sel in selectors {
        let matching: Vec<&SourceKey> = keys
            .iter()
            .filter(|k| format!("{}/{}", k.namespace, k.name) == *sel)
            .collect();
        if matching.is_empty() {
            return Err(BundleError::NoSuchSource(sel.clone()));
        }
        chosen.extend(matching.into_iter().cloned());
    }
    chosen.sort();
    chosen.dedup();
    Ok(chosen)
}

async fn stored(storage: &Storage, key: &SourceKey, digest: &Digest) -> Result<Bytes, BundleError> {
    read_stored(storage, digest)
        .await?
        .ok_or_else(|| BundleError::StoredArtifact {
            owner: owner(key),
            digest: *digest,
            reason: "not in the store".into(),
        })
}

/// A regular file entry with fixed metadata, so the same content gives the same bundle bytes.
fn append<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    tar.append_data(&mut h, name, data)
}
