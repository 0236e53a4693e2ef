//! Desired state: which sources to mirror, from a multi-document YAML file of `GitRepository`,
//! `Bucket` ([`bucket`]), `HelmRepository` ([`helm`]), `Provider`/`Alert` ([`alerts`]),
//! `Receiver` ([`receiver`]) and `Secret` objects (the CRD schema), and the seam any other feeder (a cluster watcher) uses.
//!
//! The seam is a `tokio::sync::watch` channel of [`DesiredState`]: whoever owns the sender
//! publishes a complete desired state; the controller diffs it against what runs. Loading is
//! forgiving per object: an invalid document is reported (document index, object, field) and
//! skipped, and if an object of the same name was valid before, that earlier version keeps
//! running — a typo in one object never stops the others, nor itself. A file that is not YAML
//! at all is refused as a whole and the previous state stays in force.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use tokio::sync::watch;

use ferry_proto::{
    Bucket, GitRepository, GitRepositorySpec, HelmRepository, ObjectRef, Receiver, SourceKind,
};

pub mod alerts;
mod bucket;
mod file_watch;
mod helm;
mod receiver;

pub use bucket::{IMPORTED_SCHEME, SourceSpec};
pub use file_watch::{ConfigWatch, watch_file};
pub use helm::{DesiredHelmRepository, InvalidHelmRepository};
pub use receiver::{DesiredReceiver, InvalidReceiver, SourceLabels, Token, receiver_ref};

use crate::SourceKey;

/// A config file larger than this is refused.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// At most this many documents per file.
pub const MAX_DOCUMENTS: usize = 10_000;
/// `spec.ignore` longer than this is refused.
pub const MAX_IGNORE_BYTES: usize = 64 << 10;

/// The data of a `Secret` referenced by `spec.secretRef`. `Debug` never shows values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData(pub BTreeMap<String, Vec<u8>>);

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecretData {
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// One source to mirror (a `GitRepository` or a `Bucket`: its key's kind says which), validated.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredSource {
    pub key: SourceKey,
    pub spec: SourceSpec,
    pub generation: Option<i64>,
    /// Resolved `secretRef`.
    pub secret: Option<SecretData>,
    pub interval: Duration,
    pub timeout: Duration,
}

/// A `GitRepository` or `Bucket` document whose spec is refused and that has no earlier valid
/// version to keep running: the server shows it `Stalled` with the error, naming the field.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidSource {
    /// The spec as far as it could be read (the default when it could not be decoded at all).
    pub spec: SourceSpec,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Why it was refused.
    pub error: ConfigError,
}

/// Why one document was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{file}: document {document} ({object}): {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    /// 0-based index of the document in the file.
    pub document: usize,
    /// `Kind/namespace/name`, as far as it could be read.
    pub object: String,
    /// Dotted path of the offending field.
    pub field: String,
    pub message: String,
}

/// A complete desired state, as published on the seam.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredState {
    /// GitRepositories and Buckets (the key's kind tells them apart).
    pub sources: BTreeMap<SourceKey, DesiredSource>,
    /// Documents that were rejected in the last load.
    pub errors: Vec<ConfigError>,
    /// Refused `GitRepository` and `Bucket` documents without a valid earlier version: shown
    /// `Stalled`.
    pub invalid: BTreeMap<SourceKey, InvalidSource>,
    /// Helm repositories to follow (keys of kind `HelmRepository`).
    pub helm_repositories: BTreeMap<SourceKey, DesiredHelmRepository>,
    /// Refused `HelmRepository` documents without a valid earlier version.
    pub invalid_helm: BTreeMap<SourceKey, InvalidHelmRepository>,
    /// Refused edits of sources whose earlier valid version keeps running (it is in
    /// `sources`): shown `Stalled` too, naming the field, while the last valid settings are
    /// served.
    pub rejected_edits: BTreeMap<SourceKey, InvalidSource>,
    /// Providers and Alerts ([`alerts`]).
    pub alerting: alerts::Alerting,
    /// Webhook receivers (keys `Receiver/namespace/name`).
    pub receivers: BTreeMap<ObjectRef, DesiredReceiver>,
    /// Refused `Receiver` documents without a valid earlier version.
    pub invalid_receivers: BTreeMap<ObjectRef, InvalidReceiver>,
    /// `metadata.labels` of the running sources (Receivers' and Alerts' `matchLabels`).
    pub labels: SourceLabels,
}

