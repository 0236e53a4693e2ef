//! The agent index: what each agent last reported about the Kustomizations and HelmReleases of
//! its namespace (`PUT /v1/agents/{namespace}/status`). In memory only: agents send their whole
//! namespace on every change and at least every minute, so a restarted server is complete again
//! within a minute without storing anything.

use std::collections::BTreeMap;
use std::sync::RwLock;

use chrono::Utc;
use ferry_proto::api::{AgentList, AgentReport, AgentView, MAX_REPORTED_OBJECTS, ObjectSummary};
use tokio::sync::watch;

use super::ReportError;

/// Kinds an agent reports.
const KINDS: [&str; 2] = ["Kustomization", "HelmRelease"];

/// Namespace → its agent's last report. Read it with [`AgentIndex::list`] and
/// [`AgentIndex::get`]; [`AgentIndex::changes`] wakes a watcher (the status page) on every
/// report that changed something.
pub struct AgentIndex {
    agents: RwLock<BTreeMap<String, AgentView>>,
    /// Bumped on every change.
    version: watch::Sender<u64>,
}

impl Default for AgentIndex {
    fn default() -> Self {
        Self {
            agents: RwLock::default(),
            version: watch::channel(0).0,
        }
    }
}

impl AgentIndex {
    /// Every namespace an agent reported, by namespace.
    pub fn list(&self) -> AgentList {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        AgentList {
            agents: agents.values().cloned().collect(),
        }
    }

    /// One namespace's last report.
    pub fn get(&self, namespace: &str) -> Option<AgentView> {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        agents.get(namespace).cloned()
    }

    /// A counter that moves whenever a report changed the index.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Replaces `namespace`'s objects with `report`'s, after checking it.
    pub fn report(&self, namespace: &str, report: AgentReport) -> Result<(), ReportError> {
        check(namespace, &report)?;
        let mut objects = report.objects;
        objects.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
        let changed = {
            let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
            let changed = agents.get(namespace).is_none_or(|v| v.objects != objects);
            agents.insert(
                namespace.to_string(),
                AgentView {
                    namespace: namespace.to_string(),
                    reported_at: Utc::now(),
                    objects,
                },
            );
            changed
        };
        if changed {
            self.version.send_modify(|v| *v += 1);
        }
        Ok(())
    }
}

fn check(namespace: &str, report: &AgentReport) -> Result<(), ReportError> {
    if report.objects.len() > MAX_REPORTED_OBJECTS {
        return Err(ReportError::TooMany {
            namespace: namespace.to_string(),
            what: "objects",
            count: report.objects.len(),
            limit: MAX_REPORTED_OBJECTS,
        });
    }
    for (i, o) in report.objects.iter().enumerate() {
        let field = |f: &str| format!("objects[{i}].{f}");
        if !KINDS.contains(&o.kind.as_str()) {
            return Err(ReportError::Invalid {
                namespace: namespace.to_string(),
                field: field("kind"),
                message: format!("{:?} is not Kustomization or HelmRelease", o.kind),
            });
        }
        super::check_name(&o.name).map_err(|message| ReportError::Invalid {
            namespace: namespace.to_string(),
            field: field("name"),
            message,
        })?;
        check_summary(o).map_err(|(f, message)| ReportError::Invalid {
            namespace: namespace.to_string(),
            field: field(f),
            message,
        })?;
    }
    Ok(())
}

/// Longest free-text field of a summary (a condition message is at most 32 KiB in Kubernetes).
const MAX_TEXT: usize = 32 << 10;

fn check_summary(o: &ObjectSummary) -> Result<(), (&'static str, String)> {
    for (field, text) in [
        ("reason", o.reason.as_str()),
        ("message", o.message.as_str()),
        (
            "lastAppliedRevision",
            o.last_applied_revision.as_deref().unwrap_or_default(),
        ),
        (
            "lastAttemptedRevision",
            o.last_attempted_revision.as_deref().unwrap_or_default(),
        ),
    ] {
        if text.len() > MAX_TEXT {
            return Err((
                field,
                format!("{} bytes, the limit is {MAX_TEXT}", text.len()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::ConditionStatus;

    fn summary(kind: &str, name: &str) -> ObjectSummary {
        ObjectSummary {
            kind: kind.into(),
            name: name.into(),
            ready: ConditionStatus::True,
            reason: "ReconciliationSucceeded".into(),
            message: "Applied revision: main@sha1:abc".into(),
            suspended: false,
            last_applied_revision: Some("main@sha1:abc".into()),
            last_attempted_revision: Some("main@sha1:abc".into()),
            drifted: None,
            inventory: Default::default(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_report_replaces_the_namespace_and_wakes_watchers_only_on_change() {
        let index = AgentIndex::default();
        let mut changes = index.changes();
        let report = AgentReport {
            objects: vec![summary("Kustomization", "b"), summary("HelmRelease", "a")],
        };
        index.report("team-a", report.clone()).expect("valid");
        assert!(changes.has_changed().expect("open"));
        changes.mark_unchanged();
        let view = index.get("team-a").expect("reported");
        let names: Vec<_> = view.objects.iter().map(|o| (&*o.kind, &*o.name)).collect();
        assert_eq!(names, [("HelmRelease", "a"), ("Kustomization", "b")]);

        index.report("team-a", report).expect("valid");
        assert!(
            !changes.has_changed().expect("open"),
            "same report, no wake"
        );
        index
            .report("team-a", AgentReport { objects: vec![] })
            .expect("valid");
        assert!(changes.has_changed().expect("open"));
        assert!(index.get("team-a").expect("kept").objects.is_empty());
        assert_eq!(index.list().agents.len(), 1);
    }

    #[test]
    fn bad_reports_are_refused_naming_the_field() {
        let index = AgentIndex::default();
        let err = index
            .report(
                "team-a",
                AgentReport {
                    objects: vec![summary("Kustomization", "ok"), summary("Secret", "x")],
                },
            )
            .expect_err("a Secret is not reported");
        assert!(err.to_string().contains("objects[1].kind"), "{err}");
        let err = index
            .report(
                "team-a",
                AgentReport {
                    objects: vec![summary("Kustomization", "Bad_Name")],
                },
            )
            .expect_err("bad name");
        assert!(err.to_string().contains("objects[0].name"), "{err}");
        assert!(index.get("team-a").is_none(), "nothing stored");
    }
}
