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

use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::error::{invalid, Error, IoContext, Result};
use crate::image::Platform;
use crate::lower::{inherit_parent_metadata, LowerLayers};
use crate::unpack::{decompress_buffered, unpack_tar_with, UnpackOptions, Unpacked};
use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Default store location.
pub const DEFAULT_STORE: &str = "/var/lib/berth";

/// At most this many layers are decompressed at the same time.
pub const UNPACK_THREADS: usize = 3;

/// One layer of an image as recorded in the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    pub digest: Digest,
    pub diff_id: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A named image in the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    pub name: String,
    pub manifest_digest: Digest,
    pub manifest_size: u64,
    pub config_digest: Digest,
    pub platform: Platform,
    /// Bottom layer first, as in the manifest.
    pub layers: Vec<LayerRecord>,
}

/// A bundle that mounts layers from this store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleRecord {
    pub dir: PathBuf,
    pub diff_ids: Vec<Digest>,
}

/// What `gc` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GcStats {
    pub blobs: usize,
    pub layers: usize,
}

impl ImageRecord {
    /// The chain ID of each layer, bottom first: the names of their directories.
    pub fn chain_ids(&self) -> Vec<Digest> {
        let diff_ids: Vec<Digest> = self.layers.iter().map(|l| l.diff_id.clone()).collect();
        Digest::chain_ids(&diff_ids)
    }
}

/// A held `flock`; released on drop.
pub struct LockGuard(#[allow(dead_code)] File);

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// See [`Store::with_layer_size_limit`].
    layer_size_limit: Option<u64>,
}

/// What an unpack call did.
pub enum Outcome {
    /// The layer was there already.
    Present,
    /// This call unpacked it.
    Unpacked,
    /// Unpacked, but its implicit parent directories wait for the layers below it
    /// (see [`Store::finish_pending`]).
    Pending(PendingLayer),
}

