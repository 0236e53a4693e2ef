//! Pass 1 of an import: everything about the bundle file is checked without writing — the
//! layout, the index, the signature, and every artifact (or delta) against its digest — and the
//! reading helpers pass 2 uses again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read};
use std::path::Path;

use ferry_proto::verify::{StreamError, check_gz, unpack_gz};
use ferry_proto::{ArtifactLimits, Digest, SourceKind};

use super::import::ImportOptions;
use super::{
    BundleError, FORMAT, INDEX_ENTRY, Index, IndexArtifact, MAX_ARTIFACTS, MAX_INDEX_BYTES,
    MAX_SOURCES, SIGNATURE_ENTRY, owner, read_stored,
};
use crate::storage::Storage;

/// What an entry of the layout is.
pub(super) enum Entry {
    Index,
    Signature,
    Artifact(Digest),
    Delta(Digest),
}

pub(super) fn classify(
    bundle: &Path,
    name: &str,
    kind: tar::EntryType,
) -> Result<Entry, BundleError> {
    let refuse = |reason: &str| BundleError::UnexpectedEntry {
        bundle: bundle.to_path_buf(),
        entry: name.to_string(),
        reason: reason.to_string(),
    };
    let entry = match name {
        INDEX_ENTRY => Entry::Index,
        SIGNATURE_ENTRY => Entry::Signature,
        _ => {
            let digest = |prefix: &str, suffix: &str| {
                name.strip_prefix(prefix)
                    .and_then(|n| n.strip_suffix(suffix))
                    .and_then(|hex| Digest::from_hex(hex).ok())
            };
            if let Some(d) = digest("artifacts/sha256/", ".tar.gz") {
                Entry::Artifact(d)
            } else if let Some(d) = digest("deltas/sha256/", ".gz") {
                Entry::Delta(d)
            } else {
                return Err(refuse(
                    "not part of a bundle (index.json, index.json.sig, \
                     artifacts/sha256/<64 hex>.tar.gz, deltas/sha256/<64 hex>.gz); nothing \
                     outside the store's layout is imported",
                ));
            }
        }
    };
    if kind != tar::EntryType::Regular {
        return Err(refuse(&format!(
            "a {kind:?} entry; a bundle holds regular files only"
        )));
    }
    Ok(entry)
}

pub(super) fn truncated(bundle: &Path, at: &str) -> impl FnOnce(std::io::Error) -> BundleError {
    let (bundle, at) = (bundle.to_path_buf(), at.to_string());
    move |e| BundleError::Truncated {
        bundle,
        at,
        detail: e.to_string(),
    }
}

pub(super) fn open(bundle: &Path) -> Result<tar::Archive<BufReader<std::fs::File>>, BundleError> {
    let file = std::fs::File::open(bundle).map_err(|source| BundleError::Io {
        file: bundle.to_path_buf(),
        source,
    })?;
    Ok(tar::Archive::new(BufReader::new(file)))
}

/// Reads an entry of at most `limit` bytes.
pub(super) fn read_bounded(
    bundle: &Path,
    name: &str,
    entry: &mut impl Read,
    size: u64,
    limit: u64,
) -> Result<Vec<u8>, BundleError> {
    if size > limit {
        return Err(BundleError::TooLarge {
            bundle: bundle.to_path_buf(),
            what: format!("entry {name}"),
            size,
            limit,
        });
    }
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    entry
        .take(size)
        .read_to_end(&mut buf)
        .map_err(truncated(bundle, name))?;
    if buf.len() as u64 != size {
        return Err(BundleError::Truncated {
            bundle: bundle.to_path_buf(),
            at: name.to_string(),
            detail: format!("{} of {size} bytes", buf.len()),
        });
    }
    Ok(buf)
}

/// Deflate's worst case: stored blocks add 5 bytes per 64 KiB, plus the gzip framing.
fn max_compressed(size: u64) -> u64 {
    size + size / 1000 + 1024
}

