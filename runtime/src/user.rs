//! `process.user`: groups, gid, uid and umask.

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
