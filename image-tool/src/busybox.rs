//! Building a small OCI image from the host's static busybox, without any network.

use crate::digest::{Digest, HashingWriter};
use crate::error::{invalid, IoContext, Result};
use crate::image::{Manifest, MEDIA_CONFIG, MEDIA_LAYER_GZIP, MEDIA_MANIFEST};
use crate::layout::LayoutWriter;
use crate::pull::descriptor;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const GROUP: &str = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n";

/// The applet names `busybox --list` prints.
pub fn applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .ctx(|| format!("run {} --list", busybox.display()))?;
    if !out.status.success() {
        return Err(invalid(format!("{} --list failed", busybox.display())));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "busybox" && !l.contains('/'))
        .map(String::from)
        .collect())
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

/// Write the busybox root filesystem as a tar stream.
fn write_rootfs<W: Write>(out: W, busybox: &Path) -> Result<W> {
    let mut tar = tar::Builder::new(out);
    let io = |e: std::io::Error| crate::Error::Io {
        context: "write busybox layer".into(),
        source: e,
    };
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("var", 0o755),
    ] {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        tar.append_data(&mut h, format!("{dir}/"), std::io::empty())
            .map_err(io)?;
    }
    let bin = File::open(busybox).ctx(|| format!("open {}", busybox.display()))?;
    let len = bin
        .metadata()
        .ctx(|| format!("stat {}", busybox.display()))?
        .len();
    let mut h = header(tar::EntryType::Regular, 0o755, len);
    tar.append_data(&mut h, "bin/busybox", bin).map_err(io)?;
    for applet in applets(busybox)? {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .map_err(io)?;
    }
    for (path, body) in [("etc/passwd", PASSWD), ("etc/group", GROUP)] {
        let mut h = header(tar::EntryType::Regular, 0o644, body.len() as u64);
        tar.append_data(&mut h, path, body.as_bytes()).map_err(io)?;
    }
    tar.into_inner().map_err(io)
}

/// Build an image from `busybox` into the OCI layout `layout_dir` under `tag`.
/// Returns the manifest digest.
pub fn build_busybox(busybox: &Path, layout_dir: &Path, tag: &str) -> Result<Digest> {
    let layout = LayoutWriter::create(layout_dir)?;
    let tmp = layout_dir.join("blobs/sha256/.layer.tmp");
    let file = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
    let gz = flate2::write::GzEncoder::new(HashingWriter::new(file), flate2::Compression::new(6));
    let inner = write_rootfs(HashingWriter::new(gz), busybox)?;
    let (gz, diff_id, _) = inner.finish();
    let (_, layer_digest, layer_size) = gz.finish().ctx(|| "finish gzip".into())?.finish();
    std::fs::rename(&tmp, layout.blob_path(&layer_digest)).ctx(|| "store busybox layer".into())?;

    let config = serde_json::json!({
        "created": "1970-01-01T00:00:00Z",
        "architecture": crate::image::Platform::host().architecture,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "berth-image build-busybox"}],
    });
    let (config_digest, config_size) =
        layout.put_bytes(&serde_json::to_vec(&config).expect("json"))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.into()),
        config: descriptor(MEDIA_CONFIG, config_digest, config_size),
        layers: vec![descriptor(MEDIA_LAYER_GZIP, layer_digest, layer_size)],
        annotations: Default::default(),
    };
    let (digest, size) = layout.put_bytes(&serde_json::to_vec(&manifest).expect("json"))?;
    layout.tag(descriptor(MEDIA_MANIFEST, digest.clone(), size), tag)?;
    Ok(digest)
}
