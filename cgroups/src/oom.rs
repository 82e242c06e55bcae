//! OOM notification.
//!
//! * v1: an eventfd registered for `memory.oom_control` through
//!   `cgroup.event_control`; the kernel signals it on every OOM in the cgroup.
//! * v2: inotify on `memory.events`; an event counts when its `oom_kill`
//!   counter grew.
//!
//! [`OomNotifier::as_raw_fd`] becomes readable when something may have
//! happened, so the notifier fits an existing poll loop; [`OomNotifier::wait`]
//! is the blocking form, [`OomNotifier::wait_event`] also tells when the
//! cgroup was removed (the watch then ends).

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::fs::{io_err, keyed, CgDir};
use crate::{CgroupError, Result};

#[derive(Debug)]
enum Kind {
    V1 {
        eventfd: OwnedFd,
        _control: std::fs::File,
        control_path: PathBuf,
    },
    V2 {
        inotify: OwnedFd,
        events: PathBuf,
        last_oom_kill: u64,
    },
}

#[derive(Debug)]
pub struct OomNotifier(Kind);

/// Why [`OomNotifier::wait_event`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomWakeup {
    /// A task in the cgroup was OOM-killed (v2) or the cgroup hit OOM (v1).
    Oom,
    /// The timeout passed first.
    TimedOut,
    /// The cgroup is gone: no OOM can follow.
    CgroupRemoved,
}

fn last_os_error(what: &str, path: &Path) -> CgroupError {
    io_err(
        path,
        std::io::Error::other(format!("{what}: {}", std::io::Error::last_os_error())),
    )
}

fn oom_kills(events: &Path) -> Result<u64> {
    let dir = events.parent().unwrap_or(Path::new("/"));
    Ok(keyed(
        &CgDir::new(dir, false).read_keyed("memory.events")?,
        "oom_kill",
    ))
}

impl OomNotifier {
    /// Watch the v1 memory cgroup `dir`.
    pub fn v1(dir: &Path) -> Result<Self> {
        let control_path = dir.join("memory.oom_control");
        let control = std::fs::File::open(&control_path).map_err(|e| io_err(&control_path, e))?;
        // SAFETY: eventfd has no memory-safety preconditions.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(last_os_error("eventfd", dir));
        }
        // SAFETY: efd is a new descriptor owned by nobody else.
        let eventfd = unsafe { OwnedFd::from_raw_fd(efd) };
        let line = format!("{} {}", eventfd.as_raw_fd(), control.as_raw_fd());
        CgDir::new(dir, false).write("cgroup.event_control", line, "OOM notification")?;
        Ok(OomNotifier(Kind::V1 {
            eventfd,
            _control: control,
            control_path,
        }))
    }

    /// Watch the v2 cgroup `dir` (its `memory.events`).
    pub fn v2(dir: &Path) -> Result<Self> {
        let events = dir.join("memory.events");
        let last_oom_kill = oom_kills(&events)?;
        // SAFETY: inotify_init1 has no memory-safety preconditions.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(last_os_error("inotify_init1", dir));
        }
        // SAFETY: fd is a new descriptor owned by nobody else.
        let inotify = unsafe { OwnedFd::from_raw_fd(fd) };
        let c = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
            .map_err(|_| CgroupError::Invalid(format!("bad path {}", events.display())))?;
        // SAFETY: the path is NUL-terminated and the descriptor valid.
        if unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) } < 0
        {
            return Err(last_os_error("inotify_add_watch", &events));
        }
        Ok(OomNotifier(Kind::V2 {
            inotify,
            events,
            last_oom_kill,
        }))
    }

    /// Readable when an OOM may have happened.
    pub fn as_raw_fd(&self) -> RawFd {
        match &self.0 {
            Kind::V1 { eventfd, .. } => eventfd.as_raw_fd(),
            Kind::V2 { inotify, .. } => inotify.as_raw_fd(),
        }
    }

    /// Wait up to `timeout` (forever with `None`) for an OOM; true if one happened.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<bool> {
        Ok(self.wait_event(timeout)? == OomWakeup::Oom)
    }

    /// Wait up to `timeout` (forever with `None`) for an OOM or the removal
    /// of the cgroup.
    pub fn wait_event(&mut self, timeout: Option<Duration>) -> Result<OomWakeup> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let ms = match deadline {
                None => -1,
                Some(d) => d
                    .saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(i32::MAX as u128) as i32,
            };
            let mut pfd = libc::pollfd {
                fd: self.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: pfd is a valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(CgroupError::Invalid(format!("poll for OOM events: {e}")));
            }
            if n > 0 {
                if let Some(wakeup) = self.consume()? {
                    return Ok(wakeup);
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(OomWakeup::TimedOut);
            }
        }
    }

    /// Drain the descriptor; what it reported, if anything.
    fn consume(&mut self) -> Result<Option<OomWakeup>> {
        match &mut self.0 {
            Kind::V1 {
                eventfd,
                control_path,
                ..
            } => {
                let mut buf = [0u8; 8];
                let mut f =
                    std::fs::File::from(eventfd.try_clone().map_err(|e| io_err("eventfd", e))?);
                f.read_exact(&mut buf).map_err(|e| io_err("eventfd", e))?;
                // The kernel also signals the eventfd when the cgroup is removed.
                if !control_path.exists() {
                    return Ok(Some(OomWakeup::CgroupRemoved));
                }
                Ok((u64::from_ne_bytes(buf) > 0).then_some(OomWakeup::Oom))
            }
            Kind::V2 {
                inotify,
                events,
                last_oom_kill,
            } => {
                let mut buf = [0u8; 4096];
                // SAFETY: buf is writable for its length; the fd is non-blocking.
                while unsafe { libc::read(inotify.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
                    > 0
                {}
                if !events.exists() {
                    return Ok(Some(OomWakeup::CgroupRemoved));
                }
                let now = oom_kills(events)?;
                let grew = now > *last_oom_kill;
                *last_oom_kill = now;
                Ok(grew.then_some(OomWakeup::Oom))
            }
        }
    }
}
