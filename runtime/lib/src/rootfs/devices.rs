//! Device nodes in the container's /dev: the spec's default devices,
//! `linux.devices`, and the standard /dev symlinks.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::mounts::bind_fd;
use super::paths::{Kind, Root};
use crate::error::{Context, Error, Result};
use crate::sys::openat2;

pub struct Dev {
    pub path: PathBuf,
    pub typ: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// /dev/null, zero, full, random, urandom, tty (runtime-spec config-linux.md#default-devices).
pub fn defaults() -> Vec<Dev> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(n, ma, mi)| Dev {
        path: PathBuf::from("/dev").join(n),
        typ: SFlag::S_IFCHR,
        major: ma,
        minor: mi,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

pub fn from_spec(d: &LinuxDevice, index: usize) -> Result<Dev> {
    let typ = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::Config(format!(
                "field linux.devices[{index}].type: \"a\" is not a device type"
            )))
        }
    };
    Ok(Dev {
        path: d.path().clone(),
        typ,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666),
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// What to do with an entry already at a device's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Remove it and make the node (`linux.devices`: the mode and owner asked for).
    Replace,
    /// Keep it if it already is that device; otherwise replace it (the
    /// spec's default devices must be there, whatever the image put at
    /// their paths).
    KeepIfSameDevice,
}

/// Whether the entry `name` in `dir` is the character or block device `dev`.
fn is_same_device(dir: &impl AsFd, name: &std::ffi::OsStr, dev: &Dev) -> bool {
    nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|st| {
        st.st_mode & libc::S_IFMT == dev.typ.bits() && st.st_rdev == makedev(dev.major, dev.minor)
    })
}

/// Create one device node inside the rootfs.
pub fn create(root: &Root, dev: &Dev, userns: bool, existing: Existing) -> Result<()> {
    let parent = dev.path.parent().unwrap_or(Path::new("/dev"));
    let name = dev
        .path
        .file_name()
        .ok_or_else(|| Error::Config(format!("device path {} has no name", dev.path.display())))?;
    let dir_o = root.mkdir_all(parent, 0o755)?;
    let dir = openat2(
        dir_o.as_raw_fd(),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )
    .ctx(|| format!("open {}", parent.display()))?;
    let exists =
        nix::sys::stat::fstatat(&dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok();
    if exists {
        if existing == Existing::KeepIfSameDevice && is_same_device(&dir, name, dev) {
            return Ok(());
        }
        // Removed also where the host's node will be bound: a symlink left
        // there would send the bind elsewhere in the rootfs.
        if let Err(e) = nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            return Err(Error::Path {
                path: dev.path.clone(),
                msg: format!("remove what the rootfs has there to make the device: {e}"),
            });
        }
    }
    if userns && dev.typ != SFlag::S_IFIFO {
        // mknod is not allowed in a user namespace: bind the host's node instead.
        let host = openat2(libc::AT_FDCWD, &dev.path, libc::O_PATH, 0, 0).ctx(|| {
            format!(
                "open host device {} to bind into the container",
                dev.path.display()
            )
        })?;
        bind_fd(root, &host, &dev.path, Kind::File)?;
        return Ok(());
    }
    let mode = Mode::from_bits_truncate(dev.mode & 0o7777);
    match mknodat(&dir, name, dev.typ, mode, makedev(dev.major, dev.minor)) {
        Ok(()) => {}
        Err(Errno::EEXIST) => {}
        Err(e) => {
            return Err(Error::Path {
                path: dev.path.clone(),
                msg: format!("mknod: {e}"),
            })
        }
    }
    // mknod applies the umask; set the exact mode and owner.
    nix::sys::stat::fchmodat(
        &dir,
        name,
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .ctx(|| format!("chmod {}", dev.path.display()))?;
    nix::unistd::fchownat(
        &dir,
        name,
        Some(nix::unistd::Uid::from_raw(dev.uid)),
        Some(nix::unistd::Gid::from_raw(dev.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ctx(|| format!("chown {}", dev.path.display()))?;
    Ok(())
}

/// /dev/fd, /dev/std{in,out,err}, /dev/core and /dev/ptmx (when /dev/pts is mounted).
pub fn symlinks(root: &Root, with_pts: bool) -> Result<()> {
    let dev_o = root.mkdir_all(Path::new("/dev"), 0o755)?;
    let dev = openat2(
        dev_o.as_raw_fd(),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )
    .ctx(|| "open /dev")?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match nix::unistd::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(Error::Path {
                    path: PathBuf::from("/dev").join(name),
                    msg: format!("symlink: {e}"),
                })
            }
        }
    }
    if with_pts {
        let _ = nix::unistd::unlinkat(&dev, "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir);
        nix::unistd::symlinkat("pts/ptmx", &dev, "ptmx").ctx(|| "symlink /dev/ptmx")?;
    }
    Ok(())
}

/// Inside the new root: stdio fds that are a null device (the host's
/// /dev/null a detached caller passed) are replaced by the container's own
/// /dev/null, as runc's reOpenDevNull does. An open file on a host mount is
/// outside the container's mount namespace: CRIU could not checkpoint it.
pub fn reopen_stdio_null() -> Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ctx(|| "open the container's /dev/null")?;
    let ours = nix::sys::stat::fstat(&null).ctx(|| "stat /dev/null")?;
    let stdio = [
        rustix::stdio::stdin(),
        rustix::stdio::stdout(),
        rustix::stdio::stderr(),
    ];
    for stdio_fd in stdio {
        let fd = stdio_fd.as_raw_fd();
        let Ok(st) = nix::sys::stat::fstat(stdio_fd) else {
            continue;
        };
        let is_null = st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == ours.st_rdev;
        if is_null && (st.st_dev, st.st_ino) != (ours.st_dev, ours.st_ino) {
            // SAFETY: dup3 onto a stdio fd number; both fds are valid.
            if unsafe { libc::dup3(null.as_raw_fd(), fd, 0) } < 0 {
                return Err(std::io::Error::last_os_error())
                    .ctx(|| format!("replace fd {fd} with the container's /dev/null"));
            }
        }
    }
    Ok(())
}
