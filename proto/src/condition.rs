//! Status conditions with Kubernetes' `metav1.Condition` shape and Flux's types and reasons,
//! and the one state machine ([`record`]) that decides `Ready`, `Reconciling` and `Stalled` for
//! the source server and the agent alike.
//!
//! The semantics are Flux's (kstatus): `Reconciling=True` while work is under way or will be
//! retried, `Stalled=True` when retrying cannot help (a bad spec, refused credentials: a change
//! is needed), never both at once, and `Ready` the summary. Controllers say what happened as a
//! [`Progress`]; they never set those three conditions by hand, so the two components cannot
//! drift apart. Reasons are the constants in [`reason`].

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types, as Flux names them.
pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const ARTIFACT_IN_STORAGE: &str = "ArtifactInStorage";
pub const FETCH_FAILED: &str = "FetchFailed";

/// Reasons used by Ferry's controllers (Flux's names where Flux has one).
pub mod reason {
    pub const SUCCEEDED: &str = "Succeeded";
    pub const RECONCILIATION_SUCCEEDED: &str = "ReconciliationSucceeded";
    pub const PROGRESSING: &str = "Progressing";
    pub const GIT_OPERATION_FAILED: &str = "GitOperationFailed";
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    pub const REF_NOT_FOUND: &str = "RefNotFound";
    pub const STORAGE_OPERATION_FAILED: &str = "StorageOperationFailed";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const SUSPENDED: &str = "Suspended";
    pub const ARTIFACT_FAILED: &str = "ArtifactFailed";
    pub const BUILD_FAILED: &str = "BuildFailed";
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    pub const PRUNE_FAILED: &str = "PruneFailed";
    pub const RECONCILIATION_FAILED: &str = "ReconciliationFailed";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    /// A failure that is retried with backoff (Flux's `ProgressingWithRetry`).
    pub const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";
    /// The artifact exceeds one of the [`crate::ArtifactLimits`] (server and agents alike).
    pub const ARTIFACT_TOO_LARGE: &str = "ArtifactTooLarge";
    /// The tree has a path that cannot be represented safely.
    pub const UNSAFE_PATH: &str = "UnsafePath";
    /// The Git host could not be reached.
    pub const UNREACHABLE_HOST: &str = "UnreachableHost";
    /// A Git operation ran past `spec.timeout`.
    pub const TIMEOUT: &str = "Timeout";
    /// A Git operation was interrupted (the source changed or was removed meanwhile).
    pub const INTERRUPTED: &str = "Interrupted";
    /// The source's URL or settings are unusable for Git.
    pub const INVALID_SOURCE: &str = "InvalidSource";
    /// A Helm repository's index could not be fetched or parsed (Flux's reason).
    pub const INDEXATION_FAILED: &str = "IndexationFailed";
    /// A bucket could not be listed or an object downloaded (Flux's reason).
    pub const BUCKET_OPERATION_FAILED: &str = "BucketOperationFailed";
}

/// A condition's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// One status condition (`metav1.Condition`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    pub last_transition_time: DateTime<Utc>,
    pub reason: String,
    pub message: String,
}

