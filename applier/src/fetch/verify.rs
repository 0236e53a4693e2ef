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
    #[error("artifact {digest} decompresses to more than its advertised {size} bytes")]
    LargerThanAdvertised { digest: Digest, size: u64 },
    #[error("artifact {digest} decompresses to {actual} bytes, not the advertised {size}")]
    SizeMismatch {
        digest: Digest,
        size: u64,
        actual: u64,
    },
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

/// Decompresses `gz`, verifies it is the `size`-byte tar with digest `digest`, and reads it.
pub fn verify(
    gz: &[u8],
    digest: Digest,
    size: u64,
    max_size: u64,
    limits: &TreeLimits,
) -> Result<ArtifactTree, VerifyError> {
    if size > max_size {
        return Err(VerifyError::AdvertisedTooLarge {
            digest,
            size,
            limit: max_size,
        });
    }
    // One byte past the advertised size is enough to know the stream lies, without letting a
    // gzip bomb expand any further.
    let mut tar = Vec::with_capacity(size as usize);
    flate2::read::GzDecoder::new(gz)
        .take(size + 1)
        .read_to_end(&mut tar)
        .map_err(|e| VerifyError::Gzip {
            digest,
            why: e.to_string(),
        })?;
    let actual = tar.len() as u64;
    if actual > size {
        return Err(VerifyError::LargerThanAdvertised { digest, size });
    }
    if actual != size {
        return Err(VerifyError::SizeMismatch {
            digest,
            size,
            actual,
        });
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

    const MAX: u64 = 1 << 30;

    #[test]
    fn accepts_the_artifact_it_was_promised() {
        let (tar, d, n) = sample();
        let t = verify(&gzip(&tar), d, n, MAX, &TreeLimits::default()).expect("valid");
        assert_eq!(t.get("a.yaml"), Some(&b"kind: ConfigMap"[..]));
        assert_eq!(t.digest(), d);
    }

    #[test]
    fn digest_mismatch_is_refused() {
        let (tar, _, n) = sample();
        let other = Digest::of(b"something else");
        let err = verify(&gzip(&tar), other, n, MAX, &TreeLimits::default()).expect_err("tampered");
        assert!(matches!(err, VerifyError::DigestMismatch { expected, .. } if expected == other));
    }

    #[test]
    fn truncated_gzip_is_refused() {
        let (tar, d, n) = sample();
        let gz = gzip(&tar);
        let err =
            verify(&gz[..gz.len() - 12], d, n, MAX, &TreeLimits::default()).expect_err("truncated");
        assert!(matches!(err, VerifyError::Gzip { .. }), "{err}");
        let err = verify(b"not gzip at all", d, n, MAX, &TreeLimits::default()).expect_err("junk");
        assert!(matches!(err, VerifyError::Gzip { .. }), "{err}");
    }

    #[test]
    fn gzip_bomb_stops_at_the_advertised_size() {
        // 16 MiB of zeros compress to ~16 KiB; the server claims 10 KiB.
        let bomb = gzip(&vec![0u8; 16 << 20]);
        let d = Digest::of(b"x");
        let err = verify(&bomb, d, 10 * 1024, MAX, &TreeLimits::default()).expect_err("bomb");
        assert_eq!(
            err,
            VerifyError::LargerThanAdvertised {
                digest: d,
                size: 10 * 1024
            }
        );
        let err = verify(&bomb, d, 2 << 30, MAX, &TreeLimits::default()).expect_err("claim");
        assert!(
            matches!(err, VerifyError::AdvertisedTooLarge { .. }),
            "{err}"
        );
    }

    #[test]
    fn smaller_than_advertised_is_refused() {
        let (tar, d, n) = sample();
        let err = verify(&gzip(&tar), d, n + 512, MAX, &TreeLimits::default()).expect_err("short");
        assert!(matches!(err, VerifyError::SizeMismatch { .. }), "{err}");
    }

    #[test]
    fn a_verified_tar_with_a_symlink_is_still_refused() {
        let tar = raw_tar(&[(b"link", tar::EntryType::Symlink, b"")]);
        let d = Digest::of(&tar);
        let err = verify(
            &gzip(&tar),
            d,
            tar.len() as u64,
            MAX,
            &TreeLimits::default(),
        )
        .expect_err("symlink");
        assert!(matches!(err, VerifyError::Tree { .. }), "{err}");
    }
}
