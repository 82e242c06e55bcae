//! The content store: verified blobs, layers unpacked once, image records.
//!
//! ```text
//! STORE/blobs/sha256/<hex>     immutable blobs, written to tmp/ then renamed
//! STORE/layers/<chain_id hex>/ each layer unpacked once, shared by all images whose
//!                              stack up to it is the same (the bottom layer's chain
//!                              ID is its diff_id)
//! STORE/images/<name>.json     image records
//! STORE/bundles/<id>.json      bundles whose overlay uses layers (kept by gc)
//! STORE/locks/                 per-layer flock files, and the store-wide gc lock
//! ```
//!
//! One file per part: `blobs` (content-addressed files), `layers` (claiming and
//! unpacking layer directories, on the threads of `pipeline`), `records` (image
//! and bundle records) and `gc`.

mod blobs;
mod gc;
mod layers;
mod pipeline;
mod records;

pub use gc::GcStats;
pub use layers::{LayerTarget, Outcome, PendingLayer, UNPACK_THREADS};
pub use records::{validate_name, BundleRecord, ImageRecord, LayerRecord};

use crate::error::{IoContext, Result};
use rustix::fs::FlockOperation;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Default store location.
pub const DEFAULT_STORE: &str = "/var/lib/berth";

/// A held `flock`; released on drop.
pub struct LockGuard(#[allow(dead_code)] File);

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// See [`Store::with_layer_size_limit`].
    layer_size_limit: Option<u64>,
}

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique_suffix() -> String {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{nanos}", std::process::id())
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .ctx(|| "current dir".into())?
                .join(root)
        };
        for sub in [
            "blobs/sha256",
            "layers",
            "images",
            "bundles",
            "locks",
            "tmp",
        ] {
            let p = root.join(sub);
            fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
        }
        Ok(Store {
            root,
            layer_size_limit: None,
        })
    }

    /// Refuse layers whose uncompressed tar, or the sizes of whose files (sparse files
    /// counted with their real size), exceed `limit` bytes. Default: no limit.
    pub fn with_layer_size_limit(mut self, limit: Option<u64>) -> Self {
        self.layer_size_limit = limit;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tmp_path(&self, what: &str) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{what}-{}", unique_suffix()))
    }

    fn lock(&self, name: &str, op: FlockOperation) -> Result<LockGuard> {
        let path = self.root.join("locks").join(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("open lock {}", path.display()))?;
        rustix::fs::flock(&file, op).ctx(|| format!("lock {}", path.display()))?;
        Ok(LockGuard(file))
    }

    /// Held by anything that adds content or uses layers; `gc` waits for all of them.
    pub fn lock_shared(&self) -> Result<LockGuard> {
        self.lock("store.lock", FlockOperation::LockShared)
    }

    fn lock_exclusive(&self) -> Result<LockGuard> {
        self.lock("store.lock", FlockOperation::LockExclusive)
    }
}

/// Write `data` to `dest` via `tmp` + rename.
pub fn write_atomic(dest: &Path, data: &[u8], tmp: &Path) -> Result<()> {
    let mut f = File::create(tmp).ctx(|| format!("create {}", tmp.display()))?;
    f.write_all(data)
        .ctx(|| format!("write {}", tmp.display()))?;
    drop(f);
    fs::rename(tmp, dest)
        .inspect_err(|_| {
            let _ = fs::remove_file(tmp);
        })
        .ctx(|| format!("rename to {}", dest.display()))
}
