//! `Provider` and `Alert` documents (`notification.ferry.dev/v1`) of the config file, checked
//! into what the dispatcher (`crate::notification`) runs. Loading is as forgiving as for
//! sources: a refused document is reported (document, object, field) and skipped, and if an
//! object of that name was valid before, its earlier version keeps running.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_proto::alert::EVENT_SOURCE_KINDS;
use ferry_proto::api::Severity;
use ferry_proto::{Alert, Provider, ProviderType, SourceKind};
use serde_yaml::Value;

use super::{ConfigError, CrossNamespaceRefs, SecretData};
use crate::SourceKey;

/// The API version of Provider and Alert documents.
pub const API_VERSION: &str = "notification.ferry.dev/v1";

/// Most patterns in one `inclusionList` or `exclusionList`.
pub const MAX_PATTERNS: usize = 64;
/// Longest pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Largest compiled pattern (the regex crate's `size_limit`), so a pattern cannot cost
/// unbounded memory or matching time.
const PATTERN_SIZE_LIMIT: usize = 256 << 10;
/// Most extra headers in a Provider Secret's `headers`.
const MAX_HEADERS: usize = 32;

/// `namespace/name` of a Provider or Alert.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Provider's secret bytes (`token`); `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// A Provider, checked: the address resolved, the Secret read.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredProvider {
    pub key: ObjectKey,
    pub type_: ProviderType,
    /// http(s) URL.
    pub address: String,
    pub channel: Option<String>,
    pub username: Option<String>,
    /// The Secret's `token`: the HMAC key (`generic-hmac`), a bearer token (`slack`).
    pub token: Option<Token>,
    /// The Secret's `headers`, checked as HTTP headers.
    pub headers: Vec<(String, String)>,
    /// Deadline of one attempt.
    pub timeout: Duration,
    pub suspend: bool,
}

/// A compiled `inclusionList`/`exclusionList` entry (equal when the pattern text is).
#[derive(Clone, Debug)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// One `eventSources` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSelector {
    pub kind: String,
    /// `None` for `*`.
    pub name: Option<String>,
    pub namespace: String,
    pub match_labels: BTreeMap<String, String>,
}

/// An Alert, checked: its Provider exists, its patterns compile.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredAlert {
    pub key: ObjectKey,
    pub provider: ObjectKey,
    pub severity: Severity,
    pub sources: Vec<SourceSelector>,
    pub inclusion: Vec<Pattern>,
    pub exclusion: Vec<Pattern>,
    /// `eventMetadata`, with `summary` as the `summary` key.
    pub metadata: BTreeMap<String, String>,
    pub suspend: bool,
}

/// Every Provider and Alert in force.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Alerting {
    pub providers: BTreeMap<ObjectKey, DesiredProvider>,
    pub alerts: BTreeMap<ObjectKey, DesiredAlert>,
}

/// A `notification.ferry.dev/v1` document, not checked yet.
pub(super) struct Doc {
    pub document: usize,
    /// `Kind/namespace/name`.
    pub object: String,
    pub key: ObjectKey,
    pub value: Value,
}

impl Doc {
    /// Document `document` of the file, `object` (`Kind/namespace/name`) named `key`.
    pub fn new(document: usize, object: &str, key: &SourceKey, value: Value) -> Self {
        Self {
            document,
            object: object.to_string(),
            key: ObjectKey {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
            },
            value,
        }
    }
}

