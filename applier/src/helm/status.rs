//! The HelmRelease's status: `Ready`/`Reconciling`/`Stalled` through `condition::record` (the
//! one state machine), `Released` and `Drifted` as Flux's helm-controller sets them, the
//! `history[]` snapshots, the last attempted revision and config digest, and the inventory.

use ferry_proto::Digest;
use ferry_proto::condition::{
    self, Condition, ConditionStatus, Progress, READY, record, remove_condition, set_condition,
};
use ferry_proto::helmrelease::{
    DEFAULT_MAX_HISTORY, DRIFTED, HelmRelease, HelmReleaseStatus, RELEASED, Snapshot,
};
use ferry_proto::kustomization::Inventory;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::Value;

/// Reasons of a HelmRelease's conditions (Flux's helm-controller names).
pub mod reason {
    pub const INSTALL_SUCCEEDED: &str = "InstallSucceeded";
    pub const UPGRADE_SUCCEEDED: &str = "UpgradeSucceeded";
    pub const INSTALL_FAILED: &str = "InstallFailed";
    pub const UPGRADE_FAILED: &str = "UpgradeFailed";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    pub const NO_DRIFT: &str = "NoDriftDetected";
    pub const UNINSTALL_SUCCEEDED: &str = "UninstallSucceeded";
    pub const UNINSTALL_FAILED: &str = "UninstallFailed";
}

/// A release started for `revision`.
pub fn progressing(st: &mut HelmReleaseStatus, generation: Option<i64>, revision: &str) {
    let message = format!("Helm release in progress for {revision}");
    record(
        &mut st.conditions,
        generation,
        Progress::Progressing { message: &message },
    );
}

/// What a successful release records.
pub struct Released {
    pub snapshot: Snapshot,
    pub revision: String,
    pub inputs: Digest,
    pub inventory: Inventory,
    pub max_history: Option<u32>,
}

/// A release was installed or upgraded, its hooks ran and its objects are ready.
pub fn succeeded(st: &mut HelmReleaseStatus, generation: Option<i64>, r: Released) {
    let upgrade = !st.history.is_empty();
    let (why, verb) = if upgrade {
        (reason::UPGRADE_SUCCEEDED, "upgraded")
    } else {
        (reason::INSTALL_SUCCEEDED, "installed")
    };
    let message = format!(
        "Helm {} succeeded for release {}/{}.v{} with chart {}@{}",
        if upgrade { "upgrade" } else { "install" },
        r.snapshot.namespace,
        r.snapshot.name,
        r.snapshot.version,
        r.snapshot.chart_name,
        r.snapshot.chart_version
    );
    record(
        &mut st.conditions,
        generation,
        Progress::Succeeded {
            reason: why,
            message: &message,
        },
    );
    let mut released = Condition::new(RELEASED, ConditionStatus::True, why, &message);
    released.observed_generation = generation;
    set_condition(&mut st.conditions, released);
    tracing::info!(release = %r.snapshot.name, "release {verb}");
    for old in &mut st.history {
        if old.status == "deployed" {
            old.status = "superseded".into();
        }
    }
    st.history.insert(0, r.snapshot);
    st.history
        .truncate(r.max_history.unwrap_or(DEFAULT_MAX_HISTORY).max(1) as usize);
    st.observed_generation = generation;
    st.last_attempted_generation = generation;
    st.last_attempted_revision = Some(r.revision);
    st.last_release_inputs = Some(r.inputs);
    st.inventory = Some(r.inventory);
    remove_condition(&mut st.conditions, DRIFTED);
}

/// The release (or a stage before it) failed with `why`; retried. The inventory and history
/// stay as they were unless the caller updates the inventory (objects were applied).
pub fn failed(
    st: &mut HelmReleaseStatus,
    generation: Option<i64>,
    why: &'static str,
    message: &str,
    attempted: Option<(&str, Digest)>,
) {
    record(
        &mut st.conditions,
        generation,
        Progress::Retrying {
            reason: why,
            message,
        },
    );
    released_failed(st, generation, why, message, attempted);
}

/// Retrying cannot help (an invalid spec) until the spec changes.
pub fn stalled(st: &mut HelmReleaseStatus, generation: Option<i64>, why: &'static str, msg: &str) {
    record(
        &mut st.conditions,
        generation,
        Progress::Stalled {
            reason: why,
            message: msg,
        },
    );
    st.observed_generation = generation;
}

