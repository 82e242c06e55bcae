//! Importing an image from a source into the store.

use crate::digest::Digest;
use crate::error::{invalid, IoContext, Result};
pub use crate::fetch::fetch_blob;
use crate::image::{
    is_index, parse_json, Descriptor, ImageConfig, Index, Manifest, Platform, ANNOTATION_REF_NAME,
    MEDIA_CONFIG, MEDIA_LAYER_GZIP, MEDIA_LAYER_TAR, MEDIA_MANIFEST,
};
use crate::progress::Progress;
use crate::source::{DirFiles, LayoutFiles, SourceRef, TarFiles};
use crate::store::{validate_name, ImageRecord, LayerRecord, LayerTarget, Outcome, Store};
use std::io::Read;

/// Options of `pull`.
#[derive(Clone)]
pub struct PullOptions {
    pub platform: Platform,
    /// Name of the image in the store; derived from the reference when `None`.
    pub name: Option<String>,
    /// Allow plain http to loopback registries.
    pub insecure: bool,
    pub credentials: Option<crate::registry::Credentials>,
    /// Progress bars for downloads and unpacking (see [`Progress::stderr`]).
    pub progress: Progress,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            name: None,
            insecure: false,
            credentials: None,
            progress: Progress::default(),
        }
    }
}

/// Pull `src` into `store`: verify and store every blob, unpack every layer, record the image.
pub fn pull(store: &Store, src: &SourceRef, opts: &PullOptions) -> Result<ImageRecord> {
    let name = opts.name.clone().unwrap_or_else(|| src.default_name());
    validate_name(&name)?;
    let _guard = store.lock_shared()?;
    match src {
        SourceRef::OciDir { path, tag } => {
            let files = DirFiles(path.clone());
            pull_layout(store, &files, tag.as_deref(), opts, name)
        }
        SourceRef::OciArchive { path, tag } => {
            let files = TarFiles::open(path)?;
            pull_layout(store, &files, tag.as_deref(), opts, name)
        }
        SourceRef::Registry(r) => {
            let registry =
                crate::registry::Registry::connect(r, opts.insecure, opts.credentials.clone())?;
            pull_registry(store, &registry, opts, name)
        }
        SourceRef::DockerArchive { path, reference } => {
            let files = TarFiles::open(path)?;
            let tagged = opts.name.is_none() && reference.is_none();
            pull_docker_archive(store, &files, reference.as_deref(), name, tagged, opts)
        }
    }
}

fn pull_layout(
    store: &Store,
    files: &dyn LayoutFiles,
    tag: Option<&str>,
    opts: &PullOptions,
    name: String,
) -> Result<ImageRecord> {
    let index: Index = parse_json(&files.read("index.json")?, "index.json")?;
    let desc = select_tagged(&index, tag)?;
    let (bytes, digest) = resolve_manifest(files, desc, &opts.platform, 0)?;
    import_manifest(store, files, &bytes, &digest, name, opts)
}

fn pull_registry(
    store: &Store,
    registry: &crate::registry::Registry,
    opts: &PullOptions,
    name: String,
) -> Result<ImageRecord> {
    let (mut data, mut media, mut digest) = registry.manifest(&registry.reference().reference)?;
    for _ in 0..4 {
        let has_manifests = serde_json::from_slice::<serde_json::Value>(&data)
            .map(|v| v.get("manifests").is_some())
            .unwrap_or(false);
        if !(is_index(&media) || has_manifests) {
            return import_manifest(store, registry, &data, &digest, name, opts);
        }
        let index: Index = parse_json(&data, &format!("image index {digest}"))?;
        let chosen = select_platform(&index, &opts.platform)?;
        (data, media, digest) = registry.manifest(&chosen.digest.to_string())?;
    }
    Err(invalid("image indexes nested too deeply"))
}

fn select_platform<'a>(index: &'a Index, platform: &Platform) -> Result<&'a Descriptor> {
    index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
        .ok_or_else(|| {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect();
            invalid(format!(
                "image index has no manifest for platform {platform} (has: {have:?})"
            ))
        })
}

