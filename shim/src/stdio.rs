//! A process's stdio: containerd names FIFOs (any may be empty); the shim
//! gives the process pipes (or a pty, received over a console socket) and
//! copies between those and the FIFOs in small threads, as containerd's runc
//! shim does. The shim's end of the stdin pipe is what CloseIO closes.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio as ChildEnd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::fcntl::OFlag;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::berth::ChildStdio;
use crate::error::{Context, Error, Result};

const COPY_THREAD_STACK: usize = 64 * 1024;

/// The FIFO paths of a process as containerd sent them.
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// The shim's ends of a process's stdio while `berth create/exec` runs.
pub enum PendingIo {
    Pipes {
        stdin: Option<File>,
        stdout: Option<File>,
        stderr: Option<File>,
    },
    Console(ConsoleSocket),
}

impl PendingIo {
    /// Pipes (or a console socket for a terminal) for a process about to be
    /// launched, and the ends that `berth` hands to it.
    pub fn prepare(paths: &StdioPaths) -> Result<(PendingIo, ChildStdio)> {
        if paths.terminal {
            return Ok((
                PendingIo::Console(ConsoleSocket::new()?),
                ChildStdio::null(),
            ));
        }
        let mut child = ChildStdio::null();
        let stdin = match paths.stdin.is_empty() {
            true => None,
            false => {
                let (r, w) = pipe()?;
                child.stdin = ChildEnd::from(r);
                Some(File::from(w))
            }
        };
        let out = |path: &str, end: &mut ChildEnd| -> Result<Option<File>> {
            if path.is_empty() {
                return Ok(None);
            }
            let (r, w) = pipe()?;
            *end = ChildEnd::from(w);
            Ok(Some(File::from(r)))
        };
        let stdout = out(&paths.stdout, &mut child.stdout)?;
        let stderr = out(&paths.stderr, &mut child.stderr)?;
        Ok((
            PendingIo::Pipes {
                stdin,
                stdout,
                stderr,
            },
            child,
        ))
    }

    /// A failed launch whose error says no more than its status gets what the
    /// runtime wrote to the process's stderr (its own error message).
    pub fn explain(&self, e: Error) -> Error {
        let PendingIo::Pipes {
            stderr: Some(r), ..
        } = self
        else {
            return e;
        };
        if !e.to_string().contains("exit status") {
            return e;
        }
        let mut buf = [0u8; 4096];
        let flags = libc::O_NONBLOCK;
        // SAFETY: F_SETFL on an fd we own.
        unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, flags) };
        let n = (&*r).read(&mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        match text.trim() {
            "" => e,
            t => Error::other(format!("{e}: {t}")),
        }
    }

    pub fn console_socket(&self) -> Option<&Path> {
        match self {
            PendingIo::Console(s) => Some(&s.path),
            PendingIo::Pipes { .. } => None,
        }
    }

    /// After a successful launch: start copying. For a terminal this receives
    /// the pty master the runtime sent to the console socket.
    pub fn start(self, paths: &StdioPaths) -> Result<ProcessIo> {
        match self {
            PendingIo::Pipes {
                stdin,
                stdout,
                stderr,
            } => {
                let stdin = stdin.map(|w| Arc::new(Mutex::new(Some(w))));
                if let Some(w) = &stdin {
                    let sink = StdinSink::Pipe(w.clone());
                    spawn_copy(copy_in(paths.stdin.clone(), sink));
                }
                if let Some(r) = stdout {
                    spawn_copy(copy_out(r, paths.stdout.clone()));
                }
                if let Some(r) = stderr {
                    spawn_copy(copy_out(r, paths.stderr.clone()));
                }
                Ok(ProcessIo {
                    stdin,
                    console: None,
                    paths: paths.clone(),
                })
            }
            PendingIo::Console(socket) => {
                let master = Arc::new(socket.receive_master()?);
                if !paths.stdin.is_empty() {
                    spawn_copy(copy_in(
                        paths.stdin.clone(),
                        StdinSink::Console(master.clone()),
                    ));
                }
                if !paths.stdout.is_empty() {
                    spawn_copy(copy_out(
                        ConsoleReader(master.clone()),
                        paths.stdout.clone(),
                    ));
                }
                Ok(ProcessIo {
                    stdin: None,
                    console: Some(master),
                    paths: paths.clone(),
                })
            }
        }
    }
}

