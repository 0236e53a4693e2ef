use std::collections::BTreeMap;

use ferry_proto::api::InvolvedObject;

use super::*;
use crate::config::alerts::{Pattern, SourceSelector};

fn event(kind: &str, name: &str, severity: Severity, message: &str) -> ReportedEvent {
    ReportedEvent {
        event: Event {
            involved_object: InvolvedObject {
                kind: kind.into(),
                namespace: "team-a".into(),
                name: name.into(),
                ..Default::default()
            },
            severity,
            timestamp: chrono::Utc::now(),
            message: message.into(),
            reason: "Progressing".into(),
            metadata: [("revision".to_string(), "main@sha1:1".to_string())].into(),
            reporting_controller: "ferry-applier".into(),
            reporting_instance: String::new(),
        },
        labels: [("team".to_string(), "a".to_string())].into(),
    }
}

fn alert() -> DesiredAlert {
    DesiredAlert {
        key: ObjectKey {
            namespace: "team-a".into(),
            name: "all".into(),
        },
        provider: ObjectKey {
            namespace: "team-a".into(),
            name: "hook".into(),
        },
        severity: Severity::Info,
        sources: vec![SourceSelector {
            kind: "Kustomization".into(),
            name: None,
            namespace: "team-a".into(),
            match_labels: BTreeMap::new(),
        }],
        inclusion: vec![],
        exclusion: vec![],
        metadata: BTreeMap::new(),
        suspend: false,
    }
}

fn pattern(p: &str) -> Pattern {
    Pattern(regex::Regex::new(p).expect("pattern"))
}

#[test]
fn severity_sources_and_labels_select_events() {
    let info = event("Kustomization", "app", Severity::Info, "applied");
    let error = event("Kustomization", "app", Severity::Error, "failed");
    let mut a = alert();
    assert!(takes(&a, &info) && takes(&a, &error));
    a.severity = Severity::Error;
    assert!(
        !takes(&a, &info) && takes(&a, &error),
        "error takes errors only"
    );

    let mut a = alert();
    assert!(!takes(
        &a,
        &event("HelmRelease", "app", Severity::Info, "x")
    ));
    a.sources[0].name = Some("other".into());
    assert!(!takes(&a, &info), "another name");
    a.sources[0].name = None;
    a.sources[0].namespace = "team-b".into();
    assert!(!takes(&a, &info), "another namespace");
    a.sources[0].namespace = "team-a".into();
    a.sources[0].match_labels = [("team".to_string(), "b".to_string())].into();
    assert!(!takes(&a, &info), "labels must match");
    a.sources[0].match_labels = [("team".to_string(), "a".to_string())].into();
    assert!(takes(&a, &info));
    a.suspend = true;
    assert!(!takes(&a, &info), "suspended");
}

#[test]
fn exclusion_wins_over_inclusion() {
    let mut a = alert();
    a.inclusion = vec![pattern("^Deployment/")];
    let dep = event(
        "Kustomization",
        "app",
        Severity::Info,
        "Deployment/team-a/x configured",
    );
    let svc = event(
        "Kustomization",
        "app",
        Severity::Info,
        "Service/team-a/x configured",
    );
    assert!(takes(&a, &dep) && !takes(&a, &svc));
    a.exclusion = vec![pattern("configured$")];
    assert!(!takes(&a, &dep), "excluded although included");
}

#[test]
fn alert_metadata_never_overrides_the_event_s() {
    let mut a = alert();
    a.metadata = [
        ("revision".to_string(), "mine".to_string()),
        ("cluster".to_string(), "prod".to_string()),
    ]
    .into();
    let out = with_metadata(
        &event("Kustomization", "app", Severity::Info, "m").event,
        &a,
    );
    assert_eq!(out.metadata["revision"], "main@sha1:1");
    assert_eq!(out.metadata["cluster"], "prod");
}

#[test]
fn duplicates_are_dropped_within_the_window_only() {
    let d = Dispatcher::new(Duration::from_secs(300), Counters::default());
    let ev = event("Kustomization", "app", Severity::Error, "failed");
    assert!(!d.duplicate(&ev.event));
    assert!(d.duplicate(&ev.event), "the same event again");
    let mut other = ev.event.clone();
    other
        .metadata
        .insert("revision".into(), "main@sha1:2".into());
    assert!(!d.duplicate(&other), "a new revision is a new event");
    let mut later = ev.event.clone();
    later.timestamp += chrono::Duration::seconds(10);
    later.reason = "Other".into();
    assert!(
        d.duplicate(&later),
        "time and reason are not part of the key (Flux's)"
    );
    let short = Dispatcher::new(Duration::ZERO, Counters::default());
    assert!(!short.duplicate(&ev.event) && !short.duplicate(&ev.event));
}

#[test]
fn with_tenancy_other_namespaces_reach_an_alert_only_through_shared_sources() {
    let mut a = alert();
    a.key.namespace = "team-b".into();
    let git = event("GitRepository", "base", Severity::Info, "stored");
    let ks = event("Kustomization", "app", Severity::Info, "applied");
    assert!(
        permitted(&a, &git, None) && permitted(&a, &ks, None),
        "file mode"
    );
    let policy = Policy::new(Vec::new());
    assert!(!permitted(&a, &git, Some(&policy)));
    assert!(!permitted(&a, &ks, Some(&policy)));
    policy.set_sharing(BTreeMap::from([(
        SourceKey::new("team-a", "base"),
        crate::tenancy::Sharing::parse("team-b"),
    )]));
    assert!(permitted(&a, &git, Some(&policy)), "shared with team-b");
    assert!(
        !permitted(&a, &ks, Some(&policy)),
        "agents' objects are never shared"
    );
    a.key.namespace = "team-a".into();
    assert!(
        permitted(&a, &ks, Some(&Policy::new(Vec::new()))),
        "own namespace"
    );
}
