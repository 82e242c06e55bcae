//! `process.terminal`: a pty made inside the container's devpts, its master sent
//! to the `--console-socket` with SCM_RIGHTS, its slave as the process's stdio.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Context, Error, Result};
use crate::rootfs::paths::{Kind, Root};
use crate::sys::fd_path;

const TIOCGPTPEER: libc::c_ulong = 0x5441;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Open a new pty from the container's /dev/pts/ptmx (resolved inside the rootfs).
pub fn open_in_root(root: &Root) -> Result<Pty> {
    let master = root
        .open_file(Path::new("/dev/pts/ptmx"), libc::O_RDWR | libc::O_NOCTTY)
        .or_else(|_| root.open_file(Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY))
        .map_err(|e| Error::Other(format!("open the container's /dev/pts/ptmx for the terminal: {e} (is devpts mounted at /dev/pts?)")))?;
    let unlock: libc::c_int = 0;
    // SAFETY: ioctls on an fd we own with correctly typed arguments.
    unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "unlock pty");
        }
        // TIOCGPTPEER opens the slave through the master, without any path lookup.
        let s = libc::ioctl(
            master.as_raw_fd(),
            TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if s < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "open pty peer");
        }
        Ok(Pty {
            master,
            slave: OwnedFd::from_raw_fd(s),
        })
    }
}

pub fn set_size(fd: RawFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid winsize pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "set console size");
    }
    Ok(())
}

/// Bind the pty slave onto /dev/console inside the rootfs.
///
/// The source is the slave fd itself (opened through the master, never by a
/// /dev/pts path), checked to be a devpts pty; the target must be a plain file
/// or character device named /dev/console, never a symlink, so neither end of
/// the bind can be redirected to, say, a procfs file (CVE-2025-52565).
pub fn mount_console(root: &Root, pty: &Pty) -> Result<()> {
    check_pty(pty)?;
    let dev = root.mkdir_all(Path::new("/dev"), 0o755)?;
    let target = match crate::sys::openat2(
        dev.as_raw_fd(),
        Path::new("console"),
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH,
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => {
            drop(root.ensure(Path::new("/dev/console"), Kind::File)?);
            crate::sys::openat2(
                dev.as_raw_fd(),
                Path::new("console"),
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
                RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH,
            )
            .ctx(|| "open the new /dev/console")?
        }
        Err(e) => return Err(std::io::Error::from(e)).ctx(|| "open /dev/console"),
    };
    let st = crate::rootfs::paths::fstat(&target).ctx(|| "stat /dev/console")?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG | libc::S_IFCHR => {}
        libc::S_IFLNK => {
            return Err(Error::Path {
                path: "/dev/console".into(),
                msg: "is a symlink in the rootfs; refusing to mount the console over it".into(),
            })
        }
        _ => return Err(Error::Path {
            path: "/dev/console".into(),
            msg: "is neither a file nor a character device; refusing to mount the console over it"
                .into(),
        }),
    }
    nix::mount::mount(
        Some(fd_path(&pty.slave).as_str()),
        fd_path(&target).as_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| "bind pty onto /dev/console")
}

/// The pty must be a real one: the master a devpts `ptmx`, the slave a devpts
/// pty (a rootfs can ship any file at /dev/pts/ptmx or /dev/ptmx).
fn check_pty(pty: &Pty) -> Result<()> {
    const DEVPTS_SUPER_MAGIC: libc::c_long = 0x1cd1;
    let on_devpts = |fd: &OwnedFd| {
        let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
        // SAFETY: valid fd and a buffer of the right type.
        unsafe {
            libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) == 0
                && st.assume_init().f_type == DEVPTS_SUPER_MAGIC
        }
    };
    let st = crate::rootfs::paths::fstat(&pty.slave).ctx(|| "stat the pty")?;
    let major = libc::major(st.st_rdev);
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || !(136..=143).contains(&major)
        || !on_devpts(&pty.slave)
    {
        return Err(Error::Other(
            "the container's /dev/pts/ptmx did not give a devpts pseudo-terminal".into(),
        ));
    }
    Ok(())
}

/// Send the master fd over the console socket, as runc does (payload: the name).
pub fn send_master(socket: RawFd, master: &OwnedFd) -> Result<()> {
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let name = b"/dev/ptmx";
    let iov = [IoSlice::new(name)];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::empty(), None)
        .ctx(|| "send pty master to the console socket")?;
    Ok(())
}

/// Connect to the `--console-socket` path.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .ctx(|| format!("connect to console socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

/// Make the slave the controlling terminal and the stdio of this process.
pub fn make_controlling(slave: &OwnedFd) -> Result<()> {
    // SAFETY: plain syscalls on fds we own.
    unsafe {
        for fd in 0..3 {
            if libc::dup2(slave.as_raw_fd(), fd) < 0 {
                return Err(std::io::Error::last_os_error()).ctx(|| "dup pty onto stdio");
            }
        }
        if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "set controlling terminal");
        }
    }
    Ok(())
}

/// Clear ONLCR on a pty: Linux ptys start with it set, which turns every "\n"
/// the container writes into "\r\n" on its way through a relay (runc clears
/// it on the terminals it relays as well).
pub fn clear_onlcr(fd: std::os::fd::BorrowedFd<'_>) -> Result<()> {
    let mut t = nix::sys::termios::tcgetattr(fd).ctx(|| "tcgetattr on the pty")?;
    t.output_flags.remove(nix::sys::termios::OutputFlags::ONLCR);
    nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &t)
        .ctx(|| "tcsetattr on the pty")
}

/// Give the pty to the process user, keeping its group (tty, from devpts'
/// `gid=` option): the terminal becomes the process's stdio only after it
/// has dropped root.
pub fn give_to(pty: &Pty, uid: u32) -> Result<()> {
    nix::unistd::fchown(&pty.slave, Some(nix::unistd::Uid::from_raw(uid)), None)
        .ctx(|| format!("give the pty to uid {uid}"))
}
