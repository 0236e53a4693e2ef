//! The S3 requests a Bucket source makes — ListObjectsV2 and GetObject, signed by rusty-s3 and
//! sent with reqwest — with every answer bounded: listing pages, the number of keys, and each
//! object's size.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rusty_s3::actions::{GetObject, ListObjectsV2};
use rusty_s3::{Credentials, S3Action, UrlStyle};

use crate::config::SecretData;
use ferry_proto::{BucketProvider, BucketSpec};

/// Largest ListObjectsV2 page accepted (1000 keys of up to 1 KiB each, with XML around them).
const MAX_PAGE_BYTES: usize = 4 << 20;
/// How long a signed request URL stays valid.
const SIGNATURE_TTL: Duration = Duration::from_secs(15 * 60);

/// Why a bucket request failed; each variant names the bucket (and the key, for objects).
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// `spec.endpoint` and `spec.bucketName` do not make a request URL.
    #[error("bucket {bucket:?} at {endpoint:?}: {why}")]
    Settings {
        /// The bucket's name.
        bucket: String,
        /// `spec.endpoint`.
        endpoint: String,
        /// What is wrong.
        why: String,
    },
    /// The request did not get an answer (connection, TLS, timeout).
    #[error("bucket {bucket:?}: {what}: {why}")]
    Transport {
        /// The bucket's name.
        bucket: String,
        /// `listing keys under "…"` or `getting key "…"`.
        what: String,
        /// The client's error chain.
        why: String,
    },
    /// The server answered with an error status.
    #[error("bucket {bucket:?}: {what}: HTTP {status}: {body}")]
    Status {
        /// The bucket's name.
        bucket: String,
        /// `listing keys under "…"` or `getting key "…"`.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The start of the error body (S3's XML error).
        body: String,
    },
    /// A listing page is not a ListObjectsV2 answer, or is larger than allowed.
    #[error("bucket {bucket:?}: listing keys under {prefix:?}: {why}")]
    BadListing {
        /// The bucket's name.
        bucket: String,
        /// `spec.prefix`.
        prefix: String,
        /// What is wrong with the answer.
        why: String,
    },
    /// More keys under the prefix than a listing may hold.
    #[error("bucket {bucket:?}: more than {limit} keys under {prefix:?}")]
    TooManyKeys {
        /// The bucket's name.
        bucket: String,
        /// `spec.prefix`.
        prefix: String,
        /// The bound.
        limit: usize,
    },
    /// An object is larger than a file of an artifact may be.
    #[error("bucket {bucket:?}: key {key:?} is larger than {limit} bytes (--max-file-size)")]
    TooLarge {
        /// The bucket's name.
        bucket: String,
        /// The object's key.
        key: String,
        /// The bound.
        limit: u64,
    },
}

impl S3Error {
    /// Retrying later may help (the network, the server), unlike a bad setting or content.
    pub fn transient(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::BadListing { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            Self::Settings { .. } | Self::TooManyKeys { .. } | Self::TooLarge { .. } => false,
        }
    }
}

/// One listed object: its key as stored and its ETag without quotes (as Flux's client reports
/// it, so revisions agree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub etag: String,
    pub size: u64,
}

/// What a conditional GET found.
pub enum Got {
    /// The key does not exist.
    Missing,
    /// The object still has the ETag asked about.
    NotModified,
    /// The object's ETag (unquoted) and bytes.
    Found { etag: String, data: Bytes },
}

/// A client for one bucket.
pub struct Client {
    http: reqwest::Client,
    bucket: rusty_s3::Bucket,
    credentials: Option<Credentials>,
}

/// `"abc"` → `abc`; weak validators keep their `W/`.
fn unquote(etag: &str) -> String {
    etag.trim().trim_matches('"').to_string()
}

