//! Keeping the runtime binary out of a container's reach (CVE-2019-5736).
//!
//! berth forks its container processes (the init, `exec`'s child) instead of
//! exec'ing a helper, so until they exec the container's program their
//! `/proc/PID/exe` is berth's own binary, and they are visible in the
//! container's pid namespace. A process in the container with
//! `CAP_SYS_PTRACE` (which non-dumpable does not stop) can open that exe
//! read-only, wait until no berth process runs, reopen it for writing through
//! `/proc/self/fd/N` and replace the host's binary.
//!
//! So before `create` (and `run`) or `exec` puts a process into a container
//! where something could trace it (see [`ptrace_reachable`]), berth re-execs
//! itself from a copy that cannot be written, whatever path leads to it:
//!
//! 1. a private overlayfs mount whose only layers are the binary's directory
//!    and an empty directory (no upper layer: every write is EROFS), made
//!    with the mount API and never attached anywhere: zero copy, the page
//!    cache is shared with the real file (runc 1.2 does the same);
//! 2. else (no overlayfs, no privilege to mount it, e.g. rootless) a sealed
//!    memfd copy (writes, truncation and growth sealed).
//!
//! A binary already on a read-only mount needs neither: the check below
//! accepts it, which is also how an administrator can avoid the cost (a
//! read-only bind mount of the binary over itself).

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{MemfdFlags, SealFlags, StatVfsMountFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

/// Could a process able to open berth's `/proc/PID/exe` share the pid
/// namespace berth's processes enter for this container?
///
/// berth's container processes are non-dumpable, and their memory belongs to
/// berth's own user namespace (they are forks of a process exec'd there), so
/// only a process with `CAP_SYS_PTRACE` in that user namespace can open their
/// exe. Such a process may be in the pid namespace when
/// - the namespace is not the container's own (joined, or the host's): who
///   else is there is unknown;
/// - or the container shares berth's user namespace (no user namespace of its
///   own, or rootless) and its processes may hold the capability: its
///   bounding set has it (or the config leaves the capabilities alone), or a
///   process exec'd into it was given it (`extra`).
///
/// A container with its own pid and user namespaces therefore never needs the
/// protected copy, nor one whose bounding set lacks `CAP_SYS_PTRACE`.
pub fn ptrace_reachable(
    plan: &crate::namespaces::Plan,
    caps: Option<&oci_spec::runtime::LinuxCapabilities>,
    extra: bool,
) -> bool {
    if !plan.creates(oci_spec::runtime::LinuxNamespaceType::Pid) {
        return true;
    }
    if plan.involves_user() && !crate::rootless::is_rootless() {
        return false;
    }
    extra || may_hold_ptrace(caps)
}

/// Whether a process with these capabilities can ever hold `CAP_SYS_PTRACE`
/// (no capabilities in the config: it keeps root's full set).
pub fn may_hold_ptrace(caps: Option<&oci_spec::runtime::LinuxCapabilities>) -> bool {
    match caps {
        None => true,
        Some(c) => c
            .bounding()
            .as_ref()
            .is_some_and(|b| b.contains(&oci_spec::runtime::Capability::SysPtrace)),
    }
}

/// Set in the environment of the re-exec'd runtime so that a check that still
/// fails there is an error instead of an endless loop; removed at once.
const REEXEC_MARK: &str = "_BERTH_EXE_SEALED";

/// Where a protected copy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    Overlay,
    Memfd,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("protect the runtime binary: {0}")]
    Io(String),
    #[error(
        "protect the runtime binary: the re-executed copy is still writable ({0}); refusing to \
         run a container process from it"
    )]
    StillWritable(String),
}

