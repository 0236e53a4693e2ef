use super::*;
use ferry_proto::source::DEFAULT_TIMEOUT;

const GOOD: &str = r#"
apiVersion: source.ferry.dev/v1
kind: GitRepository
metadata: {name: app, namespace: team-a}
spec:
  url: https://git.example/app.git
  interval: 30s
  ref: {tag: v1.0.0}
  secretRef: {name: creds}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: team-a}
data:
  username: Zm9v
stringData:
  password: bar
"#;

fn key(ns: &str, name: &str) -> SourceKey {
    SourceKey {
        kind: Default::default(),
        namespace: ns.into(),
        name: name.into(),
    }
}

#[test]
fn valid_repository_with_secret_is_loaded() {
    let state = parse("f.yaml", GOOD, &DesiredState::default()).expect("parses");
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    let src = &state.sources[&key("team-a", "app")];
    assert_eq!(src.interval, Duration::from_secs(30));
    assert_eq!(src.timeout, DEFAULT_TIMEOUT);
    let secret = src.secret.as_ref().expect("resolved");
    assert_eq!(secret.get_str("username"), Some("foo"));
    assert_eq!(secret.get_str("password"), Some("bar"));
    // Secret values never appear in debug output.
    assert!(!format!("{src:?}").contains("bar"));
}

#[test]
fn invalid_document_names_index_object_and_field_and_others_still_load() {
    let text = format!(
        "{GOOD}---\napiVersion: source.ferry.dev/v1\nkind: GitRepository\n\
         metadata: {{name: broken}}\nspec: {{url: https://x/y, interval: 5 minutes}}\n"
    );
    let state = parse("f.yaml", &text, &DesiredState::default()).expect("parses");
    assert_eq!(state.sources.len(), 1);
    assert_eq!(state.errors.len(), 1);
    let e = &state.errors[0];
    assert_eq!(e.document, 2);
    assert_eq!(e.object, "GitRepository/default/broken");
    assert_eq!(e.field, "spec.interval");
    let text = e.to_string();
    assert!(
        text.contains("f.yaml") && text.contains("document 2"),
        "{text}"
    );
}

/// Issue 12, defect 2: `interval: 0s` was accepted as a zero requeue (a hot loop) by the
/// agent, and the loader only said "must be positive"; now every zero or misspelt duration is
/// refused naming the field, and a source without an earlier valid version is kept as invalid
/// so the server can show it `Stalled`.
#[test]
fn zero_and_misspelt_durations_are_refused_naming_the_field() {
    for (field, value) in [
        ("interval", "0s"),
        ("interval", "5mins"),
        ("timeout", "0m0s"),
        ("timeout", "1d"),
    ] {
        let text = format!(
            "apiVersion: source.ferry.dev/v1\nkind: GitRepository\n\
             metadata: {{name: app, namespace: team-a}}\n\
             spec: {{url: https://x/y, {field}: {value}}}\n"
        );
        let state = parse("f.yaml", &text, &DesiredState::default()).expect("parses");
        assert!(state.sources.is_empty(), "{field}: {value} must be refused");
        let e = &state.errors[0];
        assert_eq!(e.field, format!("spec.{field}"));
        assert!(e.message.contains(value), "{}", e.message);
        let invalid = &state.invalid[&key("team-a", "app")];
        assert_eq!(invalid.error, *e);
        assert_eq!(invalid.spec.git().expect("git").url, "https://x/y");
    }
}

#[test]
fn a_broken_edit_keeps_the_previous_version_running() {
    let before = parse("f.yaml", GOOD, &DesiredState::default()).expect("parses");
    let edited = GOOD.replace("https://git.example/app.git", "ftp://nope");
    let after = parse("f.yaml", &edited, &before).expect("parses");
    assert_eq!(after.errors[0].field, "spec.url");
    assert!(after.invalid.is_empty(), "the earlier version runs");
    assert_eq!(
        after.rejected_edits[&key("team-a", "app")].error,
        after.errors[0],
        "the refused edit is kept beside it, to be shown"
    );
    assert_eq!(
        after.sources[&key("team-a", "app")]
            .spec
            .git()
            .expect("git")
            .url,
        "https://git.example/app.git"
    );
}

