//! `berth run`: create + start; in the foreground, forward signals to the
//! container, proxy its terminal when berth allocated one, and exit with the
//! container's status.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use berth_runtime::container::{self, CreateOpts};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Whether the bundle's config asks for a terminal (read before create, which
/// then gets the console socket of the pty berth relays).
pub(crate) fn config_wants_terminal(bundle: &std::path::Path) -> bool {
    // Only `process.terminal` is built; serde skips the rest of the text.
    #[derive(serde::Deserialize)]
    struct Config {
        process: Option<Process>,
    }
    #[derive(serde::Deserialize)]
    struct Process {
        terminal: Option<bool>,
    }
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_slice::<Config>(&t).ok())
        .and_then(|c| c.process?.terminal)
        .unwrap_or(false)
}

pub fn run(opts: &CreateOpts, detach: bool, keep: bool) -> anyhow::Result<i32> {
    let mut opts = opts.clone();
    let own_pty = config_wants_terminal(&opts.bundle) && opts.console_socket.is_none();
    if detach {
        if own_pty {
            anyhow::bail!(
                "cannot allocate a terminal for a detached container without --console-socket"
            );
        }
        container::create(&opts)?;
        if let Err(e) = container::start(&opts.root, &opts.id) {
            let _ = container::delete(&opts.root, &opts.id, true);
            return Err(e.into());
        }
        return Ok(0);
    }
    let sup = Supervisor::prepare()?;
    let console = if own_pty {
        let (a, b) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )?;
        opts.console_fd = Some(a.as_raw_fd());
        Some((a, b))
    } else {
        None
    };
    let pid = container::create(&opts)?;
    let master = match &console {
        Some((_, b)) => Some(recv_master(b)?),
        None => None,
    };
    drop(console);
    if let Err(e) = container::start(&opts.root, &opts.id) {
        let _ = container::delete(&opts.root, &opts.id, true);
        return Err(e.into());
    }
    let code = sup.supervise(pid, master.as_ref())?;
    if !keep {
        container::delete(&opts.root, &opts.id, true)?;
    }
    Ok(code)
}

/// A foreground runtime process waiting for a container process: a subreaper
/// with every signal blocked (they arrive through a signalfd and are forwarded).
pub(crate) struct Supervisor(());

impl Supervisor {
    pub(crate) fn prepare() -> anyhow::Result<Supervisor> {
        nix::sys::prctl::set_child_subreaper(true)?;
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None)?;
        Ok(Supervisor(()))
    }

    /// Forward signals and terminal I/O until `pid` exits; its exit status.
    pub(crate) fn supervise(&self, pid: i32, master: Option<&OwnedFd>) -> anyhow::Result<i32> {
        supervise(pid, master)
    }
}

pub(crate) fn recv_master(sock: &OwnedFd) -> anyhow::Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )?;
    for c in msg.cmsgs()? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the fd was just received and is ours.
                let master = unsafe { OwnedFd::from_raw_fd(*fd) };
                berth_runtime::terminal::clear_onlcr(master.as_fd())?;
                return Ok(master);
            }
        }
    }
    anyhow::bail!("the container did not send a terminal")
}

struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        match nix::sys::termios::tcgetattr(stdin.as_fd()) {
            Ok(orig) => {
                let mut raw = orig.clone();
                nix::sys::termios::cfmakeraw(&mut raw);
                let _ = nix::sys::termios::tcsetattr(
                    stdin.as_fd(),
                    nix::sys::termios::SetArg::TCSANOW,
                    &raw,
                );
                RawMode(Some(orig))
            }
            Err(_) => RawMode(None),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

fn copy_winsize(master: &OwnedFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid winsize pointers.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

fn pump(from: i32, to: i32) -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: valid buffers.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return false;
    }
    let mut off = 0;
    while off < n as usize {
        // SAFETY: valid buffers.
        let w = unsafe { libc::write(to, buf[off..].as_ptr().cast(), n as usize - off) };
        if w <= 0 {
            return false;
        }
        off += w as usize;
    }
    true
}

fn exit_code(s: WaitStatus) -> Option<i32> {
    match s {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Forward signals to the init, copy terminal I/O, reap children; return the
/// init's exit status.
fn supervise(pid: i32, master: Option<&OwnedFd>) -> anyhow::Result<i32> {
    let sfd = SignalFd::with_flags(&SigSet::all(), SfdFlags::SFD_CLOEXEC)?;
    let _raw = master.map(|m| {
        copy_winsize(m);
        RawMode::enter()
    });
    let mut stdin_open = master.is_some();
    // The init may already be gone (SIGCHLD before the signalfd existed).
    if let Some(code) = reap(pid) {
        drain(master);
        return Ok(code);
    }
    loop {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let stdin = std::io::stdin();
        if let Some(m) = master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if let Some(m) = master {
            if ready.get(1) == Some(&true) && !pump(m.as_raw_fd(), 1) {
                // Terminal closed; keep waiting for the exit status.
            }
            if stdin_open && ready.get(2) == Some(&true) && !pump(0, m.as_raw_fd()) {
                stdin_open = false;
            }
        }
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                match sig {
                    libc::SIGCHLD => {
                        if let Some(code) = reap(pid) {
                            drain(master);
                            return Ok(code);
                        }
                    }
                    libc::SIGWINCH => {
                        if let Some(m) = master {
                            copy_winsize(m);
                        }
                    }
                    _ => {
                        // SAFETY: plain kill(2). Raw because every signal is
                        // forwarded, real-time ones too, which nix's Signal
                        // cannot name.
                        unsafe { libc::kill(pid, sig) };
                    }
                }
            }
        }
    }
}

fn reap(pid: i32) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(s) => {
                if s.pid() == Some(Pid::from_raw(pid)) {
                    if let Some(c) = exit_code(s) {
                        return Some(c);
                    }
                }
            }
        }
    }
}

fn drain(master: Option<&OwnedFd>) {
    if let Some(m) = master {
        // SAFETY: set non-blocking on our fd, then copy what is left.
        unsafe { libc::fcntl(m.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        while pump(m.as_raw_fd(), 1) {}
    }
}
