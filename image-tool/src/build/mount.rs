//! A build step's view of a stage's filesystem: an overlay of its layers with a
//! fresh writable layer, mounted under the store's `tmp/`. COPY, ADD and
//! WORKDIR write into it and the writable layer becomes the step's layer
//! (`commit::commit_unmounted_upper`); COPY --from reads another stage
//! through one.

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::overlay::{self, OverlaySpec};
use crate::store::{LayerRecord, Store};
use std::path::{Path, PathBuf};

/// Prefix of the step overlays' directories in the store's `tmp/`; the
/// builder's pid follows (`Store::tmp_path`).
const PREFIX: &str = "build-mount-";

/// Unmount and remove step overlays left by builds that were killed (their
/// pid is gone), so they neither stay mounted nor break `gc`'s sweep of `tmp/`.
pub fn sweep_stale(store: &Store) {
    let tmp = store.root().join("tmp");
    let Ok(rd) = std::fs::read_dir(&tmp) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let rootfs = e.path().join("rootfs");
        let _ = overlay::unmount(&rootfs);
        if !overlay::is_mountpoint(&rootfs) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A mounted overlay of layers; unmounted and removed on drop.
pub struct WorkMount {
    dir: PathBuf,
    pub rootfs: PathBuf,
    pub upper: PathBuf,
}

impl WorkMount {
    /// Mount `layers` (bottom first) with an empty writable layer.
    pub fn new(store: &Store, layers: &[LayerRecord]) -> Result<WorkMount> {
        let dir = store.tmp_path(PREFIX.trim_end_matches('-'));
        std::fs::create_dir(&dir).ctx(|| format!("create {}", dir.display()))?;
        let m = WorkMount {
            rootfs: dir.join("rootfs"),
            upper: dir.join("upper"),
            dir,
        };
        let work = m.dir.join("work");
        for d in [&m.rootfs, &m.upper, &work] {
            std::fs::create_dir(d).ctx(|| format!("create {}", d.display()))?;
        }
        store.ensure_layers(layers)?;
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let mut lower: Vec<PathBuf> = Digest::chain_ids(&diff_ids)
            .iter()
            .rev()
            .map(|c| store.layer_path(c))
            .collect();
        if lower.is_empty() {
            let empty = m.dir.join("empty");
            std::fs::create_dir(&empty).ctx(|| format!("create {}", empty.display()))?;
            lower.push(empty);
        }
        let spec = OverlaySpec {
            lower,
            upper: m.upper.clone(),
            work,
        };
        overlay::mount(&spec, &m.rootfs)?;
        Ok(m)
    }

    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// Unmount the overlay (its writable layer stays in `upper`).
    pub fn unmount(&self) -> Result<()> {
        overlay::unmount(&self.rootfs)
    }
}

impl Drop for WorkMount {
    fn drop(&mut self) {
        let _ = overlay::unmount(&self.rootfs);
        if !overlay::is_mountpoint(&self.rootfs) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
