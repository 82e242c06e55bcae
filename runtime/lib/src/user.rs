//! `process.user`: groups, gid, uid and umask.

use std::os::fd::AsRawFd;

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::User;

use crate::error::{Error, Result};

/// Whether setgroups(2) is allowed (it is denied in some user namespaces).
fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true)
}

pub fn apply(u: &User) -> Result<()> {
    let gids: Vec<Gid> = u
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if setgroups_allowed() {
        nix::unistd::setgroups(&gids).map_err(|e| {
            Error::Config(format!(
                "field process.user.additionalGids {gids:?}: setgroups: {e}"
            ))
        })?;
    } else if !gids.is_empty() {
        return Err(Error::Config(
            "field process.user.additionalGids: setgroups is denied in this user namespace".into(),
        ));
    }
    let gid = Gid::from_raw(u.gid());
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| {
        Error::Config(format!(
            "field process.user.gid {}: {e}{}",
            u.gid(),
            unmapped_hint(e)
        ))
    })?;
    let uid = Uid::from_raw(u.uid());
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| {
        Error::Config(format!(
            "field process.user.uid {}: {e}{}",
            u.uid(),
            unmapped_hint(e)
        ))
    })?;
    Ok(())
}

/// EINVAL from setresuid/setresgid means the id has no mapping in the user
/// namespace (a rootless container maps only the user's own ids).
fn unmapped_hint(e: nix::errno::Errno) -> &'static str {
    if e == nix::errno::Errno::EINVAL {
        " (the id is not mapped in the container's user namespace)"
    } else {
        ""
    }
}

pub fn apply_umask(u: &User) {
    let mask = u.umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        mask as libc::mode_t,
    ));
}

/// Give the process's stdio to its user before it becomes that user (as runc
/// does), keeping each one's group: a terminal made by the runtime (owned by
/// root, group tty) or a pipe must be usable by a non-root process. /dev/null
/// is left alone, and so is whatever cannot be changed (an owner or group not
/// mapped in a user namespace, a read-only /dev).
pub fn give_stdio_to(uid: u32) -> Result<()> {
    let null = nix::sys::stat::stat("/dev/null").ok().map(|s| s.st_rdev);
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
        if st.st_mode & libc::S_IFMT == libc::S_IFCHR && Some(st.st_rdev) == null {
            continue;
        }
        if st.st_uid == uid {
            continue;
        }
        // SAFETY: fchown on a descriptor number; no memory is involved.
        if unsafe { libc::fchown(fd, uid, st.st_gid) } != 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINVAL) | Some(libc::EPERM) | Some(libc::EROFS) => continue,
                _ => {
                    return Err(Error::Other(format!(
                        "give stdio fd {fd} to uid {uid}: {e}"
                    )))
                }
            }
        }
    }
    Ok(())
}