/// Checks what the index says, before any artifact is looked at; returns, for each digest, a
/// source that names it (for messages).
fn check_index(
    bundle: &Path,
    index: &Index,
    limits: &ArtifactLimits,
) -> Result<BTreeMap<Digest, String>, BundleError> {
    let bad = |reason: String| BundleError::Index {
        bundle: bundle.to_path_buf(),
        reason,
    };
    if index.format != FORMAT {
        return Err(bad(format!(
            "format {:?}; this version reads {FORMAT:?}",
            index.format
        )));
    }
    if index.sources.len() > MAX_SOURCES || index.artifacts.len() > MAX_ARTIFACTS {
        return Err(bad(format!(
            "{} sources and {} artifacts; at most {MAX_SOURCES} and {MAX_ARTIFACTS}",
            index.sources.len(),
            index.artifacts.len()
        )));
    }
    let mut listed = BTreeMap::new();
    for a in &index.artifacts {
        if listed.insert(a.digest, a).is_some() {
            return Err(bad(format!("artifact {} is listed twice", a.digest)));
        }
        if let Some(b) = a.base
            && (b == a.digest || !a.included)
        {
            return Err(bad(format!("artifact {}: bad delta base {b}", a.digest)));
        }
        if a.size > limits.max_total_size || a.compressed_size > max_compressed(a.size) {
            return Err(bad(format!(
                "artifact {}: {} bytes ({} compressed), above the artifact size limit of {} \
                 (--max-artifact-size)",
                a.digest, a.size, a.compressed_size, limits.max_total_size
            )));
        }
    }
    let mut owners = BTreeMap::new();
    let mut keys = BTreeSet::new();
    for s in &index.sources {
        let k = &s.key;
        let what = format!("source {} {k}", k.kind);
        if !matches!(
            k.kind,
            SourceKind::GitRepository | SourceKind::Bucket | SourceKind::HelmRepository
        ) {
            return Err(bad(format!("{what}: a {} has no state of its own", k.kind)));
        }
        for part in [&k.namespace, &k.name] {
            crate::config::check_name(part).map_err(|e| bad(format!("{what}: {e}")))?;
        }
        if !keys.insert(k.clone()) {
            return Err(bad(format!("{what} is listed twice")));
        }
        for d in Index::digests_of(&s.state) {
            if !listed.contains_key(&d) {
                return Err(bad(format!(
                    "{what} names artifact {d}, which the index does not list"
                )));
            }
            owners.entry(d).or_insert_with(|| owner(k));
        }
    }
    Ok(owners)
}

/// What pass 1 learnt: the identity, the index, and who names each artifact.
pub(super) struct Verified {
    pub identity: Digest,
    pub index: Index,
    pub owners: BTreeMap<Digest, String>,
}

/// The index as read in pass 1, with its bytes (for the signature).
struct ReadIndex {
    identity: Digest,
    bytes: Vec<u8>,
    index: Index,
    owners: BTreeMap<Digest, String>,
}

