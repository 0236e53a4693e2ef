//! Where tar bytes go: hashed and counted on the walking thread, compressed on another.
//!
//! Gzip level 6 is the slowest stage; handing it 256 KiB chunks over a bounded channel lets
//! object reading and compression overlap. The gzip header is fixed (mtime 0, no name,
//! OS 255) so equal tars compress to equal bytes with the same zlib implementation.

use std::io::{self, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

use ferry_proto::{Digest, Hasher};
use flate2::{Compression, GzBuilder};

const CHUNK: usize = 256 << 10;

pub(crate) struct Sink {
    hasher: Hasher,
    size: u64,
    buf: Vec<u8>,
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    compressor: Option<JoinHandle<io::Result<Vec<u8>>>>,
}

impl Sink {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(8);
        let compressor = std::thread::Builder::new()
            .name("ferry-gzip".into())
            .spawn(move || {
                let mut gz = GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(Vec::new(), Compression::new(6));
                for chunk in rx {
                    gz.write_all(&chunk)?;
                }
                gz.finish()
            });
        let (tx, compressor) = match compressor {
            Ok(handle) => (Some(tx), Some(handle)),
            // No thread to be had: compress inline at finish time instead.
            Err(_) => (None, None),
        };
        Sink {
            hasher: Hasher::new(),
            size: 0,
            buf: Vec::with_capacity(CHUNK),
            tx,
            compressor,
        }
    }

    /// Returns (digest, tar size, gzip bytes).
    pub fn finish(mut self) -> io::Result<(Digest, u64, Vec<u8>)> {
        let rest = std::mem::take(&mut self.buf);
        let gz = match (self.tx.take(), self.compressor.take()) {
            (Some(tx), Some(handle)) => {
                if !rest.is_empty() {
                    tx.send(rest)
                        .map_err(|_| io::Error::other("gzip thread ended early"))?;
                }
                drop(tx);
                handle
                    .join()
                    .map_err(|_| io::Error::other("gzip thread panicked"))??
            }
            _ => {
                let mut gz = GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(Vec::new(), Compression::new(6));
                gz.write_all(&rest)?;
                gz.finish()?
            }
        };
        Ok((self.hasher.finish(), self.size, gz))
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK
            && let Some(tx) = &self.tx
        {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            tx.send(chunk)
                .map_err(|_| io::Error::other("gzip thread ended early"))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
