//! The container's view of /sys/fs/cgroup (`mounts[]` of type cgroup / cgroup2).
//!
//! In a new cgroup namespace the hierarchies are mounted fresh (their root is the
//! container's cgroup); otherwise the container's own cgroup directories are bind
//! mounted from the host.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

use super::mounts::{reopen, setattr, MountCtx};
use super::options::{MountOptions, RecAttr, MOUNT_ATTR_RDONLY};
use super::paths::Kind;
use crate::error::{Context, Result};
use crate::sys::fd_path;

struct Hierarchy {
    mountpoint: PathBuf,
    /// `cpu,cpuacct`, `name=systemd`, or empty for cgroup2.
    options: String,
    v2: bool,
}

/// The host's cgroup mounts (not those that appear under the rootfs itself,
/// e.g. through an rbind of /sys), first one per mount point.
fn host_hierarchies(rootfs: &Path) -> Vec<Hierarchy> {
    let mut v = all_hierarchies();
    v.retain(|h| !h.mountpoint.starts_with(rootfs));
    let mut seen = std::collections::HashSet::new();
    v.retain(|h| seen.insert(h.mountpoint.clone()));
    v
}

fn all_hierarchies() -> Vec<Hierarchy> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split_whitespace();
        let fstype = post.next().unwrap_or("");
        let _src = post.next();
        let superopts = post.next().unwrap_or("");
        let Some(mp) = pre.split_whitespace().nth(4) else {
            continue;
        };
        match fstype {
            "cgroup" => {
                let opts: Vec<&str> = superopts
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                    .collect();
                v.push(Hierarchy {
                    mountpoint: mp.into(),
                    options: opts.join(","),
                    v2: false,
                });
            }
            "cgroup2" => v.push(Hierarchy {
                mountpoint: mp.into(),
                options: String::new(),
                v2: true,
            }),
            _ => {}
        }
    }
    v
}

/// /proc/PID/cgroup of process `pid` ("self" or a number), read once for
/// every hierarchy a mount shows.
fn cgroup_file_of(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default()
}

/// The cgroup path in the hierarchy whose options are `opts` ("" = v2), from
/// the text of a /proc/PID/cgroup file.
fn cgroup_path_in(text: &str, opts: &str, v2: bool) -> String {
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("/"),
        );
        if v2 && ctrls.is_empty() {
            return path.to_string();
        }
        if !v2 && !ctrls.is_empty() {
            let mut a: Vec<&str> = ctrls.split(',').collect();
            let mut b: Vec<&str> = opts.split(',').collect();
            a.sort();
            b.sort();
            if a == b {
                return path.to_string();
            }
        }
    }
    "/".into()
}

fn cgroup_flags(o: &MountOptions) -> MsFlags {
    o.flags
        & (MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_RELATIME)
}

