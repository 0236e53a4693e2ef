//! A chart version's `.tgz` → a canonical artifact.
//!
//! The download is checked against the index entry's `digest` (sha256 of the `.tgz`) when there
//! is one, then unpacked in memory: every entry's first path component (the chart's directory,
//! `<chart>/`) is stripped, as Helm's loader does, so `Chart.yaml` lands at the artifact's root;
//! directories are re-derived from the files; symlinks, hard links and device entries are
//! refused (`helm package` never writes them). The files are re-packed by
//! [`crate::artifact::build_from_files`], so the digest depends only on the chart's files and
//! modes — not on the gzip level, the entry order or the tar dialect of whoever packed it.

use std::io::Read;

use ferry_proto::{Digest, LimitError};

use crate::artifact::{ArtifactError, BuiltArtifact, File, Limits, build_from_files, safe_path};

/// Why a chart file cannot become an artifact.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The `.tgz` does not have the digest the index gives.
    #[error("digest mismatch: the index says sha256:{expected}, the download is {actual}")]
    DigestMismatch {
        /// The index entry's digest.
        expected: String,
        /// The downloaded file's.
        actual: Digest,
    },
    /// The index entry's `digest` is not 64 hex characters.
    #[error("the index gives an invalid digest {0:?}")]
    InvalidDigest(String),
    /// Not a gzip'd tar, or a corrupt one.
    #[error("not a valid chart archive: {0}")]
    Archive(String),
    /// An entry that is not a regular file or a directory, or a path outside the chart.
    #[error("unsafe entry in the chart archive: {0}")]
    Unsafe(String),
    /// No `Chart.yaml` at the chart's root.
    #[error("not a chart: no Chart.yaml in its top-level directory")]
    NoChartYaml,
    /// A limit is exceeded, or packing failed.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

impl From<LimitError> for ChartError {
    fn from(e: LimitError) -> Self {
        ChartError::Artifact(e.into())
    }
}

/// Checks `tgz` against `expected` (the index's hex digest), when given.
pub fn verify_digest(tgz: &[u8], expected: Option<&str>) -> Result<(), ChartError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let hex = expected.strip_prefix("sha256:").unwrap_or(expected);
    let want: Digest = format!("sha256:{}", hex.to_ascii_lowercase())
        .parse()
        .map_err(|_| ChartError::InvalidDigest(expected.chars().take(80).collect()))?;
    let actual = Digest::of(tgz);
    if actual != want {
        return Err(ChartError::DigestMismatch {
            expected: hex.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Unpacks a chart `.tgz` and packs its files as a canonical artifact. `file_limit` is the
/// per-file bound for charts (Flux's 5 MiB), on top of `limits`.
pub fn pack(tgz: &[u8], limits: &Limits, file_limit: u64) -> Result<BuiltArtifact, ChartError> {
    let limits = Limits {
        max_file_size: limits.max_file_size.min(file_limit),
        ..limits.clone()
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut count = 0u64;
    let entries = archive
        .entries()
        .map_err(|e| ChartError::Archive(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ChartError::Archive(e.to_string()))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        count += 1;
        limits.check_entries(count)?;
        if kind.is_dir() {
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            return Err(ChartError::Unsafe(format!(
                "{shown:?} is a {kind:?} entry, only files and directories are allowed"
            )));
        }
        // Strip the chart's directory: `<chart>/templates/x.yaml` → `templates/x.yaml`.
        let parts: Vec<&[u8]> = raw
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        if parts.len() < 2 {
            return Err(ChartError::Unsafe(format!(
                "{shown:?} is outside the chart's top-level directory"
            )));
        }
        let path = parts[1..].join(&b'/');
        if !safe_path(&path) {
            return Err(ChartError::Unsafe(format!("{shown:?}")));
        }
        let path_str = String::from_utf8_lossy(&path).into_owned();
        let size = entry.size();
        limits.check_file(&path_str, size)?;
        total += size;
        limits.check_total(total)?;
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        (&mut entry)
            .take(limits.max_file_size + 1)
            .read_to_end(&mut data)
            .map_err(|e| ChartError::Archive(format!("reading {shown:?}: {e}")))?;
        limits.check_file(&path_str, data.len() as u64)?;
        let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
        files.push(File {
            path,
            executable,
            data,
        });
    }
    if !files.iter().any(|f| f.path == b"Chart.yaml") {
        return Err(ChartError::NoChartYaml);
    }
    Ok(build_from_files(files, &limits)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(entries: &[(&str, &[u8], u32)], level: u32) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::new(level),
        ));
        for (path, data, mode) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            h.set_mtime(1_700_000_000);
            h.set_cksum();
            b.append_data(&mut h, path, *data).expect("append");
        }
        b.into_inner().expect("tar").finish().expect("gz")
    }

    #[test]
    fn digest_does_not_depend_on_packing() {
        let a = tgz(
            &[
                ("app/Chart.yaml", b"name: app\nversion: 1.0.0\n", 0o644),
                ("app/templates/cm.yaml", b"kind: ConfigMap\n", 0o644),
                ("app/values.yaml", b"x: 1\n", 0o600),
            ],
            9,
        );
        let b = tgz(
            &[
                ("app/values.yaml", b"x: 1\n", 0o644),
                ("./app/templates/cm.yaml", b"kind: ConfigMap\n", 0o664),
                ("app/Chart.yaml", b"name: app\nversion: 1.0.0\n", 0o644),
            ],
            1,
        );
        assert_ne!(a, b);
        let limits = Limits::default();
        let pa = pack(&a, &limits, 5 << 20).expect("packs");
        let pb = pack(&b, &limits, 5 << 20).expect("packs");
        assert_eq!(pa.digest, pb.digest);
        assert_eq!(
            pa.entries, 4,
            "Chart.yaml, templates/, templates/cm.yaml, values.yaml"
        );
    }

    #[test]
    fn refuses_bad_archives_naming_the_entry() {
        let limits = Limits::default();
        let outside = tgz(&[("Chart.yaml", b"x", 0o644)], 6);
        assert!(matches!(
            pack(&outside, &limits, 5 << 20),
            Err(ChartError::Unsafe(_))
        ));
        let no_chart = tgz(&[("app/values.yaml", b"x", 0o644)], 6);
        assert!(matches!(
            pack(&no_chart, &limits, 5 << 20),
            Err(ChartError::NoChartYaml)
        ));
        let big = tgz(&[("app/Chart.yaml", &[b'a'; 2048], 0o644)], 6);
        let e = pack(&big, &limits, 1024).expect_err("file over the limit");
        assert!(e.to_string().contains("Chart.yaml"), "{e}");
        assert!(matches!(
            pack(b"not gzip", &limits, 5 << 20),
            Err(ChartError::Archive(_))
        ));
    }

    #[test]
    fn digests_are_checked_when_the_index_has_one() {
        let d = Digest::of(b"abc");
        assert!(verify_digest(b"abc", Some(&d.hex())).is_ok());
        assert!(verify_digest(b"abc", None).is_ok());
        assert!(matches!(
            verify_digest(b"abd", Some(&d.hex())),
            Err(ChartError::DigestMismatch { .. })
        ));
        assert!(matches!(
            verify_digest(b"abc", Some("xyz")),
            Err(ChartError::InvalidDigest(_))
        ));
    }
}