/// Pick the manifest of `index.json` carrying `tag`, or the only one when no tag is given.
fn select_tagged<'a>(index: &'a Index, tag: Option<&str>) -> Result<&'a Descriptor> {
    let tags: Vec<&str> = index
        .manifests
        .iter()
        .filter_map(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str))
        .collect();
    match tag {
        Some(t) => index
            .manifests
            .iter()
            .find(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(t))
            .ok_or_else(|| invalid(format!("layout has no image tagged {t:?} (tags: {tags:?})"))),
        None if index.manifests.len() == 1 => Ok(&index.manifests[0]),
        None => Err(invalid(format!(
            "layout holds {} images; name one with :TAG (tags: {tags:?})",
            index.manifests.len()
        ))),
    }
}

fn read_verified(files: &dyn LayoutFiles, desc: &Descriptor, what: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    files
        .open_blob(&desc.digest)?
        .take(desc.size.saturating_add(1).min(64 << 20))
        .read_to_end(&mut data)
        .ctx(|| format!("read {what} {}", desc.digest))?;
    desc.digest.verify(&Digest::of(&data), what)?;
    if data.len() as u64 != desc.size {
        return Err(invalid(format!(
            "{what} {} has size {} but its descriptor says {}",
            desc.digest,
            data.len(),
            desc.size
        )));
    }
    Ok(data)
}

/// Follow image indexes down to the manifest for `platform`.
fn resolve_manifest(
    files: &dyn LayoutFiles,
    desc: &Descriptor,
    platform: &Platform,
    depth: u32,
) -> Result<(Vec<u8>, Digest)> {
    if depth > 4 {
        return Err(invalid("image indexes nested too deeply"));
    }
    let data = read_verified(files, desc, "manifest")?;
    let has_manifests = serde_json::from_slice::<serde_json::Value>(&data)
        .map(|v| v.get("manifests").is_some())
        .unwrap_or(false);
    if !(is_index(&desc.media_type) || has_manifests) {
        return Ok((data, desc.digest.clone()));
    }
    let index: Index = parse_json(&data, &format!("image index {}", desc.digest))?;
    let chosen = select_platform(&index, platform)?;
    resolve_manifest(files, chosen, platform, depth + 1)
}

