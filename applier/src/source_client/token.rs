//! The agent's credential for the source server: a ServiceAccount token in a file (a projected
//! volume whose audience is the source server's), sent as `Authorization: Bearer`.
//!
//! The kubelet rotates a projected token well before it expires, so the file is read again
//! when the copy in memory is older than [`REREAD`]; a failed read keeps the last good token.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;

/// How long a read token is used before the file is read again.
pub const REREAD: Duration = Duration::from_secs(60);
/// A token file larger than this is not a token.
const MAX_TOKEN_BYTES: u64 = 16 << 10;

/// A token file, read lazily and re-read every [`REREAD`].
#[derive(Debug)]
pub struct SourceToken {
    path: PathBuf,
    cached: Mutex<Option<(Instant, HeaderValue)>>,
}

impl SourceToken {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cached: Mutex::new(None),
        }
    }

    /// The `Authorization` header value, or `None` when the file has never been readable.
    pub fn header(&self) -> Option<HeaderValue> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, v)) = cached.as_ref()
            && at.elapsed() < REREAD
        {
            return Some(v.clone());
        }
        match self.read() {
            Ok(v) => {
                *cached = Some((Instant::now(), v.clone()));
                Some(v)
            }
            Err(why) => {
                tracing::warn!(file = %self.path.display(), %why, "cannot read the source server token; keeping the last one");
                cached.as_ref().map(|(_, v)| v.clone())
            }
        }
    }

    fn read(&self) -> Result<HeaderValue, String> {
        use std::io::Read as _;
        let mut text = String::new();
        std::fs::File::open(&self.path)
            .and_then(|f| f.take(MAX_TOKEN_BYTES + 1).read_to_string(&mut text))
            .map_err(|e| e.to_string())?;
        if text.len() as u64 > MAX_TOKEN_BYTES {
            return Err(format!("larger than {MAX_TOKEN_BYTES} bytes"));
        }
        let token = text.trim();
        if token.is_empty() {
            return Err("empty".into());
        }
        let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "not a valid header value".to_string())?;
        v.set_sensitive(true);
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_from_its_file_and_the_last_good_one_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        let t = SourceToken::new(&path);
        assert_eq!(t.header(), None, "no file yet");
        std::fs::write(&path, "abc\n").expect("write");
        assert_eq!(t.header().expect("token"), "Bearer abc");
        std::fs::remove_file(&path).expect("remove");
        // Within REREAD the copy in memory is used; after a failed re-read it is kept too.
        assert_eq!(t.header().expect("kept"), "Bearer abc");
    }
}