/// Can `/proc/self/exe` be written through the path it resolves to? A binary on
/// a read-only mount or a memfd sealed against writes cannot.
pub fn running_binary_is_protected() -> Result<bool, SealError> {
    let exe = rustix::fs::open(
        "/proc/self/exe",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| SealError::Io(format!("open /proc/self/exe: {e}")))?;
    if let Ok(seals) = rustix::fs::fcntl_get_seals(&exe) {
        if seals.contains(SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW) {
            return Ok(true);
        }
    }
    let vfs = rustix::fs::fstatvfs(&exe)
        .map_err(|e| SealError::Io(format!("statvfs /proc/self/exe: {e}")))?;
    Ok(vfs.f_flag.contains(StatVfsMountFlags::RDONLY))
}

/// Make sure the running binary is protected: return if it is, otherwise
/// re-exec from a protected copy (this function then does not return).
/// `state_root` holds the empty directory the overlay needs as its second layer.
pub fn ensure(state_root: &Path) -> Result<(), SealError> {
    let marked = std::env::var_os(REEXEC_MARK).is_some();
    if marked {
        // Called at start-up, single-threaded, before anything else reads it.
        std::env::remove_var(REEXEC_MARK);
    }
    if running_binary_is_protected()? {
        return Ok(());
    }
    if marked {
        return Err(SealError::StillWritable(exe_path_lossy()));
    }
    let (fd, _) = protected_copy(state_root)?;
    reexec(&fd)
}

fn exe_path_lossy() -> String {
    std::fs::read_link("/proc/self/exe")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/proc/self/exe".into())
}

/// An fd of the running binary that cannot be written: through a private
/// overlay where possible, else a sealed memfd copy.
pub fn protected_copy(state_root: &Path) -> Result<(OwnedFd, Seal), SealError> {
    match through_overlay(state_root) {
        Ok(fd) => Ok((fd, Seal::Overlay)),
        Err(overlay_err) => sealed_memfd().map(|fd| (fd, Seal::Memfd)).map_err(|e| {
            SealError::Io(format!(
                "no read-only overlay of the binary ({overlay_err}) and no sealed copy ({e})"
            ))
        }),
    }
}

/// overlayfs lowerdir syntax: `:` separates layers and `\` escapes.
fn escape_lowerdir(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in p.as_os_str().as_bytes() {
        if b == b':' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

fn through_overlay(state_root: &Path) -> std::io::Result<OwnedFd> {
    let real = std::fs::read_link("/proc/self/exe")?;
    let (dir, name) = match (real.parent(), real.file_name()) {
        (Some(d), Some(n)) if real.is_absolute() => (d.to_path_buf(), n.to_os_string()),
        _ => {
            return Err(std::io::Error::other(format!(
                "exe path {}",
                real.display()
            )))
        }
    };
    // overlayfs wants two lower layers to run without an upper one; the
    // second is an empty directory of berth's (the binary's directory is on
    // top, so nothing there can shadow the binary).
    let empty = empty_layer(state_root)?;
    let ctx = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    let mut lower = escape_lowerdir(&dir);
    lower.push(b':');
    lower.extend(escape_lowerdir(&empty));
    rustix::mount::fsconfig_set_string(&ctx, "lowerdir", OsStr::from_bytes(&lower))?;
    // xino only adds kernel log noise when the layers are on different filesystems.
    let _ = rustix::mount::fsconfig_set_string(&ctx, "xino", "off");
    rustix::mount::fsconfig_create(&ctx)?;
    let mnt = rustix::mount::fsmount(
        &ctx,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOSUID,
    )?;
    // The mount is never attached: it lives as long as this fd (and the
    // process image exec'd from it).
    let fd = rustix::fs::openat(
        &mnt,
        name.as_os_str(),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok(fd)
}

/// `<state root>/@exe-layer`: an empty directory, made on first use.
fn empty_layer(state_root: &Path) -> std::io::Result<PathBuf> {
    let dir = state_root.join("@exe-layer");
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(state_root)?;
            let _ = std::fs::create_dir(&dir);
        }
        Err(e) => return Err(e),
    }
    if std::fs::read_dir(&dir)?.next().is_some() {
        return Err(std::io::Error::other(format!(
            "{} is not empty",
            dir.display()
        )));
    }
    Ok(dir)
}

fn sealed_memfd() -> std::io::Result<OwnedFd> {
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) keeps the copy executable where vm.memfd_noexec
    // would otherwise make it not; older kernels refuse the flag.
    let memfd = rustix::fs::memfd_create("berth", flags | MemfdFlags::EXEC)
        .or_else(|_| rustix::fs::memfd_create("berth", flags))?;
    let mut src = std::fs::File::open("/proc/self/exe")?;
    let mut dst = std::fs::File::from(memfd);
    std::io::copy(&mut src, &mut dst)?;
    let memfd = OwnedFd::from(dst);
    rustix::fs::fcntl_add_seals(
        &memfd,
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )?;
    Ok(memfd)
}

