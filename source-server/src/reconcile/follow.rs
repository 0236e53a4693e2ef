//! Serving a state record someone else wrote into the shared store: another replica's fetch
//! (with Leases, a replica that does not poll a source follows its poller), or an import
//! (`spec.url: ferry+import:…`, README "Air gap": no upstream is contacted, the record an import
//! writes is the truth).

use std::sync::Arc;

use ferry_proto::ArtifactRef;
use ferry_proto::condition::reason;

use super::Inner;
use super::status::{artifact_event, artifact_url, fail, succeed};
use super::task::Next;
use crate::backend::BackendError;
use crate::config::DesiredSource;
use crate::storage::StorageError;

/// Reads `src`'s record and, when its artifact (digest or revision) is not what is served,
/// serves it and announces it as if fetched here. Returns the record's artifact, if any, and
/// whether it is new here.
pub(super) async fn follow_record(
    inner: &Arc<Inner>,
    src: &DesiredSource,
) -> Result<Option<(ArtifactRef, bool)>, StorageError> {
    let key = &src.key;
    let Some(state) = inner.storage.load_state(key).await? else {
        return Ok(None);
    };
    let Some(mut artifact) = state.artifact else {
        return Ok(None);
    };
    artifact.url = artifact_url(&inner.opts.public_url, &artifact.digest);
    let served = inner
        .read_slots()
        .get(key)
        .and_then(|s| s.status.artifact.clone());
    let new = served
        .as_ref()
        .is_none_or(|s| s.digest != artifact.digest || s.revision != artifact.revision);
    if new {
        inner.update_status(key, |slot| {
            slot.status.artifact = Some(artifact.clone());
            slot.status.skipped = state.skipped;
            slot.status.observed_ignore = state.observed_ignore;
            slot.history = state.history;
        });
        succeed(inner, src, &artifact.revision);
        tracing::info!(source = %key, revision = %artifact.revision, digest = %artifact.digest, "artifact recorded in the store by another writer");
        inner.events.publish(artifact_event(key, &artifact));
    }
    Ok(Some((artifact, new)))
}

/// One reconcile of an imported-only source: serves its record; `Ready=False` until there is
/// one.
pub(super) async fn imported(inner: &Arc<Inner>, src: &DesiredSource) -> Next {
    let key = &src.key;
    match follow_record(inner, src).await {
        Ok(Some((artifact, new))) => {
            succeed(inner, src, &artifact.revision);
            if new {
                inner.metrics.artifact(
                    key,
                    artifact.size,
                    artifact.compressed_size.unwrap_or_default(),
                );
                inner.notifications.emit(crate::notification::source_event(
                    key,
                    ferry_proto::api::Severity::Info,
                    crate::notification::NEW_ARTIFACT,
                    &format!("imported artifact for revision '{}'", artifact.revision),
                    Some(&artifact.revision),
                ));
            }
            Next::Interval
        }
        Ok(None) => {
            fail(
                inner,
                src,
                &BackendError {
                    reason: reason::ARTIFACT_FAILED,
                    message: format!(
                        "{} {key}: nothing imported yet (import a bundle that holds it)",
                        key.kind
                    ),
                    transient: false,
                },
            );
            // Not a backoff: the next interval looks again, an import may have come.
            Next::Interval
        }
        Err(e) => {
            fail(
                inner,
                src,
                &BackendError {
                    reason: reason::STORAGE_OPERATION_FAILED,
                    message: format!("{} {key}: {e}", key.kind),
                    transient: true,
                },
            );
            Next::Backoff
        }
    }
}
