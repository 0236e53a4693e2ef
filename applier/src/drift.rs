//! Drift: live objects that differ from Git.
//!
//! Detection is the apply plan itself — a server-side dry-run of every object compared with the
//! live object ([`crate::apply::Applier::drift`]) — run on every interval. In `correct` mode
//! the reconcile then re-applies (and takes fields back from `kubectl edit` & co.); in `detect`
//! mode this module turns the findings into the status report and the Event text, and nothing
//! is written to the objects.

use ferry_proto::kustomization::{DriftReport, DriftedObject};

use crate::apply::Drift;

/// Most drifted objects listed in the status (the rest are counted), to keep it small.
pub const MAX_REPORTED: usize = 50;

/// One Event line: `Deployment/team-a/my-app drifted: .spec.replicas, …`.
pub fn describe(d: &Drift) -> String {
    if d.missing {
        format!("{} missing", d.id)
    } else {
        format!("{} drifted: {}", d.id, d.fields.join(", "))
    }
}

/// The status report for `drift` found against `revision`; `None` when nothing drifted.
pub fn report(drift: &[Drift], revision: &str) -> Option<DriftReport> {
    if drift.is_empty() {
        return None;
    }
    Some(DriftReport {
        revision: Some(revision.to_string()),
        objects: drift
            .iter()
            .take(MAX_REPORTED)
            .map(|d| DriftedObject {
                api_version: d.id.api_version(&d.version),
                kind: d.id.kind.clone(),
                namespace: d.id.namespace.clone(),
                name: d.id.name.clone(),
                fields: if d.missing {
                    vec!["(missing)".into()]
                } else {
                    d.fields.clone()
                },
            })
            .collect(),
        omitted: u32::try_from(drift.len().saturating_sub(MAX_REPORTED)).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::ObjectRef;

    fn drift(i: usize) -> Drift {
        Drift {
            id: ObjectRef::new("apps", "Deployment", Some("team-a"), &format!("app-{i}")),
            version: "v1".into(),
            fields: vec![".spec.replicas".into()],
            missing: false,
        }
    }

    #[test]
    fn report_is_bounded_and_counts_the_rest() {
        assert!(report(&[], "main@sha1:a").is_none());
        let many: Vec<Drift> = (0..MAX_REPORTED + 7).map(drift).collect();
        let r = report(&many, "main@sha1:a").expect("report");
        assert_eq!(r.objects.len(), MAX_REPORTED);
        assert_eq!(r.omitted, 7);
        assert_eq!(r.objects[0].api_version, "apps/v1");
        assert_eq!(r.objects[0].fields, [".spec.replicas"]);
        assert_eq!(
            describe(&many[0]),
            "Deployment/team-a/app-0 drifted: .spec.replicas"
        );
    }
}
