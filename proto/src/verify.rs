//! Checking compressed artifact bytes against their digest: the gzip stream is decompressed no
//! further than a bound and the tar it yields is hashed as it is read. One implementation for
//! every reader of artifacts: agents (downloads and their cache), and the source server when it
//! imports a bundle or mirrors another server. Works on any [`Read`]; it does no I/O of its own.

use std::io::{self, Read};

use crate::{Digest, Hasher};

/// Why compressed bytes are not the artifact they claim to be.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamError {
    /// The gzip stream expands past the bound (a gzip bomb, or a lying advertised size).
    #[error("artifact {digest} decompresses to more than {bound} bytes")]
    TooLarge { digest: Digest, bound: u64 },
    /// The compressed bytes are not a complete gzip stream (corrupt or truncated).
    #[error("artifact {digest}: corrupt or truncated gzip: {why}")]
    Gzip { digest: Digest, why: String },
    /// The tar's sha256 is not the digest the artifact is named by.
    #[error("artifact digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
}

/// The uncompressed tar of a gzip stream, hashed and counted as it is read, and cut one byte
/// past the bound (enough to know the stream is too big without expanding a bomb further).
pub struct VerifyingTar<R: Read> {
    gz: io::Take<flate2::read::GzDecoder<R>>,
    hasher: Hasher,
    read: u64,
    digest: Digest,
    bound: u64,
    /// The first error of the gzip stream, kept because a tar reader on top reports it as its
    /// own.
    failed: Option<String>,
}

impl<R: Read> VerifyingTar<R> {
    /// Reads the gzip stream `gz`, which must decompress to at most `bound` bytes hashing to
    /// `digest`.
    pub fn new(gz: R, digest: Digest, bound: u64) -> Self {
        Self {
            gz: flate2::read::GzDecoder::new(gz).take(bound.saturating_add(1)),
            hasher: Hasher::new(),
            read: 0,
            digest,
            bound,
            failed: None,
        }
    }

    fn too_large(&self) -> bool {
        self.read > self.bound
    }

    /// Uncompressed bytes read so far.
    pub fn tar_size(&self) -> u64 {
        self.read
    }

    /// The failure of the stream itself (too large, corrupt gzip), if any.
    pub fn stream_error(&self) -> Option<StreamError> {
        if self.too_large() {
            return Some(StreamError::TooLarge {
                digest: self.digest,
                bound: self.bound,
            });
        }
        self.failed.as_ref().map(|why| StreamError::Gzip {
            digest: self.digest,
            why: why.clone(),
        })
    }

    /// What a read error `e` means: the stream's own failure, else a gzip error.
    pub fn error(&self, e: io::Error) -> StreamError {
        self.stream_error().unwrap_or(StreamError::Gzip {
            digest: self.digest,
            why: e.to_string(),
        })
    }

    /// After the whole stream was read: the size bound and the digest.
    pub fn check(&mut self) -> Result<(), StreamError> {
        if let Some(e) = self.stream_error() {
            return Err(e);
        }
        let actual = std::mem::replace(&mut self.hasher, Hasher::new()).finish();
        if actual != self.digest {
            return Err(StreamError::DigestMismatch {
                expected: self.digest,
                actual,
            });
        }
        Ok(())
    }
}

impl<R: Read> Read for VerifyingTar<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.too_large() {
            return Err(io::Error::other("decompressed size is above the bound"));
        }
        let n = self.gz.read(buf).inspect_err(|e| {
            self.failed.get_or_insert_with(|| e.to_string());
        })?;
        self.read += n as u64;
        if self.too_large() {
            return Err(io::Error::other("decompressed size is above the bound"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads the whole gzip stream `gz` and checks it decompresses to at most `bound` bytes whose
/// sha256 is `digest`; returns the uncompressed size.
pub fn check_gz(gz: impl Read, digest: Digest, bound: u64) -> Result<u64, StreamError> {
    let mut tar = VerifyingTar::new(gz, digest, bound);
    io::copy(&mut tar, &mut io::sink()).map_err(|e| tar.error(e))?;
    tar.check()?;
    Ok(tar.tar_size())
}

/// Like [`check_gz`], keeping the uncompressed tar (at most `bound` bytes).
pub fn unpack_gz(gz: impl Read, digest: Digest, bound: u64) -> Result<Vec<u8>, StreamError> {
    let mut tar = VerifyingTar::new(gz, digest, bound);
    let mut out = Vec::new();
    tar.read_to_end(&mut out).map_err(|e| tar.error(e))?;
    tar.check()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).expect("writing to a Vec cannot fail");
        enc.finish().expect("writing to a Vec cannot fail")
    }

    #[test]
    fn checks_digest_bound_and_completeness() {
        let data = b"some tar bytes".repeat(100);
        let d = Digest::of(&data);
        let gz = gzip(&data);
        assert_eq!(check_gz(&gz[..], d, 1 << 20), Ok(data.len() as u64));
        assert_eq!(unpack_gz(&gz[..], d, 1 << 20), Ok(data.clone()));
        let other = Digest::of(b"x");
        assert!(matches!(
            check_gz(&gz[..], other, 1 << 20),
            Err(StreamError::DigestMismatch { expected, actual }) if expected == other && actual == d
        ));
        assert!(matches!(
            check_gz(&gz[..gz.len() - 9], d, 1 << 20),
            Err(StreamError::Gzip { .. })
        ));
        assert_eq!(
            check_gz(&gz[..], d, 100),
            Err(StreamError::TooLarge {
                digest: d,
                bound: 100
            })
        );
    }
}
