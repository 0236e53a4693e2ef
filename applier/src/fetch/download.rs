//! Downloads an artifact's `.tar.gz` with a hard byte cap (headers may lie, so the cap is
//! enforced on the bytes received) and retries with exponential backoff on what is worth
//! retrying: connection errors, timeouts, 5xx and 429. A 4xx or an oversize body is final.

use std::time::Duration;

use futures::StreamExt;

/// Exponential backoff for one operation.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// Total tries, including the first.
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempts: 4,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The delay before try number `attempt + 1` (0-based `attempt` just failed).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: {why}")]
    Transport { url: String, why: String },
    #[error("GET {url}: body is larger than the {limit}-byte cap")]
    TooLarge { url: String, limit: u64 },
}

impl DownloadError {
    fn retryable(&self) -> bool {
        match self {
            DownloadError::Status { status, .. } => *status >= 500 || *status == 429,
            DownloadError::Transport { .. } => true,
            DownloadError::TooLarge { .. } => false,
        }
    }

    /// True when the server answered that it does not have the artifact.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DownloadError::Status { status: 404, .. })
    }
}

/// GETs `url`, retrying per `backoff`, and returns at most `cap` bytes of body.
pub async fn download(
    http: &reqwest::Client,
    url: &str,
    cap: u64,
    backoff: &Backoff,
) -> Result<Vec<u8>, DownloadError> {
    let mut attempt = 0;
    loop {
        match download_once(http, url, cap).await {
            Ok(body) => return Ok(body),
            Err(e) if e.retryable() && attempt + 1 < backoff.attempts => {
                let delay = backoff.delay(attempt);
                tracing::warn!(%url, error = %e, attempt, ?delay, "artifact download failed; retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn download_once(
    http: &reqwest::Client,
    url: &str,
    cap: u64,
) -> Result<Vec<u8>, DownloadError> {
    let transport = |e: reqwest::Error| DownloadError::Transport {
        url: url.to_string(),
        why: error_chain(&e),
    };
    let resp = http.get(url).send().await.map_err(transport)?;
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
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0).min(cap) as usize);
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(transport)?;
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let b = Backoff {
            attempts: 10,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        let delays: Vec<_> = (0..5).map(|i| b.delay(i).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        assert_eq!(b.delay(u32::MAX), Duration::from_millis(500));
    }
}
