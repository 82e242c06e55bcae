//! Building the container's filesystem view: propagation, the rootfs bind,
//! `mounts[]`, devices, masked and read-only paths, then pivot_root.

pub mod cgroupfs;
pub mod copyup;
pub mod devices;
pub mod idmap;
pub mod mounts;
pub mod options;
pub mod paths;
pub mod remount;
pub mod sysctl;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Spec;

use crate::error::{Context, Error, Result};
use crate::sys::fd_path;
use mounts::MountCtx;
use options::{RecAttr, MOUNT_ATTR_RDONLY};
use paths::{fstat, is_dir, Kind, Root};

/// runc's `rootfsPropagation` values: the plain ones apply to the root mount
/// only, the `r` ones to every mount below it too.
pub fn propagation_flag(name: &str) -> Result<MsFlags> {
    Ok(match name {
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        other => {
            return Err(Error::Config(format!(
                "field linux.rootfsPropagation: unknown value \"{other}\" (rootfsPropagation={other} is not supported)"
            )))
        }
    })
}

/// Step 1: isolate our mount tree from the host's and make the rootfs a mount point.
pub fn prepare_root(spec: &Spec, rootfs: &Path) -> Result<Root> {
    let linux = spec.linux().as_ref();
    let prop = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        Some(p) => propagation_flag(p)?,
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    mount(None::<&str>, "/", None::<&str>, prop, None::<&str>).ctx(|| "set propagation of /")?;
    // pivot_root refuses shared mounts, and an unbindable one cannot be bound:
    // make the mount holding the rootfs private (a slave under a slave
    // propagation, so the host's mounts still reach it) before the bind.
    let parent = if prop.contains(MsFlags::MS_SLAVE) {
        MsFlags::MS_SLAVE
    } else {
        MsFlags::MS_PRIVATE
    };
    make_parent(rootfs, parent)?;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind mount rootfs {}", rootfs.display()))?;
    Root::open(rootfs)
}

fn make_parent(rootfs: &Path, propagation: MsFlags) -> Result<()> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
    let mut best: Option<&str> = None;
    for line in info.lines() {
        let Some(mp) = line.split_whitespace().nth(4) else {
            continue;
        };
        let is_prefix = mp == "/" || rootfs.starts_with(mp);
        if is_prefix && best.is_none_or(|b| mp.len() > b.len()) {
            best = Some(mp);
        }
    }
    if let Some(mp) = best {
        let needs_change = info.lines().any(|l| {
            let head = l.split(" - ").next().unwrap_or("");
            l.split_whitespace().nth(4) == Some(mp)
                && (head.contains("shared:") || head.contains("unbindable"))
        });
        if needs_change {
            mount(None::<&str>, mp, None::<&str>, propagation, None::<&str>)
                .ctx(|| format!("set propagation of {mp} ({propagation:?})"))?;
        }
    }
    Ok(())
}

/// Step 2: `mounts[]`, devices and /dev symlinks.
pub fn mount_all(spec: &Spec, root: &Root, ctx: &MountCtx, userns: bool) -> Result<()> {
    let mut dev_bind = false;
    let mut with_pts = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        mounts::mount_entry(ctx, m, i)?;
        let dest = mounts::strip_root(&root.path, m.destination());
        let bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        if dest == Path::new("/dev") && bind {
            dev_bind = true;
        }
        if dest == Path::new("/dev/pts") {
            with_pts = true;
        }
    }
    // A /dev bound from elsewhere is used as it is (as runc does): making
    // nodes in it would change the directory it comes from.
    if dev_bind {
        return Ok(());
    }
    for d in devices::defaults() {
        devices::create(root, &d, userns, devices::Existing::KeepIfSameDevice)?;
    }
    let linux = spec.linux().as_ref();
    for (i, d) in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let dev = devices::from_spec(d, i)?;
        devices::create(root, &dev, userns, devices::Existing::Replace)?;
    }
    devices::symlinks(root, with_pts)?;
    Ok(())
}

/// Whether `fd` is the null character device (1:3).
fn is_null_device(fd: &impl AsFd) -> bool {
    fstat(fd).is_ok_and(|st| {
        st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == nix::sys::stat::makedev(1, 3)
    })
}

/// The host's /dev/null, verified to really be the null device (1:3), held as an
/// fd so nothing in the container can substitute it (CVE-2025-31133).
pub fn host_devnull() -> Result<OwnedFd> {
    let f = std::fs::File::open("/dev/null").ctx(|| "open host /dev/null")?;
    if !is_null_device(&f) {
        return Err(Error::Other(
            "host /dev/null is not the null character device 1:3; refusing to mask paths with it"
                .into(),
        ));
    }
    Ok(OwnedFd::from(f))
}