#[test]
fn missing_or_unusable_secret_is_reported_on_secret_ref() {
    let no_secret = GOOD.split("---").next().expect("first doc");
    let state = parse("f.yaml", no_secret, &DesiredState::default()).expect("parses");
    assert_eq!(state.errors[0].field, "spec.secretRef.name");
    assert!(state.errors[0].message.contains("team-a/creds"));
    let ssh = GOOD.replace("https://git.example/app.git", "ssh://git@host/app.git");
    let state = parse("f.yaml", &ssh, &DesiredState::default()).expect("parses");
    assert!(
        state.errors[0].message.contains("identity"),
        "{:?}",
        state.errors
    );
}

#[test]
fn field_errors_for_ref_kind_and_name() {
    let cases = [
        (
            "ref: {tag: v1.0.0}",
            "ref: {commit: abc}",
            "spec.ref.commit",
        ),
        (
            "ref: {tag: v1.0.0}",
            "ref: {semver: '>>1'}",
            "spec.ref.semver",
        ),
        ("kind: GitRepository", "kind: OCIRepository", "kind"),
        ("name: app,", "name: App_1,", "metadata.name"),
    ];
    for (from, to, field) in cases {
        let text = GOOD.replacen(from, to, 1);
        let state = parse("f.yaml", &text, &DesiredState::default()).expect("parses");
        assert_eq!(
            state.errors.first().map(|e| e.field.as_str()),
            Some(field),
            "{to}: {:?}",
            state.errors
        );
    }
}

#[test]
fn yaml_syntax_error_refuses_the_file() {
    let err = parse("f.yaml", "a: [1\n", &DesiredState::default()).expect_err("syntax");
    assert!(
        matches!(err, LoadError::Syntax { document: 0, .. }),
        "{err}"
    );
}

#[test]
fn edits_to_the_watched_file_are_published() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    std::fs::write(&path, GOOD).expect("write");
    let (tx, rx) = channel();
    let _watch = watch_file(path.clone(), tx).expect("watch");
    assert_eq!(rx.borrow().sources.len(), 1);
    // Replace by rename, as editors and Kubernetes ConfigMap volumes do.
    let tmp = dir.path().join(".tmp");
    let second = GOOD.replace("name: app,", "name: app2,");
    std::fs::write(&tmp, format!("{GOOD}---\n{second}")).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while rx.borrow().sources.len() != 2 {
        assert!(std::time::Instant::now() < deadline, "edit not picked up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(rx.borrow().sources.contains_key(&key("team-a", "app2")));
}

const HELM: &str = r#"
apiVersion: source.ferry.dev/v1
kind: HelmRepository
metadata: {name: charts, namespace: team-a}
spec:
  url: https://charts.example/stable
  secretRef: {name: creds}
  certSecretRef: {name: tls}
  passCredentials: true
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: team-a}
stringData: {username: u, password: p}
---
apiVersion: v1
kind: Secret
metadata: {name: tls, namespace: team-a}
stringData: {ca.crt: "-----BEGIN CERTIFICATE-----"}
"#;

#[test]
fn helm_repositories_load_next_to_git_repositories_with_flux_defaults() {
    let text = format!("{GOOD}---{HELM}");
    let state = parse("f.yaml", &text, &DesiredState::default()).expect("parses");
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    assert_eq!(state.sources.len(), 1);
    let key = SourceKey::of(SourceKind::HelmRepository, "team-a", "charts");
    let repo = &state.helm_repositories[&key];
    assert_eq!(repo.interval, Duration::from_secs(60));
    assert_eq!(repo.timeout, Duration::from_secs(60));
    assert!(repo.spec.pass_credentials);
    assert_eq!(
        repo.secret.as_ref().and_then(|s| s.get_str("username")),
        Some("u")
    );
    assert!(repo.cert_secret.is_some());
}

