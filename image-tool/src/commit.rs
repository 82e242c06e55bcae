//! Turning a bundle's writable layer into a new image layer, and exporting images.

use crate::bundle::{BundleInfo, RootfsMode, STATE_DIR};
use crate::digest::{Digest, HashingWriter};
use crate::error::{invalid, Error, IoContext, Result};
use crate::fsutil::{get_xattr, list_xattrs, SafeDir};
use crate::image::{parse_json, Manifest, MEDIA_LAYER_GZIP};
use crate::layout::LayoutWriter;
use crate::lower::{inherit_parent_metadata, LowerLayers};
use crate::pull::descriptor;
use crate::store::{validate_name, ImageRecord, LayerRecord, Store};
use crate::unpack::{OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Write the overlay upper directory `upper` as an OCI layer tar: 0/0 character devices
/// become `.wh.NAME`, opaque directories get `.wh..wh..opq`.
pub fn write_diff_tar<W: Write>(upper: &Path, out: W) -> Result<W> {
    let mut w = DiffWriter {
        tar: tar::Builder::new(out),
        links: HashMap::new(),
    };
    w.tar.follow_symlinks(false);
    let root = SafeDir::open(upper)?;
    w.dir(&root, "")?;
    w.tar.into_inner().ctx(|| "finish layer tar".into())
}

struct DiffWriter<W: Write> {
    tar: tar::Builder<W>,
    links: HashMap<(u64, u64), String>,
}

fn io_err(path: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        context: format!("add {path:?} to layer"),
        source,
    }
}

impl<W: Write> DiffWriter<W> {
    fn dir(&mut self, dir: &SafeDir, prefix: &str) -> Result<()> {
        for name in dir.names()? {
            let path = format!("{prefix}{}", name.to_string_lossy());
            self.entry(dir, &name, &path)?;
        }
        Ok(())
    }

    fn header(st: &rfs::Stat, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        h.set_mtime(tar_mtime(st));
        h.set_size(0);
        h
    }

    fn xattrs(&mut self, dir: &SafeDir, name: &OsStr, path: &str) -> Result<()> {
        let mut exts: Vec<(String, Vec<u8>)> = Vec::new();
        for attr in list_xattrs(dir, name) {
            if attr.starts_with("trusted.overlay.") {
                continue;
            }
            if let Some(v) = get_xattr(dir, name, &attr) {
                exts.push((format!("SCHILY.xattr.{attr}"), v));
            }
        }
        if !exts.is_empty() {
            self.tar
                .append_pax_extensions(exts.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(io_err(path))?;
        }
        Ok(())
    }

    fn empty_file(&mut self, path: &str, st: &rfs::Stat) -> Result<()> {
        let mut h = Self::header(st, tar::EntryType::Regular);
        h.set_mode(0o644);
        self.tar
            .append_data(&mut h, path, std::io::empty())
            .map_err(io_err(path))
    }

    fn entry(&mut self, dir: &SafeDir, name: &OsStr, path: &str) -> Result<()> {
        let st =
            rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ctx(|| format!("stat {path}"))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::CharacterDevice && st.st_rdev == 0 {
            let wh = match path.rsplit_once('/') {
                Some((parent, leaf)) => format!("{parent}/{WHITEOUT_PREFIX}{leaf}"),
                None => format!("{WHITEOUT_PREFIX}{path}"),
            };
            return self.empty_file(&wh, &st);
        }
        if ft != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let mut h = Self::header(&st, tar::EntryType::Link);
                let first = first.clone();
                return self
                    .tar
                    .append_link(&mut h, path, &first)
                    .map_err(io_err(path));
            }
            self.links.insert(key, path.to_string());
        }
        self.xattrs(dir, name, path)?;
        match ft {
            FileType::Directory => {
                let mut h = Self::header(&st, tar::EntryType::Directory);
                self.tar
                    .append_data(&mut h, format!("{path}/"), std::io::empty())
                    .map_err(io_err(path))?;
                if get_xattr(dir, name, OVERLAY_OPAQUE_XATTR).as_deref() == Some(b"y") {
                    self.empty_file(&format!("{path}/{OPAQUE_MARKER}"), &st)?;
                }
                let child = dir.child(name).ctx(|| format!("open {path}"))?;
                self.dir(&child, &format!("{path}/"))
            }
            FileType::RegularFile => {
                let fd = rfs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ctx(|| format!("open {path}"))?;
                let mut h = Self::header(&st, tar::EntryType::Regular);
                h.set_size(st.st_size as u64);
                self.tar
                    .append_data(&mut h, path, File::from(fd))
                    .map_err(io_err(path))
            }
            FileType::Symlink => {
                let target =
                    rfs::readlinkat(dir, name, Vec::new()).ctx(|| format!("readlink {path}"))?;
                let mut h = Self::header(&st, tar::EntryType::Symlink);
                self.tar
                    .append_link(&mut h, path, OsStr::from_bytes(target.as_bytes()))
                    .map_err(io_err(path))
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let kind = match ft {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = Self::header(&st, kind);
                h.set_device_major(rfs::major(st.st_rdev))
                    .map_err(io_err(path))?;
                h.set_device_minor(rfs::minor(st.st_rdev))
                    .map_err(io_err(path))?;
                self.tar
                    .append_data(&mut h, path, std::io::empty())
                    .map_err(io_err(path))
            }
            _ => Err(invalid(format!(
                "{path}: sockets cannot be stored in a layer"
            ))),
        }
    }
}

