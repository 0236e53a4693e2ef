//! `Receiver` documents of the config file: validated like the sources (names, Secrets, each
//! error naming the field), with the token resolved and the targets resolved to source keys, so
//! a webhook call needs nothing but memory (see [`crate::receiver`]).

use std::collections::BTreeMap;

use ferry_proto::receiver::webhook_path;
use ferry_proto::{ObjectRef, ReceiverSpec, SourceKey};

use super::{ConfigError, CrossNamespaceRefs, SecretData, check_name};

/// At most this many entries in `spec.resources`.
pub const MAX_RESOURCES: usize = 256;
/// At most this many entries in `spec.events`.
pub const MAX_EVENTS: usize = 64;
/// A `token` longer than this is refused.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The identity of a Receiver (`Receiver/namespace/name`).
pub fn receiver_ref(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef::new("notification.ferry.dev", "Receiver", Some(namespace), name)
}

/// The shared secret of a receiver. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// One receiver, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredReceiver {
    /// `Receiver/namespace/name`.
    pub key: ObjectRef,
    pub spec: ReceiverSpec,
    pub generation: Option<i64>,
    /// The `token` of `spec.secretRef`.
    pub token: Token,
    /// Flux's `/hook/<hex sha256(token + name + namespace)>`.
    pub webhook_path: String,
    /// `spec.resources` resolved against the sources of the same config (`*` expanded by
    /// `matchLabels`); a named source that does not exist stays, and fails when called.
    pub targets: Vec<SourceKey>,
}

/// A refused `Receiver` document without an earlier valid version: shown `Stalled`.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidReceiver {
    /// The spec as far as it could be read.
    pub spec: ReceiverSpec,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Why it was refused.
    pub error: ConfigError,
}

/// Labels of the valid sources of the file, for `name: '*'` with `matchLabels`.
pub type SourceLabels = BTreeMap<SourceKey, BTreeMap<String, String>>;

