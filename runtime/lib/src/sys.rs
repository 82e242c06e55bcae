//! Small system helpers: process facts from /proc, atomic files, time.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;

use crate::error::{Context, Result};

/// Start time of `pid` (field 22 of /proc/PID/stat, clock ticks since boot) and
/// whether it is a zombie/dead. `None` when the process does not exist.
pub fn proc_start_time(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state == "Z" || state == "X"))
}

/// Is `pid` alive and the same process that started at `start_time`?
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    matches!(proc_start_time(pid), Some((t, false)) if t == start_time)
}

/// Write `data` to `path` atomically: a temporary file in the same directory, then rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .ctx(|| format!("create {}", tmp.display()))?;
    f.write_all(data)
        .ctx(|| format!("write {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path)
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .ctx(|| format!("rename {} to {}", tmp.display(), path.display()))
}

/// RFC 3339 UTC timestamp with nanoseconds, as runc prints `created`.
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// `openat2(2)` flags.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// openat2(2): resolve `path` relative to `dirfd` with `resolve` restrictions.
pub fn openat2(
    dirfd: RawFd,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> std::result::Result<OwnedFd, Errno> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let dir = if dirfd == libc::AT_FDCWD {
        rustix::fs::CWD
    } else {
        // SAFETY: the caller passes an open fd that stays open for this call
        // (the callers keep it in an OwnedFd or a Root they hold). Kept a
        // RawFd parameter so that AT_FDCWD and borrowed fds pass alike.
        unsafe { BorrowedFd::borrow_raw(dirfd) }
    };
    let oflags = OFlags::from_bits_retain((flags | libc::O_CLOEXEC) as u32);
    let mode = Mode::from_bits_retain(mode);
    let resolve = ResolveFlags::from_bits_retain(resolve);
    loop {
        match rustix::fs::openat2(dir, path, oflags, mode, resolve) {
            Ok(fd) => return Ok(fd),
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
            Err(e) => return Err(Errno::from_raw(e.raw_os_error())),
        }
    }
}

/// An errno's message as Go (and so runc, and the clients matching runc's
/// errors) prints it: "permission denied", "operation not permitted".
pub fn errno_text(e: Errno) -> String {
    let text = e.desc();
    let mut c = text.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => text.to_string(),
    }
}

/// The /proc/self/fd path of an fd, used to mount onto or from an exact object.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Close every fd >= `from` (close_range(2); older kernels: walk /proc/self/fd).
/// Used at start-up on the fds a caller left open, so that none of them
/// reaches a container's init, hooks or exec'd processes (CVE-2024-21626 family).
pub fn close_from(from: u32) -> Result<()> {
    // SAFETY: plain syscall on integers; the caller owns no fd in the range yet.
    let r = unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0) };
    if r == 0 {
        return Ok(());
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .ctx(|| "read /proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .filter(|fd| *fd >= from as i32)
        .collect();
    for fd in fds {
        // SAFETY: closing inherited fds nothing in this process owns (the
        // read_dir handle above is closed already; closing its number is harmless).
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// [`close_from`]`(from)`, except the fd `keep` (an fd the caller passed on
/// purpose, such as checkpoint's `--status-fd`).
pub fn close_from_except(from: u32, keep: i32) -> Result<()> {
    if keep < from as i32 {
        return close_from(from);
    }
    if keep > from as i32 {
        // SAFETY: plain syscall on integers; nothing in this process owns an
        // fd in the range yet.
        unsafe { libc::syscall(libc::SYS_close_range, from, (keep - 1) as u32, 0) };
    }
    close_from(keep as u32 + 1)
}

/// Mark every fd >= `from` close-on-exec (close_range(2) with CLOSE_RANGE_CLOEXEC).
pub fn cloexec_from(from: u32) -> Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: plain syscall on integers.
    let r = unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return Ok(());
    }
    // Older kernels: walk /proc/self/fd.
    let dir = std::fs::read_dir("/proc/self/fd").ctx(|| "read /proc/self/fd")?;
    for e in dir.flatten() {
        if let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            if fd >= from as i32 {
                // SAFETY: setting a flag on an fd number; harmless if it is already closed.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn own_start_time() {
        let me = std::process::id() as i32;
        let (t, dead) = proc_start_time(me).unwrap();
        assert!(!dead);
        assert!(process_alive(me, t));
        assert!(!process_alive(me, t + 1));
        assert!(proc_start_time(i32::MAX).is_none());
    }
}

/// `clone3(2)` flag: start the child in the cgroup2 directory `cgroup` names.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2, Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// fork(2) whose child starts inside the cgroup2 directory `cgroup` (`clone3` with
/// `CLONE_INTO_CGROUP`). Moving a process in later through `cgroup.procs` takes the
/// kernel's global threadgroup lock for writing, which waits for an RCU grace period:
/// 10–20 ms on every container start on cgroup2 and on hybrid hosts.
///
/// `Ok(None)` when the kernel or the cgroup refuses (kernel before 5.7, clone3
/// filtered by a seccomp profile, a cgroup that may not hold processes): the caller
/// forks and migrates instead. nix has no clone3 wrapper, hence the raw syscall.
///
/// # Safety
/// As for fork(2) with a single-threaded caller: the child continues with a copy of
/// the parent's memory and must not rely on locks other threads could have held.
pub unsafe fn fork_into_cgroup(cgroup: BorrowedFd<'_>) -> Result<Option<nix::unistd::ForkResult>> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    let r = libc::syscall(
        libc::SYS_clone3,
        &args as *const CloneArgs,
        std::mem::size_of::<CloneArgs>(),
    );
    match r {
        0 => Ok(Some(nix::unistd::ForkResult::Child)),
        pid if pid > 0 => Ok(Some(nix::unistd::ForkResult::Parent {
            child: nix::unistd::Pid::from_raw(pid as i32),
        })),
        _ => {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ENOMEM) => {
                    Err(e).ctx(|| "fork container init".to_string())
                }
                _ => Ok(None),
            }
        }
    }
}
