//! From `.tar.gz` bytes to a verified tree, streaming, in two passes over the compressed bytes
//! (a file on disk for downloads and cache hits): the first decompresses no further than the
//! bound and hashes the tar without keeping it; only when the digest matches does the second
//! read the entries into the tree, re-hashing as it goes so the tree is exactly the bytes that
//! were verified. Memory is the tree alone — never the compressed bytes, the tar and the files at
//! once — and nothing unverified is kept: a gzip bomb, a tampered or truncated artifact costs
//! one read buffer. The same path runs for fresh downloads and for cache hits, so a corrupt cache
//! file is caught exactly like a tampered download.

use std::io::{self, Read};

use ferry_proto::verify::{StreamError, VerifyingTar as Tar};
use ferry_proto::{ArtifactLimits, Digest};

use super::tree::{ArtifactTree, TreeError};

/// Why bytes are not the artifact they claim to be.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The source server advertises a size above the agent's limit; nothing was downloaded.
    #[error("artifact {digest} advertises {size} bytes, above the {limit}-byte limit")]
    AdvertisedTooLarge {
        digest: Digest,
        size: u64,
        limit: u64,
    },
    /// The gzip stream expands past the bound (a gzip bomb, or a lying advertised size).
    #[error("artifact {digest} decompresses to more than {bound} bytes")]
    TooLarge { digest: Digest, bound: u64 },
    /// The compressed bytes are not a complete gzip stream.
    #[error("artifact {digest}: corrupt or truncated gzip: {why}")]
    Gzip { digest: Digest, why: String },
    /// The compressed bytes could not be read (the downloaded or cached file).
    #[error("artifact {digest}: reading the compressed bytes: {why}")]
    Read { digest: Digest, why: String },
    /// The tar's sha256 is not the digest the artifact is named by.
    #[error("artifact digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// The verified tar holds something unsafe or beyond the tree limits.
    #[error("artifact {digest}: {source}")]
    Tree {
        digest: Digest,
        #[source]
        source: TreeError,
    },
}

impl From<StreamError> for VerifyError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::TooLarge { digest, bound } => VerifyError::TooLarge { digest, bound },
            StreamError::Gzip { digest, why } => VerifyError::Gzip { digest, why },
            StreamError::DigestMismatch { expected, actual } => {
                VerifyError::DigestMismatch { expected, actual }
            }
        }
    }
}

/// Verifies the gzipped tar that `open` yields (called once per pass, each time from the
/// start) against `digest`, decompressing at most `bound` bytes (the advertised size for a
/// download, the configured maximum for a cache read), and reads it into a tree. The digest is
/// the integrity check; the bound only stops a gzip bomb early, so a tar smaller than the bound
/// is fine when its digest matches.
pub fn verify<R: Read>(
    mut open: impl FnMut() -> io::Result<R>,
    digest: Digest,
    bound: u64,
    limits: &ArtifactLimits,
) -> Result<ArtifactTree, VerifyError> {
    let read_err = |e: io::Error| VerifyError::Read {
        digest,
        why: e.to_string(),
    };
    let mut first = Tar::new(open().map_err(read_err)?, digest, bound);
    io::copy(&mut first, &mut io::sink()).map_err(|e| VerifyError::from(first.error(e)))?;
    first.check()?;

    let mut second = Tar::new(open().map_err(read_err)?, digest, bound);
    let parsed = ArtifactTree::from_reader(digest, &mut second, limits);
    // The tar format ends before the stream does (padding): the rest is part of the digest.
    let drained = io::copy(&mut second, &mut io::sink());
    let tree = match (parsed, drained) {
        (Ok(tree), Ok(_)) => tree,
        // A stream failure (the file changed under us) explains a parse failure.
        (_, Err(e)) => return Err(second.error(e).into()),
        (Err(source), Ok(_)) => {
            second.check()?;
            return Err(second
                .stream_error()
                .map_or(VerifyError::Tree { digest, source }, VerifyError::from));
        }
    };
    second.check()?;
    Ok(tree)
}

/// Gzips `data`: tests build artifacts with it.
#[cfg(test)]
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::super::tree::tests::raw_tar;
    use super::*;

    fn sample() -> (Vec<u8>, Digest, u64) {
        let tar = raw_tar(&[(b"a.yaml", tar::EntryType::Regular, b"kind: ConfigMap")]);
        let d = Digest::of(&tar);
        let n = tar.len() as u64;
        (tar, d, n)
    }

    /// Each pass reads the same bytes from the start.
    fn bytes<'a>(b: &'a [u8]) -> impl FnMut() -> io::Result<&'a [u8]> + 'a {
        move || Ok(b)
    }

    fn limits() -> ArtifactLimits {
        ArtifactLimits::default()
    }

    #[test]
    fn accepts_the_artifact_it_was_promised() {
        let (tar, d, n) = sample();
        let t = verify(bytes(&gzip(&tar)), d, n, &limits()).expect("valid");
        assert_eq!(t.get("a.yaml"), Some(&b"kind: ConfigMap"[..]));
        assert_eq!(t.digest(), d);
        // A generous bound (size unknown, e.g. a cache read) is fine: the digest decides.
        verify(bytes(&gzip(&tar)), d, n * 100, &limits()).expect("bound is only a bound");
    }

    #[test]
    fn digest_mismatch_is_refused() {
        let (tar, _, n) = sample();
        let other = Digest::of(b"something else");
        let err = verify(bytes(&gzip(&tar)), other, n, &limits()).expect_err("tampered");
        assert!(matches!(err, VerifyError::DigestMismatch { expected, .. } if expected == other));
    }

    #[test]
    fn truncated_gzip_is_refused() {
        let (tar, d, n) = sample();
        let gz = gzip(&tar);
        let err = verify(bytes(&gz[..gz.len() - 12]), d, n, &limits()).expect_err("truncated");
        assert!(matches!(err, VerifyError::Gzip { .. }), "{err}");
        let err = verify(bytes(b"not gzip at all"), d, n, &limits()).expect_err("junk");
        assert!(matches!(err, VerifyError::Gzip { .. }), "{err}");
    }

    #[test]
    fn gzip_bomb_stops_at_the_bound() {
        // 16 MiB of zeros compress to ~16 KiB; the server claims 10 KiB.
        let bomb = gzip(&vec![0u8; 16 << 20]);
        let d = Digest::of(b"x");
        let err = verify(bytes(&bomb), d, 10 * 1024, &limits()).expect_err("bomb");
        assert_eq!(
            err,
            VerifyError::TooLarge {
                digest: d,
                bound: 10 * 1024
            }
        );
    }

    #[test]
    fn a_verified_tar_with_a_symlink_is_still_refused() {
        let tar = raw_tar(&[(b"link", tar::EntryType::Symlink, b"")]);
        let d = Digest::of(&tar);
        let err = verify(bytes(&gzip(&tar)), d, tar.len() as u64, &limits()).expect_err("symlink");
        assert!(matches!(err, VerifyError::Tree { .. }), "{err}");
    }
}