impl Condition {
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.to_string(),
            status,
            observed_generation: None,
            last_transition_time: Utc::now(),
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// Sets `new` in `conditions`, replacing one of the same type. The transition time is kept when
/// the status did not change, as Kubernetes' `meta.SetStatusCondition` does, so watchers can
/// tell how long a state has lasted.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time;
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

/// Removes the condition of `type_`, if present.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition of `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// What a reconcile reports; [`record`] turns it into `Ready`, `Reconciling` and `Stalled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress<'a> {
    /// Work started. `Reconciling=True` (`Progressing`). `Ready` becomes `Unknown` when it is
    /// absent or describes another generation; a `Ready` that is `False` stays (Flux keeps a
    /// failure visible while retrying), and so does a `True` of the same generation, so that a
    /// periodic check does not make `Ready` flap.
    Progressing {
        /// What is being done, naming the object.
        message: &'a str,
    },
    /// Done. `Ready=True` with `reason`; `Reconciling` and `Stalled` removed.
    Succeeded {
        /// One of [`reason`], e.g. [`reason::SUCCEEDED`].
        reason: &'static str,
        /// What was achieved, naming the revision.
        message: &'a str,
    },
    /// Failed, and retrying may help. `Ready=False` with `reason`, `Reconciling=True`
    /// (`ProgressingWithRetry`), `Stalled` removed.
    Retrying {
        /// One of [`reason`]: why it failed.
        reason: &'static str,
        /// The failure, naming the object.
        message: &'a str,
    },
    /// Failed, and retrying cannot help until something changes (the spec, a secret, the
    /// cluster). `Ready=False` and `Stalled=True` with `reason`, `Reconciling` removed.
    Stalled {
        /// One of [`reason`]: why it failed.
        reason: &'static str,
        /// The failure, naming the object and, for a bad spec, the field.
        message: &'a str,
    },
    /// `spec.suspend` is set: `Ready` keeps its status with reason `Suspended`; `Reconciling`
    /// and `Stalled` removed (nothing is in progress, and nothing is wrong).
    Suspended {
        /// Naming the object.
        message: &'a str,
    },
}

/// Records `progress` of the object at `generation` in `conditions`: the one place `Ready`,
/// `Reconciling` and `Stalled` are set. Each condition written carries `generation`.
pub fn record(conditions: &mut Vec<Condition>, generation: Option<i64>, progress: Progress<'_>) {
    let set =
        |conditions: &mut Vec<Condition>, type_: &str, status, reason: &str, message: &str| {
            let mut c = Condition::new(type_, status, reason, message);
            c.observed_generation = generation;
            set_condition(conditions, c);
        };
    match progress {
        Progress::Progressing { message } => {
            set(
                conditions,
                RECONCILING,
                ConditionStatus::True,
                reason::PROGRESSING,
                message,
            );
            let stale = find_condition(conditions, READY).is_none_or(|r| {
                r.status != ConditionStatus::False && r.observed_generation != generation
            });
            if stale {
                let unknown = ConditionStatus::Unknown;
                set(conditions, READY, unknown, reason::PROGRESSING, message);
            }
            remove_condition(conditions, STALLED);
        }
        Progress::Succeeded { reason, message } => {
            set(conditions, READY, ConditionStatus::True, reason, message);
            remove_condition(conditions, RECONCILING);
            remove_condition(conditions, STALLED);
        }
        Progress::Retrying { reason, message } => {
            set(conditions, READY, ConditionStatus::False, reason, message);
            let with_retry = reason::PROGRESSING_WITH_RETRY;
            set(
                conditions,
                RECONCILING,
                ConditionStatus::True,
                with_retry,
                message,
            );
            remove_condition(conditions, STALLED);
        }
        Progress::Stalled { reason, message } => {
            set(conditions, READY, ConditionStatus::False, reason, message);
            set(conditions, STALLED, ConditionStatus::True, reason, message);
            remove_condition(conditions, RECONCILING);
        }
        Progress::Suspended { message } => {
            let status =
                find_condition(conditions, READY).map_or(ConditionStatus::Unknown, |c| c.status);
            set(conditions, READY, status, reason::SUSPENDED, message);
            remove_condition(conditions, RECONCILING);
            remove_condition(conditions, STALLED);
        }
    }
}