/// Validates one `Receiver` spec; the error names the field.
pub(super) fn validate(
    key: &ObjectRef,
    spec: &ReceiverSpec,
    generation: Option<i64>,
    secrets: &BTreeMap<SourceKey, SecretData>,
    sources: &SourceLabels,
    refs: CrossNamespaceRefs,
) -> Result<DesiredReceiver, (String, String)> {
    let namespace = key.namespace_or_empty();
    let field = "spec.secretRef.name";
    let skey = SourceKey::new(namespace, &spec.secret_ref.name);
    let secret = secrets.get(&skey).ok_or_else(|| {
        (
            field.to_string(),
            format!("Secret {skey} is not defined in the config"),
        )
    })?;
    let token = match secret.0.get("token") {
        Some(t) if !t.is_empty() && t.len() <= MAX_TOKEN_BYTES => t.clone(),
        Some(t) if !t.is_empty() => {
            return Err((
                field.into(),
                format!(
                    "Secret {skey}: `token` is {} bytes, the limit is {MAX_TOKEN_BYTES}",
                    t.len()
                ),
            ));
        }
        _ => {
            return Err((
                field.into(),
                format!("Secret {skey}: needs a non-empty `token` key"),
            ));
        }
    };
    if spec.events.len() > MAX_EVENTS {
        return Err((
            "spec.events".into(),
            format!("{} entries, the limit is {MAX_EVENTS}", spec.events.len()),
        ));
    }
    if spec.resources.is_empty() {
        return Err((
            "spec.resources".into(),
            "names no source: at least one entry is required".into(),
        ));
    }
    if spec.resources.len() > MAX_RESOURCES {
        return Err((
            "spec.resources".into(),
            format!(
                "{} entries, the limit is {MAX_RESOURCES}",
                spec.resources.len()
            ),
        ));
    }
    let mut targets = Vec::new();
    for (i, r) in spec.resources.iter().enumerate() {
        let at = |f: &str| format!("spec.resources[{i}].{f}");
        let ns = r.namespace.as_deref().unwrap_or(namespace);
        check_name(ns).map_err(|m| (at("namespace"), m))?;
        if ns != namespace && refs == CrossNamespaceRefs::Refused {
            return Err((
                at("namespace"),
                format!(
                    "{ns:?}: a Receiver may only name sources of its own namespace {namespace:?}"
                ),
            ));
        }
        if r.name == "*" {
            if r.match_labels.is_empty() {
                return Err((
                    at("matchLabels"),
                    "name `*` needs matchLabels (as in Flux)".into(),
                ));
            }
            let kind = r.kind.source_kind();
            targets.extend(
                sources
                    .iter()
                    .filter(|(k, labels)| {
                        k.kind == kind
                            && k.namespace == ns
                            && r.match_labels
                                .iter()
                                .all(|(lk, lv)| labels.get(lk) == Some(lv))
                    })
                    .map(|(k, _)| k.clone()),
            );
            continue;
        }
        check_name(&r.name).map_err(|m| (at("name"), m))?;
        if !r.match_labels.is_empty() {
            return Err((
                at("matchLabels"),
                "matchLabels requires the name to be `*` (as in Flux)".into(),
            ));
        }
        targets.push(SourceKey::of(r.kind.source_kind(), ns, &r.name));
    }
    targets.sort();
    targets.dedup();
    Ok(DesiredReceiver {
        key: key.clone(),
        spec: spec.clone(),
        generation,
        webhook_path: webhook_path(&token, &key.name, namespace),
        token: Token(token),
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{DesiredState, parse};
    use super::*;

    const DOCS: &str = r#"
apiVersion: source.ferry.dev/v1
kind: GitRepository
metadata: {name: app, namespace: team-a, labels: {tier: web}}
spec: {url: https://git.example/app.git}
---
apiVersion: source.ferry.dev/v1
kind: GitRepository
metadata: {name: other, namespace: team-a, labels: {tier: db}}
spec: {url: https://git.example/other.git}
---
apiVersion: v1
kind: Secret
metadata: {name: hook, namespace: team-a}
stringData: {token: s3cret}
---
apiVersion: notification.ferry.dev/v1
kind: Receiver
metadata: {name: gh, namespace: team-a}
spec:
  type: github
  events: [push]
  secretRef: {name: hook}
  resources:
    - {kind: GitRepository, name: '*', matchLabels: {tier: web}}
    - {kind: HelmRepository, name: charts, namespace: shared}
    - {kind: Bucket, name: b}
"#;

    #[test]
    fn a_receiver_gets_fluxs_path_and_resolved_targets() {
        let state = parse("f.yaml", DOCS, &DesiredState::default()).expect("parses");
        assert!(state.errors.is_empty(), "{:?}", state.errors);
        let r = &state.receivers[&receiver_ref("team-a", "gh")];
        assert_eq!(r.webhook_path, webhook_path(b"s3cret", "gh", "team-a"));
        let targets: Vec<String> = r
            .targets
            .iter()
            .map(|k| format!("{}/{k}", k.kind))
            .collect();
        assert_eq!(
            targets,
            [
                "GitRepository/team-a/app",
                "HelmRepository/shared/charts",
                "Bucket/team-a/b"
            ]
        );
        assert!(
            !format!("{r:?}").contains("s3cret"),
            "the token never shows"
        );
    }

    #[test]
    fn with_tenancy_a_receiver_names_only_its_own_namespace() {
        let state = super::super::parse_with(
            "cluster",
            DOCS,
            &DesiredState::default(),
            CrossNamespaceRefs::Refused,
        )
        .expect("parses");
        assert_eq!(state.errors.len(), 1, "{:?}", state.errors);
        assert_eq!(state.errors[0].field, "spec.resources[1].namespace");
        assert!(state.receivers.is_empty());
        let own = DOCS.replace(", namespace: shared}", "}");
        let state = super::super::parse_with(
            "cluster",
            &own,
            &DesiredState::default(),
            CrossNamespaceRefs::Refused,
        )
        .expect("parses");
        assert!(state.errors.is_empty(), "{:?}", state.errors);
        assert_eq!(state.receivers.len(), 1);
    }

    #[test]
    fn refused_receivers_name_the_field_and_keep_their_earlier_version() {
        let good = parse("f.yaml", DOCS, &DesiredState::default()).expect("parses");
        for (edit, field) in [
            ("secretRef: {name: hook}", "spec.secretRef.name"),
            ("type: github", "spec"),
            (
                "name: '*', matchLabels: {tier: web}",
                "spec.resources[0].matchLabels",
            ),
        ] {
            let broken = match edit {
                "secretRef: {name: hook}" => DOCS.replace(edit, "secretRef: {name: nope}"),
                "type: github" => DOCS.replace(edit, "type: bitbucket"),
                _ => DOCS.replace(edit, "name: '*'"),
            };
            let fresh = parse("f.yaml", &broken, &DesiredState::default()).expect("parses");
            assert_eq!(fresh.errors.len(), 1, "{edit}: {:?}", fresh.errors);
            let e = &fresh.errors[0];
            assert_eq!((e.object.as_str(), e.document), ("Receiver/team-a/gh", 3));
            assert!(e.field.starts_with(field), "{edit}: {e}");
            assert!(fresh.receivers.is_empty());
            assert!(
                fresh
                    .invalid_receivers
                    .contains_key(&receiver_ref("team-a", "gh"))
            );
            let kept = parse("f.yaml", &broken, &good).expect("parses");
            assert_eq!(
                kept.receivers, good.receivers,
                "{edit}: earlier version kept"
            );
        }
    }
}
