//! A seccomp user-notification agent for `SCMP_ACT_NOTIFY` tests: listens on
//! the profile's `listenerPath`, takes the notify fd and the container state a
//! runtime sends there (runtime-spec "seccomp": listenerPath), then answers
//! every notification with one errno until the filtered processes are gone.
//! A thread with a bounded life, stopped and joined by [`Agent::finish`] or drop.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// struct seccomp_data (linux/seccomp.h).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SeccompData {
    nr: libc::c_int,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

/// struct seccomp_notif.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

/// struct seccomp_notif_resp.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

// Checked against <linux/seccomp.h> with a C program on the test machine:
// RECV=0xc0502100 SEND=0xc0182101, sizeof seccomp_notif 80, _resp 24.
const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const _: () = assert!(std::mem::size_of::<SeccompNotif>() == 80);
const _: () = assert!(std::mem::size_of::<SeccompNotifResp>() == 24);

/// What the agent saw.
#[derive(Debug, Default)]
pub struct AgentReport {
    /// The JSON sent with the fd.
    pub state: Option<Value>,
    /// Whether an fd came with it, and what it is (readlink of /proc/self/fd/N).
    pub fd_kind: Option<String>,
    /// (syscall nr, pid) of each notification answered.
    pub notifications: Vec<(i32, u32)>,
    pub errors: Vec<String>,
}

/// A listener thread on a unix socket: receives the notify fd and the state,
/// then answers each notification with -`errno` (or, with `None`, closes the
/// fd at once). Stopped and joined on drop.
pub struct Agent {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<AgentReport>>,
}

impl Agent {
    /// Listen on `path`; `errno` is the error every notification is answered
    /// with (`None`: close the notify fd as soon as it arrives).
    pub fn start(path: &Path, errno: Option<i32>) -> std::io::Result<Agent> {
        let listener = UnixListener::bind(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("bind {}: {e}", path.display())))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || agent_main(listener, s, errno));
        Ok(Agent {
            stop,
            handle: Some(handle),
        })
    }

    /// Stop (once every filtered process has gone, or now) and report.
    pub fn finish(mut self) -> AgentReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .take()
            .unwrap()
            .join()
            .unwrap_or_else(|_| AgentReport {
                errors: vec!["agent thread panicked".into()],
                ..AgentReport::default()
            })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

const AGENT_LIFETIME: Duration = Duration::from_secs(90);

fn agent_main(listener: UnixListener, stop: Arc<AtomicBool>, errno: Option<i32>) -> AgentReport {
    let mut rep = AgentReport::default();
    let deadline = Instant::now() + AGENT_LIFETIME;
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                    return rep;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                rep.errors.push(format!("accept: {e}"));
                return rep;
            }
        }
    };
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = vec![0u8; 64 * 1024];
    let (n, fd) = match recv_with_fd(&conn, &mut buf) {
        Ok(x) => x,
        Err(e) => {
            rep.errors.push(e);
            return rep;
        }
    };
    // The spec does not promise EOF after the state (runc keeps the
    // connection open), so read more only while the JSON is incomplete.
    let mut payload = buf[..n].to_vec();
    loop {
        match serde_json::from_slice::<Value>(&payload) {
            Ok(v) => {
                rep.state = Some(v);
                break;
            }
            Err(e) if e.is_eof() => {
                let mut more = [0u8; 4096];
                match (&conn).read(&mut more) {
                    Ok(0) | Err(_) => {
                        rep.errors.push(format!("the state ends early: {e}"));
                        break;
                    }
                    Ok(k) => payload.extend_from_slice(&more[..k]),
                }
            }
            Err(e) => {
                rep.errors.push(format!(
                    "state is not JSON ({e}): {}",
                    String::from_utf8_lossy(&payload)
                ));
                break;
            }
        }
    }
    let Some(fd) = fd else {
        rep.errors.push("no fd came with the state".into());
        return rep;
    };
    rep.fd_kind = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .map(|p| p.display().to_string());
    if let Some(errno) = errno {
        serve_notifications(&fd, &stop, deadline, errno, &mut rep);
    }
    rep
}

/// Answer notifications until every process using the filter is gone
/// (POLLHUP), `stop` is set, or the deadline passes.
fn serve_notifications(
    fd: &OwnedFd,
    stop: &AtomicBool,
    deadline: Instant,
    errno: i32,
    rep: &mut AgentReport,
) {
    loop {
        if Instant::now() >= deadline {
            rep.errors.push("agent deadline passed".into());
            return;
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 50) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            rep.errors.push(format!("poll: {e}"));
            return;
        }
        if n == 0 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            continue;
        }
        if pfd.revents & libc::POLLIN != 0 {
            // SAFETY: a plain-data struct the kernel fills (it must be zeroed).
            let mut req: SeccompNotif = unsafe { std::mem::zeroed() };
            // SAFETY: ioctl with a correctly sized struct seccomp_notif.
            let rc =
                unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV as _, &mut req) };
            if rc < 0 {
                // ENOENT: the task died before we read it.
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ENOENT)
                    && e.kind() != std::io::ErrorKind::Interrupted
                {
                    rep.errors.push(format!("NOTIF_RECV: {e}"));
                }
                continue;
            }
            let mut resp = SeccompNotifResp {
                id: req.id,
                val: 0,
                error: -errno,
                flags: 0,
            };
            // SAFETY: ioctl with a correctly sized struct seccomp_notif_resp.
            let rc =
                unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND as _, &mut resp) };
            if rc < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ENOENT) {
                    rep.errors.push(format!("NOTIF_SEND: {e}"));
                }
            }
            rep.notifications.push((req.data.nr, req.pid));
        } else if pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return;
        }
    }
}

/// One recvmsg with room for one SCM_RIGHTS fd.
fn recv_with_fd(sock: impl AsFd, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>), String> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let n = rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
        .map_err(|e| format!("recvmsg: {}", std::io::Error::from(e)))?
        .bytes;
    let mut fds = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = msg {
            fds.extend(received);
        }
    }
    if fds.len() > 1 {
        return Err(format!("{} fds arrived, expected one", fds.len()));
    }
    Ok((n as usize, fds.pop()))
}
