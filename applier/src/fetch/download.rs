//! Downloads an artifact's `.tar.gz` with a hard byte cap (headers may lie, so the cap is
//! enforced on the bytes received) and retries with exponential backoff on what is worth
//! retrying: connection errors, timeouts, 5xx and 429. A 4xx or an oversize body is final.

use ferry_proto::Backoff;
use futures::StreamExt;

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
}

impl DownloadError {
    fn retryable(&self) -> bool {
        match self {
            DownloadError::Status { status, .. } => *status >= 500 || *status == 429,
            DownloadError::Transport { .. } => true,
            DownloadError::TooLarge { .. } | DownloadError::Write { .. } => false,
        }
    }

    /// True when the server answered that it does not have the artifact.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DownloadError::Status { status: 404, .. })
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
    mut out: tokio::fs::File,
) -> Result<(), DownloadError> {
    let mut failures = 0;
    loop {
        match download_once(http, url, auth.as_ref(), cap, &mut out).await {
            Ok(()) => return Ok(()),
            Err(e) if e.retryable() && failures + 1 < attempts => {
                failures += 1;
                let delay = backoff.delay(failures);
                tracing::warn!(%url, error = %e, failures, ?delay, "artifact download failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn download_once(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&reqwest::header::HeaderValue>,
    cap: u64,
    out: &mut tokio::fs::File,
) -> Result<(), DownloadError> {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
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
    let too_large = || DownloadError::TooLarge {
        url: url.to_string(),
        limit: cap,
    };
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(too_large());
    }
    let local = |e: std::io::Error| DownloadError::Write {
        url: url.to_string(),
        why: e.to_string(),
    };
    out.set_len(0).await.map_err(local)?;
    out.seek(std::io::SeekFrom::Start(0)).await.map_err(local)?;
    let mut written = 0u64;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(transport)?;
        written += chunk.len() as u64;
        if written > cap {
            return Err(too_large());
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
