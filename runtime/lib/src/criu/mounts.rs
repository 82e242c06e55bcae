//! Mounts of the container that come from outside it (bind mounts of host
//! paths, the host's cgroup directories, /dev/null over masked files, bound
//! device nodes). CRIU cannot dump what is outside the container, so each is
//! named as an external mount: at dump `destination -> id` (the id is written
//! into the image), at restore `id -> host path` (what to bind there now).
//! runc does the same in addCriuDumpMount / addCriuRestoreMount.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

use crate::error::{Context, Error, Result};
use crate::rootfs::cgroupfs;
use crate::rootfs::mounts::reopen;
use crate::rootfs::paths::{Kind, Root};
use crate::sys::fd_path;

/// The id CRIU records for files masked with the host's /dev/null.
const DEV_NULL: &str = "/dev/null";

/// One external mount: `key` and `val` as CRIU's `ext_mnt` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtMount {
    pub key: String,
    pub val: String,
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

fn has_cgroupns(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup))
}

fn is_cgroup(m: &Mount) -> bool {
    matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2"))
}

/// A mount source as the runtime used it: relative sources are relative to
/// the bundle.
fn source_of(m: &Mount, bundle: &Path) -> Option<PathBuf> {
    m.source().as_ref().map(|s| bundle.join(s))
}

fn device_paths(spec: &Spec) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = crate::rootfs::devices::defaults()
        .into_iter()
        .map(|d| d.path)
        .collect();
    if let Some(devs) = spec.linux().as_ref().and_then(|l| l.devices().as_ref()) {
        v.extend(devs.iter().map(|d| d.path().clone()));
    }
    v
}

fn push(v: &mut Vec<ExtMount>, key: impl Into<String>, val: impl Into<String>) {
    let e = ExtMount {
        key: key.into(),
        val: val.into(),
    };
    if !v.iter().any(|x| x.key == e.key) {
        v.push(e);
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The external mounts of a running container at dump. `init_pid` is its
/// init: masked paths are looked up in its root, cgroup directories are its.
pub fn for_dump(spec: &Spec, rootfs: &Path, init_pid: i32) -> Vec<ExtMount> {
    let mut v = Vec::new();
    let cgroupns = has_cgroupns(spec);
    for m in spec.mounts().iter().flatten() {
        let dest = path_str(m.destination());
        if is_cgroup(m) {
            if cgroupns {
                continue; // a real cgroup filesystem, dumped as one
            }
            let typ = m.typ().as_deref().unwrap_or("cgroup");
            for (d, _) in cgroupfs::bind_layout(m.destination(), typ, rootfs, init_pid) {
                push(&mut v, path_str(&d), path_str(&d));
            }
        } else if is_bind(m) {
            push(&mut v, dest.clone(), dest);
        }
    }
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    for p in masked {
        // Files are masked with /dev/null (directories with a tmpfs, which
        // CRIU dumps itself).
        let inside = format!("/proc/{init_pid}/root/{}", p.trim_start_matches('/'));
        match std::fs::metadata(&inside) {
            Ok(md) if !md.is_dir() => push(&mut v, p, DEV_NULL),
            _ => {}
        }
    }
    for d in device_paths(spec) {
        push(&mut v, path_str(&d), path_str(&d));
    }
    v
}

/// The external mounts at restore: what to bind for each id the dump wrote.
/// `criu_pid` is the criu process, already moved into the new container's
/// cgroups: its cgroup directories are the ones to bind.
pub fn for_restore(spec: &Spec, bundle: &Path, rootfs: &Path, criu_pid: i32) -> Vec<ExtMount> {
    let mut v = Vec::new();
    let cgroupns = has_cgroupns(spec);
    for m in spec.mounts().iter().flatten() {
        if is_cgroup(m) {
            if cgroupns {
                continue;
            }
            let typ = m.typ().as_deref().unwrap_or("cgroup");
            for (d, src) in cgroupfs::bind_layout(m.destination(), typ, rootfs, criu_pid) {
                push(&mut v, path_str(&d), path_str(&src));
            }
        } else if is_bind(m) {
            if let Some(src) = source_of(m, bundle) {
                push(&mut v, path_str(m.destination()), path_str(&src));
            }
        }
    }
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref())
        .is_some_and(|p| !p.is_empty());
    if masked {
        push(&mut v, DEV_NULL, DEV_NULL);
    }
    for d in device_paths(spec) {
        push(&mut v, path_str(&d), path_str(&d));
    }
    v
}

/// Make the mount points CRIU will mount on, as `create` would have made them
/// (runc's prepareCriuRestoreMounts): a fresh copy of a bundle lacks them.
/// Destinations under a tmpfs mount are left alone (CRIU restores the tmpfs's
/// content with them), cgroup mounts need none. Bind mounts are mounted for
/// the time of the walk so that mount points inside them can be made, and
/// unmounted again before CRIU runs.
pub fn prepare_mountpoints(spec: &Spec, bundle: &Path, rootfs: &Path) -> Result<()> {
    let mounts: Vec<&Mount> = spec.mounts().iter().flatten().collect();
    let tmpfs: Vec<&Path> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    let root = Root::open(rootfs)?;
    let mut bound: Vec<PathBuf> = Vec::new();
    let r = (|| {
        for m in &mounts {
            let dest = m.destination();
            if tmpfs.iter().any(|t| dest != *t && dest.starts_with(t)) || is_cgroup(m) {
                continue;
            }
            if !is_bind(m) {
                root.ensure(dest, Kind::Dir)?;
                continue;
            }
            let Some(src) = source_of(m, bundle) else {
                continue;
            };
            let meta = std::fs::metadata(&src).map_err(|e| {
                Error::Config(format!(
                    "mount {}: source {}: {e}",
                    dest.display(),
                    src.display()
                ))
            })?;
            let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
            let target = root.ensure(dest, kind)?;
            mount(
                Some(src.as_path()),
                fd_path(&target).as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx(|| format!("bind {} on {}", src.display(), dest.display()))?;
            bound.push(dest.to_path_buf());
        }
        Ok(())
    })();
    for dest in bound.iter().rev() {
        if let Ok(fd) = reopen(&root, dest) {
            let _ = umount2(fd_path(&fd).as_str(), MntFlags::MNT_DETACH);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn binds_masked_files_and_devices_are_external() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind"]},
                {"destination": "/cfg", "type": "none", "source": "cfg", "options": ["bind", "ro"]}
            ],
            "linux": {
                "namespaces": [{"type": "mount"}],
                "maskedPaths": ["/proc/kcore"],
                "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
            }
        }));
        let r = for_restore(&s, Path::new("/b"), Path::new("/b/rootfs"), 1);
        let get = |k: &str| r.iter().find(|e| e.key == k).map(|e| e.val.as_str());
        assert_eq!(get("/data"), Some("/srv/data"));
        assert_eq!(
            get("/cfg"),
            Some("/b/cfg"),
            "relative sources are the bundle's"
        );
        assert_eq!(get("/dev/null"), Some("/dev/null"));
        assert_eq!(get("/dev/fuse"), Some("/dev/fuse"));
        assert_eq!(get("/proc"), None);
        assert_eq!(
            r.iter().filter(|e| e.key == "/dev/null").count(),
            1,
            "no duplicate keys"
        );
    }
}
