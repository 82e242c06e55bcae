//! Writing OCI image layout directories.

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::image::{parse_json, Descriptor, Index, ANNOTATION_REF_NAME};
use crate::store::write_atomic;
use std::fs;
use std::path::{Path, PathBuf};

/// An OCI image layout directory being written.
pub struct LayoutWriter {
    dir: PathBuf,
}

impl LayoutWriter {
    /// Create (or reuse) the layout at `dir`.
    pub fn create(dir: &Path) -> Result<LayoutWriter> {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).ctx(|| format!("create {}", blobs.display()))?;
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            fs::write(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .ctx(|| format!("write {}", marker.display()))?;
        }
        Ok(LayoutWriter {
            dir: dir.to_path_buf(),
        })
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }

    /// Write a blob given as bytes; returns its digest and size.
    pub fn put_bytes(&self, data: &[u8]) -> Result<(Digest, u64)> {
        let d = Digest::of(data);
        let p = self.blob_path(&d);
        if !p.exists() {
            write_atomic(&p, data, &p.with_extension("tmp"))?;
        }
        Ok((d, data.len() as u64))
    }

    /// Copy a blob file whose digest is known (skipped if already present).
    pub fn put_file(&self, src: &Path, d: &Digest) -> Result<()> {
        let p = self.blob_path(d);
        if !p.exists() {
            let tmp = p.with_extension("tmp");
            fs::copy(src, &tmp).ctx(|| format!("copy {} to {}", src.display(), tmp.display()))?;
            fs::rename(&tmp, &p).ctx(|| format!("rename to {}", p.display()))?;
        }
        Ok(())
    }

    /// Point `tag` at `manifest` in index.json, replacing an older image with that tag.
    pub fn tag(&self, mut manifest: Descriptor, tag: &str) -> Result<()> {
        let index_path = self.dir.join("index.json");
        let mut index = match fs::read(&index_path) {
            Ok(data) => parse_json::<Index>(&data, &index_path.display().to_string())?,
            Err(_) => Index::new(Vec::new()),
        };
        index
            .manifests
            .retain(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(tag));
        manifest
            .annotations
            .insert(ANNOTATION_REF_NAME.into(), tag.to_string());
        index.manifests.push(manifest);
        let data = serde_json::to_vec(&index).expect("index serializes");
        write_atomic(&index_path, &data, &self.dir.join("index.json.tmp"))
    }
}
