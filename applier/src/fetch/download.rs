//! Downloads an artifact's `.tar.gz` — from the source server over HTTP, or straight from the
//! artifact store (`--artifact-store`) — with a hard byte cap (headers and object metadata may
//! lie, so the cap is enforced on the bytes received), retrying with the project's backoff on
//! what is worth retrying: connection errors, timeouts, 5xx and 429. A 4xx, a missing object or
//! an oversize body is final.

use ferry_proto::Backoff;
use ferry_store::object_store::{ObjectStore, ObjectStoreExt};
use futures::{Stream, StreamExt};

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The server answered with an error status.
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    /// No answer, or the body broke off.
    #[error("GET {url}: {why}")]
    Transport { url: String, why: String },
    /// The body is bigger than the advertised size allows.
    #[error("GET {url}: body is larger than the {limit}-byte cap")]
    TooLarge { url: String, limit: u64 },
    /// The body could not be written to the local temp file.
    #[error("GET {url}: writing the body to the cache: {why}")]
    Write { url: String, why: String },
    /// The artifact store has no object for the digest.
    #[error("GET {url}: no such object in the artifact store")]
    Missing { url: String },
}

impl DownloadError {
    fn retryable(&self) -> bool {
        match self {
            DownloadError::Status { status, .. } => *status >= 500 || *status == 429,
            DownloadError::Transport { .. } => true,
            DownloadError::TooLarge { .. }
            | DownloadError::Write { .. }
            | DownloadError::Missing { .. } => false,
        }
    }

    /// True when the server answered that it does not have the artifact.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            DownloadError::Status { status: 404, .. } | DownloadError::Missing { .. }
        )
    }
}

/// Where one try reads the bytes from.
enum Origin<'a> {
    Http {
        http: &'a reqwest::Client,
        url: &'a str,
        auth: Option<&'a reqwest::header::HeaderValue>,
    },
    Store {
        store: &'a dyn ObjectStore,
        path: &'a ferry_store::object_store::path::Path,
        url: &'a str,
    },
}

impl Origin<'_> {
    fn url(&self) -> &str {
        match self {
            Origin::Http { url, .. } | Origin::Store { url, .. } => url,
        }
    }

    async fn once(&self, cap: u64, out: &mut tokio::fs::File) -> Result<(), DownloadError> {
        match *self {
            Origin::Http { http, url, auth } => download_once(http, url, auth, cap, out).await,
            Origin::Store { store, path, url } => store_once(store, path, url, cap, out).await,
        }
    }
}

/// Tries `from` up to `attempts` times with `backoff` between tries of what is retryable,
/// writing at most `cap` bytes to `out` (from its start on every try).
async fn with_retries(
    from: Origin<'_>,
    cap: u64,
    backoff: &Backoff,
    attempts: u32,
    mut out: tokio::fs::File,
) -> Result<(), DownloadError> {
    let mut failures = 0;
    loop {
        match from.once(cap, &mut out).await {
            Ok(()) => return Ok(()),
            Err(e) if e.retryable() && failures + 1 < attempts => {
                failures += 1;
                let delay = backoff.delay(failures);
                tracing::warn!(url = %from.url(), error = %e, failures, ?delay, "artifact download failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// GETs `url`, up to `attempts` times with `backoff` between tries, and writes at most `cap` bytes of body to `out`
/// (from its start on every try).
pub async fn download(
    http: &reqwest::Client,
    url: &str,
    auth: Option<reqwest::header::HeaderValue>,
    cap: u64,
    backoff: &Backoff,
    attempts: u32,
    out: tokio::fs::File,
) -> Result<(), DownloadError> {
    let from = Origin::Http {
        http,
        url,
        auth: auth.as_ref(),
    };
    with_retries(from, cap, backoff, attempts, out).await
}

/// Reads `path` from the artifact store (`describe` names the store in errors), with the
/// same retries and cap as [`download`].
pub async fn download_from_store(
    store: &dyn ObjectStore,
    describe: &str,
    path: &ferry_store::object_store::path::Path,
    cap: u64,
    backoff: &Backoff,
    attempts: u32,
    out: tokio::fs::File,
) -> Result<(), DownloadError> {
    let url = format!("{}/{path}", describe.trim_end_matches('/'));
    let from = Origin::Store {
        store,
        path,
        url: &url,
    };
    with_retries(from, cap, backoff, attempts, out).await
}

async fn store_once(
    store: &dyn ObjectStore,
    path: &ferry_store::object_store::path::Path,
    url: &str,
    cap: u64,
    out: &mut tokio::fs::File,
) -> Result<(), DownloadError> {
    let got = match store.get(path).await {
        Ok(r) => r,
        Err(ferry_store::object_store::Error::NotFound { .. }) => {
            return Err(DownloadError::Missing {
                url: url.to_string(),
            });
        }
        Err(e) => {
            return Err(DownloadError::Transport {
                url: url.to_string(),
                why: error_chain(&e),
            });
        }
    };
    if got.meta.size > cap {
        return Err(DownloadError::TooLarge {
            url: url.to_string(),
            limit: cap,
        });
    }
    let body = got.into_stream().map(|c| {
        c.map_err(|e| DownloadError::Transport {
            url: url.to_string(),
            why: error_chain(&e),
        })
    });
    write_capped(body, url, cap, out).await
}

async fn download_once(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&reqwest::header::HeaderValue>,
    cap: u64,
    out: &mut tokio::fs::File,
) -> Result<(), DownloadError> {
    let transport = |e: reqwest::Error| DownloadError::Transport {
        url: url.to_string(),
        why: error_chain(&e),
    };
    let mut req = http.get(url);
    if let Some(v) = auth {
        req = req.header(reqwest::header::AUTHORIZATION, v);
    }
    let resp = req.send().await.map_err(transport)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(DownloadError::Status {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(DownloadError::TooLarge {
            url: url.to_string(),
            limit: cap,
        });
    }
    write_capped(
        resp.bytes_stream().map(|c| c.map_err(transport)),
        url,
        cap,
        out,
    )
    .await
}

/// Writes `body` to `out` from its start, failing once more than `cap` bytes arrived.
async fn write_capped(
    body: impl Stream<Item = Result<bytes::Bytes, DownloadError>>,
    url: &str,
    cap: u64,
    out: &mut tokio::fs::File,
) -> Result<(), DownloadError> {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let local = |e: std::io::Error| DownloadError::Write {
        url: url.to_string(),
        why: e.to_string(),
    };
    out.set_len(0).await.map_err(local)?;
    out.seek(std::io::SeekFrom::Start(0)).await.map_err(local)?;
    let mut written = 0u64;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        if written > cap {
            return Err(DownloadError::TooLarge {
                url: url.to_string(),
                limit: cap,
            });
        }
        out.write_all(&chunk).await.map_err(local)?;
    }
    out.flush().await.map_err(local)?;
    Ok(())
}

/// reqwest's top-level message hides the cause ("error sending request"); include the chain.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
