//! `--storage` / `--artifact-store` values: a directory or `s3://bucket/prefix`, and opening
//! them as an [`ObjectStore`] (S3 settings from the standard `AWS_*` variables).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::RetryConfig;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;

/// Why a store location cannot be used; names the value.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    /// The value is neither a directory nor a usable `s3://` URL, or no store can be built
    /// from it.
    #[error("storage location {location:?}: {reason}")]
    Invalid {
        /// The value as given.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The storage directory could not be created.
    #[error("storage: creating directory {dir}: {source}")]
    CreateDir {
        /// The directory.
        dir: String,
        /// The I/O failure.
        source: std::io::Error,
    },
}

/// Where artifacts are stored, checked when parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageLocation {
    /// A local directory, created if missing.
    Dir(PathBuf),
    /// An S3 bucket (credentials, region and endpoint from the `AWS_*` environment), with a
    /// key prefix (no leading or trailing `/`; empty for the bucket's root).
    S3 {
        /// The bucket's name.
        bucket: String,
        /// The key prefix every object is stored under.
        prefix: String,
    },
}

impl FromStr for StorageLocation {
    type Err = LocationError;

    /// `s3://bucket[/prefix]` or a directory path.
    fn from_str(location: &str) -> Result<Self, LocationError> {
        let bad = |reason: &str| LocationError::Invalid {
            location: location.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name after s3://"));
            }
            // S3's rules: 3–63 lowercase letters, digits, '.' and '-', alphanumeric at both ends.
            let valid = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                })
                && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
                && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !valid {
                return Err(bad(
                    "not a valid S3 bucket name (3 to 63 lowercase letters, digits, '.' and '-')",
                ));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if location.contains("://") {
            return Err(bad("expected a directory or s3://bucket/prefix"));
        }
        if location.is_empty() {
            return Err(bad(
                "expected a directory or s3://bucket/prefix, got nothing",
            ));
        }
        Ok(Self::Dir(PathBuf::from(location)))
    }
}

impl fmt::Display for StorageLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(dir) => write!(f, "{}", dir.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Opens `location`; for S3, credentials, region and endpoint come from the `AWS_*` variables
/// in `env` (as `AmazonS3Builder::from_env` reads them: `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`,
/// …), and requests are retried by `retry` (the client's default when `None`).
pub fn open(
    location: &StorageLocation,
    env: impl IntoIterator<Item = (String, String)>,
    retry: Option<RetryConfig>,
) -> Result<Arc<dyn ObjectStore>, LocationError> {
    let bad = |reason: String| LocationError::Invalid {
        location: location.to_string(),
        reason,
    };
    Ok(match location {
        StorageLocation::S3 { bucket, prefix } => {
            let mut builder = AmazonS3Builder::new();
            for (k, v) in env {
                if k.starts_with("AWS_")
                    && let Ok(key) = k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
                {
                    builder = builder.with_config(key, v);
                }
            }
            if let Some(retry) = retry {
                builder = builder.with_retry(retry);
            }
            let s3 = builder
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
            }
        }
        StorageLocation::Dir(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| LocationError::CreateDir {
                dir: dir.display().to_string(),
                source,
            })?;
            Arc::new(LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(e.to_string()))?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_locations_are_checked_when_parsed() {
        let s3: StorageLocation = "s3://ferry-artifacts/prod/".parse().expect("s3");
        assert_eq!(
            s3,
            StorageLocation::S3 {
                bucket: "ferry-artifacts".into(),
                prefix: "prod".into()
            }
        );
        assert_eq!(s3.to_string(), "s3://ferry-artifacts/prod");
        assert_eq!(
            "./data".parse::<StorageLocation>().expect("dir"),
            StorageLocation::Dir("./data".into())
        );
        for (bad, why) in [
            ("s3://", "no bucket name"),
            ("s3:///prefix", "no bucket name"),
            ("s3://My_Bucket", "not a valid S3 bucket name"),
            ("gs://bucket", "expected a directory or s3://bucket/prefix"),
            ("", "got nothing"),
        ] {
            let err = bad.parse::<StorageLocation>().expect_err(bad).to_string();
            assert!(
                err.contains(why) && err.contains(&format!("{bad:?}")),
                "{bad}: {err}"
            );
        }
    }
}
