//! `HelmRepository` documents of the config file: validated like `GitRepository` ones (names,
//! durations, Secrets), each error naming the field.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_proto::{HelmRepositorySpec, LocalObjectReference, SourceKey};

use super::{ConfigError, SecretData};

/// One Helm repository to follow, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredHelmRepository {
    /// Kind `HelmRepository`.
    pub key: SourceKey,
    pub spec: HelmRepositorySpec,
    pub generation: Option<i64>,
    /// Resolved `secretRef` (`username`, `password`).
    pub secret: Option<SecretData>,
    /// Resolved `certSecretRef` (`ca.crt`, `tls.crt`, `tls.key`).
    pub cert_secret: Option<SecretData>,
    pub interval: Duration,
    pub timeout: Duration,
}

/// A refused `HelmRepository` document without an earlier valid version: shown `Stalled`.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidHelmRepository {
    /// The spec as far as it could be read.
    pub spec: HelmRepositorySpec,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Why it was refused.
    pub error: ConfigError,
}

fn lookup_secret<'a>(
    key: &SourceKey,
    field: &str,
    r: &LocalObjectReference,
    secrets: &'a BTreeMap<SourceKey, SecretData>,
) -> Result<(&'a SecretData, String), (String, String)> {
    let skey = SourceKey::new(&key.namespace, &r.name);
    let name = format!("Secret {}/{}", skey.namespace, skey.name);
    match secrets.get(&skey) {
        Some(d) => Ok((d, name)),
        None => Err((field.into(), format!("{name} is not defined in the config"))),
    }
}

/// Validates one `HelmRepository` spec; the error names the field.
pub(super) fn validate(
    key: &SourceKey,
    spec: &HelmRepositorySpec,
    generation: Option<i64>,
    secrets: &BTreeMap<SourceKey, SecretData>,
) -> Result<DesiredHelmRepository, (String, String)> {
    let url = spec.url.as_str();
    let scheme_ok = ["http://", "https://"]
        .iter()
        .any(|s| url.starts_with(s) && url.len() > s.len());
    if !scheme_ok {
        let why = if url.starts_with("oci://") {
            "OCI registries are not supported yet; use an http(s):// chart repository"
        } else {
            "must be an http:// or https:// URL"
        };
        return Err((
            "spec.url".into(),
            format!("{:?} {why}", crate::git::redact_url(url)),
        ));
    }
    let (interval, timeout) = spec
        .intervals()
        .map_err(|e| (e.field.to_string(), e.source.to_string()))?;
    let secret = match &spec.secret_ref {
        None => None,
        Some(r) => {
            let field = "spec.secretRef.name";
            let (data, name) = lookup_secret(key, field, r, secrets)?;
            if data.get_str("username").is_none() || data.get_str("password").is_none() {
                return Err((
                    field.into(),
                    format!("{name}: needs `username` and `password`"),
                ));
            }
            Some(data.clone())
        }
    };
    let cert_secret = match &spec.cert_secret_ref {
        None => None,
        Some(r) => {
            let field = "spec.certSecretRef.name";
            let (data, name) = lookup_secret(key, field, r, secrets)?;
            let has = |k: &str| data.0.contains_key(k);
            if has("tls.crt") != has("tls.key") {
                return Err((
                    field.into(),
                    format!("{name}: `tls.crt` and `tls.key` must be given together"),
                ));
            }
            if !has("ca.crt") && !has("tls.crt") {
                return Err((
                    field.into(),
                    format!("{name}: needs `ca.crt`, or `tls.crt` and `tls.key`"),
                ));
            }
            Some(data.clone())
        }
    };
    Ok(DesiredHelmRepository {
        key: key.clone(),
        spec: spec.clone(),
        generation,
        secret,
        cert_secret,
        interval,
        timeout,
    })
}