/// execveat(fd, "", argv, environ, AT_EMPTY_PATH) with this process's own
/// arguments and environment (plus the re-exec mark).
fn reexec(fd: &OwnedFd) -> Result<(), SealError> {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    env.push(CString::new(format!("{REEXEC_MARK}=1")).expect("no NUL"));
    let e = nix::unistd::execveat(fd, c"", &args, &env, nix::fcntl::AtFlags::AT_EMPTY_PATH)
        .unwrap_err();
    Err(SealError::Io(format!(
        "re-execute from a protected copy (fd {}): {e}",
        fd.as_raw_fd()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(namespaces: serde_json::Value) -> crate::namespaces::Plan {
        let linux: oci_spec::runtime::Linux =
            serde_json::from_value(serde_json::json!({ "namespaces": namespaces })).unwrap();
        crate::namespaces::Plan::from_linux(&linux)
    }

    fn caps(bounding: &[&str]) -> oci_spec::runtime::LinuxCapabilities {
        serde_json::from_value(serde_json::json!({ "bounding": bounding })).unwrap()
    }

    #[test]
    fn who_could_trace_berths_processes() {
        if crate::rootless::is_rootless() {
            return;
        }
        let own_pid = plan(serde_json::json!([{"type": "pid"}, {"type": "mount"}]));
        let host_pid = plan(serde_json::json!([{"type": "mount"}]));
        let joined_pid = plan(serde_json::json!([{"type": "pid", "path": "/proc/1/ns/pid"}]));
        let own_pid_user = plan(serde_json::json!([{"type": "pid"}, {"type": "user"}]));
        let plain = caps(&["CAP_KILL"]);
        let ptrace = caps(&["CAP_KILL", "CAP_SYS_PTRACE"]);
        // Someone else may be in the pid namespace.
        assert!(ptrace_reachable(&host_pid, Some(&plain), false));
        assert!(ptrace_reachable(&joined_pid, Some(&plain), false));
        // The container's own: only if its processes may hold the capability.
        assert!(!ptrace_reachable(&own_pid, Some(&plain), false));
        assert!(ptrace_reachable(&own_pid, Some(&ptrace), false));
        assert!(ptrace_reachable(&own_pid, None, false));
        assert!(ptrace_reachable(&own_pid, Some(&plain), true));
        // Its own user namespace: the capability is only the container's.
        assert!(!ptrace_reachable(&own_pid_user, Some(&ptrace), true));
        assert!(!ptrace_reachable(&own_pid_user, None, false));
    }

    #[test]
    fn lowerdir_escapes_separators() {
        assert_eq!(
            escape_lowerdir(Path::new("/a:b\\c")),
            b"/a\\:b\\\\c".to_vec()
        );
    }

    #[test]
    fn protected_copies_refuse_writes() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let (fd, _) = protected_copy(root.path()).unwrap();
        // Reopen through the fd as an attacker would through /proc/PID/exe.
        let r = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
        assert!(r.is_err(), "the protected copy could be written");
        let memfd = sealed_memfd().unwrap();
        let r = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", memfd.as_raw_fd()))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
        assert!(r.is_err(), "the sealed memfd could be written");
    }
}
