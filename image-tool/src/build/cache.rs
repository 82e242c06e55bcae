//! The layer cache: a step's result is found again by a key made of data, not
//! guesses: the state it starts from (the stage's layers and image settings),
//! the instruction after word expansion, the build arguments a RUN sees and,
//! for COPY/ADD, the hashes of what is copied. Entries live in
//! `<store>/build-cache/<key>.json` and name the layer they made; an entry
//! whose layer blob is gone (`gc` keeps only layers images use) is a miss.

use crate::digest::Digest;
use crate::store::{write_atomic, LayerRecord, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;

/// What a cached step produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The layer, or `None` for a step that changed no file (WORKDIR of an
    /// existing directory).
    pub layer: Option<LayerRecord>,
    /// When the layer was made (kept in the image history).
    pub created: String,
}

pub struct Cache {
    dir: PathBuf,
    store: Store,
}

/// A cache key from its parts (each length-prefixed, so no two part lists collide).
pub fn key(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// The identity of a stage's state: its layers and image settings.
pub fn state_id(layers: &[LayerRecord], config: &serde_json::Value) -> String {
    let ids: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
    let doc = serde_json::json!({"diff_ids": ids, "config": config.get("config")});
    key(&[&serde_json::to_vec(&doc).expect("json")])
}

impl Cache {
    pub fn open(store: &Store) -> crate::Result<Cache> {
        let dir = store.root().join("build-cache");
        std::fs::create_dir_all(&dir).map_err(|source| crate::Error::Io {
            context: format!("create {}", dir.display()),
            source,
        })?;
        Ok(Cache {
            dir,
            store: store.clone(),
        })
    }

    /// The entry for `key`, a step on the layers `lower` (bottom first), if its
    /// layer is still in the store (unpacked again on `lower`, under its chain ID,
    /// if `gc` removed only the unpacked copy).
    pub fn get(&self, key: &str, lower: &[LayerRecord]) -> Option<CacheEntry> {
        let data = std::fs::read(self.dir.join(format!("{key}.json"))).ok()?;
        let entry: CacheEntry = serde_json::from_slice(&data).ok()?;
        if let Some(l) = &entry.layer {
            if !self.store.has_blob(&l.digest) {
                return None;
            }
            let mut stack = lower.to_vec();
            stack.push(l.clone());
            self.store.ensure_layers(&stack).ok()?;
        }
        Some(entry)
    }

    pub fn put(&self, key: &str, entry: &CacheEntry) -> crate::Result<()> {
        write_atomic(
            &self.dir.join(format!("{key}.json")),
            &serde_json::to_vec(entry).expect("json"),
            &self.store.tmp_path("cache"),
        )
    }
}
