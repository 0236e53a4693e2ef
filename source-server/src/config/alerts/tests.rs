use super::*;
use crate::config::{DesiredState, parse};

const GOOD: &str = r#"
apiVersion: notification.ferry.dev/v1
kind: Provider
metadata: {name: hook, namespace: team-a}
spec:
  type: generic-hmac
  address: http://127.0.0.1:8080/alerts
  timeout: 2s
  secretRef: {name: hook-token}
---
apiVersion: v1
kind: Secret
metadata: {name: hook-token, namespace: team-a}
stringData:
  token: s3cret
  headers: |
    X-Team: a
---
apiVersion: notification.ferry.dev/v1
kind: Alert
metadata: {name: failures, namespace: team-a}
spec:
  providerRef: {name: hook}
  eventSeverity: error
  eventSources:
  - {kind: Kustomization, name: '*', matchLabels: {team: a}}
  - {kind: GitRepository, name: app, namespace: sources}
  exclusionList: ['^ignored']
  eventMetadata: {cluster: prod}
  summary: team a failures
"#;

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        namespace: "team-a".into(),
        name: name.into(),
    }
}

#[test]
fn providers_and_alerts_are_loaded_with_their_secret() {
    let state = parse("f.yaml", GOOD, &DesiredState::default()).expect("parses");
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    let p = &state.alerting.providers[&key("hook")];
    assert_eq!(p.type_, ProviderType::GenericHmac);
    assert_eq!(p.timeout, Duration::from_secs(2));
    assert_eq!(p.token, Some(Token(b"s3cret".to_vec())));
    assert_eq!(p.headers, [("X-Team".to_string(), "a".to_string())]);
    assert!(
        !format!("{p:?}").contains("s3cret"),
        "Debug hides the token"
    );
    let a = &state.alerting.alerts[&key("failures")];
    assert_eq!(a.provider, key("hook"));
    assert_eq!(a.severity, Severity::Error);
    assert_eq!(a.sources[0].name, None, "'*' is any name");
    assert_eq!(a.sources[0].namespace, "team-a", "default: the Alert's");
    assert_eq!(a.sources[1].namespace, "sources");
    assert_eq!(a.metadata["summary"], "team a failures");
    assert_eq!(a.metadata["cluster"], "prod");
}

/// Each broken variant of [`GOOD`] is refused naming its field.
#[test]
fn refused_documents_name_the_field() {
    for (from, to, object, field) in [
        (
            "type: generic-hmac",
            "type: teams",
            "Provider/team-a/hook",
            "spec.type",
        ),
        (
            "timeout: 2s",
            "timeout: 2x",
            "Provider/team-a/hook",
            "spec.timeout",
        ),
        (
            "address: http://127.0.0.1:8080/alerts",
            "address: ftp://x",
            "Provider/team-a/hook",
            "spec.address",
        ),
        (
            "token: s3cret",
            "other: x",
            "Provider/team-a/hook",
            "spec.secretRef",
        ),
        (
            "providerRef: {name: hook}",
            "providerRef: {name: nope}",
            "Alert/team-a/failures",
            "spec.providerRef.name",
        ),
        (
            "kind: GitRepository, name: app",
            "kind: OCIRepository, name: app",
            "Alert/team-a/failures",
            "spec.eventSources[1].kind",
        ),
        (
            "exclusionList: ['^ignored']",
            "exclusionList: ['(unclosed']",
            "Alert/team-a/failures",
            "spec.exclusionList[0]",
        ),
        (
            "eventSeverity: error",
            "eventSeverity: warning",
            "Alert/team-a/failures",
            "spec.eventSeverity",
        ),
    ] {
        let text = GOOD.replace(from, to);
        let state = parse("f.yaml", &text, &DesiredState::default()).expect("parses");
        let e = state
            .errors
            .iter()
            .find(|e| e.object == object)
            .unwrap_or_else(|| panic!("{to}: no error for {object}: {:?}", state.errors));
        assert_eq!(e.field, field, "{to}: {e}");
    }
}

#[test]
fn a_refused_edit_keeps_the_earlier_version_running() {
    let good = parse("f.yaml", GOOD, &DesiredState::default()).expect("parses");
    let broken = GOOD
        .replace("timeout: 2s", "timeout: nope")
        .replace("exclusionList: ['^ignored']", "exclusionList: ['(']");
    let next = parse("f.yaml", &broken, &good).expect("parses");
    assert_eq!(next.errors.len(), 2, "{:?}", next.errors);
    assert_eq!(
        next.alerting, good.alerting,
        "both keep their last valid version"
    );
    let removed = parse("f.yaml", "", &good).expect("parses");
    assert!(removed.alerting.providers.is_empty() && removed.alerting.alerts.is_empty());
}

#[test]
fn oversized_patterns_are_refused() {
    let huge = "a{1000}{1000}";
    let text = GOOD.replace("'^ignored'", &format!("'{huge}'"));
    let state = parse("f.yaml", &text, &DesiredState::default()).expect("parses");
    assert!(
        state
            .errors
            .iter()
            .any(|e| e.field == "spec.exclusionList[0]"),
        "{:?}",
        state.errors
    );
}

#[test]
fn with_tenancy_agent_kinds_of_other_namespaces_are_refused() {
    use crate::config::{CrossNamespaceRefs, parse_with};
    let tenant = |text: &str| {
        parse_with(
            "cluster",
            text,
            &DesiredState::default(),
            CrossNamespaceRefs::Refused,
        )
        .expect("parses")
    };
    // A source of another namespace is accepted (matched per event, when shared).
    let state = tenant(GOOD);
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    assert!(state.alerting.alerts.contains_key(&key("failures")));
    let text = GOOD.replace(
        "name: '*', matchLabels: {team: a}}",
        "name: '*', namespace: team-b}",
    );
    let state = tenant(&text);
    assert_eq!(state.errors.len(), 1, "{:?}", state.errors);
    assert_eq!(state.errors[0].field, "spec.eventSources[0].namespace");
    assert!(state.alerting.alerts.is_empty());
    let file = parse("f.yaml", &text, &DesiredState::default()).expect("parses");
    assert!(file.errors.is_empty(), "the file may: {:?}", file.errors);
}
