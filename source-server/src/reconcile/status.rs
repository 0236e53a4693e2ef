//! Status bookkeeping: the conditions a reconcile leaves behind, and the API views of a source.

use ferry_proto::api::{ArtifactEvent, SourceView};
use ferry_proto::condition::{self, reason, remove_condition, set_condition};
use ferry_proto::{ArtifactRef, Condition, ConditionStatus, GitRepositoryStatus, artifact_path};

use super::task::Next;
use super::{Inner, Slot};
use crate::SourceKey;
use crate::backend::BackendError;
use crate::config::DesiredSource;
use crate::storage::SourceState;

const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";

pub(super) fn view(key: &SourceKey, slot: &Slot) -> SourceView {
    SourceView {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        kind: "GitRepository".into(),
        spec: slot.desired.spec.clone(),
        status: slot.status.clone(),
    }
}

pub(super) fn artifact_event(key: &SourceKey, a: &ArtifactRef) -> ArtifactEvent {
    ArtifactEvent {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        revision: a.revision.clone(),
        digest: a.digest,
        size: a.size,
        url: a.url.clone(),
    }
}

pub(super) fn artifact_url(public_url: &str, digest: &ferry_proto::Digest) -> String {
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
    };
    let msg = format!("GitRepository {}: reconciliation in progress", src.key);
    set_condition(
        &mut status.conditions,
        Condition::new(
            condition::READY,
            ConditionStatus::Unknown,
            reason::PROGRESSING,
            &msg,
        ),
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

pub(super) fn succeed(inner: &Inner, src: &DesiredSource, rev: &ferry_proto::Revision) {
    inner.update_status(&src.key, |slot| {
        let c = &mut slot.status.conditions;
        let msg = format!("stored artifact for revision '{rev}'");
        set_condition(
            c,
            Condition::new(
                condition::READY,
                ConditionStatus::True,
                reason::SUCCEEDED,
                &msg,
            ),
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
        for t in [
            condition::RECONCILING,
            condition::STALLED,
            condition::FETCH_FAILED,
        ] {
            remove_condition(c, t);
        }
        slot.status.observed_generation = src.generation;
    });
}

pub(super) fn fail(inner: &Inner, src: &DesiredSource, e: &BackendError) -> Next {
    let key = &src.key;
    // RefNotFound is not transient in the network sense, but a push fixes it: keep retrying.
    let retry = e.transient || e.reason == reason::REF_NOT_FOUND;
    tracing::warn!(source = %key, reason = %e.reason, error = %e.message, retry, "reconcile failed");
    inner.metrics.failure(key, &e.reason);
    let message = if e.message.contains(&key.to_string()) {
        e.message.clone()
    } else {
        format!("GitRepository {key}: {}", e.message)
    };
    inner.update_status(key, |slot| {
        let c = &mut slot.status.conditions;
        set_condition(
            c,
            Condition::new(
                condition::READY,
                ConditionStatus::False,
                &e.reason,
                &message,
            ),
        );
        set_condition(
            c,
            Condition::new(
                condition::FETCH_FAILED,
                ConditionStatus::True,
                &e.reason,
                &message,
            ),
        );
        if retry {
            set_condition(
                c,
                Condition::new(
                    condition::RECONCILING,
                    ConditionStatus::True,
                    PROGRESSING_WITH_RETRY,
                    format!("GitRepository {key}: retrying with backoff"),
                ),
            );
            remove_condition(c, condition::STALLED);
        } else {
            set_condition(
                c,
                Condition::new(
                    condition::STALLED,
                    ConditionStatus::True,
                    &e.reason,
                    &message,
                ),
            );
            remove_condition(c, condition::RECONCILING);
        }
        slot.status.observed_generation = src.generation;
    });
    if retry {
        Next::Backoff
    } else {
        Next::WaitForTrigger
    }
}
