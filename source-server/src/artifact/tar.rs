//! The canonical tar encoding, written by hand so the bytes are fixed by this file and
//! `docs/artifact-format.md`, not by a crate version: GNU-format 512-byte headers with every
//! field set explicitly, `././@LongLink` entries for names over 100 bytes, two zero blocks at
//! the end and no padding to a record size.

use std::io::{self, Write};

pub(crate) const BLOCK: usize = 512;
const NAME_LEN: usize = 100;
/// The largest size the 11-digit octal field holds.
pub(crate) const MAX_ENTRY_SIZE: u64 = 0o77777777777;

/// Entry kinds a canonical tar contains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File { executable: bool },
    Dir,
}

/// Writes canonical tar entries to `W`.
pub(crate) struct TarWriter<W: Write> {
    out: W,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Appends one entry. `name` is the full path; directories end with `/`.
    pub fn append(&mut self, name: &[u8], kind: Kind, data: &[u8]) -> io::Result<()> {
        if name.len() > NAME_LEN {
            let mut long = Vec::with_capacity(name.len() + 1);
            long.extend_from_slice(name);
            long.push(0);
            let header = header(b"././@LongLink", 0o644, long.len() as u64, b'L');
            self.out.write_all(&header)?;
            self.write_padded(&long)?;
        }
        let (mode, type_flag) = match kind {
            Kind::File { executable: true } => (0o755, b'0'),
            Kind::File { executable: false } => (0o644, b'0'),
            Kind::Dir => (0o755, b'5'),
        };
        let short = &name[..name.len().min(NAME_LEN)];
        self.out
            .write_all(&header(short, mode, data.len() as u64, type_flag))?;
        self.write_padded(data)
    }

    /// Writes the end-of-archive marker and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.out)
    }

    fn write_padded(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        let rem = data.len() % BLOCK;
        if rem != 0 {
            self.out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }
}

/// The bytes a tar entry of `data_len` bytes takes, headers and padding included.
pub(crate) fn entry_len(name_len: usize, data_len: u64) -> u64 {
    let padded = |n: u64| n.div_ceil(BLOCK as u64) * BLOCK as u64;
    let long = if name_len > NAME_LEN {
        BLOCK as u64 + padded(name_len as u64 + 1)
    } else {
        0
    };
    long + BLOCK as u64 + padded(data_len)
}

/// One GNU header block. `size` must be at most [`MAX_ENTRY_SIZE`] (callers enforce limits).
fn header(name: &[u8], mode: u32, size: u64, type_flag: u8) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], u64::from(mode)); // mode
    octal(&mut h[108..116], 0); // uid
    octal(&mut h[116..124], 0); // gid
    octal(&mut h[124..136], size); // size
    octal(&mut h[136..148], 0); // mtime
    h[156] = type_flag;
    h[257..263].copy_from_slice(b"ustar "); // GNU magic
    h[263..265].copy_from_slice(b" \0"); // GNU version
    // Checksum: byte sum with the field as spaces, then "%06o\0 ".
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    octal(&mut h[148..155], u64::from(sum));
    h[155] = b' ';
    h
}

/// Zero-padded octal digits filling all but the last byte of `field`, then NUL.
fn octal(field: &mut [u8], mut value: u64) {
    let (last, digits) = field.split_last_mut().expect("header fields are non-empty");
    *last = 0;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (value & 7) as u8;
        value >>= 3;
    }
    debug_assert_eq!(value, 0, "value does not fit its octal field");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_tar_reads_it_back_including_long_names() {
        let long = format!("{}/file.txt", "d".repeat(120));
        let mut w = TarWriter::new(Vec::new());
        w.append(b"a/", Kind::Dir, b"").expect("vec write");
        w.append(b"a/run.sh", Kind::File { executable: true }, b"#!/bin/sh\n")
            .expect("vec write");
        w.append(
            long.as_bytes(),
            Kind::File { executable: false },
            &[7u8; 700],
        )
        .expect("vec write");
        let bytes = w.finish().expect("vec write");
        let expected = entry_len(2, 0) + entry_len(8, 10) + entry_len(long.len(), 700) + 1024;
        assert_eq!(bytes.len() as u64, expected);

        let mut archive = ::tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in archive.entries().expect("valid tar") {
            let e = e.expect("valid entry");
            let h = e.header();
            seen.push((
                String::from_utf8(e.path_bytes().to_vec()).expect("utf8"),
                h.mode().expect("mode"),
                h.mtime().expect("mtime"),
                h.uid().expect("uid"),
                h.entry_type().is_dir(),
            ));
            assert!(h.username_bytes().expect("gnu").is_empty());
            assert_eq!(h.cksum().expect("cksum"), {
                let mut copy = *h.as_bytes();
                copy[148..156].copy_from_slice(b"        ");
                copy.iter().map(|&b| u32::from(b)).sum::<u32>()
            });
        }
        assert_eq!(
            seen,
            vec![
                ("a/".into(), 0o755, 0, 0, true),
                ("a/run.sh".into(), 0o755, 0, 0, false),
                (long, 0o644, 0, 0, false),
            ]
        );
    }
}
