//! Writes to procfs once the process is inside the container's mount namespace.
//!
//! There, `/proc` is the container's: its config (or a process racing the
//! runtime through a shared mount) can put a bind mount or symlink over
//! `/proc/self/attr/exec` or `/proc/self/oom_score_adj` and turn the runtime's
//! write into a write to some other file, such as a host sysctl
//! (CVE-2025-52881, CVE-2019-16884). So the file is never looked up through the
//! container's `/proc`: it is opened beneath a private procfs instance with no
//! submounts (a fresh `fsopen("proc")` mount, else a non-recursive clone of
//! `/proc`), with `RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH`,
//! and the opened file must be on procfs.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;

use crate::sys::openat2;

const PROC_SUPER_MAGIC: libc::c_long = 0x9fa0;
const RESOLVE_NO_XDEV: u64 = 0x01;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_BENEATH: u64 = 0x08;

pub(crate) fn is_procfs(fd: RawFd) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: valid fd and a buffer of the right type.
    unsafe {
        libc::fstatfs(fd, st.as_mut_ptr()) == 0 && st.assume_init().f_type == PROC_SUPER_MAGIC
    }
}

/// A new procfs instance of this process's pid namespace, not attached anywhere.
fn fresh_mount() -> Result<OwnedFd, Errno> {
    use rustix::mount::{fsconfig_create, fsmount, fsopen, FsMountFlags, FsOpenFlags};
    let ctx = fsopen("proc", FsOpenFlags::FSOPEN_CLOEXEC).map_err(nix_errno)?;
    fsconfig_create(&ctx).map_err(nix_errno)?;
    fsmount(
        &ctx,
        FsMountFlags::FSMOUNT_CLOEXEC,
        rustix::mount::MountAttrFlags::empty(),
    )
    .map_err(nix_errno)
}

/// A detached copy of the `/proc` mount without anything mounted below it
/// (allowed where a fresh instance is not, e.g. in a user namespace whose
/// /proc is partly masked).
fn clone_of_proc() -> Result<OwnedFd, Errno> {
    use rustix::mount::{open_tree, OpenTreeFlags};
    open_tree(
        rustix::fs::CWD,
        "/proc",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(nix_errno)
}

fn nix_errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

/// The root of a procfs instance that nothing in the container can cover.
fn private_root() -> std::io::Result<OwnedFd> {
    let fd = match fresh_mount().or_else(|_| clone_of_proc()) {
        Ok(fd) => fd,
        // Last resort (kernels without the mount API): the real /proc, still
        // refusing to cross any mount below it.
        Err(_) => openat2(
            libc::AT_FDCWD,
            Path::new("/proc"),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            RESOLVE_NO_MAGICLINKS,
        )?,
    };
    if !is_procfs(fd.as_raw_fd()) {
        return Err(std::io::Error::other("/proc is not a procfs mount"));
    }
    Ok(fd)
}

/// Write `data` to `/proc/<rel>` of a private procfs instance (`rel` may start
/// with `self/` or `sys/`). Errors name the file.
pub fn write(rel: &str, data: &[u8]) -> std::io::Result<()> {
    let name = format!("/proc/{rel}");
    let with_name = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{name}: {e}"));
    let root = private_root().map_err(with_name)?;
    let fd = openat2(
        root.as_raw_fd(),
        Path::new(rel),
        libc::O_WRONLY | libc::O_NOCTTY,
        0,
        RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH,
    )
    .map_err(|e| with_name(e.into()))?;
    if !is_procfs(fd.as_raw_fd()) {
        return Err(with_name(std::io::Error::other("not a procfs file")));
    }
    std::fs::File::from(fd).write_all(data).map_err(with_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_root_is_procfs_without_submounts() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let root = private_root().unwrap();
        assert!(is_procfs(root.as_raw_fd()));
        // Resolving `self` works beneath the private instance.
        let status = openat2(
            root.as_raw_fd(),
            Path::new("self/status"),
            libc::O_RDONLY,
            0,
            RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH,
        )
        .unwrap();
        let text = std::fs::read_to_string(crate::sys::fd_path(&status)).unwrap();
        assert!(text.contains(&format!("Pid:\t{}", std::process::id())));
    }

    #[test]
    fn write_refuses_escapes_and_names_the_file() {
        let e = write("../etc/hostname", b"x").unwrap_err().to_string();
        assert!(e.contains("/proc/../etc/hostname"), "{e}");
        let e = write("self/fd/0", b"x").unwrap_err().to_string();
        assert!(e.contains("/proc/self/fd/0"), "{e}");
    }
}