fn released_failed(
    st: &mut HelmReleaseStatus,
    generation: Option<i64>,
    why: &'static str,
    message: &str,
    attempted: Option<(&str, Digest)>,
) {
    st.observed_generation = generation;
    st.last_attempted_generation = generation;
    if let Some((revision, config)) = attempted {
        st.last_attempted_revision = Some(revision.to_string());
        st.last_attempted_config_digest = Some(config);
        // Only a failed install or upgrade says the release is not released.
        if matches!(why, reason::INSTALL_FAILED | reason::UPGRADE_FAILED) {
            let mut c = Condition::new(RELEASED, ConditionStatus::False, why, message);
            c.observed_generation = generation;
            set_condition(&mut st.conditions, c);
        }
    }
}

/// Suspended: nothing happens until `spec.suspend` is cleared.
pub fn suspended(st: &mut HelmReleaseStatus, generation: Option<i64>, name: &str) {
    let message = format!("HelmRelease {name} is suspended; nothing is applied");
    record(
        &mut st.conditions,
        generation,
        Progress::Suspended { message: &message },
    );
    st.observed_generation = generation;
}

/// `Drifted=True` with what differs (`warn` mode), or removed when nothing does.
pub fn set_drifted(st: &mut HelmReleaseStatus, generation: Option<i64>, drifted: Option<String>) {
    match drifted {
        Some(message) => {
            let mut c = Condition::new(
                DRIFTED,
                ConditionStatus::True,
                reason::DRIFT_DETECTED,
                message,
            );
            c.observed_generation = generation;
            set_condition(&mut st.conditions, c);
        }
        None => remove_condition(&mut st.conditions, DRIFTED),
    }
}

pub fn is_ready(st: Option<&HelmReleaseStatus>) -> bool {
    st.and_then(|s| condition::find_condition(&s.conditions, READY))
        .is_some_and(Condition::is_true)
}

/// Writes `st` as the status of `name` (a merge patch; absent fields removed).
pub async fn write(
    api: &Api<HelmRelease>,
    name: &str,
    st: &HelmReleaseStatus,
) -> Result<(), crate::status::StatusError> {
    let mut body = crate::status::patch_body(name, st)?;
    if let Some(Value::Object(map)) = body.get_mut("status") {
        for key in [
            "history",
            "lastAttemptedConfigDigest",
            "lastAttemptedGeneration",
            "lastReleaseInputs",
            "releaseName",
        ] {
            map.entry(key).or_insert(Value::Null);
        }
    }
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map_err(|source| crate::status::StatusError::Patch {
            name: name.to_string(),
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::condition::find_condition;

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .expect("digest")
    }

    fn snapshot(version: u32) -> Snapshot {
        Snapshot {
            version,
            name: "app".into(),
            namespace: "team-a".into(),
            chart_name: "app".into(),
            chart_version: "0.1.0".into(),
            app_version: None,
            config_digest: digest('a'),
            digest: digest('b'),
            status: "deployed".into(),
            first_deployed: chrono::Utc::now(),
            last_deployed: chrono::Utc::now(),
        }
    }

    fn released(version: u32) -> Released {
        Released {
            snapshot: snapshot(version),
            revision: "0.1.0@main@sha1:abc".into(),
            inputs: digest('c'),
            inventory: Inventory::default(),
            max_history: Some(2),
        }
    }

    #[test]
    fn history_is_newest_first_superseded_and_bounded() {
        let mut st = HelmReleaseStatus::default();
        succeeded(&mut st, Some(1), released(1));
        assert_eq!(
            find_condition(&st.conditions, RELEASED).map(|c| c.reason.as_str()),
            Some(reason::INSTALL_SUCCEEDED)
        );
        succeeded(&mut st, Some(2), released(2));
        succeeded(&mut st, Some(3), released(3));
        assert_eq!(st.history.len(), 2, "maxHistory");
        assert_eq!(st.history[0].version, 3);
        assert_eq!(st.history[0].status, "deployed");
        assert_eq!(st.history[1].status, "superseded");
        assert_eq!(
            find_condition(&st.conditions, READY).map(|c| c.reason.as_str()),
            Some(reason::UPGRADE_SUCCEEDED)
        );
    }

    #[test]
    fn a_failed_upgrade_keeps_history_and_says_not_released() {
        let mut st = HelmReleaseStatus::default();
        succeeded(&mut st, Some(1), released(1));
        failed(
            &mut st,
            Some(2),
            reason::UPGRADE_FAILED,
            "helm template failed: parse error",
            Some(("0.2.0@main@sha1:def", digest('d'))),
        );
        assert!(!is_ready(Some(&st)));
        let rel = find_condition(&st.conditions, RELEASED).expect("Released");
        assert_eq!(rel.status, ConditionStatus::False);
        assert_eq!(st.history.len(), 1);
        assert_eq!(st.history[0].status, "deployed");
        assert_eq!(st.last_attempted_config_digest, Some(digest('d')));
        assert_eq!(
            st.last_attempted_revision.as_deref(),
            Some("0.2.0@main@sha1:def")
        );
    }
}
