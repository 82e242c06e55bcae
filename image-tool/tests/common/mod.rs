//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod containerd;
pub mod fstree;
pub mod registry;
pub mod world;

use berth_image::digest::Digest;
use berth_image::image::{Manifest, MEDIA_CONFIG, MEDIA_LAYER_GZIP, MEDIA_MANIFEST};
use berth_image::layout::LayoutWriter;
use berth_image::pull::descriptor;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory that unmounts everything below it and removes itself on drop.
pub struct Scratch {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("berth-image-test-")
            .tempdir_in("/var/tmp")
            .expect("create scratch dir");
        Scratch {
            path: dir.path().to_path_buf(),
            _dir: dir,
        }
    }

    /// A scratch directory on tmpfs (/dev/shm) when there is one: for tests that
    /// create and delete tens of thousands of files, which this VM's disk makes take
    /// about a millisecond each.
    pub fn on_tmpfs() -> Scratch {
        let base = if Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/var/tmp"
        };
        let dir = tempfile::Builder::new()
            .prefix("berth-image-test-")
            .tempdir_in(base)
            .expect("create scratch dir");
        Scratch {
            path: dir.path().to_path_buf(),
            _dir: dir,
        }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for m in mounts_below(&self.path) {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// A tar header with the given type, mode and owner, fixed mtime.
pub fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(size);
    h
}

/// A tar header whose name bytes are written raw (no validation by the tar crate).
pub fn raw_header(kind: tar::EntryType, name: &[u8], link: &[u8], size: u64) -> tar::Header {
    let mut h = header(kind, 0o644, size);
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        gnu.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_cksum();
    h
}

/// Builds layer tars entry by entry.
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub fn new() -> Self {
        LayerBuilder {
            tar: tar::Builder::new(Vec::new()),
        }
    }
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        self.tar
            .append_data(&mut h, path, std::io::empty())
            .unwrap();
        self
    }
    pub fn file(self, path: &str, body: &str) -> Self {
        self.file_owned(path, body, 0o644, 0, 0)
    }
    pub fn file_owned(mut self, path: &str, body: &str, mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = header(tar::EntryType::Regular, mode, body.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.tar.append_data(&mut h, path, body.as_bytes()).unwrap();
        self
    }
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        self.tar.append_link(&mut h, path, target).unwrap();
        self
    }
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Link, 0o644, 0);
        self.tar.append_link(&mut h, path, target).unwrap();
        self
    }
    pub fn node(mut self, path: &str, kind: tar::EntryType, major: u32, minor: u32) -> Self {
        let mut h = header(kind, 0o640, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.tar
            .append_data(&mut h, path, std::io::empty())
            .unwrap();
        self
    }
    pub fn raw(mut self, h: tar::Header, body: &[u8]) -> Self {
        self.tar.append(&h, body).unwrap();
        self
    }
    pub fn pax(mut self, exts: &[(&str, &[u8])]) -> Self {
        self.tar
            .append_pax_extensions(exts.iter().copied())
            .unwrap();
        self
    }
    pub fn whiteout(self, path: &str) -> Self {
        self.file(path, "")
    }
    pub fn finish(self) -> Vec<u8> {
        self.tar.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Write an OCI layout image with the given uncompressed layer tars and image `config`
/// section (Cmd, Env, User, ...). Returns the manifest digest.
pub fn write_image(
    layout: &Path,
    tag: &str,
    layers: &[Vec<u8>],
    run_config: serde_json::Value,
) -> Digest {
    let w = LayoutWriter::create(layout).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        diff_ids.push(Digest::of(l).to_string());
        let gz = gzip(l);
        let (d, size) = w.put_bytes(&gz).unwrap();
        descs.push(descriptor(MEDIA_LAYER_GZIP, d, size));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": run_config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (cd, cs) = w.put_bytes(&serde_json::to_vec(&config).unwrap()).unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.into()),
        config: descriptor(MEDIA_CONFIG, cd, cs),
        layers: descs,
        annotations: Default::default(),
    };
    let (md, ms) = w
        .put_bytes(&serde_json::to_vec(&manifest).unwrap())
        .unwrap();
    w.tag(descriptor(MEDIA_MANIFEST, md.clone(), ms), tag)
        .unwrap();
    md
}

/// Run a command, panicking with its stderr on failure; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The berth-image binary built for these tests.
pub fn berth_image() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth-image"))
}

/// Build the busybox image into `layout` under `tag`.
pub fn busybox_layout(layout: &Path, tag: &str) -> Digest {
    berth_image::busybox::build_busybox(Path::new("/bin/busybox"), layout, tag).unwrap()
}