/// Bind the null device over `target`: the host's, or, where the host's
/// mount cannot be bound (`rootfsPropagation: runbindable` makes every mount
/// of the namespace unbindable), the container's own /dev/null once it is
/// verified, through its fd, to be the null device.
fn bind_null(root: &Root, host_null: &OwnedFd, target: &OwnedFd, what: &str) -> Result<()> {
    let bind = |src: &OwnedFd| {
        mount(
            Some(fd_path(src).as_str()),
            fd_path(target).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    match bind(host_null) {
        Err(nix::errno::Errno::EINVAL) => {
            let own = root
                .open_path(Path::new("/dev/null"), libc::O_NOFOLLOW)
                .ok()
                .filter(is_null_device)
                .ok_or_else(|| Error::Path {
                    path: what.into(),
                    msg: "the host's /dev/null cannot be bound here and the container's is not the null device".into(),
                })?;
            bind(&own).ctx(|| format!("mask {what} with /dev/null"))
        }
        r => r.ctx(|| format!("mask {what} with /dev/null")),
    }
}

/// Step 3: maskedPaths (files get /dev/null, directories an empty read-only tmpfs)
/// and readonlyPaths.
pub fn mask_and_protect(spec: &Spec, root: &Root) -> Result<()> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    let masked = linux.masked_paths().as_deref().unwrap_or(&[]);
    if !masked.is_empty() {
        let null = host_devnull()?;
        for p in masked {
            let path = Path::new(p);
            let fd = match root.open_path(path, libc::O_NOFOLLOW) {
                Ok(fd) => fd,
                Err(nix::errno::Errno::ENOENT) => continue,
                Err(e) => {
                    return Err(Error::Path {
                        path: path.into(),
                        msg: format!("masked path: {e}"),
                    })
                }
            };
            let st = fstat(&fd).ctx(|| format!("stat masked path {p}"))?;
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                return Err(Error::Path {
                    path: path.into(),
                    msg: "masked path is a symlink; refusing to follow it".into(),
                });
            }
            if is_dir(&st) {
                mount(
                    Some("tmpfs"),
                    fd_path(&fd).as_str(),
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    None::<&str>,
                )
                .ctx(|| format!("mask directory {p}"))?;
            } else {
                bind_null(root, &null, &fd, p)?;
            }
        }
    }
    for p in linux.readonly_paths().iter().flatten() {
        let path = Path::new(p);
        let fd = match root.open_path(path, 0) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => {
                return Err(Error::Path {
                    path: path.into(),
                    msg: format!("readonly path: {e}"),
                })
            }
        };
        mount(
            Some(fd_path(&fd).as_str()),
            fd_path(&fd).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind readonly path {p}"))?;
        let m = mounts::reopen(root, path)?;
        mounts::setattr(
            &m,
            RecAttr {
                set: MOUNT_ATTR_RDONLY
                    | options::MOUNT_ATTR_NOSUID
                    | options::MOUNT_ATTR_NODEV
                    | options::MOUNT_ATTR_NOEXEC,
                clr: 0,
            },
            true,
            path,
        )?;
    }
    Ok(())
}

/// Create the process's cwd inside the rootfs if it is missing (as runc does).
pub fn ensure_cwd(root: &Root, cwd: &Path) -> Result<()> {
    root.ensure(cwd, Kind::Dir).map(|_| ())
}

/// Step 4: switch to the rootfs with pivot_root(2) (or MS_MOVE + chroot with --no-pivot).
pub fn enter(root: &Root, no_pivot: bool) -> Result<()> {
    let rootfs = root.path.as_path();
    nix::unistd::fchdir(dir_fd(root)?).ctx(|| format!("chdir to rootfs {}", rootfs.display()))?;
    if no_pivot {
        hide_outer_proc_and_sys(rootfs)?;
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .ctx(|| "move rootfs to /")?;
        nix::unistd::chroot(".").ctx(|| "chroot into rootfs")?;
    } else {
        let old_root = crate::sys::openat2(
            libc::AT_FDCWD,
            Path::new("/"),
            libc::O_DIRECTORY | libc::O_RDONLY,
            0,
            0,
        )
        .ctx(|| "open the old root")?;
        nix::unistd::pivot_root(".", ".")
            .ctx(|| format!("pivot_root into {}", rootfs.display()))?;
        // The old root is now stacked on top of the new one. Work on it
        // through its own directory: "." may still be the new root, whose
        // mounts (binds that must stay in the host's peer groups) the
        // propagation change below must not touch.
        nix::unistd::fchdir(&old_root).ctx(|| "chdir to the old root")?;
        drop(old_root);
        // Detach the old root without propagating the unmount to the host.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| "make old root slave")?;
        umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach old root")?;
    }
    nix::unistd::chdir("/").ctx(|| "chdir /")?;
    Ok(())
}

