//! The last steps of the init: dropping privileges, waiting for `start` on the
//! exec FIFO, startContainer hooks and execve.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use oci_spec::runtime::Process;

use super::InitArgs;
use crate::channel::Msg;
use crate::error::{Context, Error, Result};
use crate::state::Status;
use crate::terminal::Pty;

/// The exec FIFO, held as an O_PATH fd plus the `fd` directory of this
/// process in the container's procfs, to reopen it for writing.
///
/// The directory is opened after pivot_root, in the container's own /proc (a
/// verified procfs mount): while the container is `created`, a process in it
/// that can reach the init's fds (CAP_SYS_PTRACE) must find nothing there it
/// could not reach anyway, least of all a directory of the host's procfs
/// (`..` from it leads to every host process's root).
pub struct FifoHandle {
    fifo: OwnedFd,
    fd_dir: OwnedFd,
}

impl FifoHandle {
    /// An O_PATH fd of the FIFO, opened by `create` before the fork (so the
    /// init needs no search permission on `--root`, which may be 0700 while
    /// the init runs as an unprivileged user-namespace uid).
    pub fn open_path(path: &Path) -> Result<OwnedFd> {
        crate::sys::openat2(libc::AT_FDCWD, path, libc::O_PATH | libc::O_CLOEXEC, 0, 0)
            .ctx(|| format!("open {}", path.display()))
    }

    /// Inside the container's root, before the process's user and
    /// capabilities are set (its /proc/self is root's while it is non-dumpable).
    pub fn in_container(fifo: OwnedFd) -> Result<FifoHandle> {
        const RESOLVE_NO_XDEV: u64 = 0x01;
        const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
        const RESOLVE_NO_SYMLINKS: u64 = 0x04;
        let no_proc = || {
            Error::Config(
                "the container has no procfs at /proc (mounts): berth needs it to wait for start"
                    .into(),
            )
        };
        let proc = crate::sys::openat2(
            libc::AT_FDCWD,
            Path::new("/proc"),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            RESOLVE_NO_SYMLINKS,
        )
        .map_err(|_| no_proc())?;
        if !crate::safe_proc::is_procfs(proc.as_raw_fd()) {
            return Err(no_proc());
        }
        let fd_dir = crate::sys::openat2(
            proc.as_raw_fd(),
            Path::new("self/fd"),
            libc::O_DIRECTORY | libc::O_RDONLY,
            0,
            RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS,
        )
        .ctx(|| "open /proc/self/fd in the container")?;
        Ok(FifoHandle { fifo, fd_dir })
    }

    /// Blocks until `berth start` opens the FIFO for reading.
    fn open_write(&self) -> Result<OwnedFd> {
        let name = CString::new(self.fifo.as_raw_fd().to_string()).expect("digits");
        loop {
            // SAFETY: valid C string and dir fd.
            let fd = unsafe {
                libc::openat(
                    self.fd_dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                )
            };
            if fd >= 0 {
                // SAFETY: fresh fd.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).ctx(|| "open exec fifo");
            }
        }
    }
}

/// What execve needs, resolved before `create` reports success (so a missing
/// executable fails `create`, as with runc).
pub struct Prepared {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

fn cstr(s: &[u8], what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Config(format!("{what} contains a NUL byte")))
}

pub fn prepare(a: &InitArgs, process: &Process) -> Result<Prepared> {
    setup_process(process, &mut || install_seccomp(a))
}

/// Resolve the executable and apply the process fields that need privileges
/// (oom score, rlimits, cwd, LSM label, capabilities, user, umask), in the
/// container's namespaces. `early_seccomp` is called at the point where a
/// filter must go on when no_new_privs is off (before the capability drop).
pub(crate) fn setup_process(
    process: &Process,
    early_seccomp: &mut dyn FnMut() -> Result<()>,
) -> Result<Prepared> {
    let args = process
        .args()
        .as_ref()
        .ok_or_else(|| Error::Config("field process.args: missing".into()))?;
    if args.is_empty() {
        return Err(Error::Config("field process.args: empty".into()));
    }
    let env = crate::env::prepare(process.env().as_deref(), process.user().uid())?;
    let argv = args
        .iter()
        .map(|a| cstr(a.as_bytes(), "process.args"))
        .collect::<Result<_>>()?;
    let envp = env
        .iter()
        .map(|e| cstr(e.as_bytes(), "process.env"))
        .collect::<Result<_>>()?;
    crate::rlimits::apply(process.rlimits().as_deref().unwrap_or(&[]))?;
    nix::unistd::chdir(process.cwd()).map_err(|e| {
        Error::Config(format!(
            "field process.cwd: chdir {}: {e}",
            process.cwd().display()
        ))
    })?;
    check_cwd_inside()?;
    crate::procattrs::apply(process)?;
    if !process.no_new_privileges().unwrap_or(false) {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it
        // before the user switch and the capability drop (as runc does).
        early_seccomp()?;
    }
    let caps = process
        .capabilities()
        .as_ref()
        .map(crate::capabilities::parse)
        .transpose()?;
    if let Some(c) = &caps {
        crate::capabilities::apply_bounding(c)?;
    }
    nix::sys::prctl::set_keepcaps(true).ctx(|| "prctl(PR_SET_KEEPCAPS)")?;
    crate::user::give_stdio_to(process.user().uid())?;
    crate::user::apply(process.user())?;
    nix::sys::prctl::set_keepcaps(false).ctx(|| "prctl(PR_SET_KEEPCAPS)")?;
    if let Some(c) = &caps {
        crate::capabilities::apply_sets(c)?;
    }
    crate::user::apply_umask(process.user());
    // Looked up as the process's user, with its capabilities (as runc does),
    // so that a program it may not execute fails `create`.
    let exe = crate::program::look_up(&args[0], crate::env::path_of(&env))?;
    Ok(Prepared {
        path: cstr(exe.as_os_str().as_bytes(), "process.args[0]")?,
        argv,
        envp,
    })
}

