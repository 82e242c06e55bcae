//! The receiving end of `--console-socket`: the pty master and reading from it.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::*;

/// Receive one fd sent with SCM_RIGHTS on `sock`; the payload goes to `buf`.
pub fn recv_fd_with(sock: RawFd, buf: &mut [u8]) -> (usize, OwnedFd) {
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        sock,
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let n = msg.bytes;
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the fd was just received and is ours.
            return (n, unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    panic!("no fd received on the socket");
}

/// Receive the pty master a container sends to its console socket.
pub fn recv_fd(sock: &std::os::unix::net::UnixStream) -> OwnedFd {
    recv_fd_with(sock.as_raw_fd(), &mut [0u8; 256]).1
}

/// Accept one connection on `listener` (bounded by [`POLL_TIMEOUT`]) and
/// receive the pty master sent on it.
pub fn accept_master(listener: &std::os::unix::net::UnixListener) -> OwnedFd {
    listener.set_nonblocking(true).unwrap();
    let mut conn = None;
    assert!(
        wait_until(POLL_TIMEOUT, || {
            conn = listener.accept().ok();
            conn.is_some()
        }),
        "nothing connected to the console socket"
    );
    let (stream, _) = conn.unwrap();
    stream.set_nonblocking(false).unwrap();
    recv_fd(&stream)
}

/// Read from `fd` until `needle` shows up, EOF/EIO, or the deadline.
pub fn read_until(fd: &OwnedFd, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while Instant::now() < deadline && !String::from_utf8_lossy(&got).contains(needle) {
        let mut pfd = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(100u16)).unwrap_or(0) == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}
