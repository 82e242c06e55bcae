//! `--pidfd-socket`: hand a pidfd of the container's process to a Unix socket
//! (SCM_RIGHTS), so a supervisor can signal and wait for it without pid reuse
//! races.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Context, Error, Result};

/// A pidfd for `pid` (pidfd_open(2), Linux 5.3).
pub fn open(pid: i32) -> Result<OwnedFd> {
    let opened = match rustix::process::Pid::from_raw(pid.max(0)) {
        Some(p) => rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()),
        None => Err(rustix::io::Errno::INVAL),
    };
    opened
        .map_err(std::io::Error::from)
        .ctx(|| format!("pidfd_open({pid})"))
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
