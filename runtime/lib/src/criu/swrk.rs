//! One `criu swrk` session: the child process, its end of a SOCK_SEQPACKET
//! pair as fd 3, one protobuf message per packet.
//!
//! The messages are rust-criu's (generated from criu's rpc.proto), but not its
//! `Criu::dump`/`restore` driver, which falls short of a container runtime:
//! it starts criu with /dev/null as stdin and berth's own stdout/stderr (a
//! restored container takes criu's stdio as its own: it must be the stdio
//! berth was given), has no point between starting criu and sending the
//! request (runc moves criu into the container's cgroup there, so the restored
//! tree lands in it), and its notification callback is a plain `fn` without
//! state (berth records the restored pid and forwards the terminal fd from it).

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use protobuf::{Message, MessageField};
use rust_criu::rust_criu_protobuf::rpc::{
    Criu_features, Criu_opts, Criu_req, Criu_req_type, Criu_resp,
};

use super::{log, version_number, version_string, Criu, CriuError, MIN_VERSION};

/// fd numbers the extra files get in criu: 0-2 are stdio, 3 the socket.
pub const FIRST_EXTRA_FD: RawFd = 4;

/// What a notification handler decides: go on, or fail the operation.
pub type NotifyResult = std::result::Result<(), String>;

/// A notification handler: `(script, pid, fd it carries)`.
pub type Notify<'a> = dyn FnMut(&str, i32, Option<OwnedFd>) -> NotifyResult + 'a;

/// A running `criu swrk`.
pub struct Session {
    op: &'static str,
    child: Option<Child>,
    sock: OwnedFd,
}