/// Whether `Stalled=True` is among `conditions`.
pub fn is_stalled(conditions: &[Condition]) -> bool {
    find_condition(conditions, STALLED).is_some_and(Condition::is_true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(conds: &[Condition], t: &str) -> Option<ConditionStatus> {
        find_condition(conds, t).map(|c| c.status)
    }

    #[test]
    fn stalled_and_reconciling_are_never_both_set_and_success_clears_both() {
        use ConditionStatus::*;
        let mut c = vec![];
        record(
            &mut c,
            Some(1),
            Progress::Progressing {
                message: "checking",
            },
        );
        assert_eq!(
            status_of(&c, READY),
            Some(Unknown),
            "a new object is not ready yet"
        );
        assert_eq!(status_of(&c, RECONCILING), Some(True));

        let retry = Progress::Retrying {
            reason: reason::GIT_OPERATION_FAILED,
            message: "down",
        };
        record(&mut c, Some(1), retry);
        assert_eq!(status_of(&c, READY), Some(False));
        assert_eq!(status_of(&c, RECONCILING), Some(True));
        assert_eq!(
            find_condition(&c, RECONCILING).map(|r| r.reason.as_str()),
            Some(reason::PROGRESSING_WITH_RETRY)
        );
        assert_eq!(status_of(&c, STALLED), None);

        let stall = Progress::Stalled {
            reason: reason::INVALID_SPEC,
            message: "spec.interval: bad",
        };
        record(&mut c, Some(2), stall);
        assert!(is_stalled(&c));
        assert_eq!(status_of(&c, RECONCILING), None);
        assert_eq!(
            find_condition(&c, READY).map(|r| r.reason.as_str()),
            Some("InvalidSpec")
        );
        assert_eq!(
            find_condition(&c, READY).and_then(|r| r.observed_generation),
            Some(2)
        );

        record(&mut c, Some(3), Progress::Progressing { message: "again" });
        assert!(!is_stalled(&c), "a new attempt is no longer stalled");
        assert_eq!(
            status_of(&c, READY),
            Some(False),
            "the failure stays visible while retrying"
        );

        record(
            &mut c,
            Some(3),
            Progress::Succeeded {
                reason: reason::SUCCEEDED,
                message: "ok",
            },
        );
        assert_eq!(status_of(&c, READY), Some(True));
        assert_eq!(status_of(&c, RECONCILING), None);
        assert_eq!(status_of(&c, STALLED), None);
    }

    #[test]
    fn periodic_checks_do_not_flap_ready_but_a_new_generation_does_reset_it() {
        let mut c = vec![];
        record(
            &mut c,
            Some(1),
            Progress::Succeeded {
                reason: reason::SUCCEEDED,
                message: "ok",
            },
        );
        record(&mut c, Some(1), Progress::Progressing { message: "poll" });
        assert_eq!(status_of(&c, READY), Some(ConditionStatus::True));
        record(
            &mut c,
            Some(2),
            Progress::Progressing {
                message: "new spec",
            },
        );
        assert_eq!(status_of(&c, READY), Some(ConditionStatus::Unknown));
        record(
            &mut c,
            Some(2),
            Progress::Suspended {
                message: "suspended",
            },
        );
        assert_eq!(status_of(&c, READY), Some(ConditionStatus::Unknown));
        assert_eq!(
            find_condition(&c, READY).map(|r| r.reason.as_str()),
            Some(reason::SUSPENDED)
        );
        assert_eq!(status_of(&c, RECONCILING), None);
    }

    #[test]
    fn set_keeps_transition_time_when_status_is_unchanged() {
        let mut conds = vec![];
        let first = Condition::new(READY, ConditionStatus::True, reason::SUCCEEDED, "a");
        let t0 = first.last_transition_time;
        set_condition(&mut conds, first);
        std::thread::sleep(std::time::Duration::from_millis(5));
        set_condition(
            &mut conds,
            Condition::new(READY, ConditionStatus::True, reason::SUCCEEDED, "b"),
        );
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].message, "b");
        assert_eq!(conds[0].last_transition_time, t0);
        set_condition(
            &mut conds,
            Condition::new(READY, ConditionStatus::False, reason::BUILD_FAILED, "c"),
        );
        assert_ne!(conds[0].last_transition_time, t0);
        assert!(!conds[0].is_true());
    }

    #[test]
    fn serializes_like_metav1_condition() {
        let c = Condition::new(READY, ConditionStatus::False, reason::REF_NOT_FOUND, "m");
        let v = serde_json::to_value(&c).expect("serializable");
        assert_eq!(v["type"], "Ready");
        assert_eq!(v["status"], "False");
        assert_eq!(v["reason"], "RefNotFound");
        assert!(v["lastTransitionTime"].is_string());
    }
}
