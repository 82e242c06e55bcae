//! Idmapped bind mounts (`uidMappings`/`gidMappings` on a mount, the `idmap`
//! and `ridmap` options) and bind sources the container cannot reach itself.
//!
//! Both rest on detached mount trees (open_tree(2) with OPEN_TREE_CLONE),
//! attached in the container with move_mount(2). The runtime side (the
//! `create` process, root in the host's user namespace) does what the init
//! may not: it opens sources the container's root cannot reach, and it sets
//! MOUNT_ATTR_IDMAP, which needs CAP_SYS_ADMIN over the filesystem's user
//! namespace, with a user namespace carrying the mount's mappings.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType, Mount, Spec};

use super::options::{self, Idmap};
use crate::error::{Context, Error, Result};

const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Whether the mount asks to be idmapped, and how.
pub fn requested(m: &Mount, o: &options::MountOptions) -> Option<Idmap> {
    let has_maps = m.uid_mappings().is_some() || m.gid_mappings().is_some();
    o.idmap.or(has_maps.then_some(Idmap::Plain))
}

fn invalid(m: &Mount, why: &str) -> Error {
    Error::Config(format!(
        "invalid mount {}: {why}",
        m.destination().display()
    ))
}

/// Check every idmapped mount of the config before anything is made (runc's
/// rules): bind mounts only, both mappings or none, and without mappings a
/// user namespace to take them from.
pub fn check(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let userns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
    for m in spec.mounts().iter().flatten() {
        // A malformed option list is reported, naming the mount, when it is made.
        let Ok(o) = options::parse(m.options().as_deref().unwrap_or(&[])) else {
            continue;
        };
        if requested(m, &o).is_none() {
            continue;
        }
        if !(o.is_bind() || m.typ().as_deref() == Some("bind")) {
            return Err(invalid(
                m,
                "id-mapped mounts are only supported for bind mounts",
            ));
        }
        if crate::rootless::is_rootless() {
            return Err(invalid(
                m,
                "id-mapped mounts are not supported for rootless containers",
            ));
        }
        let (u, g) = (m.uid_mappings(), m.gid_mappings());
        match (
            u.as_ref().is_some_and(|v| !v.is_empty()),
            g.as_ref().is_some_and(|v| !v.is_empty()),
        ) {
            (true, true) => {}
            (false, false) if u.is_none() && g.is_none() => {
                if !userns {
                    return Err(invalid(
                        m,
                        "the idmap option without uidMappings/gidMappings takes the mappings of the container's user namespace, and the container has no user namespace",
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    m,
                    "id-mapped mounts must have both uidMappings and gidMappings specified",
                ))
            }
        }
    }
    Ok(())
}

/// A detached copy of `source` (with its submounts for an rbind).
pub fn open_tree(
    source: &Path,
    recursive: bool,
) -> std::result::Result<OwnedFd, nix::errno::Errno> {
    use rustix::mount::OpenTreeFlags;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    rustix::mount::open_tree(rustix::fs::CWD, source, flags)
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error()))
}

