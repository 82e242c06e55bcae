//! Loading a compiled program into the kernel with seccomp(2).

use std::os::fd::{FromRawFd, OwnedFd};

use super::{Compiled, SeccompError};

/// Extra SECCOMP_FILTER_FLAG_* bits the caller adds to the profile's own flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallFlags(u32);

impl InstallFlags {
    pub const NONE: Self = Self(0);
    pub const TSYNC: Self = Self(libc::SECCOMP_FILTER_FLAG_TSYNC as u32);
    pub const LOG: Self = Self(libc::SECCOMP_FILTER_FLAG_LOG as u32);
    pub const SPEC_ALLOW: Self = Self(libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32);
    pub const WAIT_KILLABLE_RECV: Self = Self(libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32);

    pub fn bits(self) -> u32 {
        self.0
    }
}

impl std::ops::BitOr for InstallFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

const NEW_LISTENER: u32 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
const TSYNC: u32 = libc::SECCOMP_FILTER_FLAG_TSYNC as u32;
const TSYNC_ESRCH: u32 = libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u32;
const WAIT_KILLABLE_RECV: u32 = libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32;

/// The flags passed to seccomp(2) for `c` plus `extra`.
pub(crate) fn effective_flags(c: &Compiled, extra: InstallFlags) -> u32 {
    let mut flags = c.filter_flags | extra.0;
    if c.needs_notify {
        flags |= NEW_LISTENER;
        // TSYNC returns a thread id on failure, which collides with the
        // listener fd; the kernel requires TSYNC_ESRCH to combine them.
        if flags & TSYNC != 0 {
            flags |= TSYNC_ESRCH;
        }
    } else {
        // Only meaningful (and only accepted) together with a listener.
        flags &= !WAIT_KILLABLE_RECV;
    }
    flags
}

fn hint(errno: i32, flags: u32) -> &'static str {
    match errno {
        libc::EACCES => " (the caller needs no_new_privs or CAP_SYS_ADMIN)",
        libc::EINVAL if flags & WAIT_KILLABLE_RECV != 0 => {
            " (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs Linux 5.19)"
        }
        libc::EINVAL if flags != 0 => " (a filter flag or action is not supported by this kernel)",
        libc::ESRCH => " (another thread could not be synchronized)",
        _ => "",
    }
}

pub(crate) fn install(c: &Compiled, extra: InstallFlags) -> Result<Option<OwnedFd>, SeccompError> {
    let flags = effective_flags(c, extra);
    let prog = libc::sock_fprog {
        len: c.program.len() as u16,
        filter: c.program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `c.program`, which outlives the call and has
    // the layout of `struct sock_filter` (repr(C) code/jt/jf/k).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(SeccompError::Install {
            flags,
            errno: nix::errno::Errno::from_raw(errno),
            hint: hint(errno, flags),
        });
    }
    if flags & NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the kernel returns a new fd we now own.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as i32) }));
    }
    Ok(None)
}

/// Whether the running kernel accepts `flag`: seccomp(2) with a NULL
/// program fails with EFAULT after the flags passed validation, with EINVAL
/// before. Nothing is installed either way.
pub(crate) fn kernel_supports(flag: u32) -> bool {
    let flags = if flag == WAIT_KILLABLE_RECV {
        flag | NEW_LISTENER
    } else {
        flag
    };
    // SAFETY: a NULL program pointer is never dereferenced by a successful call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}