/// Checks the Provider and Alert documents against the file's Secrets; refused documents go
/// to `errors`, and their earlier valid version (in `previous`) stays.
pub(super) fn load(
    file: &str,
    providers: Vec<Doc>,
    alerts: Vec<Doc>,
    secrets: &BTreeMap<SourceKey, SecretData>,
    previous: &Alerting,
    refs: CrossNamespaceRefs,
    errors: &mut Vec<ConfigError>,
) -> Alerting {
    let mut out = Alerting::default();
    let error = |doc: &Doc, (field, message): (String, String)| ConfigError {
        file: file.into(),
        document: doc.document,
        object: doc.object.clone(),
        field,
        message,
    };
    for doc in &providers {
        match provider(doc, secrets) {
            Ok(p) => {
                if out.providers.insert(doc.key.clone(), p).is_some() {
                    errors.push(error(doc, twice()));
                }
            }
            Err(e) => {
                errors.push(error(doc, e));
                if let Some(prev) = previous.providers.get(&doc.key) {
                    out.providers
                        .entry(doc.key.clone())
                        .or_insert_with(|| prev.clone());
                }
            }
        }
    }
    for doc in &alerts {
        match alert(doc, &out.providers, refs) {
            Ok(a) => {
                if out.alerts.insert(doc.key.clone(), a).is_some() {
                    errors.push(error(doc, twice()));
                }
            }
            Err(e) => {
                errors.push(error(doc, e));
                if let Some(prev) = previous.alerts.get(&doc.key)
                    && out.providers.contains_key(&prev.provider)
                {
                    out.alerts
                        .entry(doc.key.clone())
                        .or_insert_with(|| prev.clone());
                }
            }
        }
    }
    out
}

fn twice() -> (String, String) {
    (
        "metadata.name".into(),
        "defined twice in the file; the last definition wins".into(),
    )
}

/// Deserializes `value`, naming the field a type error is in.
fn decode<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        let field = if path.is_empty() || path == "." {
            "spec".to_string()
        } else {
            path
        };
        (field, e.into_inner().to_string())
    })
}

fn provider(
    doc: &Doc,
    secrets: &BTreeMap<SourceKey, SecretData>,
) -> Result<DesiredProvider, (String, String)> {
    let p: Provider = decode(&doc.value)?;
    let spec = p.spec;
    let timeout = spec
        .timeout()
        .map_err(|e| (e.field.to_string(), e.source.to_string()))?;
    let secret = match &spec.secret_ref {
        None => None,
        Some(r) => {
            let skey = SourceKey::new(&doc.key.namespace, &r.name);
            Some(secrets.get(&skey).ok_or_else(|| {
                (
                    "spec.secretRef.name".to_string(),
                    format!(
                        "Secret {}/{} is not defined in the config",
                        skey.namespace, skey.name
                    ),
                )
            })?)
        }
    };
    let in_secret = |key: &str| secret.and_then(|s| s.0.get(key));
    let address = match in_secret("address") {
        Some(a) => String::from_utf8(a.clone())
            .map_err(|_| secret_field("address", "is not UTF-8"))?
            .trim()
            .to_string(),
        None => spec.address.clone().unwrap_or_default(),
    };
    check_address(&address)?;
    let token = in_secret("token").map(|t| Token(t.clone()));
    if spec.type_ == ProviderType::GenericHmac && token.is_none() {
        return Err((
            "spec.secretRef".into(),
            "generic-hmac needs a Secret with a `token` key (the HMAC key)".into(),
        ));
    }
    let headers = match in_secret("headers") {
        Some(h) => headers(h)?,
        None => Vec::new(),
    };
    Ok(DesiredProvider {
        key: doc.key.clone(),
        type_: spec.type_,
        address,
        channel: spec.channel,
        username: spec.username,
        token,
        headers,
        timeout,
        suspend: spec.suspend,
    })
}

fn secret_field(key: &str, message: &str) -> (String, String) {
    (
        "spec.secretRef.name".into(),
        format!("the Secret's `{key}` {message}"),
    )
}

fn check_address(address: &str) -> Result<(), (String, String)> {
    let bad = |m: String| ("spec.address".to_string(), m);
    if address.is_empty() {
        return Err(bad(
            "no address: set spec.address or the Secret's `address` key".into(),
        ));
    }
    let url = reqwest::Url::parse(address).map_err(|e| bad(format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("must be an http:// or https:// URL with a host".into()));
    }
    Ok(())
}