/// Without a mount namespace of its own the container stays in the runtime's
/// (runtime-spec config-linux.md#namespaces): it is only chrooted into its
/// rootfs; nothing of that namespace's mount table is moved or changed.
pub fn chroot_into(root: &Root) -> Result<()> {
    nix::unistd::fchdir(dir_fd(root)?)
        .ctx(|| format!("chdir to rootfs {}", root.path.display()))?;
    nix::unistd::chroot(".").ctx(|| "chroot into rootfs")?;
    nix::unistd::chdir("/").ctx(|| "chdir /")?;
    Ok(())
}

/// Detach every mount strictly below `rootfs` in this mount namespace,
/// deepest first: what a container without a mount namespace of its own
/// mounted into its rootfs, which nothing else would take away.
pub fn detach_mounts_below(rootfs: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut below: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(berth_cgroups::mountinfo::unescape_path)
        .filter(|mp| mp.starts_with(rootfs) && mp != rootfs)
        .collect();
    below.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    below.dedup();
    for mp in below {
        // A path is fine here: the rootfs is the runtime's, not the container's
        // view, and MNT_DETACH never follows into the mount it removes.
        let _ = umount2(&mp, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
    }
}

/// Without pivot_root the mounts outside the rootfs stay in the container's
/// mount namespace, under the moved root. A whole procfs or sysfs among them
/// makes the kernel's "already fully visible" check pass, which lets a user
/// namespace created in the container mount a fresh, unmasked one. So each
/// of them is detached (made a slave first, so the host keeps its own), or,
/// where that is not allowed (mounts locked by a user namespace), covered
/// with an empty tmpfs, as runc does.
fn hide_outer_proc_and_sys(rootfs: &Path) -> Result<()> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read mountinfo")?;
    for m in berth_cgroups::mountinfo::entries(&text) {
        if m.root != "/"
            || !matches!(m.fs_type.as_str(), "proc" | "sysfs")
            || m.mount_point.starts_with(rootfs)
        {
            continue;
        }
        let p = m.mount_point.as_path();
        match mount(
            None::<&str>,
            p,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            // Already gone with a parent detached before it.
            Err(nix::errno::Errno::ENOENT) => continue,
            r => r.ctx(|| format!("make {} a slave mount", p.display()))?,
        }
        match umount2(p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0,mode=0"),
            )
            .ctx(|| format!("cover {} with an empty tmpfs", p.display()))?,
            Err(e) => return Err(e).ctx(|| format!("detach {}", p.display())),
        }
    }
    Ok(())
}

fn dir_fd(root: &Root) -> Result<OwnedFd> {
    crate::sys::openat2(
        root.fd.as_raw_fd(),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
        0,
    )
    .ctx(|| "open rootfs")
}

/// The tmpfs mounts and /dev made writable for the setup (see
/// `mounts::read_only_later`) become read-only when their options ask for it.
fn remount_read_only(spec: &Spec, rootfs: &Path) -> Result<()> {
    for m in spec.mounts().iter().flatten() {
        let o = match options::parse(m.options().as_deref().unwrap_or(&[])) {
            Ok(o) => o,
            Err(_) => continue,
        };
        let typ = m.typ().as_deref().unwrap_or("");
        let dest = mounts::strip_root(rootfs, m.destination());
        if !o.flags.contains(MsFlags::MS_RDONLY) || o.is_bind() || typ == "bind" {
            continue;
        }
        if !mounts::read_only_later(typ, &dest) {
            continue;
        }
        let per_mount = o.flags
            & (MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC
                | MsFlags::MS_NOATIME
                | MsFlags::MS_NODIRATIME
                | MsFlags::MS_RELATIME
                | MsFlags::MS_STRICTATIME);
        mount(
            None::<&str>,
            &dest,
            None::<&str>,
            per_mount | MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .ctx(|| format!("remount {} read-only", dest.display()))?;
    }
    Ok(())
}

/// Step 5 (inside the new root): read-only mounts and root, and the final
/// propagation.
pub fn finalize(spec: &Spec, rootfs: &Path) -> Result<()> {
    remount_read_only(spec, rootfs)?;
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let slash = std::fs::File::open("/").ctx(|| "open /")?;
        mounts::setattr(
            &slash,
            RecAttr {
                set: MOUNT_ATTR_RDONLY,
                clr: 0,
            },
            false,
            Path::new("/"),
        )?;
    }
    if let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            propagation_flag(p)?,
            None::<&str>,
        )
        .ctx(|| "set rootfs propagation")?;
    }
    Ok(())
}
