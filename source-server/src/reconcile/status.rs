//! Status bookkeeping: the conditions a reconcile leaves behind, and the API views of a source.

use ferry_proto::api::{ArtifactEvent, BucketView, Severity, SourceView};
use ferry_proto::condition::{self, Progress, reason, record, remove_condition, set_condition};
use ferry_proto::{
    ArtifactRef, Condition, ConditionStatus, GitRepositorySpec, GitRepositoryStatus, artifact_path,
};

use super::{Inner, Slot};
use crate::SourceKey;
use crate::backend::BackendError;
use crate::config::{DesiredSource, InvalidSource, SourceSpec};
use crate::storage::SourceState;

/// The API view of a running GitRepository (`None` for other kinds).
pub(super) fn view(key: &SourceKey, slot: &Slot) -> Option<SourceView> {
    Some(SourceView {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        kind: key.kind.to_string(),
        spec: redacted(slot.desired.spec.git()?),
        status: view_status(key, slot),
    })
}

/// The API view of a running Bucket (`None` for other kinds).
pub(super) fn bucket_view(key: &SourceKey, slot: &Slot) -> Option<BucketView> {
    Some(BucketView {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        kind: key.kind.to_string(),
        spec: slot.desired.spec.bucket()?.clone(),
        status: view_status(key, slot),
    })
}

/// The API view of a refused GitRepository document.
pub(super) fn invalid_view(key: &SourceKey, invalid: &InvalidSource) -> Option<SourceView> {
    Some(SourceView {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        kind: key.kind.to_string(),
        spec: redacted(invalid.spec.git()?),
        status: invalid_status(key, invalid),
    })
}

/// The API view of a refused Bucket document.
pub(super) fn invalid_bucket_view(key: &SourceKey, invalid: &InvalidSource) -> Option<BucketView> {
    Some(BucketView {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        kind: key.kind.to_string(),
        spec: invalid.spec.bucket()?.clone(),
        status: invalid_status(key, invalid),
    })
}

fn view_status(key: &SourceKey, slot: &Slot) -> GitRepositoryStatus {
    let mut status = slot.status.clone();
    if let Some(refused) = &slot.rejected {
        // Over the reconcile's own conditions, which keep describing the served settings.
        let message = format!(
            "{}; the last valid settings (generation {}) are still served",
            invalid_message(key, refused),
            slot.desired
                .generation
                .map_or_else(|| "unknown".to_string(), |g| g.to_string()),
        );
        record(
            &mut status.conditions,
            refused.generation,
            Progress::Stalled {
                reason: reason::INVALID_SPEC,
                message: &message,
            },
        );
    }
    status
}

/// `spec` with the credentials of its URL removed: what the API shows (a `user:token@` in
/// `spec.url` is a secret; the Secret of `secretRef` never leaves the server either).
pub(super) fn redacted(spec: &GitRepositorySpec) -> GitRepositorySpec {
    GitRepositorySpec {
        url: crate::git::redact_url(&spec.url),
        ..spec.clone()
    }
}

pub(super) fn artifact_event(key: &SourceKey, a: &ArtifactRef) -> ArtifactEvent {
    ArtifactEvent {
        kind: key.kind,
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        revision: a.revision.clone(),
        digest: a.digest,
        size: a.size,
        url: a.url.clone(),
    }
}

pub(crate) fn artifact_url(public_url: &str, digest: &ferry_proto::Digest) -> String {
    format!(
        "{}{}",
        public_url.trim_end_matches('/'),
        artifact_path(digest)
    )
}

pub(super) fn initial_status(
    public_url: &str,
    src: &DesiredSource,
    state: SourceState,
) -> GitRepositoryStatus {
    let mut status = GitRepositoryStatus {
        observed_generation: src.generation,
        artifact: state.artifact.map(|mut a| {
            // The server may be reachable at another address than in its last life.
            a.url = artifact_url(public_url, &a.digest);
            a
        }),
        skipped: state.skipped,
        observed_ignore: state.observed_ignore,
        conditions: Vec::new(),
        last_handled_reconcile_at: None,
    };
    let message = format!("{} {}: reconciliation in progress", src.key.kind, src.key);
    record(
        &mut status.conditions,
        src.generation,
        Progress::Progressing { message: &message },
    );
    if let Some(a) = &status.artifact {
        set_condition(
            &mut status.conditions,
            Condition::new(
                condition::ARTIFACT_IN_STORAGE,
                ConditionStatus::True,
                reason::SUCCEEDED,
                format!("stored artifact for revision '{}'", a.revision),
            ),
        );
    }
    status
}

/// The status of a source whose config document is refused: `Stalled`, naming the field —
/// retrying cannot help, an edit of the config will.
pub(super) fn invalid_status(key: &SourceKey, invalid: &InvalidSource) -> GitRepositoryStatus {
    let mut status = GitRepositoryStatus {
        observed_generation: invalid.generation,
        ..Default::default()
    };
    let message = invalid_message(key, invalid);
    record(
        &mut status.conditions,
        invalid.generation,
        Progress::Stalled {
            reason: reason::INVALID_SPEC,
            message: &message,
        },
    );
    status
}

pub(super) fn invalid_message(key: &SourceKey, invalid: &InvalidSource) -> String {
    format!(
        "{} {key}: invalid spec: {}: {} ({}, document {})",
        key.kind,
        invalid.error.field,
        invalid.error.message,
        invalid.error.file,
        invalid.error.document
    )
}

pub(super) fn succeed(inner: &Inner, src: &DesiredSource, rev: &ferry_proto::Revision) {
    inner.update_status(&src.key, |slot| {
        let c = &mut slot.status.conditions;
        let msg = format!("stored artifact for revision '{rev}'");
        record(
            c,
            src.generation,
            Progress::Succeeded {
                reason: reason::SUCCEEDED,
                message: &msg,
            },
        );
        set_condition(
            c,
            Condition::new(
                condition::ARTIFACT_IN_STORAGE,
                ConditionStatus::True,
                reason::SUCCEEDED,
                &msg,
            ),
        );
        remove_condition(c, condition::FETCH_FAILED);
        slot.status.observed_generation = src.generation;
    });
}

/// Records a failed reconcile: `Retrying` when [`BackendError::retryable`], else `Stalled`.
pub(super) fn fail(inner: &Inner, src: &DesiredSource, e: &BackendError) {
    let key = &src.key;
    let retry = e.retryable();
    inner.metrics.failure(key, e.reason);
    let message = match &src.spec {
        SourceSpec::Git(g) => crate::git::redact_credentials(&e.message, &g.url),
        SourceSpec::Bucket(_) => e.message.clone(),
    };
    let message = if message.contains(&key.to_string()) {
        message
    } else {
        format!("{} {key}: {message}", key.kind)
    };
    tracing::warn!(reason = %e.reason, error = %message, retry, "reconcile failed");
    inner
        .notifications
        .emit_source(key, Severity::Error, e.reason, &message, None);
    inner.update_status(key, |slot| {
        let c = &mut slot.status.conditions;
        let progress = if retry {
            Progress::Retrying {
                reason: e.reason,
                message: &message,
            }
        } else {
            Progress::Stalled {
                reason: e.reason,
                message: &message,
            }
        };
        record(c, src.generation, progress);
        set_condition(
            c,
            Condition::new(
                condition::FETCH_FAILED,
                ConditionStatus::True,
                e.reason,
                &message,
            ),
        );
        slot.status.observed_generation = src.generation;
    });
}
