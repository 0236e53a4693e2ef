//! Pointer records: a source's current artifact, `pointers/<kind>/<namespace>/<name>.json`.
//!
//! The writer stores the artifact first and the pointer after it (and a pointer never names
//! an artifact the source server's garbage collection may take: GC keeps every pointed-to
//! digest), so whoever reads a pointer finds its artifact. The record is the
//! [`ArtifactEvent`] the event stream announces; a reader trusts nothing in it but the digest
//! (the artifact is verified against it, and its path is built from it) and the revision it
//! reports. Readers poll with `If-None-Match`, so an unchanged pointer costs one `304`.

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutPayload};

use ferry_proto::api::ArtifactEvent;
use ferry_proto::{SourceKey, SourceKind};

/// A pointer record larger than this is refused (a real one is a few hundred bytes).
pub const MAX_POINTER_BYTES: usize = 64 * 1024;

/// Why a pointer could not be read or written; names the object.
#[derive(Debug, thiserror::Error)]
pub enum PointerError {
    /// The store refused the operation or could not be reached.
    #[error("{op} pointer {path}: {source}")]
    Store {
        /// `reading`, `writing`, `deleting` or `listing`.
        op: &'static str,
        /// The pointer's path in the store.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// The object is not a valid pointer for its source.
    #[error("pointer {path} is invalid: {reason}")]
    Invalid {
        /// The pointer's path in the store.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// Only GitRepository and Bucket sources have pointers.
    #[error("{kind} {key} has no pointer record (only GitRepository and Bucket sources do)")]
    Kind {
        /// The source's kind.
        kind: SourceKind,
        /// The source.
        key: SourceKey,
    },
}

fn kind_dir(kind: SourceKind) -> Option<&'static str> {
    match kind {
        SourceKind::GitRepository => Some("gitrepositories"),
        SourceKind::Bucket => Some("buckets"),
        SourceKind::HelmRepository | SourceKind::HelmChart => None,
    }
}

/// Where `key`'s pointer lives. Each part is one path segment (a `/` or `..` in a name is
/// encoded, never a directory step).
pub fn pointer_path(key: &SourceKey) -> Result<Path, PointerError> {
    let dir = kind_dir(key.kind).ok_or_else(|| PointerError::Kind {
        kind: key.kind,
        key: key.clone(),
    })?;
    Ok(Path::from_iter([
        "pointers",
        dir,
        key.namespace.as_str(),
        &format!("{}.json", key.name),
    ]))
}

/// Writes (replaces) the pointer of `event`'s source. Call it only after the artifact is
/// stored.
pub async fn write(store: &dyn ObjectStore, event: &ArtifactEvent) -> Result<(), PointerError> {
    let path = pointer_path(&event.source())?;
    let json = serde_json::to_vec(event).expect("ArtifactEvent serializes");
    store
        .put(&path, PutPayload::from(json))
        .await
        .map(drop)
        .map_err(|source| PointerError::Store {
            op: "writing",
            path: path.to_string(),
            source,
        })
}

/// Removes `key`'s pointer (the source is gone); a missing one is success.
pub async fn delete(store: &dyn ObjectStore, key: &SourceKey) -> Result<(), PointerError> {
    let path = pointer_path(key)?;
    match store.delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(PointerError::Store {
            op: "deleting",
            path: path.to_string(),
            source,
        }),
    }
}

/// What a (conditional) read of a pointer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PointerRead {
    /// The pointer, with its ETag for the next conditional read.
    Current {
        /// The record.
        event: ArtifactEvent,
        /// The object's ETag, when the store gives one.
        etag: Option<String>,
    },
    /// Unchanged since the ETag given.
    NotModified,
    /// No pointer: the source has no artifact in this store.
    Missing,
}

