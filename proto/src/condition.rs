//! Status conditions with Kubernetes' `metav1.Condition` shape and Flux's types and reasons.

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
}

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

pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

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
