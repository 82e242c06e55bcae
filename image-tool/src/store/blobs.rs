//! Blobs: content-addressed files under `blobs/sha256/`, written to `tmp/` while
//! hashed and renamed into place only when their digest is known (and matches).

use super::{LockGuard, Store};
use crate::digest::{Digest, HashingWriter};
use crate::error::{IoContext, Result};
use rustix::fs::FlockOperation;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::PathBuf;

impl Store {
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Serializes downloads of blob `d` (between processes too).
    pub fn lock_blob(&self, d: &Digest) -> Result<LockGuard> {
        self.lock(
            &format!("blob-{}.lock", d.hex()),
            FlockOperation::LockExclusive,
        )
    }

    /// Where an interrupted download of blob `d` is kept until the next pull resumes it.
    pub fn partial_path(&self, d: &Digest) -> PathBuf {
        self.root.join("tmp").join(format!("partial-{}", d.hex()))
    }

    /// Stream `reader` into the store, failing (and keeping nothing) unless it hashes to `expected`.
    pub fn put_blob_verified(
        &self,
        reader: impl Read,
        expected: &Digest,
        what: &str,
    ) -> Result<()> {
        let (actual, _) = self.put_blob_with(reader, Some(expected), what)?;
        debug_assert_eq!(&actual, expected);
        Ok(())
    }

    /// Stream `reader` into the store and return its digest and size.
    pub fn put_blob(&self, reader: impl Read, what: &str) -> Result<(Digest, u64)> {
        self.put_blob_with(reader, None, what)
    }

    pub fn put_blob_bytes(&self, data: &[u8], what: &str) -> Result<Digest> {
        Ok(self.put_blob(data, what)?.0)
    }

    fn put_blob_with(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        let tmp = self.tmp_path("blob");
        let result = (|| {
            let file = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
            let mut w = HashingWriter::new(file);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = crate::unpack::read_full(&mut reader, &mut buf)
                    .ctx(|| format!("copy {what}"))?;
                w.write_all(&buf[..n]).ctx(|| format!("write {what}"))?;
                if n < buf.len() {
                    break;
                }
            }
            let (_, digest, size) = w.finish();
            if let Some(expected) = expected {
                expected.verify(&digest, what)?;
            }
            let dest = self.blob_path(&digest);
            fs::rename(&tmp, &dest).ctx(|| format!("store {what}"))?;
            Ok((digest, size))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        fs::read(&p).ctx(|| format!("read blob {d}"))
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        let p = self.blob_path(d);
        File::open(&p).ctx(|| format!("open blob {d}"))
    }
}