impl Client {
    /// A client for `spec`'s bucket: credentials from `secret` (`accesskey`, `secretkey`), else
    /// for `provider: aws` from the AWS environment, else anonymous.
    pub fn new(
        spec: &BucketSpec,
        secret: Option<&SecretData>,
        timeout: Duration,
    ) -> Result<Self, S3Error> {
        let settings = |why: String| S3Error::Settings {
            bucket: spec.bucket_name.clone(),
            endpoint: spec.endpoint.clone(),
            why,
        };
        let scheme = if spec.insecure { "http" } else { "https" };
        let endpoint: reqwest::Url = format!("{scheme}://{}", spec.endpoint)
            .parse()
            .map_err(|e| settings(format!("not a host[:port]: {e}")))?;
        let style = match spec.provider {
            BucketProvider::Aws => UrlStyle::VirtualHost,
            BucketProvider::Generic => UrlStyle::Path,
        };
        let region = spec.region.clone().unwrap_or_else(|| "us-east-1".into());
        let bucket = rusty_s3::Bucket::new(endpoint, style, spec.bucket_name.clone(), region)
            .map_err(|e| settings(format!("{e:?}")))?;
        let credentials = match (secret, spec.provider) {
            (Some(s), _) => Some(Credentials::new(
                s.get_str("accesskey").unwrap_or_default(),
                s.get_str("secretkey").unwrap_or_default(),
            )),
            (None, BucketProvider::Aws) => Credentials::from_env(),
            (None, BucketProvider::Generic) => None,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .timeout(timeout)
            .build()
            .map_err(|e| settings(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            bucket,
            credentials,
        })
    }

    fn name(&self) -> String {
        self.bucket.name().to_string()
    }

    /// Every key under `prefix` (S3's string prefix), at most `max_keys`.
    pub async fn list(&self, prefix: &str, max_keys: usize) -> Result<Vec<Listed>, S3Error> {
        let what = || format!("listing keys under {prefix:?}");
        let bad = |why: String| S3Error::BadListing {
            bucket: self.name(),
            prefix: prefix.to_string(),
            why,
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, self.credentials.as_ref());
            if !prefix.is_empty() {
                action.with_prefix(prefix);
            }
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGNATURE_TTL);
            let too_large = || bad(format!("a page is larger than {MAX_PAGE_BYTES} bytes"));
            let body = self
                .get_bounded(url, &what(), MAX_PAGE_BYTES, None, &too_large)
                .await?;
            let Some((_, body)) = body else {
                return Err(S3Error::Status {
                    bucket: self.name(),
                    what: what(),
                    status: 404,
                    body: "the bucket does not exist".into(),
                });
            };
            let text = std::str::from_utf8(&body).map_err(|e| bad(format!("not UTF-8: {e}")))?;
            let page = ListObjectsV2::parse_response(text).map_err(|e| bad(e.to_string()))?;
            for c in page.contents {
                if out.len() >= max_keys {
                    return Err(S3Error::TooManyKeys {
                        bucket: self.name(),
                        prefix: prefix.to_string(),
                        limit: max_keys,
                    });
                }
                out.push(Listed {
                    etag: unquote(c.etag.as_deref().unwrap_or_default()),
                    size: c.size.unwrap_or_default(),
                    key: c.key,
                });
            }
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => {
                    if token.as_deref() == Some(t.as_str()) {
                        return Err(bad("the continuation token did not advance".into()));
                    }
                    token = Some(t);
                }
                _ => return Ok(out),
            }
        }
    }

    /// GETs `key`, at most `limit` bytes; with `if_none_match`, an unchanged object is
    /// [`Got::NotModified`].
    pub async fn get(
        &self,
        key: &str,
        limit: u64,
        if_none_match: Option<&str>,
    ) -> Result<Got, S3Error> {
        let action = GetObject::new(&self.bucket, self.credentials.as_ref(), key);
        let url = action.sign(SIGNATURE_TTL);
        let what = format!("getting key {key:?}");
        let too_large = || S3Error::TooLarge {
            bucket: self.name(),
            key: key.to_string(),
            limit,
        };
        let cap = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(
            match self
                .get_bounded(url, &what, cap, if_none_match, &too_large)
                .await?
            {
                None => Got::Missing,
                Some((None, _)) => Got::NotModified,
                Some((Some(etag), data)) => Got::Found { etag, data },
            },
        )
    }

    /// GETs `url`: `None` on 404; `Some((None, _))` on 304; else the ETag and body, at most
    /// `limit` bytes.
    async fn get_bounded(
        &self,
        url: reqwest::Url,
        what: &str,
        limit: usize,
        if_none_match: Option<&str>,
        too_large: &dyn Fn() -> S3Error,
    ) -> Result<Option<(Option<String>, Bytes)>, S3Error> {
        let transport = |e: reqwest::Error| S3Error::Transport {
            bucket: self.name(),
            what: what.to_string(),
            why: crate::helm::fetch::error_chain(&e),
        };
        let mut req = self.http.get(url.as_str());
        if let Some(etag) = if_none_match {
            req = req.header(reqwest::header::IF_NONE_MATCH, format!("\"{etag}\""));
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Some((None, Bytes::new())));
        }
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(unquote)
            .unwrap_or_default();
        if resp.content_length().is_some_and(|n| n > limit as u64) && status.is_success() {
            return Err(too_large());
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(transport)?;
            if body.len() + chunk.len() > limit {
                if status.is_success() {
                    return Err(too_large());
                }
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(S3Error::Status {
                bucket: self.name(),
                what: what.to_string(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            });
        }
        Ok(Some((Some(etag), Bytes::from(body))))
    }
}