impl Prepared {
    /// execve; returns only on failure.
    pub(crate) fn exec(&self) -> std::io::Error {
        let argv: Vec<*const libc::c_char> = self
            .argv
            .iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp: Vec<*const libc::c_char> = self
            .envp
            .iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        // The runtime ignores SIGPIPE (Rust's start-up does; writes to a hook
        // that exits early must not kill it), and an ignored signal survives
        // execve: give the container's program the default.
        // SAFETY: signal() with a valid signal number and SIG_DFL; then
        // execve with NUL-terminated arrays of valid C strings.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr())
        };
        std::io::Error::last_os_error()
    }

    pub(crate) fn path_lossy(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

/// The cwd must be inside the container's root (CVE-2024-21626: a leaked host
/// directory fd as cwd shows up as "(unreachable)" or fails getcwd).
pub(crate) fn check_cwd_inside() -> Result<()> {
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(p) => Err(Error::Other(format!(
            "current directory {} is outside the container root",
            p.display()
        ))),
        Err(e) => Err(Error::Other(format!(
            "current directory is not reachable inside the container: {e}"
        ))),
    }
}

/// New session, the terminal, no_new_privs and the fd sweep: done before
/// `create` reports success.
pub fn final_setup(a: &InitArgs, pty: Option<Pty>) -> Result<()> {
    let process = a.spec.process().as_ref().expect("validated");
    nix::unistd::setsid().ctx(|| "setsid")?;
    if let Some(p) = &pty {
        crate::terminal::make_controlling(&p.slave)?;
    }
    drop(pty);
    let nnp = process.no_new_privileges().unwrap_or(false);
    if nnp {
        nix::sys::prctl::set_no_new_privs().ctx(|| "prctl(PR_SET_NO_NEW_PRIVS)")?;
    }
    // No host fd beyond stdio and --preserve-fds may reach the container.
    crate::sys::cloexec_from(3 + a.preserve_fds)?;
    if nnp {
        // With no_new_privs the filter goes on as late as possible, so the
        // profile has to allow as few of the runtime's own syscalls as can be.
        install_seccomp(a)?;
    }
    Ok(())
}

/// Install `linux.seccomp`; a notify fd goes to the parent, which hands it to
/// the listener (the spec has the runtime, not the container, do that).
fn install_seccomp(a: &InitArgs) -> Result<()> {
    install_seccomp_with(a.seccomp, &a.channel)
}

/// Install `seccomp` (if any) in this process; a notify fd goes over `ch` to
/// the runtime, and this waits until the listener has it.
pub(crate) fn install_seccomp_with(
    seccomp: Option<&crate::seccomp::Compiled>,
    ch: &crate::channel::Channel,
) -> Result<()> {
    let Some(c) = seccomp else { return Ok(()) };
    let fd = crate::seccomp::install(c, crate::seccomp::InstallFlags::NONE)
        .map_err(crate::seccomp::config_error)?;
    if let Some(fd) = fd {
        ch.send(&Msg::SeccompFd)?;
        ch.send_fd(&fd)?;
        match ch.expect("handing the seccomp fd to its listener")? {
            Msg::SeccompFdSent => {}
            m => return Err(Error::Init(format!("unexpected message {m:?}"))),
        }
    }
    Ok(())
}

pub fn wait_and_exec(
    a: &mut InitArgs,
    prepared: Prepared,
    fifo: FifoHandle,
) -> Result<std::convert::Infallible> {
    let w = fifo.open_write()?;
    drop(fifo);
    a.state.status = Status::Created;
    if let Some(h) = a.spec.hooks().as_ref() {
        // In the process's cwd (set already) and, for a hook without an env
        // of its own, with the process's environment (runc's way).
        let env: Vec<String> = prepared
            .envp
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if let Err(e) = crate::hooks::run_all(
            h.start_container().as_ref(),
            &a.state.hook_json(),
            "startContainer",
            crate::hooks::Place {
                cwd: None,
                default_env: Some(&env),
            },
        ) {
            write_all(&w, e.to_string().as_bytes());
            // SAFETY: end the init.
            unsafe { libc::_exit(1) }
        }
    }
    write_all(&w, b"0");
    let e = prepared.exec();
    write_all(
        &w,
        format!("exec {}: {e}", prepared.path_lossy()).as_bytes(),
    );
    // SAFETY: end the init.
    unsafe { libc::_exit(127) }
}

pub(crate) fn write_all(fd: &OwnedFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: valid buffer.
        let r = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if r <= 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        data = &data[r as usize..];
    }
}

/// `process.oomScoreAdj`, written while the process is still in the host's
/// mount namespace (so through the host's /proc, which the container cannot
/// cover with a mount: CVE-2025-52881) and before it enters a user namespace
/// (where a non-dumpable process could no longer write its own file). The
/// value is inherited by everything it forks and execs.
pub(crate) fn apply_oom_score_adj(process: &Process) -> Result<()> {
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| Error::Config(format!("field process.oomScoreAdj {adj}: {e}")))?;
    }
    Ok(())
}