/// A Secret's `headers`: a YAML map of header names to values.
fn headers(raw: &[u8]) -> Result<Vec<(String, String)>, (String, String)> {
    let map: BTreeMap<String, String> = serde_yaml::from_slice(raw)
        .map_err(|e| secret_field("headers", &format!("is not a YAML map of strings: {e}")))?;
    if map.len() > MAX_HEADERS {
        return Err(secret_field(
            "headers",
            &format!("has {} entries, the limit is {MAX_HEADERS}", map.len()),
        ));
    }
    for (name, value) in &map {
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| secret_field("headers", &format!("{name:?} is not a header name")))?;
        http::HeaderValue::from_str(value)
            .map_err(|_| secret_field("headers", &format!("{name}: not a header value")))?;
    }
    Ok(map.into_iter().collect())
}

fn alert(
    doc: &Doc,
    providers: &BTreeMap<ObjectKey, DesiredProvider>,
    refs: CrossNamespaceRefs,
) -> Result<DesiredAlert, (String, String)> {
    let a: Alert = decode(&doc.value)?;
    let spec = a.spec;
    let provider = ObjectKey {
        namespace: doc.key.namespace.clone(),
        name: spec.provider_ref.name.clone(),
    };
    if !providers.contains_key(&provider) {
        return Err((
            "spec.providerRef.name".into(),
            format!("Provider {provider} is not defined in the config (or is invalid)"),
        ));
    }
    if spec.event_sources.is_empty() {
        return Err(("spec.eventSources".into(), "must not be empty".into()));
    }
    let mut sources = Vec::new();
    for (i, s) in spec.event_sources.iter().enumerate() {
        let field = |f: &str| format!("spec.eventSources[{i}].{f}");
        if !EVENT_SOURCE_KINDS.contains(&s.kind.as_str()) {
            return Err((
                field("kind"),
                format!(
                    "{:?} is not one of {}",
                    s.kind,
                    EVENT_SOURCE_KINDS.join(", ")
                ),
            ));
        }
        if s.name.is_empty() {
            return Err((field("name"), "must be a name or '*'".into()));
        }
        let namespace = s
            .namespace
            .clone()
            .unwrap_or_else(|| doc.key.namespace.clone());
        // Sources can be shared with a namespace (and are then checked per event); the
        // agents' objects cannot.
        if refs == CrossNamespaceRefs::Refused
            && namespace != doc.key.namespace
            && s.kind.parse::<SourceKind>().is_err()
        {
            return Err((
                field("namespace"),
                format!(
                    "{namespace:?}: an Alert may only select {} objects of its own namespace \
                     {:?} (sources of other namespaces only when shared with it)",
                    s.kind, doc.key.namespace
                ),
            ));
        }
        sources.push(SourceSelector {
            kind: s.kind.clone(),
            name: (s.name != "*").then(|| s.name.clone()),
            namespace,
            match_labels: s.match_labels.clone(),
        });
    }
    let mut metadata = spec.event_metadata.clone();
    if let Some(summary) = &spec.summary {
        metadata
            .entry("summary".into())
            .or_insert_with(|| summary.clone());
    }
    Ok(DesiredAlert {
        key: doc.key.clone(),
        provider,
        severity: spec.event_severity,
        sources,
        inclusion: patterns("spec.inclusionList", &spec.inclusion_list)?,
        exclusion: patterns("spec.exclusionList", &spec.exclusion_list)?,
        metadata,
        suspend: spec.suspend,
    })
}

fn patterns(field: &str, list: &[String]) -> Result<Vec<Pattern>, (String, String)> {
    if list.len() > MAX_PATTERNS {
        return Err((
            field.into(),
            format!("{} patterns, the limit is {MAX_PATTERNS}", list.len()),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            let at = format!("{field}[{i}]");
            if p.len() > MAX_PATTERN_LEN {
                return Err((
                    at,
                    format!("{} bytes, the limit is {MAX_PATTERN_LEN}", p.len()),
                ));
            }
            regex::RegexBuilder::new(p)
                .size_limit(PATTERN_SIZE_LIMIT)
                .dfa_size_limit(PATTERN_SIZE_LIMIT)
                .build()
                .map(Pattern)
                .map_err(|e| (at, e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
