//! HTTP(S) access to one chart repository: the index by conditional GET, streamed into the
//! parser, and chart `.tgz` files, bounded.
//!
//! Credentials (`secretRef` `username`/`password`, basic auth) go to the repository's own
//! origin (scheme, host and port of `spec.url`) and, only with `passCredentials`, to chart URLs
//! elsewhere; a redirect to another host drops them (reqwest's redirect policy). TLS trusts the
//! system roots plus `certSecretRef`'s `ca.crt`, and presents `tls.crt`/`tls.key` when given.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use reqwest::Url;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};

use super::index::{self, IndexError, ParsedIndex};
use crate::config::SecretData;

/// What a conditional GET of the index remembers: the validators of the last parsed index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The outcome of an index fetch.
#[derive(Debug)]
pub enum IndexFetch {
    /// 304: the index is the one already parsed; nothing was read or parsed.
    NotModified,
    /// A new body, parsed, with the validators to send next time.
    Parsed(ParsedIndex, Validators),
}

/// Why the repository or a chart could not be fetched. Messages carry the (credential-free) URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL or the TLS material is unusable (a spec or Secret problem: retrying won't help).
    #[error("{0}")]
    Config(String),
    /// Connecting, TLS, or reading the body failed, or the server answered an error status.
    #[error("GET {url}: {why}")]
    Http {
        /// The URL, without credentials.
        url: String,
        /// What went wrong.
        why: String,
        /// A 4xx answer other than 408/429: retrying the same request won't help soon.
        permanent: bool,
    },
    /// The index cannot be used.
    #[error("GET {url}: {source}")]
    Index {
        /// The index URL.
        url: String,
        /// Why.
        #[source]
        source: IndexError,
    },
    /// A chart file is larger than the limit.
    #[error("GET {url}: the chart is larger than {limit} bytes (--helm-chart-max-size)")]
    ChartTooLarge {
        /// The chart URL.
        url: String,
        /// The limit.
        limit: u64,
    },
}

