//! `cp NAME:PATH HOSTPATH` and `cp HOSTPATH NAME:PATH`, for running and
//! stopped containers. Paths in the container are resolved inside its root
//! (`openat2` with `RESOLVE_IN_ROOT`: a symlink in the container cannot lead
//! out of it), and trees are walked by file descriptor without following
//! symlinks, which are copied as symlinks. A running container is reached
//! through `/proc/PID/root`, so its volumes and tmpfs mounts are seen as it
//! sees them; a stopped one through its bundle's root filesystem.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use super::control::{runtime_state, status, Status};
use super::{container_dir, load, ContainerRecord};
use crate::store::Store;

/// `NAME:PATH` (a container side) vs a host path, as docker tells them apart.
fn container_side(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    arg.split_once(':')
        .filter(|(n, _)| !n.is_empty() && !n.contains('/'))
}

fn container_root(store: &Store, rec: &ContainerRecord) -> Result<PathBuf> {
    if matches!(status(store, rec)?, Status::Running | Status::Paused) {
        if let Some((_, pid)) = runtime_state(store, rec)? {
            if pid > 0 {
                return Ok(PathBuf::from(format!("/proc/{pid}/root")));
            }
        }
    }
    Ok(container_dir(store, &rec.id).join("bundle/rootfs"))
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

fn open_in_root(root: &OwnedFd, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(root, rel, flags | OFlags::CLOEXEC, Mode::empty(), IN_ROOT)
}

/// `cp SRC DST`: exactly one side is `NAME:PATH`.
pub fn cp(store: &Store, src: &str, dst: &str) -> Result<()> {
    match (container_side(src), container_side(dst)) {
        (Some((name, path)), None) => copy_out(store, name, path, Path::new(dst)),
        (None, Some((name, path))) => copy_in(store, Path::new(src), name, path),
        (Some(_), Some(_)) => bail!("cp: copying between containers is not supported"),
        (None, None) => bail!("cp: one of the paths must be NAME:PATH (a container's)"),
    }
}

fn basename(path: &str) -> Result<&OsStr> {
    Path::new(path.trim_end_matches('/'))
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("cp: {path:?} has no file name"))
}

fn copy_out(store: &Store, name: &str, path: &str, host: &Path) -> Result<()> {
    let rec = load(store, name)?;
    let root_path = container_root(store, &rec)?;
    let root = rustix::fs::open(
        &root_path,
        OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", root_path.display()))?;
    let src =
        open_in_root(&root, path, OFlags::PATH).with_context(|| format!("cp: {name}:{path}"))?;
    let st = rustix::fs::fstat(&src)?;
    let dest = if host.is_dir() {
        host.join(if path.trim_end_matches('/').is_empty() {
            OsStr::new("rootfs")
        } else {
            basename(path)?
        })
    } else {
        host.to_path_buf()
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let dir = open_in_root(&root, path, OFlags::RDONLY | OFlags::DIRECTORY)?;
            tree_out(dir, &dest, st.st_mode & 0o7777, false)
        }
        FileType::RegularFile => {
            let f = open_in_root(&root, path, OFlags::RDONLY)?;
            file_out(f, &dest, st.st_mode & 0o7777, None)
        }
        _ => bail!("cp: {name}:{path} is not a file or directory"),
    }
}