/// Attach the detached tree `tree` on the object `target` refers to.
pub fn attach(tree: &OwnedFd, target: &OwnedFd, dest: &Path) -> Result<()> {
    use rustix::mount::MoveMountFlags;
    rustix::mount::move_mount(
        tree,
        c"",
        target,
        c"",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(std::io::Error::from)
    .ctx(|| format!("move_mount onto {}", dest.display()))
}

/// The runtime side of a mount source request: a detached tree of the
/// `index`th mount's source, opened in the runtime's mount namespace.
pub fn open_source(spec: &Spec, index: usize) -> Result<OwnedFd> {
    let m = nth_mount(spec, index)?;
    let o = options::parse(m.options().as_deref().unwrap_or(&[]))?;
    let src = m
        .source()
        .as_ref()
        .ok_or_else(|| invalid(m, "a bind mount needs a source"))?;
    open_tree(src, o.flags.contains(nix::mount::MsFlags::MS_REC))
        .ctx(|| format!("open bind source {}", src.display()))
}

fn nth_mount(spec: &Spec, index: usize) -> Result<&Mount> {
    spec.mounts()
        .as_ref()
        .and_then(|m| m.get(index))
        .ok_or_else(|| Error::Init(format!("no mounts[{index}] to prepare")))
}

/// The runtime side of an idmap request: set MOUNT_ATTR_IDMAP on the
/// detached tree of the `index`th mount, with its own mappings or the
/// container's user namespace.
pub fn apply(spec: &Spec, index: usize, tree: &OwnedFd) -> Result<()> {
    let m = nth_mount(spec, index)?;
    let o = options::parse(m.options().as_deref().unwrap_or(&[]))?;
    let kind = requested(m, &o).unwrap_or(Idmap::Plain);
    let linux = spec.linux().as_ref();
    let userns = match (m.uid_mappings(), m.gid_mappings()) {
        (Some(u), Some(g)) => userns_with_maps(u, g)?,
        _ => container_userns(linux.ok_or_else(|| invalid(m, "no linux section"))?, m)?,
    };
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if kind == Idmap::Recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: a valid fd, an empty path and a correctly sized struct. Raw
    // because neither rustix 1.1 nor nix 0.29 wraps mount_setattr(2).
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(invalid(
            m,
            &format!(
                "idmap the mount (mount_setattr MOUNT_ATTR_IDMAP): {}",
                crate::sys::errno_text(nix::errno::Errno::last())
            ),
        ));
    }
    Ok(())
}

/// The container's user namespace mappings for a mount that asks for `idmap`
/// without its own: a namespace joined by path is used as it is.
fn container_userns(linux: &Linux, m: &Mount) -> Result<OwnedFd> {
    let ns = linux
        .namespaces()
        .iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::User)
        .ok_or_else(|| invalid(m, "idmap without mappings needs a user namespace"))?;
    if let Some(p) = ns.path() {
        let f = std::fs::File::open(p).ctx(|| format!("open user namespace {}", p.display()))?;
        return Ok(OwnedFd::from(f));
    }
    userns_with_maps(
        linux.uid_mappings().as_deref().unwrap_or(&[]),
        linux.gid_mappings().as_deref().unwrap_or(&[]),
    )
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// A user namespace with these mappings, held by an fd: a child process
/// unshares one, this process writes its maps and opens it, the child goes.
fn userns_with_maps(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe().ctx(|| "pipe")?;
    let (hold_r, hold_w) = nix::unistd::pipe().ctx(|| "pipe")?;
    // SAFETY: this process is single-threaded; the child only makes raw
    // syscalls (unshare, write, read) and _exit.
    match unsafe { nix::unistd::fork() }.ctx(|| "fork the idmap user namespace holder")? {
        nix::unistd::ForkResult::Child => {
            drop(ready_r);
            drop(hold_w);
            // SAFETY: raw syscalls on fds this process owns; _exit never returns.
            // Raw rather than nix's wrappers: between fork and exit the child
            // keeps to async-signal-safe calls that cannot allocate.
            unsafe {
                let ok: u8 = if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                    1
                } else {
                    0
                };
                libc::write(ready_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
                let mut b = 0u8;
                libc::read(hold_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
                libc::_exit(0)
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(ready_w);
            drop(hold_r);
            let reap = || {
                let _ = nix::sys::wait::waitpid(child, None);
            };
            let mut ok = [0u8; 1];
            let n = nix::unistd::read(&ready_r, &mut ok).unwrap_or(0);
            let result = (|| {
                if n != 1 || ok[0] != 1 {
                    return Err(Error::Other(
                        "create a user namespace for an idmapped mount: unshare failed".into(),
                    ));
                }
                let pid = child.as_raw();
                std::fs::write(format!("/proc/{pid}/uid_map"), map_text(uid))
                    .ctx(|| "write the idmapped mount's uid map")?;
                std::fs::write(format!("/proc/{pid}/gid_map"), map_text(gid))
                    .ctx(|| "write the idmapped mount's gid map")?;
                let f = std::fs::File::open(format!("/proc/{pid}/ns/user"))
                    .ctx(|| "open the idmapped mount's user namespace")?;
                Ok(OwnedFd::from(f))
            })();
            drop(hold_w);
            reap();
            result
        }
    }
}
