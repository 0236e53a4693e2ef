//! The Kustomization's status: Flux's conditions and reasons, revisions, observedGeneration and
//! the inventory. Pure transitions on [`KustomizationStatus`], and one write (a merge patch of
//! the status subresource) so every reconcile publishes one consistent state.

use ferry_proto::Digest;
use ferry_proto::condition::{
    self, Condition, ConditionStatus, Progress, READY, reason, record, remove_condition,
    set_condition,
};
use ferry_proto::kustomization::{DriftReport, Inventory, Kustomization, KustomizationStatus};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

// `Ready`, `Reconciling` and `Stalled` are decided by `condition::record`, the state machine
// the source server uses too; these functions say what happened and keep the rest of the
// status (revisions, inventory) consistent with it.

/// A reconcile started for `revision`.
pub fn progressing(st: &mut KustomizationStatus, generation: Option<i64>, revision: &str) {
    let message = format!("Reconciliation in progress for revision {revision}");
    record(
        &mut st.conditions,
        generation,
        Progress::Progressing { message: &message },
    );
}

/// `revision` (artifact `digest`) was applied, pruned and is healthy.
pub fn succeeded(
    st: &mut KustomizationStatus,
    generation: Option<i64>,
    revision: &str,
    digest: Digest,
    inventory: Inventory,
) {
    let message = format!("Applied revision: {revision}");
    record(
        &mut st.conditions,
        generation,
        Progress::Succeeded {
            reason: reason::RECONCILIATION_SUCCEEDED,
            message: &message,
        },
    );
    st.observed_generation = generation;
    st.last_applied_revision = Some(revision.to_string());
    st.last_attempted_revision = Some(revision.to_string());
    st.last_applied_digest = Some(digest);
    st.inventory = Some(inventory);
}

/// The reconcile failed with Flux reason `why` (one of [`reason`]) and will be retried
/// (`Reconciling=True`, `ProgressingWithRetry`); the last applied revision and the inventory
/// are kept as they were — nothing was pruned.
pub fn failed(
    st: &mut KustomizationStatus,
    generation: Option<i64>,
    why: &'static str,
    message: &str,
    attempted_revision: Option<&str>,
) {
    record(
        &mut st.conditions,
        generation,
        Progress::Retrying {
            reason: why,
            message,
        },
    );
    attempted(st, generation, attempted_revision);
}

/// Retrying cannot help (an invalid spec): Ready=False and Stalled=True with Flux reason `why`,
/// until the spec changes. Like [`failed`], the last applied revision and the inventory stay.
pub fn stalled(
    st: &mut KustomizationStatus,
    generation: Option<i64>,
    why: &'static str,
    message: &str,
) {
    record(
        &mut st.conditions,
        generation,
        Progress::Stalled {
            reason: why,
            message,
        },
    );
    attempted(st, generation, None);
}

fn attempted(st: &mut KustomizationStatus, generation: Option<i64>, revision: Option<&str>) {
    st.observed_generation = generation;
    if let Some(r) = revision {
        st.last_attempted_revision = Some(r.to_string());
    }
}

/// Suspended: nothing is applied until `spec.suspend` is cleared (`Ready` keeps its status,
/// reason `Suspended`).
pub fn suspended(st: &mut KustomizationStatus, generation: Option<i64>, name: &str) {
    let message = format!("Kustomization {name} is suspended; nothing is applied");
    record(
        &mut st.conditions,
        generation,
        Progress::Suspended { message: &message },
    );
    st.observed_generation = generation;
}

/// Records (or clears) drift found in detect mode. The Ready condition stays as it is: the
/// applied revision is still the desired one; drift is its own fact.
pub fn set_drift(st: &mut KustomizationStatus, drift: Option<DriftReport>) {
    match &drift {
        Some(d) => set_condition(
            &mut st.conditions,
            Condition::new(
                reason::DRIFT_DETECTED,
                ConditionStatus::True,
                reason::DRIFT_DETECTED,
                format!(
                    "{} object(s) differ from the desired state",
                    d.objects.len() + d.omitted as usize
                ),
            ),
        ),
        None => remove_condition(&mut st.conditions, reason::DRIFT_DETECTED),
    }
    st.drift = drift;
}

pub fn is_ready(st: Option<&KustomizationStatus>) -> bool {
    st.and_then(|s| condition::find_condition(&s.conditions, READY))
        .is_some_and(Condition::is_true)
}

