//! The `Bucket` custom resource (`source.ferry.dev/v1`): the objects under a prefix of an
//! S3-protocol bucket, served as one artifact. Field names and meanings follow Flux's `Bucket`
//! (`source.toolkit.fluxcd.io/v1`); the `gcp` and `azure` providers are not supported.
//!
//! **Revision** ([`bucket_revision`]): Flux's, so users see the same value — the keys under
//! the prefix, without directory markers (keys ending in `/`), the `.sourceignore` object and
//! ignored keys, as lines `"<key> <etag>\n"` in byte order of the key (the ETag without its
//! quotes, as Flux's S3 client reports it), hashed with sha256: `sha256:<hex>`. An empty
//! bucket is `sha256:e3b0c442…`.

use std::time::Duration;

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::{FieldError, GoDuration};
use crate::{GitRepositoryStatus, Hasher, LocalObjectReference, Revision};

/// `spec.interval` when absent.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// `spec.timeout` when absent (Flux's): the deadline for one listing and download.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Which S3 client settings apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BucketProvider {
    /// Any S3-protocol server; credentials from `secretRef` (`accesskey`, `secretkey`), else
    /// anonymous requests.
    #[default]
    Generic,
    /// Amazon S3; credentials from `secretRef`, else from the server's AWS environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, web identity).
    Aws,
}

/// Desired state of a bucket source.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "source.ferry.dev",
    version = "v1",
    kind = "Bucket",
    plural = "buckets",
    namespaced,
    status = "BucketStatus",
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".spec.endpoint"}"#,
    printcolumn = r#"{"name":"Bucket","type":"string","jsonPath":".spec.bucketName"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.artifact.revision"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// `generic` (default) or `aws`.
    #[serde(default)]
    pub provider: BucketProvider,
    /// The bucket's name.
    pub bucket_name: String,
    /// The server's host and port, without a scheme (`minio.example:9000`,
    /// `s3.amazonaws.com`); HTTPS unless `insecure`.
    pub endpoint: String,
    /// Plain HTTP to the endpoint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// The bucket's region (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Only keys starting with this; the artifact holds the keys with it removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Keys to leave out (gitignore syntax, matched against whole keys), after the
    /// `.sourceignore` object's rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,
    /// A Secret (same namespace) with `accesskey` and `secretkey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// How often to list the bucket (Go duration). Default `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Deadline for one listing plus downloads (Go duration). Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Stop listing; the last artifact stays served.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

impl BucketSpec {
    /// `spec.interval` and `spec.timeout`, validated, with the defaults applied; or an error
    /// naming the refused field.
    pub fn intervals(&self) -> Result<(Duration, Duration), FieldError> {
        Ok((
            GoDuration::field_or(self.interval.as_ref(), "spec.interval", DEFAULT_INTERVAL)?,
            GoDuration::field_or(self.timeout.as_ref(), "spec.timeout", DEFAULT_TIMEOUT)?,
        ))
    }

    /// `s3://<bucketName>/<prefix>` at `<endpoint>`: how messages name the bucket.
    pub fn describe(&self) -> String {
        format!(
            "s3://{}/{} at {}",
            self.bucket_name,
            self.prefix.as_deref().unwrap_or(""),
            self.endpoint
        )
    }
}

/// Observed state of a bucket source: the same record as a GitRepository's (`skipped` stays
/// empty: a bucket has no links or submodules).
pub type BucketStatus = GitRepositoryStatus;

/// Flux's Bucket revision of a listing: `lines` are `(key, etag)` with the etag unquoted,
/// already filtered, in any order.
pub fn bucket_revision<'a>(lines: impl IntoIterator<Item = (&'a str, &'a str)>) -> Revision {
    let mut sorted: Vec<(&str, &str)> = lines.into_iter().collect();
    sorted.sort_unstable();
    let mut h = Hasher::new();
    for (key, etag) in sorted {
        h.update(key.as_bytes());
        h.update(b" ");
        h.update(etag.as_bytes());
        h.update(b"\n");
    }
    Revision::sha256(None, h.finish().hex()).expect("a sha256 hex is a valid revision")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_is_fluxs_index_digest() {
        assert_eq!(
            bucket_revision([]).to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // printf 'a.yaml 1\nb/c.yaml 2\n' | sha256sum
        let r = bucket_revision([("b/c.yaml", "2"), ("a.yaml", "1")]);
        assert_eq!(
            r.to_string(),
            format!(
                "sha256:{}",
                crate::Digest::of(b"a.yaml 1\nb/c.yaml 2\n").hex()
            )
        );
    }

    #[test]
    fn spec_reads_fluxs_fields() {
        let spec: BucketSpec = serde_json::from_value(serde_json::json!({
            "provider": "aws", "bucketName": "b", "endpoint": "s3.amazonaws.com",
            "region": "eu-west-1", "prefix": "apps/", "ignore": "*.md",
            "secretRef": {"name": "creds"}, "interval": "5m", "timeout": "30s", "insecure": true,
        }))
        .expect("flux bucket spec");
        assert_eq!(spec.provider, BucketProvider::Aws);
        assert_eq!(
            spec.intervals().expect("durations"),
            (Duration::from_secs(300), Duration::from_secs(30))
        );
    }
}