/// A layer unpacked into its temporary directory (its lock held) whose parent
/// directories not listed in the tar still need their metadata from the layers below.
pub struct PendingLayer {
    slot: LayerSlot,
    implicit: Vec<Vec<std::ffi::OsString>>,
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

/// Check an image name: `[A-Za-z0-9._:/@+-]`, no empty or `..` path segment.
pub fn validate_name(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._:/@+-".contains(&b));
    let ok_segments = name
        .split('/')
        .all(|s| !s.is_empty() && s != "." && s != "..");
    if name.is_empty() || name.len() > 255 || !ok_chars || !ok_segments {
        return Err(invalid(format!(
            "invalid image name {name:?}: use letters, digits and ._:/@+- (no empty or '..' segments)"
        )));
    }
    Ok(())
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

    fn unpack_options(&self, blob: &Digest) -> UnpackOptions {
        UnpackOptions {
            layer: blob.to_string(),
            size_limit: self.layer_size_limit,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// The directory of the layer with chain ID `chain_id` (for a bottom layer, its
    /// diff_id).
    pub fn layer_path(&self, chain_id: &Digest) -> PathBuf {
        self.layers_dir().join(chain_id.hex())
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

    /// Held by anything that adds content or uses layers; `gc` waits for all of them.
    pub fn lock_shared(&self) -> Result<LockGuard> {
        self.lock("store.lock", FlockOperation::LockShared)
    }

    fn lock_exclusive(&self) -> Result<LockGuard> {
        self.lock("store.lock", FlockOperation::LockExclusive)
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

    /// Make sure the bottom layer with `diff_id` is unpacked from the stored blob `blob`.
    /// Concurrent callers for the same layer serialize on a lock file: one unpacks, the
    /// others reuse. Returns true if this call did the unpacking.
    pub fn ensure_layer(&self, blob: &Digest, diff_id: &Digest) -> Result<bool> {
        match self.unpack_stored(blob, diff_id, diff_id, false, None)? {
            Outcome::Present => Ok(false),
            Outcome::Unpacked => Ok(true),
            Outcome::Pending(_) => unreachable!("a bottom layer has no lower layers"),
        }
    }

    /// Make sure every layer of a stack (bottom first) is unpacked from its stored blob;
    /// up to [`UNPACK_THREADS`] at once. Returns how many this call unpacked.
    pub fn ensure_layers(&self, layers: &[LayerRecord]) -> Result<usize> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = Digest::chain_ids(&diff_ids);
        let pending = Mutex::new(Vec::new());
        let unpacked = AtomicUsize::new(0);
        let indices: Vec<usize> = (0..layers.len()).collect();
        Store::parallel(&indices, |&i| {
            let l = &layers[i];
            match self.unpack_stored(&l.digest, &l.diff_id, &chains[i], i > 0, None)? {
                Outcome::Present => {}
                Outcome::Unpacked => {
                    unpacked.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Pending(p) => {
                    unpacked.fetch_add(1, Ordering::Relaxed);
                    pending.lock().unwrap().push((i, p));
                }
            }
            Ok(())
        })?;
        self.finish_pending(pending.into_inner().unwrap(), &chains)?;
        Ok(unpacked.into_inner())
    }

    /// Unpack layer `diff_id` (chain ID `chain_id`) from the stored blob `blob` unless
    /// present, advancing `bar` by the compressed bytes consumed. `has_lowers`: layers
    /// lie below it in its stack.
    pub fn unpack_stored(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        chain_id: &Digest,
        has_lowers: bool,
        bar: Option<&crate::progress::Bar>,
    ) -> Result<Outcome> {
        let Some(slot) = self.claim_layer(chain_id)? else {
            return Ok(Outcome::Present);
        };
        fs::create_dir(&slot.tmp).ctx(|| format!("create {}", slot.tmp.display()))?;
        let file = self.open_blob(blob)?;
        let file: Box<dyn Read + Send> = match bar {
            Some(bar) => {
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                bar.phase("unpack", size);
                Box::new(bar.reader(file))
            }
            None => Box::new(file),
        };
        let unpacked = unpack_pipelined(
            BufReader::with_capacity(256 * 1024, file),
            &slot.tmp,
            &self.unpack_options(blob),
        );
        let unpacked = check_unpacked(blob, diff_id, unpacked)?;
        slot.settle(unpacked, has_lowers)
    }

    /// Store blob `blob` read from `reader` and unpack it as layer `diff_id` (chain ID
    /// `chain_id`) in one pass over the data: one thread reads, hashes and stores the
    /// compressed stream, a second decompresses and hashes it, the calling one writes
    /// the files. Neither the blob nor the layer becomes visible unless both digests
    /// match; on any error neither is kept. Does nothing if the layer is present.
    ///
    /// For sources read once from local files; resumable downloads go through
    /// `pull::fetch_blob` and [`Store::unpack_stored`] so a cut transfer keeps its bytes.
    pub fn put_blob_and_unpack(
        &self,
        reader: impl Read + Send,
        blob: &Digest,
        diff_id: &Digest,
        chain_id: &Digest,
        has_lowers: bool,
        bar: Option<&crate::progress::Bar>,
    ) -> Result<Outcome> {
        let Some(slot) = self.claim_layer(chain_id)? else {
            return Ok(Outcome::Present);
        };
        let what = format!("blob {blob}");
        let blob_tmp = self.tmp_path("blob");
        let result = (|| {
            fs::create_dir(&slot.tmp).ctx(|| format!("create {}", slot.tmp.display()))?;
            let file = File::create(&blob_tmp).ctx(|| format!("create {}", blob_tmp.display()))?;
            let (tx, rx) = chunk_pipe();
            let opts = self.unpack_options(blob);
            let (stored, unpacked) = std::thread::scope(|s| {
                let copier = s.spawn(move || copy_hash_send(reader, file, tx));
                let unpacked = unpack_pipelined(rx, &slot.tmp, &opts);
                (copier.join().expect("blob copy thread panicked"), unpacked)
            });
            // The blob's own digest explains any later failure; check it first.
            let (actual, _) = stored.ctx(|| format!("store {what}"))?;
            blob.verify(&actual, &what)?;
            let unpacked = check_unpacked(blob, diff_id, unpacked)?;
            fs::rename(&blob_tmp, self.blob_path(blob)).ctx(|| format!("store {what}"))?;
            Ok(unpacked)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&blob_tmp);
        }
        let outcome = slot.settle(result?, has_lowers)?;
        if let (Some(bar), Outcome::Unpacked) = (bar, &outcome) {
            bar.finish("done");
        }
        Ok(outcome)
    }

    /// Give the pending layers `(index in the stack, layer)` of a stack whose chain IDs
    /// are `chains` the metadata of their implicit parent directories from the layers
    /// below them, and put them in place; bottom up, so each one's lower layers are
    /// complete.
    pub fn finish_pending(
        &self,
        mut pending: Vec<(usize, PendingLayer)>,
        chains: &[Digest],
    ) -> Result<()> {
        pending.sort_by_key(|(i, _)| *i);
        for (i, p) in pending {
            let lower: Vec<PathBuf> = chains[..i].iter().map(|c| self.layer_path(c)).collect();
            let lower = LowerLayers::open(&lower)?;
            let layer = crate::fsutil::SafeDir::open(&p.slot.tmp)?;
            inherit_parent_metadata(&layer, &p.implicit, &lower)?;
            p.slot.keep()?;
        }
        Ok(())
    }

    /// Make the directory `dir` (a layer in this store's format, on the store's
    /// filesystem, its implicit parent directories already given their metadata
    /// from the layers below) the unpacked layer with chain ID `chain_id` by
    /// renaming it into place. Returns false, leaving `dir` alone, if that layer is
    /// unpacked already.
    pub fn adopt_layer(&self, dir: &Path, chain_id: &Digest) -> Result<bool> {
        let Some(mut slot) = self.claim_layer(chain_id)? else {
            return Ok(false);
        };
        fs::rename(dir, &slot.dest)
            .ctx(|| format!("rename {} to {}", dir.display(), slot.dest.display()))?;
        // Nothing was made at `slot.tmp`: there is nothing to remove on drop.
        slot.kept = true;
        Ok(true)
    }

    /// The right to unpack the layer with chain ID `chain_id`, or `None` when it is
    /// unpacked already. Looked at before and after taking the layer's lock: concurrent
    /// callers for the same layer serialize, one unpacks, the others find it done.
    fn claim_layer(&self, chain_id: &Digest) -> Result<Option<LayerSlot>> {
        let dest = self.layer_path(chain_id);
        if dest.is_dir() {
            return Ok(None);
        }
        let lock = self.lock(
            &format!("layer-{}.lock", chain_id.hex()),
            FlockOperation::LockExclusive,
        )?;
        if dest.is_dir() {
            return Ok(None);
        }
        let tmp = self
            .layers_dir()
            .join(format!(".tmp-{}-{}", chain_id.hex(), unique_suffix()));
        Ok(Some(LayerSlot {
            _lock: lock,
            tmp,
            dest,
            kept: false,
        }))
    }

    /// Run `job` for each item on up to [`UNPACK_THREADS`] threads; the first error wins.
    pub fn parallel<T: Sync>(items: &[T], job: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
        let next = AtomicUsize::new(0);
        let first_err: Mutex<Option<Error>> = Mutex::new(None);
        let workers = items.len().clamp(1, UNPACK_THREADS);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() || first_err.lock().unwrap().is_some() {
                        break;
                    }
                    if let Err(e) = job(&items[i]) {
                        first_err.lock().unwrap().get_or_insert(e);
                    }
                });
            }
        });
        match first_err.into_inner().unwrap() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn image_file(&self, name: &str) -> PathBuf {
        self.root
            .join("images")
            .join(format!("{}.json", name.replace('/', "%2F")))
    }

    /// Write an image record atomically (replacing one of the same name).
    pub fn save_image(&self, rec: &ImageRecord) -> Result<()> {
        validate_name(&rec.name)?;
        let data = serde_json::to_vec_pretty(rec).expect("record serializes");
        write_atomic(&self.image_file(&rec.name), &data, &self.tmp_path("image"))
    }

    /// Find an image by name (`NAME`, `NAME:latest`) or manifest digest (`sha256:...`).
    pub fn find_image(&self, reference: &str) -> Result<ImageRecord> {
        if validate_name(reference).is_ok() {
            for name in [reference.to_string(), format!("{reference}:latest")] {
                let p = self.image_file(&name);
                if let Ok(data) = fs::read(&p) {
                    return crate::image::parse_json(&data, &p.display().to_string());
                }
            }
        }
        if let Ok(d) = Digest::parse(reference) {
            if let Some(rec) = self
                .list_images()?
                .into_iter()
                .find(|r| r.manifest_digest == d)
            {
                return Ok(rec);
            }
        }
        Err(Error::ImageNotFound(reference.to_string()))
    }

    pub fn list_images(&self) -> Result<Vec<ImageRecord>> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for ent in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
            let p = ent.ctx(|| "read images".into())?.path();
            if p.extension().is_some_and(|e| e == "json") {
                let data = fs::read(&p).ctx(|| format!("read {}", p.display()))?;
                out.push(crate::image::parse_json(&data, &p.display().to_string())?);
            }
        }
        out.sort_by(|a: &ImageRecord, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Remove an image record (content stays until `gc`).
    pub fn remove_image(&self, reference: &str) -> Result<ImageRecord> {
        let rec = self.find_image(reference)?;
        let p = self.image_file(&rec.name);
        fs::remove_file(&p).ctx(|| format!("remove {}", p.display()))?;
        Ok(rec)
    }

    fn bundle_file(&self, dir: &Path) -> PathBuf {
        let id = Digest::of(dir.as_os_str().as_encoded_bytes());
        self.root
            .join("bundles")
            .join(format!("{}.json", &id.hex()[..32]))
    }

    pub fn save_bundle(&self, rec: &BundleRecord) -> Result<()> {
        let data = serde_json::to_vec_pretty(rec).expect("record serializes");
        write_atomic(&self.bundle_file(&rec.dir), &data, &self.tmp_path("bundle"))
    }

    pub fn remove_bundle(&self, dir: &Path) -> Result<()> {
        match fs::remove_file(self.bundle_file(dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).ctx(|| "remove bundle record".into())
            }
            _ => Ok(()),
        }
    }