/// Store a manifest, its config and layers (taken from `files` when missing) and record the image.
fn import_manifest(
    store: &Store,
    files: &dyn LayoutFiles,
    manifest_bytes: &[u8],
    manifest_digest: &Digest,
    name: String,
    opts: &PullOptions,
) -> Result<ImageRecord> {
    let manifest: Manifest = parse_json(manifest_bytes, &format!("manifest {manifest_digest}"))?;
    // The config is stored with the manifest, after the layers: a failed pull keeps no
    // blob but the layers it completed.
    let config_stored = store.has_blob(&manifest.config.digest);
    let config_bytes = if config_stored {
        store.read_blob(&manifest.config.digest)?
    } else {
        read_verified(files, &manifest.config, "config")?
    };
    let config: ImageConfig =
        parse_json(&config_bytes, &format!("config {}", manifest.config.digest))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(invalid(format!(
            "manifest has {} layers but the config lists {} diff_ids",
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let layers: Vec<LayerRecord> = manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(l, diff_id)| LayerRecord {
            digest: l.digest.clone(),
            diff_id: diff_id.clone(),
            media_type: l.media_type.clone(),
            size: l.size,
        })
        .collect();
    let chains = Digest::chain_ids(&config.rootfs.diff_ids);
    let pending = std::sync::Mutex::new(Vec::new());
    let indices: Vec<usize> = (0..layers.len()).collect();
    Store::parallel(&indices, |&i| {
        let l = &layers[i];
        let chain = &chains[i];
        let keep = |outcome| {
            if let Outcome::Pending(p) = outcome {
                pending.lock().unwrap().push((i, p));
            }
        };
        let have_blob = store.has_blob(&l.digest);
        let have_layer = store.layer_path(chain).is_dir();
        if !have_blob && !have_layer && !files.resumable() {
            // Read once: stored and unpacked in the same pass.
            let bar = opts
                .progress
                .enabled()
                .then(|| opts.progress.bar(&short(&l.digest), "unpack", l.size));
            let reader = files.open_blob(&l.digest)?.take(l.size);
            let reader: Box<dyn Read + Send> = match &bar {
                Some(bar) => Box::new(bar.reader(reader)),
                None => Box::new(reader),
            };
            let target = LayerTarget::in_stack(l, &chains, i);
            let outcome = store.put_blob_and_unpack(reader, target, bar.as_ref())?;
            if !matches!(outcome, Outcome::Present) {
                keep(outcome);
                return Ok(());
            }
        }
        let present = store.has_blob(&l.digest) && store.layer_path(chain).is_dir();
        let bar = (!present && opts.progress.enabled())
            .then(|| opts.progress.bar(&short(&l.digest), "download", l.size));
        fetch_blob(store, files, &l.digest, l.size, bar.as_ref())?;
        let target = LayerTarget::in_stack(l, &chains, i);
        keep(store.unpack_stored(target, bar.as_ref())?);
        if let Some(bar) = &bar {
            bar.finish("done");
        }
        Ok(())
    })?;
    store.finish_pending(pending.into_inner().unwrap(), &chains)?;
    if !config_stored {
        store.put_blob_verified(&config_bytes[..], &manifest.config.digest, "config")?;
    }
    store.put_blob_verified(manifest_bytes, manifest_digest, "manifest")?;
    let rec = ImageRecord {
        name,
        manifest_digest: manifest_digest.clone(),
        manifest_size: manifest_bytes.len() as u64,
        config_digest: manifest.config.digest.clone(),
        platform: Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
        },
        layers,
    };
    store.save_image(&rec)?;
    Ok(rec)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn pull_docker_archive(
    store: &Store,
    files: &TarFiles,
    reference: Option<&str>,
    mut name: String,
    name_from_tags: bool,
    opts: &PullOptions,
) -> Result<ImageRecord> {
    let entries: Vec<DockerManifestEntry> =
        parse_json(&files.read("manifest.json")?, "manifest.json")?;
    let entry = match reference {
        Some(r) => entries
            .iter()
            .find(|e| {
                e.repo_tags
                    .iter()
                    .flatten()
                    .any(|t| short_docker_ref(t) == short_docker_ref(r))
            })
            .ok_or_else(|| invalid(format!("docker archive has no image tagged {r:?}")))?,
        None if entries.len() == 1 => &entries[0],
        None => {
            return Err(invalid(format!(
                "docker archive holds {} images; name one with :REPO:TAG",
                entries.len()
            )))
        }
    };
    if name_from_tags {
        if let Some(tag) = entry.repo_tags.iter().flatten().next() {
            name = short_docker_ref(tag).to_string();
        }
    }
    let (config_digest, config_size) = store.put_blob(files.open(&entry.config)?, "config")?;
    let mut layers = Vec::new();
    for path in &entry.layers {
        let (digest, size) = store.put_blob(files.open(path)?, &format!("layer {path}"))?;
        let mut magic = [0u8; 2];
        let gz = store.open_blob(&digest)?.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
        let media_type = if gz {
            MEDIA_LAYER_GZIP
        } else {
            MEDIA_LAYER_TAR
        };
        layers.push(descriptor(media_type, digest, size));
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.into()),
        config: descriptor(MEDIA_CONFIG, config_digest, config_size),
        layers,
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
    let digest = Digest::of(&bytes);
    import_manifest(store, files, &bytes, &digest, name, opts)
}

/// `sha256:` and the first 12 hex digits.
fn short(d: &Digest) -> String {
    format!("sha256:{}", &d.hex()[..12])
}

/// `docker.io/library/x:1` and `x:1` name the same image.
fn short_docker_ref(r: &str) -> &str {
    let r = r.strip_prefix("docker.io/").unwrap_or(r);
    r.strip_prefix("library/").unwrap_or(r)
}

/// A descriptor without platform or annotations.
pub fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest,
        size,
        platform: None,
        annotations: Default::default(),
    }
}