/// Whether Receivers and Alerts may name objects of other namespaces (Flux's
/// `--no-cross-namespace-refs`, which cluster mode with tenancy sets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CrossNamespaceRefs {
    /// The config file: one author, any namespace.
    #[default]
    Allowed,
    /// Objects of tenants: a Receiver names only sources of its own namespace; an Alert's
    /// `eventSources` in another namespace are refused for agent kinds, and for source kinds
    /// match only sources shared with the Alert's namespace (checked per event).
    Refused,
}

/// The channel pair of the seam.
pub fn channel() -> (
    watch::Sender<Arc<DesiredState>>,
    watch::Receiver<Arc<DesiredState>>,
) {
    watch::channel(Arc::new(DesiredState::default()))
}

/// Why a whole config file was refused (the previous state stays in force).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read (or watched).
    #[error("config file {file}: {source}")]
    Read {
        /// The config file's path.
        file: String,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error("config file {file} is {size} bytes, the limit is {MAX_CONFIG_BYTES}")]
    TooLarge {
        /// The config file's path.
        file: String,
        /// Its size in bytes.
        size: u64,
    },
    /// A document is not YAML.
    #[error("config file {file}: document {document} is not valid YAML: {message}")]
    Syntax {
        /// The config file's path.
        file: String,
        /// 0-based index of the document.
        document: usize,
        /// The parser's complaint.
        message: String,
    },
    /// The file has more than [`MAX_DOCUMENTS`] documents.
    #[error("config file {file}: more than {MAX_DOCUMENTS} documents")]
    TooManyDocuments {
        /// The config file's path.
        file: String,
    },
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretDoc {
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    string_data: BTreeMap<String, String>,
}

/// Parses `text` (the content of `file`) against the previous state: sources in `previous`
/// whose new document is invalid keep their previous version.
pub fn parse(file: &str, text: &str, previous: &DesiredState) -> Result<DesiredState, LoadError> {
    parse_with(file, text, previous, CrossNamespaceRefs::Allowed)
}