/// Whether `ks` is Ready at its current generation with `digest` applied: an announcement of
/// that artifact (the source stream repeats the current ones whenever it connects) gives a
/// reconcile nothing to do that the interval would not do anyway.
pub fn has_applied(ks: &Kustomization, digest: &Digest) -> bool {
    ks.status
        .as_ref()
        .is_some_and(|st| up_to_date(st, ks.metadata.generation, digest))
}

/// Ready, at `generation`, with `digest` applied: only drift can be left to do.
pub fn up_to_date(st: &KustomizationStatus, generation: Option<i64>, digest: &Digest) -> bool {
    st.last_applied_digest.as_ref() == Some(digest)
        && st.observed_generation == generation
        && is_ready(Some(st))
}

/// Why the status was not written. Either way the status on the server is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The status did not serialise to a JSON object; writing anything else would erase the
    /// inventory prune relies on, so nothing is written.
    #[error("Kustomization {name}: status cannot be serialised: {why}")]
    Serialize { name: String, why: String },
    /// The API server refused the status patch.
    #[error("Kustomization {name}: writing status: {source}")]
    Patch {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The merge patch that makes the server's status exactly `st`: absent optional fields are sent
/// as `null` so the patch removes them (a cleared drift report must disappear). A status that
/// does not serialise to an object is an error, never an empty patch.
pub fn patch_body<S: serde::Serialize>(name: &str, st: &S) -> Result<Value, StatusError> {
    let serialize = |why: String| StatusError::Serialize {
        name: name.to_string(),
        why,
    };
    let value = serde_json::to_value(st).map_err(|e| serialize(e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(serialize(format!("expected an object, got {value}")));
    };
    for key in [
        "observedGeneration",
        "lastAppliedRevision",
        "lastAttemptedRevision",
        "lastAppliedDigest",
        "inventory",
        "drift",
    ] {
        map.entry(key).or_insert(Value::Null);
    }
    map.entry("conditions").or_insert(json!([]));
    Ok(json!({ "status": map }))
}

/// Writes `st` as the status of `name` (see [`patch_body`]).
pub async fn write(
    api: &Api<Kustomization>,
    name: &str,
    st: &KustomizationStatus,
) -> Result<(), StatusError> {
    let body = patch_body(name, st)?;
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map_err(|source| StatusError::Patch {
            name: name.to_string(),
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::condition::{RECONCILING, STALLED, find_condition, is_stalled};

    fn digest() -> Digest {
        "sha256:0000000000000000000000000000000000000000000000000000000000000000"
            .parse()
            .expect("digest")
    }

    #[test]
    fn failure_keeps_last_applied_revision_and_inventory() {
        let mut st = KustomizationStatus::default();
        let inv = Inventory::default();
        succeeded(&mut st, Some(1), "main@sha1:aaa", digest(), inv.clone());
        assert!(is_ready(Some(&st)));
        progressing(&mut st, Some(2), "main@sha1:bbb");
        assert!(find_condition(&st.conditions, RECONCILING).is_some());
        failed(
            &mut st,
            Some(2),
            reason::BUILD_FAILED,
            "kustomization.yaml: bad",
            Some("main@sha1:bbb"),
        );
        let ready = find_condition(&st.conditions, READY).expect("ready");
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.reason, "BuildFailed");
        assert_eq!(st.last_applied_revision.as_deref(), Some("main@sha1:aaa"));
        assert_eq!(st.last_attempted_revision.as_deref(), Some("main@sha1:bbb"));
        assert_eq!(st.inventory, Some(inv));
        assert!(!is_ready(Some(&st)));
    }

    #[test]
    fn only_the_applied_artifact_at_the_current_generation_is_old_news() {
        let other: Digest =
            "sha256:1111111111111111111111111111111111111111111111111111111111111111"
                .parse()
                .expect("digest");
        let mut ks = Kustomization::new("app", Default::default());
        ks.metadata.generation = Some(2);
        assert!(!has_applied(&ks, &digest()), "no status yet");
        let mut st = KustomizationStatus::default();
        succeeded(
            &mut st,
            Some(2),
            "main@sha1:aaa",
            digest(),
            Inventory::default(),
        );
        ks.status = Some(st.clone());
        assert!(has_applied(&ks, &digest()));
        assert!(!has_applied(&ks, &other), "a new artifact");
        ks.metadata.generation = Some(3);
        assert!(!has_applied(&ks, &digest()), "the spec changed since");
        ks.metadata.generation = Some(2);
        failed(
            &mut st,
            Some(2),
            reason::HEALTH_CHECK_FAILED,
            "not ready",
            None,
        );
        ks.status = Some(st);
        assert!(
            !has_applied(&ks, &digest()),
            "failed: the announcement retries now"
        );
    }

    /// Defect 7: a status that fails to serialise used to become `{}` with every field
    /// (the inventory included) nulled by the patch: prune would have lost its record.
    #[test]
    fn a_status_that_does_not_serialise_is_an_error_not_an_empty_patch() {
        struct Unserialisable;
        impl serde::Serialize for Unserialisable {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("broken"))
            }
        }
        let err = patch_body("app", &Unserialisable).expect_err("must not produce a patch");
        assert!(
            matches!(&err, StatusError::Serialize { name, why } if name == "app" && why.contains("broken")),
            "{err}"
        );
        let err = patch_body("app", &"not an object").expect_err("must be an object");
        assert!(matches!(err, StatusError::Serialize { .. }), "{err}");

        let mut st = KustomizationStatus::default();
        succeeded(
            &mut st,
            Some(1),
            "main@sha1:abc",
            digest(),
            Inventory::default(),
        );
        let body = patch_body("app", &st).expect("a real status serialises");
        assert_eq!(body["status"]["lastAppliedRevision"], "main@sha1:abc");
        assert!(body["status"]["inventory"].is_object(), "{body}");
        assert_eq!(
            body["status"]["drift"],
            Value::Null,
            "cleared fields are removed"
        );
    }

    #[test]
    fn success_message_names_the_revision() {
        let mut st = KustomizationStatus::default();
        succeeded(
            &mut st,
            Some(3),
            "main@sha1:abc",
            digest(),
            Inventory::default(),
        );
        let ready = find_condition(&st.conditions, READY).expect("ready");
        assert_eq!(ready.reason, "ReconciliationSucceeded");
        assert_eq!(ready.message, "Applied revision: main@sha1:abc");
        assert_eq!(st.observed_generation, Some(3));
    }

    /// The agent used to set these conditions by hand: a retried failure removed
    /// `Reconciling`, a suspended Kustomization said nothing. It now reports through proto's
    /// state machine, as the source server does (Flux's kstatus semantics).
    #[test]
    fn conditions_follow_the_shared_state_machine() {
        let of = |st: &KustomizationStatus, t: &str| {
            find_condition(&st.conditions, t).map(|c| (c.status, c.reason.clone()))
        };
        let mut st = KustomizationStatus::default();
        progressing(&mut st, Some(1), "main@sha1:aaa");
        assert_eq!(
            of(&st, READY),
            Some((ConditionStatus::Unknown, reason::PROGRESSING.into())),
            "a first reconcile is neither ready nor failed"
        );
        failed(
            &mut st,
            Some(1),
            reason::HEALTH_CHECK_FAILED,
            "web: 0 of 1",
            None,
        );
        assert_eq!(
            of(&st, READY),
            Some((ConditionStatus::False, reason::HEALTH_CHECK_FAILED.into()))
        );
        assert_eq!(
            of(&st, RECONCILING),
            Some((ConditionStatus::True, reason::PROGRESSING_WITH_RETRY.into())),
            "a failure that is retried is still reconciling"
        );
        assert!(!is_stalled(&st.conditions));

        stalled(&mut st, Some(2), reason::INVALID_SPEC, "spec.interval: 0s");
        assert!(is_stalled(&st.conditions));
        assert_eq!(of(&st, RECONCILING), None, "never Stalled and Reconciling");
        assert_eq!(
            of(&st, READY),
            Some((ConditionStatus::False, reason::INVALID_SPEC.into()))
        );

        suspended(&mut st, Some(3), "app");
        assert_eq!(
            of(&st, READY),
            Some((ConditionStatus::False, reason::SUSPENDED.into()))
        );
        assert_eq!(of(&st, STALLED), None);
        assert_eq!(st.observed_generation, Some(3));

        succeeded(
            &mut st,
            Some(4),
            "main@sha1:bbb",
            digest(),
            Inventory::default(),
        );
        assert_eq!(
            of(&st, READY),
            Some((
                ConditionStatus::True,
                reason::RECONCILIATION_SUCCEEDED.into()
            ))
        );
        assert_eq!(of(&st, RECONCILING), None);
        assert_eq!(of(&st, STALLED), None);
    }
}
