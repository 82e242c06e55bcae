//! The typed channel between `berth create` and the container's init process:
//! one message per datagram over a SOCK_SEQPACKET socketpair.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    /// init → parent: write uid/gid maps for this pid (a new user namespace).
    MapIds { pid: i32 },
    /// parent → init: maps written.
    IdsMapped,
    /// init (intermediate stage) → parent: the container's init pid.
    InitPid { pid: i32 },
    /// parent → init: the init (host pid `pid`) is in its cgroup.
    CgroupReady { pid: i32 },
    /// init → parent: mounts are ready, run prestart/createRuntime hooks.
    RunRuntimeHooks,
    /// parent → init: hooks finished.
    HooksDone,
    /// init → parent: the container is created; init now waits for `start`.
    Created,
    /// either way: a fatal error, with the reason.
    Error(String),
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).ctx(|| "socketpair")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let data = serde_json::to_vec(msg).map_err(|e| Error::Other(format!("encode message: {e}")))?;
        loop {
            // SAFETY: valid buffer; MSG_NOSIGNAL avoids SIGPIPE when the peer died.
            let r = unsafe { libc::send(self.fd.as_raw_fd(), data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
            if r >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).ctx(|| "send to init channel");
            }
        }
    }

    /// Receive one message; `None` when the peer closed its end (it exited).
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: valid buffer.
            let r = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r == 0 {
                return Ok(None);
            }
            if r > 0 {
                let msg = serde_json::from_slice(&buf[..r as usize]).map_err(|e| Error::Other(format!("decode message: {e}")))?;
                return Ok(Some(msg));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).ctx(|| "receive from init channel");
            }
        }
    }

    /// Receive, treating EOF as an error.
    pub fn expect(&self, what: &str) -> Result<Msg> {
        match self.recv()? {
            Some(Msg::Error(e)) => Err(Error::Init(e)),
            Some(m) => Ok(m),
            None => Err(Error::Init(format!("container init exited while {what}"))),
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}
