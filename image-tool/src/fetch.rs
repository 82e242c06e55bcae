//! Copying one blob from a source into the store; downloads from network sources
//! survive a broken transfer in the store's partial file and resume from it.

use crate::digest::Digest;
use crate::error::{invalid, IoContext, Result};
use crate::progress::Bar;
use crate::source::LayoutFiles;
use crate::store::Store;
use sha2::Digest as _;
use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

/// Copy blob `d` (`size` bytes) from `files` into the store unless present, verifying it.
///
/// From resumable (network) sources the data goes to the store's partial file for `d`,
/// which survives a transfer error; the next fetch hashes what is there and asks the
/// source for the rest with a Range request (starting over if the source cannot). A
/// digest or size mismatch discards everything.
pub fn fetch_blob(
    store: &Store,
    files: &dyn LayoutFiles,
    d: &Digest,
    size: u64,
    bar: Option<&Bar>,
) -> Result<()> {
    let what = format!("blob {d}");
    if store.has_blob(d) {
        return Ok(());
    }
    if !files.resumable() {
        return copy_whole(store, files, d, size, bar, &what);
    }
    let _lock = store.lock_blob(d)?;
    if store.has_blob(d) {
        return Ok(());
    }
    let mut partial = PartialBlob::open(store.partial_path(d), size)?;
    let rest = partial.resume(files, d, size)?;
    if let Some(bar) = bar {
        bar.inc(partial.have);
    }
    if let Some(rest) = rest {
        let remaining = size - partial.have;
        partial.append(rest.take(remaining), size, bar, &what)?;
    }
    partial.store_as(store, d, &what)
}

/// A blob from a source read once (a local file): streamed into the store and verified.
fn copy_whole(
    store: &Store,
    files: &dyn LayoutFiles,
    d: &Digest,
    size: u64,
    bar: Option<&Bar>,
    what: &str,
) -> Result<()> {
    let reader = files.open_blob(d)?.take(size);
    match bar {
        Some(bar) => store.put_blob_verified(bar.reader(reader), d, what),
        None => store.put_blob_verified(reader, d, what),
    }
}

/// The store's partial file for one blob: its first `have` bytes, hashed by `hasher`
/// once [`PartialBlob::resume`] has read them.
struct PartialBlob {
    path: PathBuf,
    file: File,
    hasher: sha2::Sha256,
    have: u64,
}

impl PartialBlob {
    /// Open (creating) the partial file at `path`. A file longer than the blob's
    /// `size` cannot be a prefix of it and counts as empty.
    fn open(path: PathBuf, size: u64) -> Result<PartialBlob> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))?;
        let have = file
            .metadata()
            .ctx(|| format!("stat {}", path.display()))?
            .len();
        Ok(PartialBlob {
            path,
            file,
            hasher: sha2::Sha256::new(),
            have: if have > size { 0 } else { have },
        })
    }

    /// Remove the partial file (what it holds cannot become the blob); passes `e` on.
    fn discard<E>(&self, e: E) -> E {
        let _ = fs::remove_file(&self.path);
        e
    }

    /// Hash what an earlier attempt left and open blob `d` after it; when the source
    /// cannot continue there (it ignored the range), start over from an empty file.
    /// `None`: the file holds all `size` bytes already.
    fn resume<'f>(
        &mut self,
        files: &'f dyn LayoutFiles,
        d: &Digest,
        size: u64,
    ) -> Result<Option<Box<dyn Read + Send + 'f>>> {
        if self.have > 0 {
            std::io::copy(
                &mut (&mut self.file).take(self.have),
                &mut HashWrite(&mut self.hasher),
            )
            .ctx(|| format!("read {}", self.path.display()))?;
            if self.have == size {
                return Ok(None);
            }
            if let Some(rest) = files
                .open_blob_at(d, self.have)
                .map_err(|e| self.discard(e))?
            {
                return Ok(Some(rest));
            }
        }
        self.restart()?;
        files.open_blob(d).map(Some).map_err(|e| self.discard(e))
    }

    /// Empty the file, to be written from the blob's first byte.
    fn restart(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .ctx(|| format!("truncate {}", self.path.display()))?;
        self.file
            .rewind()
            .ctx(|| format!("seek {}", self.path.display()))?;
        self.hasher = sha2::Sha256::new();
        self.have = 0;
        Ok(())
    }

    /// Append `rest` to the file, hashing it, until the blob's `size` bytes are there.
    /// A transfer that breaks or ends early is an error that keeps what arrived for
    /// the next attempt.
    fn append(
        &mut self,
        mut rest: impl Read,
        size: u64,
        bar: Option<&Bar>,
        what: &str,
    ) -> Result<()> {
        let mut w = std::io::BufWriter::with_capacity(256 * 1024, &mut self.file);
        let mut buf = vec![0u8; 128 * 1024];
        let copied: std::io::Result<()> = loop {
            match rest.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    if let Err(e) = w.write_all(&buf[..n]) {
                        break Err(e);
                    }
                    self.hasher.update(&buf[..n]);
                    self.have += n as u64;
                    if let Some(bar) = bar {
                        bar.inc(n as u64);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let flushed = w.flush().ctx(|| format!("write {}", self.path.display()));
        drop(w);
        flushed?;
        let got = self.have;
        let complete = copied.and_then(|()| {
            if got < size {
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed early",
                ))
            } else {
                Ok(())
            }
        });
        complete.map_err(|e| {
            invalid(format!(
                "download of {what} interrupted after {got} of {size} bytes ({e}); \
                 pulling again resumes it"
            ))
        })
    }

    /// Check the whole file against `d` and rename it into the store as that blob;
    /// a mismatch discards it.
    fn store_as(self, store: &Store, d: &Digest, what: &str) -> Result<()> {
        let PartialBlob {
            path, file, hasher, ..
        } = self;
        drop(file);
        let discard = |e| {
            let _ = fs::remove_file(&path);
            e
        };
        let actual = Digest::from_hex(&hex::encode(hasher.finalize())).expect("sha256 hex");
        d.verify(&actual, what).map_err(discard)?;
        fs::rename(&path, store.blob_path(d))
            .ctx(|| format!("store {what}"))
            .map_err(discard)
    }
}

/// Feeds written bytes to a hasher.
struct HashWrite<'a>(&'a mut sha2::Sha256);

impl Write for HashWrite<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
