//! Records: the named images under `images/` and the bundles under `bundles/`
//! whose overlays use this store's layers.

use super::{write_atomic, Store};
use crate::digest::Digest;
use crate::error::{invalid, Error, IoContext, Result};
use crate::image::Platform;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

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

impl ImageRecord {
    /// The chain ID of each layer, bottom first: the names of their directories.
    pub fn chain_ids(&self) -> Vec<Digest> {
        let diff_ids: Vec<Digest> = self.layers.iter().map(|l| l.diff_id.clone()).collect();
        Digest::chain_ids(&diff_ids)
    }
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

    pub(super) fn live_bundles(&self) -> Result<Vec<BundleRecord>> {
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
}
