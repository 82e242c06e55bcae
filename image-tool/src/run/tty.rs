//! `run -t`: the runtime sends the pty master of the container's terminal to
//! a console socket; this process puts its own terminal in raw mode and
//! relays between the two.

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{container_dir, exit_code, runtime_cmd, ContainerRecord};
use crate::store::Store;

/// Receive the pty master that the runtime sends to the console socket.
fn recv_master(sock: impl std::os::fd::AsFd) -> Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
        .map_err(std::io::Error::from)
        .context("receive the terminal")?;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    bail!("the runtime sent no terminal on the console socket")
}

/// Puts the terminal on `fd` in raw mode and restores it on drop.
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: tcgetattr/tcsetattr on a terminal fd with valid termios buffers.
        unsafe {
            if libc::isatty(fd) != 1 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the attributes read in `enter`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a valid winsize buffer.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// `-t`: the runtime makes a pty in the container and sends its master to a
/// console socket; this process relays between its own terminal and it.
pub(super) fn run_with_terminal(store: &Store, rec: &ContainerRecord) -> Result<i32> {
    let cdir = container_dir(store, &rec.id);
    // A socket path must fit in 108 bytes: a short name in the temp dir.
    let sock_path = std::env::temp_dir().join(format!("berth-image-{}.sock", super::random_hex(8)));
    let listener = std::os::unix::net::UnixListener::bind(&sock_path)
        .with_context(|| format!("bind {}", sock_path.display()))?;
    let _remove = RemoveOnDrop(sock_path.clone());
    let bundle = cdir.join("bundle");
    let mut cmd = runtime_cmd(store, &rec.runtime);
    cmd.args(["run", "--keep", "--console-socket"])
        .arg(&sock_path)
        .arg("--bundle")
        .arg(&bundle)
        .arg(&rec.id)
        .stdin(Stdio::null());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    let _forwarder = super::signals::Forwarder::start(child.id());
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(s) = child.try_wait()? {
                    return Ok(exit_code(s));
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("the runtime did not send a terminal within 30 s");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).context("accept on the console socket"),
        }
    };
    conn.set_nonblocking(false)?;
    let master = recv_master(&conn)?;
    drop(conn);
    drop(listener);
    let _ = fs::remove_file(&sock_path);
    copy_winsize(0, master.as_raw_fd());
    let raw = RawMode::enter(0);
    relay(&master);
    drop(raw);
    let status = child.wait().context("wait for the runtime")?;
    Ok(exit_code(status))
}

/// Removes a file when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Copy stdin to the pty master and the master to stdout until the master
/// reports EOF/EIO (every holder of the pty slave is gone).
fn relay(master: &OwnedFd) {
    let m = master.as_raw_fd();
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    let mut out = std::io::stdout().lock();
    loop {
        let mut fds = [
            libc::pollfd {
                fd: m,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[0].revents != 0 {
            // SAFETY: reading into a live buffer.
            let r = unsafe { libc::read(m, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                return;
            }
            let _ = out.write_all(&buf[..r as usize]);
            let _ = out.flush();
        }
        if stdin_open && fds[1].revents != 0 {
            // SAFETY: reading into a live buffer.
            let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                stdin_open = false;
                continue;
            }
            let mut off = 0;
            while off < r as usize {
                // SAFETY: writing from a live buffer.
                let w = unsafe { libc::write(m, buf[off..].as_ptr().cast(), r as usize - off) };
                if w <= 0 {
                    break;
                }
                off += w as usize;
            }
        }
    }
}
