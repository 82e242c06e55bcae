//! The result of a build: the target stage's layers and config written as an
//! OCI image (config blob with history, manifest) and stored under each tag.

use super::state::State;
use super::steps::Builder;
use super::BuildError;
use crate::commit::now_rfc3339;
use crate::image::{Manifest, MEDIA_CONFIG, MEDIA_MANIFEST};
use crate::pull::descriptor;
use crate::store::{ImageRecord, LayerRecord, Store};
use serde_json::{json, Value};

impl Builder<'_> {
    /// Store the final image under each tag (or, without one, its digest).
    pub fn finish(&mut self, st: &State, tags: &[String]) -> Result<ImageRecord, BuildError> {
        let mut config = st.config.clone();
        config["created"] = json!(now_rfc3339());
        if let Some(c) = config["config"].as_object_mut() {
            c.retain(|_, v| !v.is_null());
        }
        let ids: Vec<String> = st.layers.iter().map(|l| l.diff_id.to_string()).collect();
        config["rootfs"] = json!({"type": "layers", "diff_ids": ids});
        let image = image_blobs(self.store, &config, &st.layers, "image")?;
        let names: Vec<String> = if tags.is_empty() {
            vec![image.manifest_digest.to_string()]
        } else {
            tags.iter().map(|t| super::tag_name(t)).collect()
        };
        self.say(&format!("COMMIT {}", names.join(" ")));
        let mut rec = None;
        for name in names {
            let r = ImageRecord {
                name: name.clone(),
                ..image.clone()
            };
            self.store.save_image(&r)?;
            if !tags.is_empty() {
                self.say(&format!("Successfully tagged {name}"));
            }
            rec = Some(r);
        }
        self.say(&image.manifest_digest.to_string());
        Ok(rec.expect("at least one name"))
    }
}

/// Write `config` and a manifest of it and `layers` as blobs; the record of
/// that image for this host (named `what`, not saved in the store).
pub(super) fn image_blobs(
    store: &Store,
    config: &Value,
    layers: &[LayerRecord],
    what: &str,
) -> crate::Result<ImageRecord> {
    let config_bytes = serde_json::to_vec(config).expect("JSON serializes");
    let config_digest = store.put_blob_bytes(&config_bytes, &format!("{what} config"))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.into()),
        config: descriptor(
            MEDIA_CONFIG,
            config_digest.clone(),
            config_bytes.len() as u64,
        ),
        layers: layers
            .iter()
            .map(|l| descriptor(&l.media_type, l.digest.clone(), l.size))
            .collect(),
        annotations: Default::default(),
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("JSON serializes");
    let manifest_digest = store.put_blob_bytes(&manifest_bytes, &format!("{what} manifest"))?;
    Ok(ImageRecord {
        name: what.to_string(),
        manifest_digest,
        manifest_size: manifest_bytes.len() as u64,
        config_digest,
        platform: crate::image::Platform::host(),
        layers: layers.to_vec(),
    })
}
