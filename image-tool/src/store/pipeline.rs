//! The threads a layer is unpacked on: reading and storing the compressed blob,
//! decompressing it, hashing the uncompressed stream and (on the caller's thread)
//! extracting it, handing 1 MiB chunks from one to the next through bounded pipes.

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::unpack::{decompress_buffered, unpack_tar_with, UnpackOptions, Unpacked};
use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::path::Path;

/// Unpack `blob` into `dest` in three stages on their own threads: decompression,
/// hashing of the uncompressed stream, and (on this thread) extraction. Returns the
/// digest of the whole uncompressed stream, including anything after the tar's end,
/// and what the extraction made. A stream longer than the size limit stops the
/// decompression at once.
pub(super) fn unpack_pipelined(
    blob: impl BufRead + Send,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<(Digest, Unpacked)> {
    let (tx, hash_rx) = chunk_pipe();
    let (hash_tx, rx) = tx.relay();
    let limit = opts.size_limit.unwrap_or(u64::MAX);
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<()> {
            let mut dec = decompress_buffered(blob)?;
            let mut total = 0u64;
            loop {
                let mut chunk = tx.buffer();
                match crate::unpack::read_full(&mut dec, &mut chunk) {
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        total += n as u64;
                        if total > limit {
                            tx.send(Err(std::io::Error::other("layer size limit")));
                            return Err(Error::LayerTooLarge {
                                layer: opts.layer.clone(),
                                limit,
                            });
                        }
                        chunk.truncate(n);
                        if !tx.send(Ok(chunk)) {
                            return Ok(()); // the hasher stopped: it failed
                        }
                    }
                    Err(e) => {
                        tx.send(Err(std::io::Error::new(e.kind(), e.to_string())));
                        return Err(e).ctx(|| "decompress layer".into());
                    }
                }
            }
        });
        let hasher = s.spawn(move || hash_relay(hash_rx, hash_tx));
        let mut reader = rx;
        let unpacked = unpack_tar_with(&mut reader, dest, opts);
        drop(reader);
        let decompressed = producer.join().expect("decompression thread panicked");
        let digest = hasher.join().expect("hashing thread panicked");
        // A decompression error explains an unpack error; report it first.
        decompressed?;
        let digest = digest.ctx(|| "decompress layer".into())?;
        Ok((digest, unpacked?))
    })
}

/// The middle stage of [`unpack_pipelined`]: hashes every chunk and passes it on.
/// When the extractor stops early (the tar ended, or it failed), the rest is still
/// hashed, its chunks going back for reuse.
fn hash_relay(mut rx: ChannelReader, tx: ChunkSender) -> std::io::Result<Digest> {
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut forwarding = true;
    while let Some(chunk) = rx.next_chunk()? {
        sha2::Digest::update(&mut hasher, &chunk);
        if forwarding {
            if !tx.send(Ok(chunk)) {
                forwarding = false;
            }
        } else {
            rx.give_back(chunk);
        }
    }
    Ok(Digest::from_hex(&hex::encode(sha2::Digest::finalize(hasher))).expect("sha256 hex"))
}

/// Size of the pieces a pipeline thread hands to the next.
const CHUNK: usize = 1 << 20;

/// A bounded pipe of byte chunks between two threads; the reading end returns spent
/// chunks so that the writing end reuses them instead of allocating and zeroing.
pub(super) fn chunk_pipe() -> (ChunkSender, ChannelReader) {
    let (tx, rx) = std::sync::mpsc::sync_channel(8);
    let (back_tx, back) = std::sync::mpsc::sync_channel(10);
    (
        ChunkSender {
            tx,
            back,
            back_tx: back_tx.clone(),
        },
        ChannelReader {
            rx,
            back: back_tx,
            chunk: Vec::new(),
            pos: 0,
        },
    )
}

/// The writing end of [`chunk_pipe`].
pub(super) struct ChunkSender {
    tx: std::sync::mpsc::SyncSender<std::io::Result<Vec<u8>>>,
    /// Spent chunks coming back from the reader (or a relay's reader).
    back: std::sync::mpsc::Receiver<Vec<u8>>,
    back_tx: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl ChunkSender {
    /// A second pipe whose reader returns its spent chunks to this sender, for a
    /// stage that passes this pipe's chunks on unchanged. The returned sender
    /// has no reuse of its own: its `buffer` always allocates.
    fn relay(&self) -> (ChunkSender, ChannelReader) {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let (back_tx, back) = std::sync::mpsc::sync_channel(0);
        (
            ChunkSender { tx, back, back_tx },
            ChannelReader {
                rx,
                back: self.back_tx.clone(),
                chunk: Vec::new(),
                pos: 0,
            },
        )
    }

    /// A buffer of [`CHUNK`] bytes, reused when the reader gave one back.
    fn buffer(&self) -> Vec<u8> {
        match self.back.try_recv() {
            Ok(mut b) => {
                b.resize(CHUNK, 0);
                b
            }
            Err(_) => vec![0u8; CHUNK],
        }
    }

    /// False once the reader is gone.
    fn send(&self, chunk: std::io::Result<Vec<u8>>) -> bool {
        self.tx.send(chunk).is_ok()
    }
}

/// The reading end of [`chunk_pipe`].
pub(super) struct ChannelReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    back: std::sync::mpsc::SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

/// Read `reader` to its end in chunks, hashing each and writing it to `file` while
/// sending it on `tx`. If the receiver goes away (its unpack failed), the rest is still
/// read and hashed, but neither written nor sent, so a corrupt blob is reported as such.
/// Returns the digest and size of everything read.
pub(super) fn copy_hash_send(
    reader: impl Read,
    file: File,
    tx: ChunkSender,
) -> std::io::Result<(Digest, u64)> {
    let mut hashed = HashingReader::new(reader);
    let mut file = Some(file);
    let mut sending = true;
    loop {
        let mut chunk = tx.buffer();
        let n = match crate::unpack::read_full(&mut hashed, &mut chunk) {
            Ok(n) => n,
            Err(e) => {
                tx.send(Err(std::io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        };
        if n == 0 {
            break;
        }
        chunk.truncate(n);
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.write_all(&chunk) {
                tx.send(Err(std::io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        }
        if sending && !tx.send(Ok(chunk)) {
            sending = false;
            file = None;
        }
    }
    drop(tx);
    hashed.finish()
}

impl ChannelReader {
    /// The next whole chunk; `None` at the end. Only for readers that never
    /// read partially.
    fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        match self.rx.recv() {
            Ok(Ok(chunk)) => Ok(Some(chunk)),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Return a chunk to the writing end for reuse.
    fn give_back(&self, chunk: Vec<u8>) {
        let _ = self.back.try_send(chunk);
    }
}

impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let spent = std::mem::replace(&mut self.chunk, chunk);
                    if spent.capacity() >= CHUNK {
                        let _ = self.back.try_send(spent);
                    }
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(&[]),
            }
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.chunk.len());
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = buf.len().min(avail.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}
