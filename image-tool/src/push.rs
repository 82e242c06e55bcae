//! Pushing a stored image to a registry.

use crate::error::Result;
use crate::image::{parse_json, Manifest, MEDIA_MANIFEST};
use crate::progress::Progress;
use crate::registry::{PushStats, Registry};
use crate::store::{ImageRecord, Store};

/// Options of `push`.
#[derive(Clone, Default)]
pub struct PushOptions {
    /// Try to mount missing blobs from this repository of the same registry first.
    pub mount_from: Option<String>,
    pub progress: Progress,
}

/// Push `rec` to the repository of `registry` under `tag`: blobs the registry lacks are
/// uploaded (config and layers), the others skipped, then the manifest is stored.
pub fn push(
    store: &Store,
    rec: &ImageRecord,
    registry: &Registry,
    tag: &str,
    opts: &PushOptions,
) -> Result<PushStats> {
    let _guard = store.lock_shared()?;
    let manifest_bytes = store.read_blob(&rec.manifest_digest)?;
    let manifest: Manifest = parse_json(
        &manifest_bytes,
        &format!("manifest {}", rec.manifest_digest),
    )?;
    let mut stats = PushStats::default();
    for desc in std::iter::once(&manifest.config).chain(&manifest.layers) {
        if registry.has_blob(&desc.digest)? {
            stats.skipped += 1;
            continue;
        }
        let path = store.blob_path(&desc.digest);
        let size = std::fs::metadata(&path)
            .map_err(|e| crate::error::Error::Io {
                context: format!(
                    "blob {} of {} is missing from the store",
                    desc.digest, rec.name
                ),
                source: e,
            })?
            .len();
        let bar = opts.progress.enabled().then(|| {
            opts.progress.bar(
                &format!("sha256:{}", &desc.digest.hex()[..12]),
                "upload",
                size,
            )
        });
        if registry.upload_blob(
            &desc.digest,
            &path,
            size,
            opts.mount_from.as_deref(),
            bar.as_ref(),
        )? {
            stats.mounted += 1;
        } else {
            stats.uploaded += 1;
            stats.bytes += size;
        }
        if let Some(bar) = bar {
            bar.finish("done");
        }
    }
    let media = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| MEDIA_MANIFEST.to_string());
    let reported = registry.put_manifest(tag, &media, &manifest_bytes)?;
    if let Some(d) = &reported {
        rec.manifest_digest
            .verify(d, "manifest stored by the registry")?;
    }
    stats.manifest_digest = reported.or_else(|| Some(rec.manifest_digest.clone()));
    Ok(stats)
}