/// Reads `key`'s pointer; with `etag`, only when it changed since (`If-None-Match`). The record
/// is bounded to [`MAX_POINTER_BYTES`] and must name `key`.
pub async fn read(
    store: &dyn ObjectStore,
    key: &SourceKey,
    etag: Option<&str>,
) -> Result<PointerRead, PointerError> {
    let path = pointer_path(key)?;
    let failed = |source| PointerError::Store {
        op: "reading",
        path: path.to_string(),
        source,
    };
    let invalid = |reason: String| PointerError::Invalid {
        path: path.to_string(),
        reason,
    };
    let opts = GetOptions {
        if_none_match: etag.map(str::to_string),
        ..Default::default()
    };
    let result = match store.get_opts(&path, opts).await {
        Ok(r) => r,
        Err(object_store::Error::NotModified { .. }) => return Ok(PointerRead::NotModified),
        Err(object_store::Error::NotFound { .. }) => return Ok(PointerRead::Missing),
        Err(e) => return Err(failed(e)),
    };
    let new_etag = result.meta.e_tag.clone();
    if result.meta.size > MAX_POINTER_BYTES as u64 {
        return Err(invalid(format!(
            "{} bytes, limit {MAX_POINTER_BYTES}",
            result.meta.size
        )));
    }
    // The advertised size may lie: the bound holds on the bytes received.
    let mut body = Vec::new();
    let mut stream = result.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(failed)?;
        if body.len() + chunk.len() > MAX_POINTER_BYTES {
            return Err(invalid(format!("more than {MAX_POINTER_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let event: ArtifactEvent = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
    if event.source() != *key {
        return Err(invalid(format!(
            "it names {} {}/{}",
            event.kind, event.namespace, event.name
        )));
    }
    Ok(PointerRead::Current {
        event,
        etag: new_etag,
    })
}

/// Every readable pointer in the store (GC keeps what they name). A pointer that cannot be
/// parsed is an error, so a pass that cannot tell what is pointed to deletes nothing.
pub async fn list(store: &dyn ObjectStore) -> Result<Vec<ArtifactEvent>, PointerError> {
    let prefix = Path::from("pointers");
    let metas: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| PointerError::Store {
            op: "listing",
            path: prefix.to_string(),
            source,
        })?;
    let mut out = Vec::with_capacity(metas.len());
    for meta in metas {
        let path = meta.location.to_string();
        let invalid = |reason: String| PointerError::Invalid {
            path: path.clone(),
            reason,
        };
        if meta.size > MAX_POINTER_BYTES as u64 {
            return Err(invalid(format!(
                "{} bytes, limit {MAX_POINTER_BYTES}",
                meta.size
            )));
        }
        let bytes = store
            .get(&meta.location)
            .await
            .map_err(|source| PointerError::Store {
                op: "reading",
                path: path.clone(),
                source,
            })?
            .bytes()
            .await
            .map_err(|source| PointerError::Store {
                op: "reading",
                path: path.clone(),
                source,
            })?;
        out.push(serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::{Digest, Revision};
    use object_store::memory::InMemory;

    fn event(name: &str, content: &[u8]) -> ArtifactEvent {
        ArtifactEvent {
            kind: SourceKind::Bucket,
            namespace: "team-a".into(),
            name: name.into(),
            revision: Revision::new(None, "0".repeat(40)).expect("valid"),
            digest: Digest::of(content),
            size: 10,
            url: "/v1/artifacts/sha256/x".into(),
        }
    }

    #[tokio::test]
    async fn pointers_are_polled_with_etags_and_must_name_their_source() {
        let store = InMemory::new();
        let ev = event("app", b"one");
        let key = ev.source();
        assert_eq!(
            read(&store, &key, None).await.expect("read"),
            PointerRead::Missing
        );
        write(&store, &ev).await.expect("write");
        let PointerRead::Current { event: got, etag } =
            read(&store, &key, None).await.expect("read")
        else {
            panic!("pointer not read back");
        };
        assert_eq!(got, ev);
        let etag = etag.expect("memory store has etags");
        assert_eq!(
            read(&store, &key, Some(&etag)).await.expect("read"),
            PointerRead::NotModified
        );
        let next = event("app", b"two");
        write(&store, &next).await.expect("write");
        assert!(matches!(
            read(&store, &key, Some(&etag)).await.expect("read"),
            PointerRead::Current { event, .. } if event == next
        ));
        assert_eq!(list(&store).await.expect("list"), vec![next.clone()]);

        // Another source's record under this source's path is refused, naming both.
        let other = event("other", b"x");
        let path = pointer_path(&key).expect("path");
        store
            .put(&path, serde_json::to_vec(&other).expect("json").into())
            .await
            .expect("put");
        let err = read(&store, &key, None).await.expect_err("wrong source");
        assert!(
            err.to_string().contains("pointers/buckets/team-a/app.json")
                && err.to_string().contains("team-a/other"),
            "{err}"
        );
        // Oversized records are refused before parsing.
        store
            .put(&path, vec![b' '; MAX_POINTER_BYTES + 1].into())
            .await
            .expect("put");
        let err = read(&store, &key, None).await.expect_err("too big");
        assert!(err.to_string().contains("limit"), "{err}");
        delete(&store, &key).await.expect("delete");
        assert_eq!(
            read(&store, &key, None).await.expect("read"),
            PointerRead::Missing
        );
    }

    #[test]
    fn names_are_one_path_segment() {
        let key = SourceKey::of(SourceKind::GitRepository, "ns", "../../artifacts/x");
        let path = pointer_path(&key).expect("path");
        assert_eq!(path.parts().count(), 4, "{path}");
        assert!(pointer_path(&SourceKey::of(SourceKind::HelmRepository, "a", "b")).is_err());
    }
}
