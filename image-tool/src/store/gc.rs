//! Garbage collection: removing blobs and layers no image or live bundle uses.

use super::{unique_suffix, Store};
use crate::digest::Digest;
use crate::error::{IoContext, Result};
use std::collections::HashSet;
use std::fs;
use std::path::Path;

/// What `gc` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GcStats {
    pub blobs: usize,
    pub layers: usize,
}

impl Store {
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
