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
    /// parent → init: the cgroup is ready for the init (host pid `pid`); with
    /// `join` the init moves itself in (see `CgroupManager::join_self`),
    /// otherwise the parent already moved it.
    /// `in_unified`: it was started in the cgroup2 directory already.
    CgroupReady {
        pid: i32,
        join: bool,
        in_unified: bool,
    },
    /// init → parent: mounts are ready, run prestart/createRuntime hooks.
    RunRuntimeHooks,
    /// parent → init: hooks finished.
    HooksDone,
    /// init → parent: the seccomp notify fd follows (SCM_RIGHTS) for the
    /// runtime to hand to `linux.seccomp.listenerPath`.
    SeccompFd,
    /// parent → init: the listener has the fd (init may close its copy).
    SeccompFdSent,
    /// init → parent: open the `index`th mount's source in the runtime's
    /// mount namespace (the container cannot reach it); the parent answers
    /// `MountSource` and the fd of a detached tree, or `Error`.
    OpenMountSource { index: usize },
    /// parent → init: the detached tree follows (SCM_RIGHTS).
    MountSource,
    /// init → parent: idmap the detached tree that follows (SCM_RIGHTS) as
    /// the `index`th mount asks; the parent answers `Idmapped` or `Error`.
    IdmapMount { index: usize },
    /// parent → init: the tree is idmapped.
    Idmapped,
    /// init → parent: the container is created; init now waits for `start`.
    Created,
    /// either way: a fatal error, with the reason.
    Error(String),
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let data =
            serde_json::to_vec(msg).map_err(|e| Error::Other(format!("encode message: {e}")))?;
        loop {
            // MSG_NOSIGNAL avoids SIGPIPE when the peer died.
            let e = match nix::sys::socket::send(
                self.fd.as_raw_fd(),
                &data,
                nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(_) => return Ok(()),
                Err(errno) => std::io::Error::from(errno),
            };
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // The peer is gone; what it said before it went is the error
                // worth reporting.
                Some(libc::EPIPE) | Some(libc::ECONNRESET) => {
                    if let Some(reason) = self.pending_error() {
                        return Err(Error::Init(reason));
                    }
                    return Err(e).ctx(|| "send to init channel");
                }
                _ => return Err(e).ctx(|| "send to init channel"),
            }
        }
    }

    /// The reason in an error message the peer left before it closed its end.
    fn pending_error(&self) -> Option<String> {
        loop {
            match self.recv_flags(nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
                Ok(Some(Msg::Error(reason))) => return Some(reason),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    /// Receive one message; `None` when the peer closed its end (it exited).
    pub fn recv(&self) -> Result<Option<Msg>> {
        self.recv_flags(nix::sys::socket::MsgFlags::empty())
    }

    fn recv_flags(&self, flags: nix::sys::socket::MsgFlags) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let e = match nix::sys::socket::recv(self.fd.as_raw_fd(), &mut buf, flags) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    let msg = serde_json::from_slice(&buf[..n])
                        .map_err(|e| Error::Other(format!("decode message: {e}")))?;
                    return Ok(Some(msg));
                }
                Err(errno) => std::io::Error::from(errno),
            };
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // A peer that exited without reading our last message resets
                // the connection; the kernel reports that once, ahead of the
                // messages the peer sent before (its error among them).
                Some(libc::ECONNRESET) => continue,
                _ => return Err(e).ctx(|| "receive from init channel"),
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

    /// Pass one fd to the peer (a one-byte datagram carrying SCM_RIGHTS).
    pub fn send_fd(&self, fd: &OwnedFd) -> Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let fds = [fd.as_raw_fd()];
        let iov = [std::io::IoSlice::new(b"F")];
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).ctx(|| "send fd over init channel"),
            }
        }
    }

    /// Receive the fd sent with [`Channel::send_fd`].
    pub fn recv_fd(&self) -> Result<OwnedFd> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::FromRawFd;
        let mut byte = [0u8; 1];
        let mut iov = [std::io::IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        loop {
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => {
                    for c in m.cmsgs().ctx(|| "read control message")? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            if let Some(&fd) = fds.first() {
                                // SAFETY: a fresh fd received over SCM_RIGHTS,
                                // owned by nobody else (nix 0.29's ScmRights
                                // hands out raw fds).
                                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                            }
                        }
                    }
                    return Err(Error::Init(
                        "expected an fd from the container init, got none".into(),
                    ));
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).ctx(|| "receive fd over init channel"),
            }
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}