/// Pass 1: everything about the file, reading the store only for the bases of deltas.
pub(super) async fn verify_file(
    storage: &Storage,
    bundle: &Path,
    opts: &ImportOptions,
) -> Result<Verified, BundleError> {
    let size = std::fs::metadata(bundle)
        .map_err(|source| BundleError::Io {
            file: bundle.to_path_buf(),
            source,
        })?
        .len();
    if size > opts.limits.max_bundle_size {
        return Err(BundleError::TooLarge {
            bundle: bundle.to_path_buf(),
            what: "the bundle".into(),
            size,
            limit: opts.limits.max_bundle_size,
        });
    }
    let index_err = |reason: String| BundleError::Index {
        bundle: bundle.to_path_buf(),
        reason,
    };
    let mut archive = open(bundle)?;
    let mut at = "start".to_string();
    let mut read: Option<ReadIndex> = None;
    let mut signature: Option<Vec<u8>> = None;
    let mut seen = BTreeSet::new();
    let entries = archive.entries().map_err(truncated(bundle, &at))?;
    for (n, entry) in entries.enumerate() {
        if n >= MAX_ARTIFACTS + 2 {
            return Err(BundleError::TooLarge {
                bundle: bundle.to_path_buf(),
                what: "the number of entries".into(),
                size: n as u64 + 1,
                limit: MAX_ARTIFACTS as u64 + 2,
            });
        }
        let mut entry = entry.map_err(truncated(bundle, &format!("after {at}")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = classify(bundle, &name, entry.header().entry_type())?;
        let size = entry.header().size().map_err(truncated(bundle, &name))?;
        let order = |what: &str| BundleError::UnexpectedEntry {
            bundle: bundle.to_path_buf(),
            entry: name.clone(),
            reason: what.to_string(),
        };
        let digest = match kind {
            Entry::Index if n == 0 => {
                let bytes = read_bounded(bundle, &name, &mut entry, size, MAX_INDEX_BYTES)?;
                let index: Index =
                    serde_json::from_slice(&bytes).map_err(|e| index_err(e.to_string()))?;
                let owners = check_index(bundle, &index, &opts.limits.artifact)?;
                let identity = Digest::of(&bytes);
                read = Some(ReadIndex {
                    identity,
                    bytes,
                    index,
                    owners,
                });
                at = name;
                continue;
            }
            Entry::Index => return Err(order("index.json must be the first entry, once")),
            Entry::Signature if n == 1 && read.is_some() => {
                signature = Some(read_bounded(bundle, &name, &mut entry, size, 64)?);
                at = name;
                continue;
            }
            Entry::Signature => {
                return Err(order("index.json.sig must follow index.json, once"));
            }
            Entry::Artifact(d) | Entry::Delta(d) => d,
        };
        let Some(r) = &read else {
            return Err(order("an artifact before index.json"));
        };
        let listed = r.index.artifacts.iter().find(|a| a.digest == digest);
        let Some(listed) = listed.filter(|a| a.included) else {
            return Err(order(
                "the index does not list this artifact as included in the bundle",
            ));
        };
        if matches!(kind, Entry::Delta(_)) != listed.base.is_some() {
            return Err(order(
                "the index lists this artifact in the other form (whole or delta)",
            ));
        }
        if !seen.insert(digest) {
            return Err(order("a second entry for the same artifact"));
        }
        if size != listed.compressed_size {
            return Err(order(&format!(
                "{size} bytes, the index says {}",
                listed.compressed_size
            )));
        }
        match listed.base {
            None => check_artifact(bundle, &name, &mut entry, listed)?,
            Some(base) => {
                let delta = read_bounded(bundle, &name, &mut entry, size, size)?;
                let since = since_of(&r.index);
                let owner = r.owners.get(&digest).cloned().unwrap_or_default();
                let source = DeltaSource { since, owner };
                rebuild(storage, bundle, &name, listed, base, &delta, &source, opts).await?;
            }
        }
        at = name;
    }
    let Some(ReadIndex {
        identity,
        bytes,
        index,
        owners,
    }) = read
    else {
        return Err(index_err("missing (the bundle's first entry)".into()));
    };
    if let Some(key) = &opts.verify_key {
        let sig = signature.ok_or_else(|| BundleError::Signature {
            bundle: bundle.to_path_buf(),
            reason: format!(
                "the bundle is not signed ({SIGNATURE_ENTRY} is missing) and --verify-key requires it"
            ),
        })?;
        key.verify(&bytes, &sig)
            .map_err(|reason| BundleError::Signature {
                bundle: bundle.to_path_buf(),
                reason,
            })?;
    }
    if let Some(a) = index
        .artifacts
        .iter()
        .find(|a| a.included && !seen.contains(&a.digest))
    {
        return Err(BundleError::MissingArtifact {
            bundle: bundle.to_path_buf(),
            digest: a.digest,
            owner: owners.get(&a.digest).cloned().unwrap_or_default(),
        });
    }
    Ok(Verified {
        identity,
        index,
        owners,
    })
}

pub(super) fn since_of(index: &Index) -> String {
    index
        .since
        .map_or_else(|| "no base".to_string(), |d| d.to_string())
}

/// Checks a whole artifact entry against its digest and the index's size.
pub(super) fn check_artifact(
    bundle: &Path,
    name: &str,
    entry: &mut impl Read,
    listed: &IndexArtifact,
) -> Result<(), BundleError> {
    let digest = listed.digest;
    check_gz(entry, digest, listed.size)
        .and_then(|tar_size| {
            if tar_size == listed.size {
                Ok(())
            } else {
                Err(StreamError::Gzip {
                    digest,
                    why: format!(
                        "decompresses to {tar_size} bytes, the index says {}",
                        listed.size
                    ),
                })
            }
        })
        .map_err(|source| BundleError::Artifact {
            bundle: bundle.to_path_buf(),
            entry: name.to_string(),
            source,
        })
}

/// For messages about a delta's base.
pub(super) struct DeltaSource {
    pub since: String,
    pub owner: String,
}

/// Rebuilds the tar of a delta entry from its base in the store, checked against the digest.
#[allow(clippy::too_many_arguments)]
pub(super) async fn rebuild(
    storage: &Storage,
    bundle: &Path,
    name: &str,
    listed: &IndexArtifact,
    base: Digest,
    delta: &[u8],
    source: &DeltaSource,
    opts: &ImportOptions,
) -> Result<Vec<u8>, BundleError> {
    let bad = |reason: String| BundleError::Delta {
        bundle: bundle.to_path_buf(),
        entry: name.to_string(),
        reason,
    };
    let base_gz = read_stored(storage, &base)
        .await?
        .ok_or_else(|| BundleError::NotInStorage {
            bundle: bundle.to_path_buf(),
            digest: base,
            owner: source.owner.clone(),
            since: source.since.clone(),
        })?;
    let base_tar = unpack_gz(&base_gz[..], base, opts.limits.artifact.max_total_size)
        .map_err(|e| bad(format!("its base in the store: {e}")))?;
    let tar = super::delta::apply(&base_tar, delta, listed.size).map_err(bad)?;
    let actual = Digest::of(&tar);
    if actual != listed.digest || tar.len() as u64 != listed.size {
        return Err(BundleError::Artifact {
            bundle: bundle.to_path_buf(),
            entry: name.to_string(),
            source: StreamError::DigestMismatch {
                expected: listed.digest,
                actual,
            },
        });
    }
    Ok(tar)
}
