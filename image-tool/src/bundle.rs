//! Runtime bundles: `DIR/config.json` plus `DIR/rootfs`, an overlay of the image's shared
//! layers with this bundle's own writable layer in `DIR/.berth/{upper,work}`.

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::SafeDir;
use crate::image::{parse_json, ImageConfig};
use crate::overlay::{self, OverlaySpec};
use crate::store::{write_atomic, BundleRecord, ImageRecord, Store};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// The bundle's private directory.
pub const STATE_DIR: &str = ".berth";

/// How the root filesystem of a bundle is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootfsMode {
    Overlay,
    Copy,
}

/// Options of `bundle`.
#[derive(Debug, Clone, Default)]
pub struct BundleOptions {
    /// Flatten the layers into a plain directory instead of mounting an overlay.
    pub copy: bool,
    /// Replace the image's Cmd.
    pub args: Option<Vec<String>>,
}

/// What a bundle was made from, in `DIR/.berth/bundle.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleInfo {
    pub store: PathBuf,
    pub image: String,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub mode: RootfsMode,
    /// Bottom layer first.
    pub diff_ids: Vec<Digest>,
}

impl BundleInfo {
    pub fn load(dir: &Path) -> Result<BundleInfo> {
        let p = dir.join(STATE_DIR).join("bundle.json");
        let data = fs::read(&p).map_err(|_| Error::Bundle {
            path: dir.to_path_buf(),
            reason: "not a berth-image bundle (no .berth/bundle.json)".into(),
        })?;
        parse_json(&data, &p.display().to_string())
    }
}

fn bundle_err(dir: &Path, reason: impl Into<String>) -> Error {
    Error::Bundle {
        path: dir.to_path_buf(),
        reason: reason.into(),
    }
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    if dir.is_absolute() {
        Ok(dir.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .ctx(|| "current dir".into())?
            .join(dir))
    }
}

/// Create a bundle for `image` at `dir` (which must not exist or be empty).
pub fn create(store: &Store, image: &ImageRecord, dir: &Path, opts: &BundleOptions) -> Result<()> {
    let dir = absolute(dir)?;
    let created = match fs::read_dir(&dir) {
        Ok(mut it) => {
            if it.next().is_some() {
                return Err(bundle_err(&dir, "directory exists and is not empty"));
            }
            false
        }
        Err(_) => {
            fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
            true
        }
    };
    let result = populate(store, image, &dir, opts);
    if result.is_err() {
        let _ = overlay::unmount(&dir.join("rootfs"));
        let _ = store.remove_bundle(&dir);
        if created {
            let _ = fs::remove_dir_all(&dir);
        } else if let Ok(d) = SafeDir::open(&dir) {
            let _ = d.clear();
        }
    }
    result
}

fn populate(store: &Store, image: &ImageRecord, dir: &Path, opts: &BundleOptions) -> Result<()> {
    let _guard = store.lock_shared()?;
    let state = dir.join(STATE_DIR);
    let rootfs = dir.join("rootfs");
    fs::create_dir(&state).ctx(|| format!("create {}", state.display()))?;
    fs::create_dir(&rootfs).ctx(|| format!("create {}", rootfs.display()))?;
    store.ensure_layers(&image.layers)?;
    let mode = if opts.copy {
        RootfsMode::Copy
    } else {
        RootfsMode::Overlay
    };
    let info = BundleInfo {
        store: store.root().to_path_buf(),
        image: image.name.clone(),
        manifest_digest: image.manifest_digest.clone(),
        config_digest: image.config_digest.clone(),
        mode,
        diff_ids: image.layers.iter().map(|l| l.diff_id.clone()).collect(),
    };
    write_atomic(
        &state.join("bundle.json"),
        &serde_json::to_vec_pretty(&info).expect("info serializes"),
        &state.join("bundle.json.tmp"),
    )?;
    match mode {
        RootfsMode::Copy => {
            let dst = SafeDir::open(&rootfs)?;
            for chain in image.chain_ids() {
                crate::flatten::apply_layer(&SafeDir::open(&store.layer_path(&chain))?, &dst)?;
            }
            copy_root_metadata(store, image, &dst)?;
        }
        RootfsMode::Overlay => {
            store.save_bundle(&BundleRecord {
                dir: dir.to_path_buf(),
                diff_ids: info.diff_ids.clone(),
            })?;
            let spec = overlay_spec(store, image, &state)?;
            copy_root_metadata(store, image, &SafeDir::open(&spec.upper)?)?;
            overlay::mount(&spec, &rootfs)?;
        }
    }
    let config: ImageConfig = parse_json(
        &store.read_blob(&image.config_digest)?,
        &format!("config {}", image.config_digest),
    )?;
    let spec = crate::config_gen::runtime_config(&config, &rootfs, opts.args.as_deref())?;
    crate::config_gen::check(&spec)?;
    write_atomic(
        &dir.join("config.json"),
        &serde_json::to_vec_pretty(&spec).expect("spec serializes"),
        &state.join("config.json.tmp"),
    )
}

fn overlay_spec(store: &Store, image: &ImageRecord, state: &Path) -> Result<OverlaySpec> {
    let upper = state.join("upper");
    let work = state.join("work");
    fs::create_dir(&upper).ctx(|| format!("create {}", upper.display()))?;
    fs::create_dir(&work).ctx(|| format!("create {}", work.display()))?;
    let mut lower: Vec<PathBuf> = image
        .chain_ids()
        .iter()
        .rev()
        .map(|c| store.layer_path(c))
        .collect();
    if lower.is_empty() {
        let empty = state.join("empty");
        fs::create_dir(&empty).ctx(|| format!("create {}", empty.display()))?;
        lower.push(empty);
    }
    Ok(OverlaySpec { lower, upper, work })
}

/// Give the root directory of a bundle (the overlay's upper directory, which overlayfs
/// shows as the root, or the copied tree) the image's root: the metadata of its top
/// layer's root directory (a layer that does not list its root inherits it from below).
fn copy_root_metadata(store: &Store, image: &ImageRecord, root: &SafeDir) -> Result<()> {
    let Some(top) = image.chain_ids().pop() else {
        return Ok(());
    };
    let layer = SafeDir::open(&store.layer_path(&top))?;
    crate::lower::copy_dir_metadata(&layer, root, "bundle root directory")
}

/// Unmount and remove a bundle made by [`create`].
pub fn remove(dir: &Path) -> Result<()> {
    let dir = absolute(dir)?;
    let info = BundleInfo::load(&dir)?;
    let rootfs = dir.join("rootfs");
    overlay::unmount(&rootfs)?;
    if overlay::is_mountpoint(&rootfs) {
        return Err(bundle_err(&dir, "rootfs is still mounted"));
    }
    fs::remove_dir_all(&dir).ctx(|| format!("remove {}", dir.display()))?;
    if let Ok(store) = Store::open(&info.store) {
        store.remove_bundle(&dir)?;
    }
    Ok(())
}
