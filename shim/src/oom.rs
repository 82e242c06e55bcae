//! TaskOOM: on cgroup v1 an eventfd registered for the container's
//! `memory.oom_control` (it also fires when the cgroup is removed, which ends
//! the watch); on cgroup v2 inotify on `memory.events`, reporting each rise of
//! its `oom_kill` count.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use containerd_shim::protos::events::task::TaskOOM;

use crate::error::{Context, Error, Result};
use crate::events::Publisher;
use crate::metrics::{is_cgroup_v2, v1_dirs, v2_dir};

/// Starts watching the memory cgroup of `pid` for OOM kills.
pub fn watch(pid: u32, container_id: &str, publisher: &Publisher) -> Result<()> {
    let oom = TaskOOM {
        container_id: container_id.to_string(),
        ..Default::default()
    };
    let publisher = publisher.clone();
    if is_cgroup_v2() {
        let dir = v2_dir(pid)?;
        let inotify = inotify_on(&dir.join("memory.events"))?;
        return spawn(move || watch_v2(inotify, dir, || publisher.publish(oom.clone())));
    }
    let dir = v1_dirs(pid)?
        .remove("memory")
        .ok_or_else(|| Error::not_found("no memory cgroup"))?;
    let efd = register_v1(&dir)?;
    spawn(move || watch_v1(efd, dir, || publisher.publish(oom.clone())))
}

fn spawn(f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name("oom".into())
        .stack_size(64 * 1024)
        .spawn(f)
        .context("spawn oom thread")?;
    Ok(())
}

fn register_v1(dir: &Path) -> Result<File> {
    // SAFETY: eventfd has no memory preconditions; the fd is owned right away.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(Error::from(std::io::Error::last_os_error()).context("eventfd"));
    }
    // SAFETY: efd is a fresh fd nobody else owns.
    let efd = unsafe { File::from_raw_fd(efd) };
    let control = File::open(dir.join("memory.oom_control")).context("open memory.oom_control")?;
    let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
    std::fs::write(dir.join("cgroup.event_control"), line).context("register oom eventfd")?;
    Ok(efd)
}

fn watch_v1(mut efd: File, dir: PathBuf, on_oom: impl Fn()) {
    let mut count = [0u8; 8];
    while efd.read_exact(&mut count).is_ok() {
        if !dir.join("memory.oom_control").exists() {
            return; // the cgroup was removed
        }
        on_oom();
    }
}

fn inotify_on(file: &Path) -> Result<OwnedFd> {
    // SAFETY: plain syscalls; the fd is owned right away.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(Error::from(std::io::Error::last_os_error()).context("inotify_init1"));
    }
    // SAFETY: inotify_init1 just returned this fd; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let path = std::ffi::CString::new(file.as_os_str().as_encoded_bytes())
        .map_err(|e| Error::invalid(e.to_string()))?;
    // SAFETY: path is a valid C string.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) } < 0 {
        return Err(Error::from(std::io::Error::last_os_error()).context("watch memory.events"));
    }
    Ok(fd)
}

fn oom_kills(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("memory.events")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

fn watch_v2(inotify: OwnedFd, dir: PathBuf, on_oom: impl Fn()) {
    let mut file = File::from(inotify);
    let mut seen = oom_kills(&dir).unwrap_or(0);
    let mut buf = [0u8; 4096];
    while file.read(&mut buf).map(|n| n > 0).unwrap_or(false) {
        let Some(now) = oom_kills(&dir) else { return }; // the cgroup was removed
        if now > seen {
            on_oom();
        }
        seen = now;
    }
}
