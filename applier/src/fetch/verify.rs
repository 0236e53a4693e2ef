//! From `.tar.gz` bytes to a verified tree: decompress no further than the advertised size,
//! check the size and the sha256 of the uncompressed tar, then read the entries in memory. The
//! same path runs for fresh downloads and for cache hits, so a corrupt cache file is caught
//! exactly like a tampered download.

use std::io::Read;

use ferry_proto::{Digest, Hasher};

use super::tree::{ArtifactTree, TreeError, TreeLimits};

/// Why bytes are not the artifact they claim to be.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("artifact {digest} advertises {size} bytes, above the {limit}-byte limit")]
    AdvertisedTooLarge {
        digest: Digest,
        size: u64,
        limit: u64,
    },
    #[error("artifact {digest} decompresses to more than {bound} bytes")]
    TooLarge { digest: Digest, bound: u64 },
    #[error("artifact {digest}: corrupt or truncated gzip: {why}")]
    Gzip { digest: Digest, why: String },
    #[error("artifact digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("artifact {digest}: {source}")]
    Tree {
        digest: Digest,
        #[source]
        source: TreeError,
    },
}

/// Decompresses `gz` to at most `bound` bytes (the advertised size for a download, the
/// configured maximum for a cache read), verifies the tar's digest is `digest`, and reads it.
/// The digest is the integrity check; the bound only stops a gzip bomb early, so a tar
/// smaller than the bound is fine when its digest matches.
pub fn verify(
    gz: &[u8],
    digest: Digest,
    bound: u64,
    limits: &TreeLimits,
) -> Result<ArtifactTree, VerifyError> {
    // One byte past the bound is enough to know the stream is too big, without letting a
    // gzip bomb expand any further.
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .take(bound.saturating_add(1))
        .read_to_end(&mut tar)
        .map_err(|e| VerifyError::Gzip {
            digest,
            why: e.to_string(),
        })?;
    if tar.len() as u64 > bound {
        return Err(VerifyError::TooLarge { digest, bound });
    }
    let mut h = Hasher::new();
    h.update(&tar);
    let got = h.finish();
    if got != digest {
        return Err(VerifyError::DigestMismatch {
            expected: digest,
            actual: got,
        });
    }
    ArtifactTree::from_tar(digest, &tar, limits)
        .map_err(|source| VerifyError::Tree { digest, source })
}

/// Gzips `data` (tests and the CLI's local mode build artifacts with it).
pub fn gzip(data: &[u8]) -> Vec<u8> {
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

    fn limits() -> TreeLimits {
        TreeLimits::default()
    }

    #[test]
    fn accepts_the_artifact_it_was_promised() {
        let (tar, d, n) = sample();
        let t = verify(&gzip(&tar), d, n, &limits()).expect("valid");
        assert_eq!(t.get("a.yaml"), Some(&b"kind: ConfigMap"[..]));
        assert_eq!(t.digest(), d);
        // A generous bound (size unknown, e.g. a cache read) is fine: the digest decides.
        verify(&gzip(&tar), d, n * 100, &limits()).expect("bound is only a bound");
    }

    #[test]
    fn digest_mismatch_is_refused() {
        let (tar, _, n) = sample();
        let other = Digest::of(b"something else");
        let err = verify(&gzip(&tar), other, n, &limits()).expect_err("tampered");
        assert!(matches!(err, VerifyError::DigestMismatch { expected, .. } if expected == other));
    }

    #[test]
    fn truncated_gzip_is_refused() {
        let (tar, d, n) = sample();
        let gz = gzip(&tar);
        let err = verify(&gz[..gz.len() - 12], d, n, &limits()).expect_err("truncated");
        assert!(matches!(err, VerifyError::Gzip { .. }), "{err}");
        let err = verify(b"not gzip at all", d, n, &limits()).expect_err("junk");
        assert!(matches!(err, VerifyError::Gzip { .. }), "{err}");
    }

    #[test]
    fn gzip_bomb_stops_at_the_bound() {
        // 16 MiB of zeros compress to ~16 KiB; the server claims 10 KiB.
        let bomb = gzip(&vec![0u8; 16 << 20]);
        let d = Digest::of(b"x");
        let err = verify(&bomb, d, 10 * 1024, &limits()).expect_err("bomb");
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
        let err = verify(&gzip(&tar), d, tar.len() as u64, &limits()).expect_err("symlink");
        assert!(matches!(err, VerifyError::Tree { .. }), "{err}");
    }
}