impl Session {
    /// Start `criu swrk 3`. `inherit_stdio`: criu (and so a restored tree)
    /// gets berth's stdin/stdout/stderr, else /dev/null. `extra` become fds
    /// [`FIRST_EXTRA_FD`], +1, ... in criu.
    pub fn start(
        criu: &Criu,
        op: &'static str,
        inherit_stdio: bool,
        extra: &[BorrowedFd<'_>],
    ) -> Result<Session, CriuError> {
        let io = |context: &str| {
            let context = context.to_string();
            move |source| CriuError::Io {
                op,
                context,
                source,
            }
        };
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| io("socketpair")(e.into()))?;
        // Every source fd above the numbers they are moved to, so that no
        // dup2 in the child overwrites a source still to be moved.
        let floor = FIRST_EXTRA_FD + extra.len() as RawFd + 1;
        let mut sources = vec![high_dup(theirs.as_raw_fd(), floor).map_err(io("dup socket"))?];
        for fd in extra {
            sources.push(high_dup(fd.as_raw_fd(), floor).map_err(io("dup an inherited fd"))?);
        }
        let raw: Vec<RawFd> = sources.iter().map(|f| f.as_raw_fd()).collect();
        let mut cmd = Command::new(&criu.path);
        cmd.args(["swrk", "3"]);
        if !inherit_stdio {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        }
        // SAFETY: only async-signal-safe calls (dup2, sigprocmask) between
        // fork and exec, with no allocation. The block stays whatever the
        // calls inside: Command::pre_exec itself is unsafe.
        unsafe {
            cmd.pre_exec(move || {
                for (i, fd) in raw.iter().enumerate() {
                    let target = 3 + i as RawFd;
                    if libc::dup2(*fd, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| CriuError::Spawn {
            path: criu.path.clone(),
            source,
        })?;
        drop(sources);
        drop(theirs);
        Ok(Session {
            op,
            child: Some(child),
            sock: ours,
        })
    }

    /// criu's pid (a restore moves it into the container's cgroups).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    /// Ask criu's version and refuse one older than [`MIN_VERSION`]; the
    /// session stays open for the real request.
    pub fn check_version(&mut self, criu: &Criu) -> Result<u32, CriuError> {
        let mut req = Criu_req::new();
        req.set_type(Criu_req_type::VERSION);
        req.set_keep_open(true);
        let resp = self.call(&req, Criu_req_type::VERSION, None)?;
        let v = &resp.version;
        let n = version_number(
            v.major_number(),
            v.minor_number(),
            v.sublevel(),
            v.has_gitid(),
        );
        if n < MIN_VERSION {
            return Err(CriuError::TooOld {
                path: criu.path.clone(),
                found: version_string(n),
                needed: version_string(MIN_VERSION),
            });
        }
        Ok(n)
    }

    /// Ask which of `want` criu and the kernel support; the names of those
    /// missing make the error.
    pub fn check_features(&mut self, want: Criu_features) -> Result<(), CriuError> {
        let mut req = Criu_req::new();
        req.set_type(Criu_req_type::FEATURE_CHECK);
        req.set_keep_open(true);
        req.features = MessageField::some(want.clone());
        let resp = self.call(&req, Criu_req_type::FEATURE_CHECK, None)?;
        let got = &resp.features;
        let mut missing = Vec::new();
        if want.mem_track() && !got.mem_track() {
            missing.push("MemTrack (memory change tracking: the kernel lacks soft-dirty bits)");
        }
        if want.lazy_pages() && !got.lazy_pages() {
            missing.push("LazyPages (userfaultfd)");
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(CriuError::MissingFeatures(missing.join(", ")))
        }
    }

    /// Send the dump/restore request, answer criu's notifications with
    /// `notify(script, pid, fd)` until the final response, and wait for criu to
    /// exit. On failure the error quotes `log` (criu's log file).
    pub fn run(
        mut self,
        typ: Criu_req_type,
        opts: Criu_opts,
        log: &Path,
        notify: &mut Notify<'_>,
    ) -> Result<(), CriuError> {
        let mut req = Criu_req::new();
        req.set_type(typ);
        req.opts = MessageField::some(opts);
        let r = self
            .call(&req, typ, Some(notify))
            .and_then(|_| self.finish());
        r.map_err(|e| match e {
            CriuError::Failed {
                op,
                errno,
                msg,
                log: _,
            } => CriuError::Failed {
                op,
                errno,
                msg,
                log: log::quote(log),
            },
            CriuError::Protocol { op, what } => CriuError::Failed {
                op,
                errno: String::new(),
                msg: match log::quote(log) {
                    q if q.is_empty() => what,
                    q => format!("{what}; {q}"),
                },
                log: String::new(),
            },
            e => e,
        })
    }

    fn call(
        &mut self,
        req: &Criu_req,
        typ: Criu_req_type,
        mut notify: Option<&mut Notify<'_>>,
    ) -> Result<Criu_resp, CriuError> {
        self.send(req)?;
        loop {
            let (resp, fd) = self.recv()?;
            if !resp.success() {
                let msg = resp.cr_errmsg().trim();
                return Err(CriuError::Failed {
                    op: self.op,
                    errno: match resp.cr_errno() {
                        0 => String::new(),
                        n => format!(" ({})", std::io::Error::from_raw_os_error(n)),
                    },
                    msg: if msg.is_empty() {
                        "no reason given".into()
                    } else {
                        msg.to_string()
                    },
                    log: String::new(),
                });
            }
            match resp.type_() {
                Criu_req_type::NOTIFY => {
                    let script = resp.notify.script().to_string();
                    let pid = resp.notify.pid();
                    let r = match notify.as_mut() {
                        Some(f) => f(&script, pid, fd),
                        None => Ok(()),
                    };
                    let mut ack = Criu_req::new();
                    ack.set_type(Criu_req_type::NOTIFY);
                    ack.set_notify_success(r.is_ok());
                    self.send(&ack)?;
                    if let Err(e) = r {
                        return Err(CriuError::Protocol {
                            op: self.op,
                            what: format!("{script}: {e}"),
                        });
                    }
                }
                t if t == typ => return Ok(resp),
                t => {
                    return Err(CriuError::Protocol {
                        op: self.op,
                        what: format!("unexpected response {t:?} to a {typ:?} request"),
                    })
                }
            }
        }
    }

    fn send(&self, req: &Criu_req) -> Result<(), CriuError> {
        let data = req.write_to_bytes().map_err(|e| CriuError::Protocol {
            op: self.op,
            what: format!("encode request: {e}"),
        })?;
        // SAFETY: a write from a valid buffer to a socket we own.
        let n = unsafe { libc::write(self.sock.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if n < 0 {
            return Err(CriuError::Io {
                op: self.op,
                context: "send request".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// One response packet, and the fd it carries (orphan-pts-master).
    fn recv(&self) -> Result<(Criu_resp, Option<OwnedFd>), CriuError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let (n, flags, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fd = None;
                    for c in msg.cmsgs().into_iter().flatten() {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for f in fds {
                                // SAFETY: the fd was just received and is ours.
                                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, msg.flags, fd);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    return Err(CriuError::Io {
                        op: self.op,
                        context: "receive response".into(),
                        source: e.into(),
                    })
                }
            }
        };
        if n == 0 {
            return Err(CriuError::Protocol {
                op: self.op,
                what: "criu exited without an answer".into(),
            });
        }
        if flags.contains(MsgFlags::MSG_TRUNC) {
            return Err(CriuError::Protocol {
                op: self.op,
                what: format!("response larger than {} bytes", buf.len()),
            });
        }
        let resp = Criu_resp::parse_from_bytes(&buf[..n]).map_err(|e| CriuError::Protocol {
            op: self.op,
            what: format!("decode response: {e}"),
        })?;
        Ok((resp, fd))
    }

    /// Close our end and wait for criu; a non-zero exit fails the operation.
    fn finish(&mut self) -> Result<(), CriuError> {
        // SAFETY: shutdown on a socket we own.
        unsafe { libc::shutdown(self.sock.as_raw_fd(), libc::SHUT_WR) };
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = child.wait().map_err(|source| CriuError::Io {
            op: self.op,
            context: "wait for criu".into(),
            source,
        })?;
        if !status.success() {
            return Err(CriuError::Protocol {
                op: self.op,
                what: format!("criu exited with {status}"),
            });
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A session abandoned midway (an error on our side): criu resumes
            // or kills the tree itself once its socket closes; make sure it
            // does not outlive us.
            // SAFETY: shutdown on a socket we own.
            unsafe { libc::shutdown(self.sock.as_raw_fd(), libc::SHUT_RDWR) };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if std::time::Instant::now() >= deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        }
    }
}

/// A close-on-exec duplicate of `fd` numbered `floor` or above.
fn high_dup(fd: RawFd, floor: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: fcntl on a caller's valid fd; the result is a new fd we own.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: n was just created by F_DUPFD_CLOEXEC.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}
