//! Artifact deltas for incremental bundles. An artifact is a canonical tar, so an unchanged file
//! is the same header and data bytes in the old and the new artifact: a delta is the new tar as
//! a list of copies of whole entries of a base artifact (one the destination already has) and
//! literal bytes for the rest. A one-file change costs about that file. The result is only
//! trusted after its sha256 matches the artifact's digest, so a wrong delta cannot produce a
//! wrong artifact.
//!
//! Encoding (then gzip): repeated records, `C` + u64 LE offset + u64 LE length (copy from the
//! base tar), or `D` + u64 LE length + the bytes.

use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;

use ferry_proto::Digest;

/// The byte ranges of a tar's entries (each header with its padded data; the end-of-archive
/// blocks as the last range), or `None` when it does not parse as a tar.
fn entries(tar: &[u8]) -> Option<Vec<Range<usize>>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            out.push(at..tar.len());
            return Some(out);
        }
        let field = std::str::from_utf8(&header[124..136]).ok()?;
        let size = u64::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .ok()
            .and_then(|s| usize::try_from(s).ok())?;
        let end = at
            .checked_add(512)?
            .checked_add(size.checked_add(511)? / 512 * 512)?;
        if end > tar.len() {
            return None;
        }
        out.push(at..end);
        at = end;
    }
    (at == tar.len()).then_some(out)
}

/// A piece of the new tar: a range of the base, or a range of the new tar itself.
enum Op {
    Copy(Range<usize>),
    Data(Range<usize>),
}

/// The delta of `new` against `base` (uncompressed), or `None` when either is not a tar.
pub(super) fn encode(base: &[u8], new: &[u8]) -> Option<Vec<u8>> {
    let mut known: HashMap<Digest, Range<usize>> = HashMap::new();
    for r in entries(base)? {
        known.entry(Digest::of(&base[r.clone()])).or_insert(r);
    }
    let mut ops: Vec<Op> = Vec::new();
    for r in entries(new)? {
        match (known.get(&Digest::of(&new[r.clone()])), ops.last_mut()) {
            (Some(b), Some(Op::Copy(prev))) if prev.end == b.start => prev.end = b.end,
            (Some(b), _) => ops.push(Op::Copy(b.clone())),
            (None, Some(Op::Data(prev))) => prev.end = r.end,
            (None, _) => ops.push(Op::Data(r)),
        }
    }
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::Copy(r) => {
                out.push(b'C');
                out.extend_from_slice(&(r.start as u64).to_le_bytes());
                out.extend_from_slice(&(r.len() as u64).to_le_bytes());
            }
            Op::Data(r) => {
                out.push(b'D');
                out.extend_from_slice(&(r.len() as u64).to_le_bytes());
                out.extend_from_slice(&new[r]);
            }
        }
    }
    Some(out)
}

/// Rebuilds a tar from `base` and the gzip-compressed `delta`, producing at most `max` bytes
/// (the artifact's size in the index). The caller checks the digest.
pub(super) fn apply(base: &[u8], delta_gz: impl Read, max: u64) -> Result<Vec<u8>, String> {
    // A record costs at least 17 bytes, data at most `max`: anything longer is not a delta.
    let bound = max.saturating_mul(2).saturating_add(1 << 20);
    let mut delta = Vec::new();
    flate2::read::GzDecoder::new(delta_gz)
        .take(bound + 1)
        .read_to_end(&mut delta)
        .map_err(|e| format!("corrupt or truncated delta: {e}"))?;
    if delta.len() as u64 > bound {
        return Err(format!("delta decompresses to more than {bound} bytes"));
    }
    let mut out = Vec::new();
    let mut rest = &delta[..];
    let u64_at = |b: &[u8]| -> Result<u64, String> {
        b.get(..8)
            .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
            .ok_or_else(|| "delta ends inside a record".to_string())
    };
    while let Some((&tag, tail)) = rest.split_first() {
        let piece: &[u8] = match tag {
            b'C' => {
                let (off, len) = (u64_at(tail)?, u64_at(tail.get(8..).unwrap_or_default())?);
                rest = &tail[16..];
                let range = usize::try_from(off)
                    .ok()
                    .zip(usize::try_from(len).ok())
                    .and_then(|(o, l)| Some(o..o.checked_add(l)?))
                    .filter(|r| r.end <= base.len())
                    .ok_or_else(|| format!("copy of {len} bytes at {off} is outside the base"))?;
                &base[range]
            }
            b'D' => {
                let len = usize::try_from(u64_at(tail)?).map_err(|e| e.to_string())?;
                let data = tail
                    .get(8..)
                    .and_then(|t| t.get(..len))
                    .ok_or("delta ends inside a literal")?;
                rest = &tail[8 + len..];
                data
            }
            other => return Err(format!("unknown delta record {other:#04x}")),
        };
        if (out.len() + piece.len()) as u64 > max {
            return Err(format!(
                "delta produces more than the {max} bytes the index says"
            ));
        }
        out.extend_from_slice(piece);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).expect("in memory");
        }
        b.into_inner().expect("in memory")
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        crate::artifact::compress(data).expect("in memory").2
    }

    #[test]
    fn a_one_file_change_costs_about_that_file_and_rebuilds_exactly() {
        let big = vec![7u8; 100_000];
        let base = tar(&[("a", &big), ("b", b"old"), ("c", &big)]);
        let new = tar(&[("a", &big), ("b", b"new!"), ("c", &big), ("d", b"added")]);
        let delta = encode(&base, &new).expect("tars");
        assert!(delta.len() < 3000, "{} bytes", delta.len());
        let rebuilt = apply(&base, &gz(&delta)[..], new.len() as u64).expect("applies");
        assert_eq!(rebuilt, new);
        // Bounded: the index's size is a hard limit.
        let err = apply(&base, &gz(&delta)[..], new.len() as u64 - 1).expect_err("too long");
        assert!(err.contains("more than"), "{err}");
        // A copy outside the base is refused, not read past the end.
        let mut bad = vec![b'C'];
        bad.extend_from_slice(&(base.len() as u64).to_le_bytes());
        bad.extend_from_slice(&1u64.to_le_bytes());
        let err = apply(&base, &gz(&bad)[..], 1 << 20).expect_err("outside");
        assert!(err.contains("outside the base"), "{err}");
        assert!(apply(&base, &gz(b"D\xff")[..], 1 << 20).is_err());
        assert!(encode(b"not a tar", &new).is_none());
    }
}