/// RFC 3339 UTC timestamp of now.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Store the unmounted overlay upper directory `upper` of a finished build step on
/// the layers `lower` (bottom first) as a new gzip layer: the blob in `blobs/`,
/// and, instead of a second unpack of that blob, the directory itself as the
/// unpacked layer, renamed into `layers/` under the layer's chain ID (`upper` must
/// be on the store's filesystem). Before that it is made what unpacking the blob on
/// `lower` makes: the bookkeeping xattrs overlayfs left on copied-up entries are
/// removed, mtimes are cut to the whole seconds the tar holds, and the root directory, which the layer's tar does not list, takes the
/// metadata of the root of the layers below (see `Store::finish_pending`). What is
/// left of `upper` (if the layer existed already) is the caller's to remove.
pub fn commit_unmounted_upper(
    store: &Store,
    lower: &[LayerRecord],
    upper: &Path,
) -> Result<LayerRecord> {
    let layer = store_upper_blob(store, upper)?;
    let root = SafeDir::open(upper)?;
    settle_as_unpacked(&root, OsStr::new("."), ".")?;
    let mut diff_ids: Vec<Digest> = lower.iter().map(|l| l.diff_id.clone()).collect();
    diff_ids.push(layer.diff_id.clone());
    let chains = Digest::chain_ids(&diff_ids);
    let (chain_id, lower_chains) = chains.split_last().expect("the new layer's chain ID");
    if !lower_chains.is_empty() {
        store.ensure_layers(lower)?;
        let lower_dirs: Vec<PathBuf> = lower_chains.iter().map(|c| store.layer_path(c)).collect();
        let lower_layers = LowerLayers::open(&lower_dirs)?;
        inherit_parent_metadata(&root, &[Vec::new()], &lower_layers)?;
    }
    drop(root);
    store.adopt_layer(upper, chain_id)?;
    Ok(layer)
}

/// Make `name` in `dir` and, for a directory, everything below it what unpacking
/// the layer [`write_diff_tar`] wrote of it makes: without the `trusted.overlay.*`
/// xattrs but the opaque mark, and with the whole-second mtime the tar holds (as
/// access time too, as unpacking sets them).
fn settle_as_unpacked(dir: &SafeDir, name: &OsStr, shown: &str) -> Result<()> {
    for attr in list_xattrs(dir, name) {
        if attr.starts_with("trusted.overlay.") && attr != OVERLAY_OPAQUE_XATTR {
            crate::fsutil::remove_xattr(dir, name, &attr)
                .ctx(|| format!("remove {attr} from {shown}"))?;
        }
    }
    let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ctx(|| format!("stat {shown}"))?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let child = if name == "." {
            dir.try_clone()?
        } else {
            dir.child(name).ctx(|| format!("open {shown}"))?
        };
        for n in child.names()? {
            let path = format!("{shown}/{}", n.to_string_lossy());
            settle_as_unpacked(&child, &n, &path)?;
        }
    }
    // Setting a child's times leaves its directory's mtime alone: any order works.
    let whole = rfs::Timespec {
        tv_sec: tar_mtime(&st) as i64,
        tv_nsec: 0,
    };
    let times = rfs::Timestamps {
        last_access: whole,
        last_modification: whole,
    };
    rfs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)
        .ctx(|| format!("set the times of {shown}"))
}