/// [`parse`], with the rule for references to other namespaces.
pub fn parse_with(
    file: &str,
    text: &str,
    previous: &DesiredState,
    refs: CrossNamespaceRefs,
) -> Result<DesiredState, LoadError> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        if i >= MAX_DOCUMENTS {
            return Err(LoadError::TooManyDocuments { file: file.into() });
        }
        let value = Value::deserialize(de).map_err(|e| LoadError::Syntax {
            file: file.into(),
            document: i,
            message: e.to_string(),
        })?;
        if !value.is_null() {
            docs.push((i, value));
        }
    }

    let mut errors = Vec::new();
    let mut secrets: BTreeMap<SourceKey, SecretData> = BTreeMap::new();
    let mut repos = Vec::new();
    let mut invalid = BTreeMap::new();
    let mut helm_repos = Vec::new();
    let mut invalid_helm = BTreeMap::new();
    let (mut providers, mut alert_docs) = (Vec::new(), Vec::new());
    let mut receivers = Vec::new();
    let mut invalid_receivers = BTreeMap::new();
    let mut labels: SourceLabels = BTreeMap::new();
    for (i, value) in docs {
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let meta: Meta = value
            .get("metadata")
            .cloned()
            .and_then(|m| serde_yaml::from_value(m).ok())
            .unwrap_or_default();
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let object = format!("{kind}/{namespace}/{}", meta.name);
        let err = |field: &str, message: String| ConfigError {
            file: file.into(),
            document: i,
            object: object.clone(),
            field: field.into(),
            message,
        };
        if let Err(e) = check_name(&meta.name) {
            errors.push(err("metadata.name", e));
            continue;
        }
        if let Err(e) = check_name(&namespace) {
            errors.push(err("metadata.namespace", e));
            continue;
        }
        let key = SourceKey {
            kind: Default::default(),
            namespace: namespace.clone(),
            name: meta.name.clone(),
        };
        match (api_version, kind) {
            ("v1", "Secret") => match parse_secret(&value) {
                Ok(data) => {
                    secrets.insert(key, data);
                }
                Err((field, msg)) => errors.push(err(&field, msg)),
            },
            ("source.ferry.dev/v1", "GitRepository") => {
                let repo: Result<GitRepository, _> = serde_yaml::from_value(value.clone());
                match repo {
                    Ok(repo) => {
                        labels.insert(key.clone(), meta.labels.clone());
                        repos.push((
                            i,
                            object.clone(),
                            key,
                            meta.generation,
                            SourceSpec::Git(repo.spec),
                        ))
                    }
                    Err(e) => {
                        let error = err("spec", e.to_string());
                        invalid.insert(
                            key,
                            InvalidSource {
                                spec: SourceSpec::Git(GitRepositorySpec::default()),
                                generation: meta.generation,
                                error: error.clone(),
                            },
                        );
                        errors.push(error);
                    }
                }
            }
            ("source.ferry.dev/v1", "Bucket") => {
                let key = SourceKey::of(SourceKind::Bucket, &key.namespace, &key.name);
                match serde_yaml::from_value::<Bucket>(value.clone()) {
                    Ok(b) => {
                        labels.insert(key.clone(), meta.labels.clone());
                        repos.push((
                            i,
                            object.clone(),
                            key,
                            meta.generation,
                            SourceSpec::Bucket(b.spec),
                        ))
                    }
                    Err(e) => {
                        let error = err("spec", e.to_string());
                        invalid.insert(
                            key,
                            InvalidSource {
                                spec: SourceSpec::Bucket(Default::default()),
                                generation: meta.generation,
                                error: error.clone(),
                            },
                        );
                        errors.push(error);
                    }
                }
            }
            ("source.ferry.dev/v1", "HelmRepository") => {
                let key = SourceKey::of(SourceKind::HelmRepository, &key.namespace, &key.name);
                match serde_yaml::from_value::<HelmRepository>(value.clone()) {
                    Ok(repo) => {
                        labels.insert(key.clone(), meta.labels.clone());
                        helm_repos.push((i, object.clone(), key, meta.generation, repo.spec))
                    }
                    Err(e) => {
                        let error = err("spec", e.to_string());
                        invalid_helm.insert(
                            key,
                            InvalidHelmRepository {
                                spec: Default::default(),
                                generation: meta.generation,
                                error: error.clone(),
                            },
                        );
                        errors.push(error);
                    }
                }
            }
            ("notification.ferry.dev/v1", "Receiver") => {
                let key = receiver_ref(&key.namespace, &key.name);
                match serde_yaml::from_value::<Receiver>(value.clone()) {
                    Ok(r) => receivers.push((i, object.clone(), key, meta.generation, r.spec)),
                    Err(e) => {
                        let error = err("spec", e.to_string());
                        invalid_receivers.insert(
                            key,
                            InvalidReceiver {
                                spec: Default::default(),
                                generation: meta.generation,
                                error: error.clone(),
                            },
                        );
                        errors.push(error);
                    }
                }
            }
            (_, "Receiver") => errors.push(err(
                "apiVersion",
                format!("{api_version:?} is not supported, use \"notification.ferry.dev/v1\""),
            )),
            (alerts::API_VERSION, "Provider" | "Alert") => {
                let doc = alerts::Doc::new(i, &object, &key, value.clone());
                match kind {
                    "Provider" => providers.push(doc),
                    _ => alert_docs.push(doc),
                }
            }
            (_, "GitRepository" | "HelmRepository" | "Bucket") => errors.push(err(
                "apiVersion",
                format!("{api_version:?} is not supported, use \"source.ferry.dev/v1\""),
            )),
            (_, "Provider" | "Alert") => errors.push(err(
                "apiVersion",
                format!(
                    "{api_version:?} is not supported, use \"{}\"",
                    alerts::API_VERSION
                ),
            )),
            _ => errors.push(err(
                "kind",
                format!(
                    "{api_version}/{kind} is not supported: expected source.ferry.dev/v1 \
                     GitRepository, Bucket or HelmRepository, notification.ferry.dev/v1 \
                     Provider, Alert or Receiver, or v1 Secret"
                ),
            )),
        }
    }

    let mut sources = BTreeMap::new();
    for (i, object, key, generation, spec) in repos {
        let valid = match &spec {
            SourceSpec::Git(git) => validate(&key, git, generation, &secrets),
            SourceSpec::Bucket(b) => bucket::validate(&key, b, generation, &secrets),
        };
        match valid {
            Ok(src) => {
                if sources.insert(key.clone(), src).is_some() {
                    errors.push(ConfigError {
                        file: file.into(),
                        document: i,
                        object,
                        field: "metadata.name".into(),
                        message: "defined twice in the file; the last definition wins".into(),
                    });
                }
            }
            Err((field, message)) => {
                let error = ConfigError {
                    file: file.into(),
                    document: i,
                    object,
                    field,
                    message,
                };
                errors.push(error.clone());
                invalid.insert(
                    key,
                    InvalidSource {
                        spec,
                        generation,
                        error,
                    },
                );
            }
        }
    }
    // A refused edit keeps the earlier valid version running, and is reported beside it.
    let mut rejected_edits = BTreeMap::new();
    invalid.retain(|key, refused| {
        if let Some(prev) = previous.sources.get(key) {
            sources.entry(key.clone()).or_insert_with(|| prev.clone());
        }
        if sources.contains_key(key) {
            rejected_edits.insert(key.clone(), refused.clone());
            return false;
        }
        true
    });
    let mut helm_repositories = BTreeMap::new();
    for (i, object, key, generation, spec) in helm_repos {
        let error = |field, message| ConfigError {
            file: file.into(),
            document: i,
            object: object.clone(),
            field,
            message,
        };
        match helm::validate(&key, &spec, generation, &secrets) {
            Ok(repo) => {
                if helm_repositories.insert(key.clone(), repo).is_some() {
                    errors.push(error(
                        "metadata.name".into(),
                        "defined twice in the file; the last definition wins".into(),
                    ));
                }
            }
            Err((field, message)) => {
                let error = error(field, message);
                errors.push(error.clone());
                invalid_helm.insert(
                    key,
                    InvalidHelmRepository {
                        spec,
                        generation,
                        error,
                    },
                );
            }
        }
    }
    invalid_helm.retain(|key, _| {
        if let Some(prev) = previous.helm_repositories.get(key) {
            helm_repositories
                .entry(key.clone())
                .or_insert_with(|| prev.clone());
        }
        !helm_repositories.contains_key(key)
    });
    let alerting = alerts::load(
        file,
        providers,
        alert_docs,
        &secrets,
        &previous.alerting,
        refs,
        &mut errors,
    );
    // `*` resolves against the sources that run (a refused one that keeps its earlier version
    // runs too).
    labels.retain(|k, _| sources.contains_key(k) || helm_repositories.contains_key(k));
    let mut desired_receivers = BTreeMap::new();
    for (i, object, key, generation, spec) in receivers {
        let error = |field, message| ConfigError {
            file: file.into(),
            document: i,
            object: object.clone(),
            field,
            message,
        };
        match receiver::validate(&key, &spec, generation, &secrets, &labels, refs) {
            Ok(r) => {
                if desired_receivers.insert(key.clone(), r).is_some() {
                    errors.push(error(
                        "metadata.name".into(),
                        "defined twice in the file; the last definition wins".into(),
                    ));
                }
            }
            Err((field, message)) => {
                let error = error(field, message);
                errors.push(error.clone());
                invalid_receivers.insert(
                    key,
                    InvalidReceiver {
                        spec,
                        generation,
                        error,
                    },
                );
            }
        }
    }
    invalid_receivers.retain(|key, _| {
        if let Some(prev) = previous.receivers.get(key) {
            desired_receivers
                .entry(key.clone())
                .or_insert_with(|| prev.clone());
        }
        !desired_receivers.contains_key(key)
    });
    Ok(DesiredState {
        sources,
        errors,
        invalid,
        helm_repositories,
        invalid_helm,
        rejected_edits,
        alerting,
        receivers: desired_receivers,
        invalid_receivers,
        labels,
    })
}

pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name (lowercase letters, digits, '-' and '.', \
             starting and ending with a letter or digit)"
        ))
    }
}

fn parse_secret(value: &Value) -> Result<SecretData, (String, String)> {
    let doc: SecretDoc =
        serde_yaml::from_value(value.clone()).map_err(|e| ("data".to_string(), e.to_string()))?;
    let mut out = BTreeMap::new();
    for (k, v) in doc.data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|e| (format!("data.{k}"), format!("not valid base64: {e}")))?;
        out.insert(k, bytes);
    }
    for (k, v) in doc.string_data {
        out.insert(k, v.into_bytes());
    }
    Ok(SecretData(out))
}

fn validate(
    key: &SourceKey,
    spec: &GitRepositorySpec,
    generation: Option<i64>,
    secrets: &BTreeMap<SourceKey, SecretData>,
) -> Result<DesiredSource, (String, String)> {
    let url = spec.url.as_str();
    let scheme_ok = ["file://", "git://", "http://", "https://", "ssh://"]
        .iter()
        .any(|s| url.starts_with(s) && url.len() > s.len())
        || url.starts_with(IMPORTED_SCHEME);
    if crate::mirror::is_mirror(url) {
        crate::mirror::parse(url).map_err(|e| ("spec.url".to_string(), e))?;
    } else if !scheme_ok {
        return Err((
            "spec.url".into(),
            format!(
                "{:?} must be a file://, git://, http(s):// or ssh:// URL, {IMPORTED_SCHEME} \
                 (served from imported bundles) or ferry+http(s)://server/NAMESPACE/NAME (a \
                 mirror of another source server)",
                crate::git::redact_url(url)
            ),
        ));
    }
    let (interval, timeout) = spec
        .intervals()
        .map_err(|e| (e.field.to_string(), e.source.to_string()))?;
    if let Some(r) = &spec.reference {
        if let Some(c) = &r.commit
            && !(c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err((
                "spec.ref.commit".into(),
                format!("{c:?} must be a full 40-hex commit id"),
            ));
        }
        if let Some(s) = &r.semver
            && let Err(e) = semver::VersionReq::parse(s)
        {
            return Err(("spec.ref.semver".into(), format!("{s:?}: {e}")));
        }
        for (field, v) in [
            ("spec.ref.branch", &r.branch),
            ("spec.ref.tag", &r.tag),
            ("spec.ref.name", &r.name),
        ] {
            if let Some(v) = v
                && (v.is_empty() || v.contains("..") || v.chars().any(char::is_whitespace))
            {
                return Err((field.into(), format!("{v:?} is not a valid ref name")));
            }
        }
    }
    if let Some(ignore) = &spec.ignore
        && ignore.len() > MAX_IGNORE_BYTES
    {
        return Err((
            "spec.ignore".into(),
            format!("{} bytes, the limit is {MAX_IGNORE_BYTES}", ignore.len()),
        ));
    }
    let secret = match &spec.secret_ref {
        None => None,
        Some(r) => {
            let skey = SourceKey {
                kind: Default::default(),
                namespace: key.namespace.clone(),
                name: r.name.clone(),
            };
            let data = secrets.get(&skey).ok_or_else(|| {
                (
                    "spec.secretRef.name".to_string(),
                    format!(
                        "Secret {}/{} is not defined in the config",
                        skey.namespace, skey.name
                    ),
                )
            })?;
            check_secret(data, url).map_err(|m| {
                (
                    "spec.secretRef.name".to_string(),
                    format!("Secret {}/{}: {m}", skey.namespace, skey.name),
                )
            })?;
            Some(data.clone())
        }
    };
    Ok(DesiredSource {
        key: key.clone(),
        spec: SourceSpec::Git(spec.clone()),
        generation,
        secret,
        interval,
        timeout,
    })
}

/// The secret must carry a credential the URL's transport can use.
fn check_secret(data: &SecretData, url: &str) -> Result<(), String> {
    if url.starts_with("ssh://") {
        if data.get_str("identity").is_none() {
            return Err("an ssh:// URL needs an `identity` key (a private key)".into());
        }
        if data.get_str("known_hosts").is_none() {
            return Err("an ssh:// URL needs a `known_hosts` key".into());
        }
        return Ok(());
    }
    let basic = data.get_str("username").is_some() && data.get_str("password").is_some();
    let bearer = data.get_str("bearerToken").is_some();
    if basic || bearer {
        Ok(())
    } else {
        Err("needs `username` and `password`, or `bearerToken`".into())
    }
}

/// Reads and parses a config file against the previous state.
pub fn load(path: &Path, previous: &DesiredState) -> Result<DesiredState, LoadError> {
    let file = path.display().to_string();
    let read = |source| LoadError::Read {
        file: file.clone(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read)?.len();
    if size > MAX_CONFIG_BYTES {
        return Err(LoadError::TooLarge { file, size });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    parse(&file, &text, previous)
}

#[cfg(test)]
mod tests;
