//! A build step's view of a stage's filesystem: an overlay of its layers with a
//! fresh writable layer, mounted under the store's `tmp/`. COPY, ADD and
//! WORKDIR write into it and the writable layer becomes the step's layer
//! (`commit::commit_upper`); COPY --from reads another stage through one.

use crate::error::{IoContext, Result};
use crate::overlay::{self, OverlaySpec};
use crate::store::{LayerRecord, Store};
use std::path::{Path, PathBuf};

/// A mounted overlay of layers; unmounted and removed on drop.
pub struct WorkMount {
    dir: PathBuf,
    pub rootfs: PathBuf,
    pub upper: PathBuf,
}

impl WorkMount {
    /// Mount `layers` (bottom first) with an empty writable layer.
    pub fn new(store: &Store, layers: &[LayerRecord]) -> Result<WorkMount> {
        let dir = store.tmp_path("build-mount");
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
        for l in layers {
            store.ensure_layer(&l.digest, &l.diff_id)?;
        }
        let mut lower: Vec<PathBuf> = layers
            .iter()
            .rev()
            .map(|l| store.layer_path(&l.diff_id))
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
}

impl Drop for WorkMount {
    fn drop(&mut self) {
        let _ = overlay::unmount(&self.rootfs);
        if !overlay::is_mountpoint(&self.rootfs) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