/// The mtime a layer tar of [`write_diff_tar`] gives an entry: whole seconds (as
/// docker's layers have), none before 1970.
fn tar_mtime(st: &rfs::Stat) -> u64 {
    st.st_mtime.max(0) as u64
}

/// Write the diff of `upper` as a gzip layer blob into the store.
fn store_upper_blob(store: &Store, upper: &Path) -> Result<LayerRecord> {
    let tmp = store.tmp_path("commit");
    let (digest, size, diff_id) = (|| {
        let file = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        let gz = flate2::write::GzEncoder::new(
            HashingWriter::new(std::io::BufWriter::new(file)),
            flate2::Compression::fast(),
        );
        let tar_out = write_diff_tar(upper, HashingWriter::new(gz))?;
        let (gz, diff_id, _) = tar_out.finish();
        let (buf, digest, size) = gz.finish().ctx(|| "finish gzip".into())?.finish();
        buf.into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| "write layer".into())?;
        Ok::<_, Error>((digest, size, diff_id))
    })()
    .inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    std::fs::rename(&tmp, store.blob_path(&digest)).ctx(|| "store committed layer".into())?;
    Ok(LayerRecord {
        digest,
        diff_id,
        media_type: MEDIA_LAYER_GZIP.into(),
        size,
    })
}

/// Commit the writable layer of the bundle at `dir` as a new image `name`.
pub fn commit(dir: &Path, name: &str) -> Result<ImageRecord> {
    validate_name(name)?;
    let info = BundleInfo::load(dir)?;
    if info.mode != RootfsMode::Overlay {
        return Err(Error::Bundle {
            path: dir.to_path_buf(),
            reason: "only overlay bundles have a separate writable layer to commit".into(),
        });
    }
    let store = Store::open(&info.store)?;
    let _guard = store.lock_shared()?;
    let manifest_bytes = store.read_blob(&info.manifest_digest)?;
    let mut manifest: Manifest = parse_json(&manifest_bytes, "base manifest")?;
    let mut config: serde_json::Value =
        parse_json(&store.read_blob(&info.config_digest)?, "base config")?;

    let layer = store_upper_blob(&store, &dir.join(STATE_DIR).join("upper"))?;
    let (digest, size, diff_id) = (layer.digest, layer.size, layer.diff_id);

    let now = now_rfc3339();
    config["created"] = now.clone().into();
    config["rootfs"]["type"] = "layers".into();
    let ids = config["rootfs"]["diff_ids"]
        .as_array_mut()
        .ok_or_else(|| invalid("base config has no rootfs.diff_ids"))?;
    ids.push(diff_id.to_string().into());
    if !config["history"].is_array() {
        config["history"] = serde_json::json!([]);
    }
    if let Some(h) = config["history"].as_array_mut() {
        h.push(serde_json::json!({"created": now, "created_by": "berth-image commit"}));
    }
    let config_bytes = serde_json::to_vec(&config).expect("config serializes");
    let config_digest = store.put_blob_bytes(&config_bytes, "config")?;
    manifest.config.digest = config_digest.clone();
    manifest.config.size = config_bytes.len() as u64;
    manifest
        .layers
        .push(descriptor(MEDIA_LAYER_GZIP, digest.clone(), size));
    let new_manifest = serde_json::to_vec(&manifest).expect("manifest serializes");
    let manifest_digest = store.put_blob_bytes(&new_manifest, "manifest")?;

    let base = store
        .list_images()?
        .into_iter()
        .find(|r| r.manifest_digest == info.manifest_digest);
    let mut layers: Vec<LayerRecord> = match &base {
        Some(b) => b.layers.clone(),
        None => manifest.layers[..manifest.layers.len() - 1]
            .iter()
            .zip(&info.diff_ids)
            .map(|(l, d)| LayerRecord {
                digest: l.digest.clone(),
                diff_id: d.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
            })
            .collect(),
    };
    layers.push(LayerRecord {
        digest,
        diff_id,
        media_type: MEDIA_LAYER_GZIP.into(),
        size,
    });
    store.ensure_layers(&layers)?;
    let rec = ImageRecord {
        name: name.to_string(),
        manifest_digest,
        manifest_size: new_manifest.len() as u64,
        config_digest,
        platform: base
            .map(|b| b.platform)
            .unwrap_or_else(crate::image::Platform::host),
        layers,
    };
    store.save_image(&rec)?;
    Ok(rec)
}