    fn live_bundles(&self) -> Result<Vec<BundleRecord>> {
        let dir = self.root.join("bundles");
        let mut out = Vec::new();
        for ent in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
            let p = ent.ctx(|| "read bundles".into())?.path();
            let Ok(data) = fs::read(&p) else { continue };
            let Ok(rec) = serde_json::from_slice::<BundleRecord>(&data) else {
                continue;
            };
            if rec.dir.join(".berth").is_dir() {
                out.push(rec);
            } else {
                let _ = fs::remove_file(&p);
            }
        }
        Ok(out)
    }

    /// Remove blobs and layers that no image (or live bundle) references, and temp leftovers.
    /// A live overlay bundle keeps its layers and everything `commit` needs: its
    /// image's manifest, config and layer blobs.
    pub fn gc(&self) -> Result<GcStats> {
        let _guard = self.lock_exclusive()?;
        let mut blobs: HashSet<String> = HashSet::new();
        let mut layers: HashSet<String> = HashSet::new();
        for rec in self.list_images()? {
            blobs.insert(rec.manifest_digest.hex().to_string());
            blobs.insert(rec.config_digest.hex().to_string());
            for l in &rec.layers {
                blobs.insert(l.digest.hex().to_string());
            }
            layers.extend(rec.chain_ids().iter().map(|c| c.hex().to_string()));
        }
        for b in self.live_bundles()? {
            layers.extend(
                Digest::chain_ids(&b.diff_ids)
                    .iter()
                    .map(|c| c.hex().to_string()),
            );
            // A bundle mounted before layer directories were named by chain ID uses
            // directories named by diff_id: they stay while it lives.
            layers.extend(b.diff_ids.iter().map(|d| d.hex().to_string()));
            blobs.extend(
                self.bundle_blobs(&b.dir)
                    .iter()
                    .map(|d| d.hex().to_string()),
            );
        }
        let stats = GcStats {
            blobs: sweep(&self.root.join("blobs/sha256"), &blobs)?,
            layers: sweep(&self.layers_dir(), &layers)?,
        };
        sweep(&self.root.join("tmp"), &HashSet::new())?;
        Ok(stats)
    }

    /// The blobs a bundle's image consists of (manifest, config, layers), as far as
    /// they can be read.
    fn bundle_blobs(&self, dir: &Path) -> Vec<Digest> {
        let Ok(info) = crate::bundle::BundleInfo::load(dir) else {
            return Vec::new();
        };
        let mut out = vec![info.manifest_digest.clone(), info.config_digest];
        if let Ok(manifest) = self
            .read_blob(&info.manifest_digest)
            .and_then(|b| crate::image::parse_json::<crate::image::Manifest>(&b, "manifest"))
        {
            out.extend(manifest.layers.into_iter().map(|l| l.digest));
        }
        out
    }
}