fn file_out(fd: OwnedFd, dest: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    let mut from = File::from(fd);
    let mut to = File::create(dest).with_context(|| format!("create {}", dest.display()))?;
    io::copy(&mut from, &mut to).with_context(|| format!("write {}", dest.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&to, Some(uid), Some(gid))?;
    }
    to.set_permissions(fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Copy the directory open at `dir` to the host path `dest`; with
/// `keep_owner`, entries keep their uid and gid.
fn tree_out(dir: OwnedFd, dest: &Path, mode: u32, keep_owner: bool) -> Result<()> {
    match fs::create_dir(dest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dest.is_dir() => {}
        Err(e) => return Err(e).with_context(|| format!("create {}", dest.display())),
    }
    if keep_owner {
        let st = rustix::fs::fstat(&dir)?;
        std::os::unix::fs::lchown(dest, Some(st.st_uid), Some(st.st_gid))?;
    }
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))?;
    let entries = rustix::fs::Dir::read_from(&dir).context("read a directory of the container")?;
    for e in entries {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        let name = OsStr::from_bytes(n);
        let target = dest.join(name);
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let owner = keep_owner.then_some((st.st_uid, st.st_gid));
        let nofollow = OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let d = rustix::fs::openat(
                    &dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | nofollow,
                    Mode::empty(),
                )?;
                tree_out(d, &target, st.st_mode & 0o7777, keep_owner)?;
            }
            FileType::RegularFile => {
                let f = rustix::fs::openat(&dir, name, OFlags::RDONLY | nofollow, Mode::empty())?;
                file_out(f, &target, st.st_mode & 0o7777, owner)?;
            }
            FileType::Symlink => {
                let link = rustix::fs::readlinkat(&dir, name, Vec::new())?;
                let _ = fs::remove_file(&target);
                std::os::unix::fs::symlink(OsStr::from_bytes(link.to_bytes()), &target)
                    .with_context(|| format!("create {}", target.display()))?;
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::lchown(&target, Some(uid), Some(gid))?;
                }
            }
            // Devices, fifos and sockets are not copied (docker copies
            // them through a tar; a host file tree has no use for them).
            _ => {}
        }
    }
    Ok(())
}

/// Fill `dest` (a new, empty volume) from the directory at `path` of the
/// image root `rootfs`, keeping owners and modes, as docker fills a new
/// named volume. Nothing to copy when the image has no such directory.
pub(super) fn fill_from_image(rootfs: &Path, path: &str, dest: &Path) -> Result<()> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", rootfs.display()))?;
    let dir = match open_in_root(&root, path, OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(d) => d,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("open {path} of the image")),
    };
    let mode = rustix::fs::fstat(&dir)?.st_mode & 0o7777;
    tree_out(dir, dest, mode, true).with_context(|| format!("fill the volume from {path}"))
}

fn copy_in(store: &Store, host: &Path, name: &str, path: &str) -> Result<()> {
    let md = fs::symlink_metadata(host).with_context(|| format!("cp: {}", host.display()))?;
    let rec = load(store, name)?;
    let root_path = container_root(store, &rec)?;
    let root = rustix::fs::open(
        &root_path,
        OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", root_path.display()))?;
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY;
    // An existing directory receives the source under its own name;
    // otherwise the path names the copy, in an existing parent.
    let (parent, leaf) = match open_in_root(&root, path, dir_flags) {
        Ok(d) => (
            d,
            host.file_name()
                .context("cp: the source has no file name")?
                .to_os_string(),
        ),
        Err(_) => {
            let p = Path::new(path);
            let parent = p
                .parent()
                .map(|x| x.to_string_lossy().into_owned())
                .unwrap_or_default();
            let d = open_in_root(&root, &parent, dir_flags)
                .with_context(|| format!("cp: {name}:{parent} is not a directory"))?;
            (d, basename(path)?.to_os_string())
        }
    };
    entry_in(host, &md, &parent, &leaf)
}

/// Copy the host entry `host` to `name` in the container directory `dir`.
fn entry_in(host: &Path, md: &fs::Metadata, dir: &impl AsFd, name: &OsStr) -> Result<()> {
    let mode = Mode::from_raw_mode(md.mode() & 0o7777);
    let nofollow = OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let ft = md.file_type();
    if ft.is_dir() {
        match rustix::fs::mkdirat(dir, name, mode) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("create {name:?} in the container")),
        }
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | nofollow,
            Mode::empty(),
        )
        .with_context(|| format!("{name:?} in the container is not a directory"))?;
        for e in fs::read_dir(host).with_context(|| format!("read {}", host.display()))? {
            let e = e?;
            let md = fs::symlink_metadata(e.path())?;
            entry_in(&e.path(), &md, &sub, &e.file_name())?;
        }
    } else if ft.is_file() {
        let f = rustix::fs::openat(
            dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | nofollow,
            mode,
        )
        .with_context(|| {
            format!("create {name:?} in the container (a symlink there is not followed)")
        })?;
        let mut to = File::from(f);
        let mut from = File::open(host).with_context(|| format!("open {}", host.display()))?;
        io::copy(&mut from, &mut to)?;
        rustix::fs::fchmod(&to, mode)?;
    } else if ft.is_symlink() {
        let target = fs::read_link(host)?;
        let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
        rustix::fs::symlinkat(&target, dir, name)
            .with_context(|| format!("create symlink {name:?} in the container"))?;
    }
    Ok(())
}
