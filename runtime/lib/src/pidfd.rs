//! `--pidfd-socket`: hand a pidfd of the container's process to a Unix socket
//! (SCM_RIGHTS), so a supervisor can signal and wait for it without pid reuse
//! races.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Context, Error, Result};

/// A pidfd for `pid` (pidfd_open(2), Linux 5.3).
pub fn open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| format!("pidfd_open({pid})"));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Connect to `socket` and send it a pidfd of `pid`.
pub fn send(socket: &Path, pid: i32) -> Result<()> {
    let fd = open(pid)?;
    let conn = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| Error::Config(format!("--pidfd-socket {}: connect: {e}", socket.display())))?;
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(b"pidfd")];
    sendmsg::<()>(
        conn.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| format!("send a pidfd to {}", socket.display()))?;
    Ok(())
}