/// Remove every entry of `dir` whose name is not in `keep`; returns how many non-temp entries went.
fn sweep(dir: &Path, keep: &HashSet<String>) -> Result<usize> {
    let mut removed = 0;
    for ent in fs::read_dir(dir).ctx(|| format!("read {}", dir.display()))? {
        let ent = ent.ctx(|| format!("read {}", dir.display()))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let mut p = ent.path();
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            // Take a directory out of sight with one rename before emptying it,
            // so a gc killed half-way never leaves a partial layer under its
            // real name (a later pull would reuse it); the `.tmp-` leftover is
            // swept by the next gc.
            if !name.starts_with(".tmp-") {
                let hidden = dir.join(format!(".tmp-gc-{name}-{}", unique_suffix()));
                fs::rename(&p, &hidden).ctx(|| format!("rename {} for removal", p.display()))?;
                p = hidden;
            }
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        }
        .ctx(|| format!("remove {}", p.display()))?;
        if !name.starts_with(".tmp-") {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Unpack `blob` into `dest` in three stages on their own threads: decompression,
/// hashing of the uncompressed stream, and (on this thread) extraction. Returns the
/// digest of the whole uncompressed stream, including anything after the tar's end,
/// and what the extraction made. A stream longer than the size limit stops the
/// decompression at once.
fn unpack_pipelined(
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

/// A claimed layer (see `Store::claim_layer`): its lock held while it is unpacked
/// into `tmp` (not made yet), then renamed to `dest`; `tmp` is removed if dropped
/// before that.
struct LayerSlot {
    _lock: LockGuard,
    tmp: PathBuf,
    dest: PathBuf,
    kept: bool,
}

impl LayerSlot {
    /// Rename the unpacked layer into place.
    fn keep(mut self) -> Result<()> {
        fs::rename(&self.tmp, &self.dest).ctx(|| format!("rename into {}", self.dest.display()))?;
        self.kept = true;
        Ok(())
    }

    /// Put an unpacked layer in place, or leave it pending when directories it did
    /// not list need metadata from the layers below it.
    fn settle(self, unpacked: Unpacked, has_lowers: bool) -> Result<Outcome> {
        if has_lowers && !unpacked.implicit_dirs.is_empty() {
            return Ok(Outcome::Pending(PendingLayer {
                slot: self,
                implicit: unpacked.implicit_dirs,
            }));
        }
        self.keep()?;
        Ok(Outcome::Unpacked)
    }
}

impl Drop for LayerSlot {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// What [`unpack_pipelined`] returned for blob `blob`, checked against the
/// config's `diff_id`; I/O errors name the layer's blob.
fn check_unpacked(
    blob: &Digest,
    diff_id: &Digest,
    unpacked: Result<(Digest, Unpacked)>,
) -> Result<Unpacked> {
    let (actual, unpacked) = unpacked.map_err(|e| match e {
        Error::Io { context, source } => Error::Io {
            context: format!("layer {blob}: {context}"),
            source,
        },
        e => e,
    })?;
    diff_id.verify(&actual, &format!("uncompressed layer {blob} (diff_id)"))?;
    Ok(unpacked)
}

/// Size of the pieces a pipeline thread hands to the next.
const CHUNK: usize = 1 << 20;

/// A bounded pipe of byte chunks between two threads; the reading end returns spent
/// chunks so that the writing end reuses them instead of allocating and zeroing.
fn chunk_pipe() -> (ChunkSender, ChannelReader) {
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
struct ChunkSender {
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
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    back: std::sync::mpsc::SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

/// Read `reader` to its end in chunks, hashing each and writing it to `file` while
/// sending it on `tx`. If the receiver goes away (its unpack failed), the rest is still
/// read and hashed, but neither written nor sent, so a corrupt blob is reported as such.
/// Returns the digest and size of everything read.
fn copy_hash_send(
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