/// Write a stored image into the OCI layout `layout_dir` under `tag`.
pub fn export(store: &Store, rec: &ImageRecord, layout_dir: &Path, tag: &str) -> Result<()> {
    let layout = LayoutWriter::create(layout_dir)?;
    let manifest_bytes = store.read_blob(&rec.manifest_digest)?;
    let manifest: Manifest = parse_json(&manifest_bytes, "manifest")?;
    for d in manifest
        .layers
        .iter()
        .chain(std::iter::once(&manifest.config))
    {
        layout.put_file(&store.blob_path(&d.digest), &d.digest)?;
    }
    let (digest, size) = layout.put_bytes(&manifest_bytes)?;
    let media = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| crate::image::MEDIA_MANIFEST.into());
    layout.tag(descriptor(&media, digest, size), tag)
}

/// Write a stored image as an OCI archive (a tar of an image layout) at `file`, replacing
/// it atomically; the image is tagged `tag` in the archive's index.json.
pub fn export_archive(store: &Store, rec: &ImageRecord, file: &Path, tag: &str) -> Result<()> {
    let manifest_bytes = store.read_blob(&rec.manifest_digest)?;
    let manifest: Manifest = parse_json(&manifest_bytes, "manifest")?;
    let media = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| crate::image::MEDIA_MANIFEST.into());
    let mut desc = descriptor(
        &media,
        rec.manifest_digest.clone(),
        manifest_bytes.len() as u64,
    );
    desc.annotations
        .insert(crate::image::ANNOTATION_REF_NAME.into(), tag.to_string());
    let index = crate::image::Index::new(vec![desc]);
    let index_bytes = serde_json::to_vec(&index).expect("index serializes");

    let name = file.file_name().ok_or_else(|| {
        invalid(format!(
            "export target {} is not a file name",
            file.display()
        ))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = file.with_file_name(tmp_name);
    let result = (|| {
        let out = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, out));
        let tmp_shown = tmp.display().to_string();
        let ioe = |what: &str| {
            let context = format!("write {what} to {tmp_shown}");
            move |source| Error::Io { context, source }
        };
        let header = |kind: tar::EntryType, mode: u32, size: u64| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h.set_mtime(0);
            h
        };
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            tar.append_data(&mut h, dir, std::io::empty())
                .map_err(ioe(dir))?;
        }
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        let mut h = header(tar::EntryType::Regular, 0o644, layout.len() as u64);
        tar.append_data(&mut h, "oci-layout", &layout[..])
            .map_err(ioe("oci-layout"))?;
        let mut h = header(tar::EntryType::Regular, 0o644, index_bytes.len() as u64);
        tar.append_data(&mut h, "index.json", &index_bytes[..])
            .map_err(ioe("index.json"))?;
        let mut digests: Vec<&crate::Digest> = std::iter::once(&manifest.config.digest)
            .chain(manifest.layers.iter().map(|l| &l.digest))
            .collect();
        digests.sort();
        digests.dedup();
        for d in digests {
            let blob = store.open_blob(d)?;
            let size = blob.metadata().ctx(|| format!("stat blob {d}"))?.len();
            let path = format!("blobs/sha256/{}", d.hex());
            let mut h = header(tar::EntryType::Regular, 0o644, size);
            tar.append_data(&mut h, &path, blob).map_err(ioe(&path))?;
        }
        let path = format!("blobs/sha256/{}", rec.manifest_digest.hex());
        let mut h = header(tar::EntryType::Regular, 0o644, manifest_bytes.len() as u64);
        tar.append_data(&mut h, &path, &manifest_bytes[..])
            .map_err(ioe(&path))?;
        let w = tar.into_inner().map_err(ioe("archive end"))?;
        w.into_inner()
            .map_err(|e| e.into_error())
            .map_err(ioe("archive"))?;
        std::fs::rename(&tmp, file).ctx(|| format!("rename to {}", file.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
