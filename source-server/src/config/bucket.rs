//! `Bucket` documents of the config file, and [`SourceSpec`]: the settings of a source the
//! reconcile loop runs (a `GitRepository` or a `Bucket`). Validated like `GitRepository` ones
//! (names, durations, Secrets), each error naming the field.

use std::collections::BTreeMap;

use ferry_proto::{BucketSpec, GitRepositorySpec, SourceKey};

use super::{DesiredSource, MAX_IGNORE_BYTES, SecretData};

/// The `spec.url` prefix of a GitRepository served only from imported bundles; anything after
/// it (e.g. the original URL, for people) is not contacted.
pub const IMPORTED_SCHEME: &str = "ferry+import:";

/// The spec of a source the reconcile loop runs; the source key's kind says which.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// A `GitRepository`.
    Git(GitRepositorySpec),
    /// A `Bucket`.
    Bucket(BucketSpec),
}

impl SourceSpec {
    /// `spec.suspend`.
    pub fn suspend(&self) -> bool {
        match self {
            Self::Git(g) => g.suspend,
            Self::Bucket(b) => b.suspend,
        }
    }

    /// A GitRepository whose `spec.url` is `ferry+import:…`: its content arrives only by
    /// `import` (README, "Air gap"); no upstream is contacted.
    pub fn imported(&self) -> bool {
        matches!(self, Self::Git(g) if g.url.starts_with(IMPORTED_SCHEME))
    }

    /// `spec.ignore`.
    pub fn ignore(&self) -> Option<&str> {
        match self {
            Self::Git(g) => g.ignore.as_deref(),
            Self::Bucket(b) => b.ignore.as_deref(),
        }
    }

    /// Where the source's content comes from, safe to show: the URL without credentials, or
    /// the bucket, prefix and endpoint.
    pub fn location(&self) -> String {
        match self {
            Self::Git(g) => crate::git::redact_url(&g.url),
            Self::Bucket(b) => b.describe(),
        }
    }

    /// The GitRepository spec, for a Git source.
    pub fn git(&self) -> Option<&GitRepositorySpec> {
        match self {
            Self::Git(g) => Some(g),
            Self::Bucket(_) => None,
        }
    }

    /// The Bucket spec, for a bucket source.
    pub fn bucket(&self) -> Option<&BucketSpec> {
        match self {
            Self::Bucket(b) => Some(b),
            Self::Git(_) => None,
        }
    }
}

/// S3's bucket name rules: 3–63 lowercase letters, digits, `.` and `-`, alphanumeric at both
/// ends.
fn valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Validates one `Bucket` spec; the error names the field.
pub(super) fn validate(
    key: &SourceKey,
    spec: &BucketSpec,
    generation: Option<i64>,
    secrets: &BTreeMap<SourceKey, SecretData>,
) -> Result<DesiredSource, (String, String)> {
    let err = |field: &str, message: String| (field.to_string(), message);
    if !valid_bucket_name(&spec.bucket_name) {
        return Err(err(
            "spec.bucketName",
            format!(
                "{:?} is not a valid bucket name (3 to 63 lowercase letters, digits, '.' and '-')",
                spec.bucket_name
            ),
        ));
    }
    let endpoint = spec.endpoint.as_str();
    if endpoint.contains("://") {
        return Err(err(
            "spec.endpoint",
            format!(
                "{endpoint:?} must be host[:port] without a scheme (HTTPS, or HTTP with spec.insecure: true)"
            ),
        ));
    }
    let host_ok = !endpoint.is_empty()
        && endpoint.len() <= 253
        && endpoint
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !host_ok {
        return Err(err(
            "spec.endpoint",
            format!("{endpoint:?} is not a host[:port]"),
        ));
    }
    if let Some(region) = &spec.region
        && (region.is_empty()
            || region.len() > 64
            || !region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(err(
            "spec.region",
            format!("{region:?} is not a region name"),
        ));
    }
    if let Some(prefix) = &spec.prefix
        && (prefix.starts_with('/') || prefix.len() > 1024)
    {
        return Err(err(
            "spec.prefix",
            format!("{prefix:?} must not start with '/' and must be at most 1024 bytes"),
        ));
    }
    if let Some(ignore) = &spec.ignore
        && ignore.len() > MAX_IGNORE_BYTES
    {
        return Err(err(
            "spec.ignore",
            format!("{} bytes, the limit is {MAX_IGNORE_BYTES}", ignore.len()),
        ));
    }
    let (interval, timeout) = spec
        .intervals()
        .map_err(|e| (e.field.to_string(), e.source.to_string()))?;
    let secret = match &spec.secret_ref {
        None => None,
        Some(r) => {
            let field = "spec.secretRef.name";
            let skey = SourceKey::new(&key.namespace, &r.name);
            let name = format!("Secret {}/{}", skey.namespace, skey.name);
            let data = secrets
                .get(&skey)
                .ok_or_else(|| err(field, format!("{name} is not defined in the config")))?;
            if data.get_str("accesskey").is_none() || data.get_str("secretkey").is_none() {
                return Err(err(
                    field,
                    format!("{name}: needs `accesskey` and `secretkey`"),
                ));
            }
            Some(data.clone())
        }
    };
    Ok(DesiredSource {
        key: key.clone(),
        spec: SourceSpec::Bucket(spec.clone()),
        generation,
        secret,
        interval,
        timeout,
    })
}