/// Mount hierarchy `h` at `dest`; `own_cgroups` is this process's
/// /proc/self/cgroup (the bind source without a cgroup namespace).
fn mount_one(
    ctx: &MountCtx,
    h: &Hierarchy,
    own_cgroups: &str,
    dest: &Path,
    o: &MountOptions,
) -> Result<()> {
    let target = ctx.root.ensure(dest, Kind::Dir)?;
    let flags = cgroup_flags(o);
    if ctx.cgroupns {
        let (fstype, data) = if h.v2 {
            ("cgroup2", None)
        } else {
            ("cgroup", Some(h.options.as_str()))
        };
        mount(
            Some(fstype),
            fd_path(&target).as_str(),
            Some(fstype),
            flags,
            data,
        )
        .ctx(|| format!("mount {fstype} on {}", dest.display()))?;
    } else {
        let src = h
            .mountpoint
            .join(cgroup_path_in(own_cgroups, &h.options, h.v2).trim_start_matches('/'));
        mount(
            Some(src.as_path()),
            fd_path(&target).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind mount {} on {}", src.display(), dest.display()))?;
        let m = reopen(ctx.root, dest)?;
        let mut attr = RecAttr::default();
        if flags.contains(MsFlags::MS_RDONLY) {
            attr.set |= MOUNT_ATTR_RDONLY;
        }
        attr.set |= super::options::MOUNT_ATTR_NOSUID
            | super::options::MOUNT_ATTR_NODEV
            | super::options::MOUNT_ATTR_NOEXEC;
        setattr(&m, attr, false, dest)?;
    }
    Ok(())
}

pub fn mount_v1(ctx: &MountCtx, m: &Mount, o: &MountOptions) -> Result<()> {
    let hs = host_hierarchies(&ctx.root.path);
    if !hs.iter().any(|h| !h.v2) {
        return mount_v2(ctx, m, o);
    }
    let dest = m.destination();
    let target = ctx.root.ensure(dest, Kind::Dir)?;
    mount(
        Some("tmpfs"),
        fd_path(&target).as_str(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .ctx(|| format!("mount tmpfs on {}", dest.display()))?;
    let own_cgroups = cgroup_file_of("self");
    for (name, h) in v1_parts(hs) {
        let sub = dest.join(&name);
        mount_one(ctx, &h, &own_cgroups, &sub, o)?;
        if name.contains(',') {
            let dir = reopen(ctx.root, dest)?;
            let dirfd = crate::sys::openat2(
                std::os::fd::AsRawFd::as_raw_fd(&dir),
                Path::new("."),
                libc::O_DIRECTORY,
                0,
                0,
            )
            .ctx(|| format!("open {}", dest.display()))?;
            for c in name.split(',') {
                let _ = nix::unistd::symlinkat(name.as_str(), &dirfd, c);
            }
        }
    }
    if o.flags.contains(MsFlags::MS_RDONLY) {
        let tm = reopen(ctx.root, dest)?;
        setattr(
            &tm,
            RecAttr {
                set: MOUNT_ATTR_RDONLY,
                clr: 0,
            },
            false,
            dest,
        )?;
    }
    Ok(())
}

pub fn mount_v2(ctx: &MountCtx, m: &Mount, o: &MountOptions) -> Result<()> {
    let own_cgroups = cgroup_file_of("self");
    mount_one(
        ctx,
        &v2_hierarchy(&ctx.root.path),
        &own_cgroups,
        m.destination(),
        o,
    )
}

/// The hierarchies a v1 `cgroup` mount shows, by the name of their
/// directory under it (`cpu,cpuacct`, `memory`, ..., `unified`).
fn v1_parts(hs: Vec<Hierarchy>) -> Vec<(String, Hierarchy)> {
    hs.into_iter()
        .filter_map(|h| {
            let name = h
                .mountpoint
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (!name.is_empty() && (!h.v2 || name == "unified")).then_some((name, h))
        })
        .collect()
}

fn v2_hierarchy(rootfs: &Path) -> Hierarchy {
    host_hierarchies(rootfs)
        .into_iter()
        .find(|h| h.v2 && h.mountpoint == Path::new("/sys/fs/cgroup"))
        .unwrap_or(Hierarchy {
            mountpoint: "/sys/fs/cgroup/unified".into(),
            options: String::new(),
            v2: true,
        })
}

/// The bind mounts that a cgroup mount at `dest` (type `cgroup` or
/// `cgroup2`, without a cgroup namespace) is made of, as (destination in the
/// container, host directory): the host directory is the cgroup of process
/// `pid` in each hierarchy, as the init saw its own when the mounts were made.
/// CRIU takes these as external mounts.
pub fn bind_layout(dest: &Path, typ: &str, rootfs: &Path, pid: i32) -> Vec<(PathBuf, PathBuf)> {
    let cgroups = cgroup_file_of(&pid.to_string());
    let source = |h: &Hierarchy| {
        h.mountpoint
            .join(cgroup_path_in(&cgroups, &h.options, h.v2).trim_start_matches('/'))
    };
    let hs = host_hierarchies(rootfs);
    if typ == "cgroup" && hs.iter().any(|h| !h.v2) {
        return v1_parts(hs)
            .into_iter()
            .map(|(name, h)| (dest.join(name), source(&h)))
            .collect();
    }
    let h = v2_hierarchy(rootfs);
    vec![(dest.to_path_buf(), source(&h))]
}