/// A client for one repository.
#[derive(Clone)]
pub struct RepoClient {
    http: reqwest::Client,
    base: Url,
    basic: Option<(String, String)>,
    bearer: Option<String>,
    pass_credentials: bool,
    timeout: Duration,
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `url` without `user:password@`.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

impl RepoClient {
    /// A client for the repository at `url` (http or https), with the Secrets of `secretRef`
    /// (basic auth) and `certSecretRef` (TLS) as resolved by the config loader.
    pub fn new(
        url: &str,
        auth: Option<&SecretData>,
        tls: Option<&SecretData>,
        pass_credentials: bool,
        timeout: Duration,
    ) -> Result<Self, FetchError> {
        let mut base =
            Url::parse(url).map_err(|e| FetchError::Config(format!("spec.url {url:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(FetchError::Config(format!(
                "spec.url {:?} must be an http:// or https:// URL",
                redact(&base)
            )));
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("ferry-source-server/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = tls {
            if let Some(ca) = tls.0.get("ca.crt") {
                for cert in reqwest::Certificate::from_pem_bundle(ca).map_err(|e| {
                    FetchError::Config(format!("certSecretRef ca.crt: {}", error_chain(&e)))
                })? {
                    builder = builder.add_root_certificate(cert);
                }
            }
            match (tls.0.get("tls.crt"), tls.0.get("tls.key")) {
                (Some(crt), Some(key)) => {
                    let mut pem = crt.clone();
                    pem.push(b'\n');
                    pem.extend_from_slice(key);
                    let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                        FetchError::Config(format!(
                            "certSecretRef tls.crt/tls.key: {}",
                            error_chain(&e)
                        ))
                    })?;
                    builder = builder.identity(id);
                }
                (None, None) => {}
                _ => {
                    return Err(FetchError::Config(
                        "certSecretRef: tls.crt and tls.key must be given together".into(),
                    ));
                }
            }
        }
        let http = builder
            .build()
            .map_err(|e| FetchError::Config(format!("HTTP client: {}", error_chain(&e))))?;
        // Credentials in the URL itself are used like secretRef's, and never logged.
        let mut basic = auth.and_then(|s| {
            Some((
                s.get_str("username")?.to_string(),
                s.get_str("password")?.to_string(),
            ))
        });
        if basic.is_none() && !base.username().is_empty() {
            basic = Some((
                base.username().to_string(),
                base.password().unwrap_or("").to_string(),
            ));
        }
        let _ = base.set_username("");
        let _ = base.set_password(None);
        Ok(Self {
            http,
            base,
            basic,
            bearer: None,
            pass_credentials,
            timeout,
        })
    }

    /// Sends `token` as a bearer token to the client's own origin (a source server with
    /// tenancy, followed by a mirror).
    pub fn with_bearer(mut self, token: Option<&str>) -> Self {
        self.bearer = token.map(str::to_string);
        self
    }

    /// The repository URL (with a trailing `/`, no credentials).
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn get(&self, url: &Url) -> reqwest::RequestBuilder {
        let mut req = self.http.get(url.clone()).timeout(self.timeout);
        if let Some((user, pass)) = &self.basic
            && (self.pass_credentials || same_origin(url, &self.base))
        {
            req = req.basic_auth(user, Some(pass));
        }
        if let Some(token) = &self.bearer
            && same_origin(url, &self.base)
        {
            req = req.bearer_auth(token);
        }
        req
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<reqwest::Response, FetchError> {
        let resp = req.send().await.map_err(|e| FetchError::Http {
            url: redact(url),
            why: error_chain(&e),
            permanent: false,
        })?;
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let code = status.as_u16();
        Err(FetchError::Http {
            url: redact(url),
            why: format!("HTTP {status}"),
            permanent: (400..500).contains(&code) && code != 408 && code != 429,
        })
    }

    /// Fetches `index.yaml` unless it is unchanged since `known`, and parses it while it
    /// streams in (at most `limit` bytes; `spool_dir` as in [`index::parse`]).
    pub async fn index(
        &self,
        known: &Validators,
        limit: u64,
        spool_dir: &std::path::Path,
    ) -> Result<IndexFetch, FetchError> {
        let url = self
            .base
            .join("index.yaml")
            .map_err(|e| FetchError::Config(format!("index URL: {e}")))?;
        let mut req = self.get(&url);
        if let Some(etag) = &known.etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &known.last_modified {
            req = req.header(IF_MODIFIED_SINCE, lm);
        }
        let resp = self.send(req, &url).await?;
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(IndexFetch::NotModified);
        }
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::Index {
                url: redact(&url),
                source: IndexError::TooLarge { limit },
            });
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        // The body goes chunk by chunk to the parser on a blocking thread; a small channel
        // keeps at most a few chunks in memory.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(4);
        let spool_dir = spool_dir.to_path_buf();
        let parser = tokio::task::spawn_blocking(move || {
            index::parse(ChannelReader::new(rx), limit, &spool_dir)
        });
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let item = chunk.map_err(|e| error_chain(&e));
            let failed = item.is_err();
            // The parser stops reading at an error or the limit: then sending fails, and the
            // parse says why.
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
        drop(tx);
        let parsed = parser.await.map_err(|e| FetchError::Http {
            url: redact(&url),
            why: format!("index parser task failed: {e}"),
            permanent: false,
        })?;
        match parsed {
            Ok(p) => Ok(IndexFetch::Parsed(p, validators)),
            Err(IndexError::Read(why)) => Err(FetchError::Http {
                url: redact(&url),
                why,
                permanent: false,
            }),
            Err(source) => Err(FetchError::Index {
                url: redact(&url),
                source,
            }),
        }
    }

    /// The absolute URL of a chart given as written in the index (relative to the repository).
    pub fn chart_url(&self, written: &str) -> Result<Url, FetchError> {
        self.base
            .join(written)
            .map_err(|e| FetchError::Config(format!("chart URL {written:?}: {e}")))
    }

    /// Downloads a chart file, at most `limit` bytes.
    pub async fn chart(&self, url: &Url, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.download(url, limit)
            .await?
            .ok_or_else(|| FetchError::ChartTooLarge {
                url: redact(url),
                limit,
            })
    }

    /// Downloads `url` whole, or `None` when it is larger than `limit` bytes (reading no
    /// further than that).
    pub async fn download(&self, url: &Url, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let resp = self.send(self.get(url), url).await?;
        if resp.content_length().is_some_and(|n| n > limit) {
            return Ok(None);
        }
        let mut out = Vec::new();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| FetchError::Http {
                url: redact(url),
                why: error_chain(&e),
                permanent: false,
            })?;
            if (out.len() + chunk.len()) as u64 > limit {
                return Ok(None);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Some(out))
    }
}

/// A blocking `Read` over chunks sent from the async side.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>) -> Self {
        Self {
            rx,
            current: Bytes::new(),
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(why)) => return Err(std::io::Error::other(why)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