#[test]
fn invalid_helm_repositories_name_the_field() {
    for (spec, field, needle) in [
        ("{url: oci://ghcr.io/x}", "spec.url", "OCI"),
        ("{url: ftp://x}", "spec.url", "http"),
        ("{url: https://x, interval: 1 minute}", "spec.interval", ""),
        (
            "{url: https://x, secretRef: {name: missing}}",
            "spec.secretRef.name",
            "missing",
        ),
        (
            "{url: https://x, certSecretRef: {name: creds}}",
            "spec.certSecretRef.name",
            "ca.crt",
        ),
    ] {
        let text = format!(
            "apiVersion: source.ferry.dev/v1\nkind: HelmRepository\nmetadata: {{name: r}}\nspec: {spec}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: creds}}\nstringData: {{username: u, password: p}}\n"
        );
        let state = parse("f.yaml", &text, &DesiredState::default()).expect("parses");
        assert!(state.helm_repositories.is_empty(), "{spec}");
        assert_eq!(state.errors.len(), 1, "{spec}: {:?}", state.errors);
        let e = &state.errors[0];
        assert_eq!(e.field, field, "{spec}: {e}");
        assert_eq!(e.object, "HelmRepository/default/r");
        assert!(e.message.contains(needle), "{spec}: {e}");
        let key = SourceKey::of(SourceKind::HelmRepository, "default", "r");
        assert!(state.invalid_helm.contains_key(&key), "{spec}");
    }
}

#[test]
fn buckets_are_read_with_fluxs_fields_and_refused_naming_the_field() {
    let doc = |spec: &str| {
        format!(
            "apiVersion: source.ferry.dev/v1\nkind: Bucket\nmetadata: {{name: b, namespace: team-a}}\n\
             spec:\n{spec}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s3, namespace: team-a}}\n\
             stringData: {{accesskey: AK, secretkey: SK}}\n"
        )
    };
    let good = doc(
        "  bucketName: my-bucket\n  endpoint: 127.0.0.1:9000\n  insecure: true\n  prefix: apps/\n  \
         secretRef: {name: s3}\n  interval: 5m\n  ignore: '*.md'",
    );
    let state = parse("f.yaml", &good, &DesiredState::default()).expect("parses");
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    let bkey = SourceKey::of(SourceKind::Bucket, "team-a", "b");
    let b = &state.sources[&bkey];
    assert_eq!(
        b.spec.bucket().expect("bucket").prefix.as_deref(),
        Some("apps/")
    );
    assert_eq!(
        b.secret.as_ref().and_then(|s| s.get_str("accesskey")),
        Some("AK")
    );
    assert_eq!(b.interval, std::time::Duration::from_secs(300));
    for (spec, field) in [
        (
            "  bucketName: My_Bucket\n  endpoint: h:1",
            "spec.bucketName",
        ),
        ("  bucketName: bkt\n  endpoint: http://h:1", "spec.endpoint"),
        (
            "  bucketName: bkt\n  endpoint: h\n  prefix: /abs",
            "spec.prefix",
        ),
        (
            "  bucketName: bkt\n  endpoint: h\n  secretRef: {name: nope}",
            "spec.secretRef.name",
        ),
        (
            "  bucketName: bkt\n  endpoint: h\n  interval: 0s",
            "spec.interval",
        ),
    ] {
        let state = parse("f.yaml", &doc(spec), &DesiredState::default()).expect("parses");
        let e = &state.errors[0];
        assert_eq!(e.field, field, "{spec}: {e}");
        assert_eq!(e.object, "Bucket/team-a/b");
        assert!(state.invalid.contains_key(&bkey), "{spec}: shown Stalled");
    }
}