/// The live stdio of a launched process.
pub struct ProcessIo {
    stdin: Option<Arc<Mutex<Option<File>>>>,
    console: Option<Arc<File>>,
    paths: StdioPaths,
}

impl ProcessIo {
    /// CloseIO: the process reads EOF once its stdin pipe has no writer left.
    pub fn close_stdin(&self) {
        if let Some(w) = &self.stdin {
            w.lock().unwrap().take();
        }
    }

    /// Sets the pty's window size (a no-op without a terminal).
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let Some(master) = &self.console else {
            return Ok(());
        };
        let ws = libc::winsize {
            ws_row: height as u16,
            ws_col: width as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if rc < 0 {
            return Err(Error::from(io::Error::last_os_error()).context("resize pty"));
        }
        Ok(())
    }

    /// The process is being deleted: lets a stdin copier still blocked opening
    /// its FIFO (no client ever connected) see EOF and end.
    pub fn release(&self) {
        self.close_stdin();
        if !self.paths.stdin.is_empty() {
            let _ = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.paths.stdin);
        }
    }
}

enum StdinSink {
    Pipe(Arc<Mutex<Option<File>>>),
    Console(Arc<File>),
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe")
}

fn spawn_copy(f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new()
        .name("io".into())
        .stack_size(COPY_THREAD_STACK)
        .spawn(f)
    {
        log::error!("spawn io thread: {e}");
    }
}

/// Copies a FIFO (blocking open: waits for containerd's writer) into the
/// process's stdin until EOF, then closes the process's stdin.
fn copy_in(fifo: String, sink: StdinSink) -> impl FnOnce() + Send + 'static {
    move || {
        let Ok(mut src) = File::open(&fifo) else {
            return;
        };
        let mut buf = [0u8; 8192];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let written = match &sink {
                StdinSink::Pipe(w) => match w.lock().unwrap().as_mut() {
                    Some(w) => w.write_all(&buf[..n]).is_ok(),
                    None => false,
                },
                StdinSink::Console(m) => (&**m).write_all(&buf[..n]).is_ok(),
            };
            if !written {
                break;
            }
        }
        if let StdinSink::Pipe(w) = sink {
            w.lock().unwrap().take();
        }
    }
}

/// Copies the process's output into a FIFO until the process side closes.
/// The FIFO is opened read-write, as the runc shim keeps a reader too: the open
/// never blocks and a client that went away does not make the process's writes
/// fail; closing it at EOF gives the client its EOF.
fn copy_out(mut src: impl Read + Send + 'static, fifo: String) -> impl FnOnce() + Send + 'static {
    move || {
        let Ok(mut dst) = OpenOptions::new().read(true).write(true).open(&fifo) else {
            return;
        };
        let _ = io::copy(&mut src, &mut dst);
    }
}

/// Reads a shared pty master; EIO (the slave side closed) ends the copy.
struct ConsoleReader(Arc<File>);

impl Read for ConsoleReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (&*self.0).read(buf) {
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(0),
            r => r,
        }
    }
}

/// A listening unix socket in the temp dir for `--console-socket`.
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    fn new() -> Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "berth-shim-pty-{}-{}.sock",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).context("console socket")?;
        Ok(ConsoleSocket { listener, path })
    }

    /// The runtime connected and sent the master (SCM_RIGHTS) before it
    /// exited, so the connection is already queued.
    fn receive_master(&self) -> Result<File> {
        self.listener.set_nonblocking(true)?;
        let (stream, _) = self.listener.accept().map_err(|e| {
            Error::other(format!(
                "the runtime sent no pty master to the console socket: {e}"
            ))
        })?;
        stream.set_nonblocking(false)?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("receive pty master")?;
        for cmsg in msg.cmsgs().context("receive pty master")? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just installed this fd for us.
                    return Ok(unsafe { File::from_raw_fd(fd) });
                }
            }
        }
        Err(Error::other(
            "console socket message carried no file descriptor",
        ))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
