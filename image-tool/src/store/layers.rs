//! Layers: each unpacked once into `layers/<chain ID hex>/`. A caller claims a
//! layer under its lock, unpacks it into a temporary directory next to it, checks
//! its diff_id and renames it into place; concurrent callers find it done.

use super::pipeline::{chunk_pipe, copy_hash_send, unpack_pipelined};
use super::records::LayerRecord;
use super::{unique_suffix, LockGuard, Store};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::lower::{inherit_parent_metadata, LowerLayers};
use crate::unpack::{UnpackOptions, Unpacked};
use rustix::fs::FlockOperation;
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// At most this many layers are decompressed at the same time.
pub const UNPACK_THREADS: usize = 3;

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

/// The layer an unpack call makes: which blob, checked against which diff_id, into
/// which directory.
#[derive(Clone, Copy)]
pub struct LayerTarget<'a> {
    /// The layer's (compressed) blob.
    pub blob: &'a Digest,
    /// The digest of its uncompressed tar, from the image config.
    pub diff_id: &'a Digest,
    /// The name of its directory (see [`Store::layer_path`]).
    pub chain_id: &'a Digest,
    /// Layers lie below it in its stack.
    pub has_lowers: bool,
}

impl<'a> LayerTarget<'a> {
    /// Layer `i` (bottom first) of a stack whose chain IDs are `chains`.
    pub fn in_stack(layer: &'a LayerRecord, chains: &'a [Digest], i: usize) -> Self {
        LayerTarget {
            blob: &layer.digest,
            diff_id: &layer.diff_id,
            chain_id: &chains[i],
            has_lowers: i > 0,
        }
    }
}

/// A layer unpacked into its temporary directory (its lock held) whose parent
/// directories not listed in the tar still need their metadata from the layers below.
pub struct PendingLayer {
    slot: LayerSlot,
    implicit: Vec<Vec<std::ffi::OsString>>,
}

impl Store {
    fn unpack_options(&self, blob: &Digest) -> UnpackOptions {
        UnpackOptions {
            layer: blob.to_string(),
            size_limit: self.layer_size_limit,
        }
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// The directory of the layer with chain ID `chain_id` (for a bottom layer, its
    /// diff_id).
    pub fn layer_path(&self, chain_id: &Digest) -> PathBuf {
        self.layers_dir().join(chain_id.hex())
    }

    /// Make sure the bottom layer with `diff_id` is unpacked from the stored blob `blob`.
    /// Concurrent callers for the same layer serialize on a lock file: one unpacks, the
    /// others reuse. Returns true if this call did the unpacking.
    pub fn ensure_layer(&self, blob: &Digest, diff_id: &Digest) -> Result<bool> {
        let bottom = LayerTarget {
            blob,
            diff_id,
            chain_id: diff_id,
            has_lowers: false,
        };
        match self.unpack_stored(bottom, None)? {
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
            match self.unpack_stored(LayerTarget::in_stack(&layers[i], &chains, i), None)? {
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

    /// Unpack `layer` from its stored blob unless present, advancing `bar` by the
    /// compressed bytes consumed.
    pub fn unpack_stored(
        &self,
        layer: LayerTarget,
        bar: Option<&crate::progress::Bar>,
    ) -> Result<Outcome> {
        let Some(slot) = self.claim_layer(layer.chain_id)? else {
            return Ok(Outcome::Present);
        };
        fs::create_dir(&slot.tmp).ctx(|| format!("create {}", slot.tmp.display()))?;
        let file = self.open_blob(layer.blob)?;
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
            &self.unpack_options(layer.blob),
        );
        let unpacked = check_unpacked(layer.blob, layer.diff_id, unpacked)?;
        slot.settle(unpacked, layer.has_lowers)
    }

    /// Store `layer`'s blob read from `reader` and unpack it in one pass over the
    /// data: one thread reads, hashes and stores the compressed stream, a second
    /// decompresses and hashes it, the calling one writes the files. Neither the blob
    /// nor the layer becomes visible unless both digests match; on any error neither
    /// is kept. Does nothing if the layer is present.
    ///
    /// For sources read once from local files; resumable downloads go through
    /// `pull::fetch_blob` and [`Store::unpack_stored`] so a cut transfer keeps its bytes.
    pub fn put_blob_and_unpack(
        &self,
        reader: impl Read + Send,
        layer: LayerTarget,
        bar: Option<&crate::progress::Bar>,
    ) -> Result<Outcome> {
        let Some(slot) = self.claim_layer(layer.chain_id)? else {
            return Ok(Outcome::Present);
        };
        let what = format!("blob {}", layer.blob);
        let blob_tmp = self.tmp_path("blob");
        let result = (|| {
            fs::create_dir(&slot.tmp).ctx(|| format!("create {}", slot.tmp.display()))?;
            let file = File::create(&blob_tmp).ctx(|| format!("create {}", blob_tmp.display()))?;
            let (tx, rx) = chunk_pipe();
            let opts = self.unpack_options(layer.blob);
            let (stored, unpacked) = std::thread::scope(|s| {
                let copier = s.spawn(move || copy_hash_send(reader, file, tx));
                let unpacked = unpack_pipelined(rx, &slot.tmp, &opts);
                (copier.join().expect("blob copy thread panicked"), unpacked)
            });
            // The blob's own digest explains any later failure; check it first.
            let (actual, _) = stored.ctx(|| format!("store {what}"))?;
            layer.blob.verify(&actual, &what)?;
            let unpacked = check_unpacked(layer.blob, layer.diff_id, unpacked)?;
            fs::rename(&blob_tmp, self.blob_path(layer.blob)).ctx(|| format!("store {what}"))?;
            Ok(unpacked)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&blob_tmp);
        }
        let outcome = slot.settle(result?, layer.has_lowers)?;
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
