//! Reaps and routes child exits. The shim is a subreaper, so container
//! processes whose parent (`berth`) exits become its children too. One thread
//! waits for SIGCHLD (signal-hook's self-pipe, read by this thread for the
//! process's life), reaps every exited child and hands each exit to the process
//! that registered the pid, or keeps it as *unclaimed* for a short while: a
//! `berth` command waiting for its own exit, or a container process whose pid
//! was not yet known when it exited (`berth exec --detach` returns after the
//! process may already be gone).
//!
//! The thread never takes a lock other than the reaper's own, so a request
//! handler that waits for a `berth` command can hold its process locks.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::SIGCHLD;
use signal_hook::iterator::Signals;

/// Unclaimed exits older than this are dropped (a `berth` command or a
/// registration claims theirs within milliseconds).
const UNCLAIMED_TTL: Duration = Duration::from_secs(60);

/// Told once when its process exits.
pub trait ExitObserver: Send + Sync {
    fn exited(&self, status: i32);
}

#[derive(Default)]
struct Table {
    observers: HashMap<i32, Arc<dyn ExitObserver>>,
    unclaimed: HashMap<i32, (i32, Instant)>,
}

pub struct Reaper {
    table: Mutex<Table>,
    changed: Condvar,
}

static REAPER: LazyLock<Reaper> = LazyLock::new(|| {
    let mut signals = Signals::new([SIGCHLD]).expect("register SIGCHLD");
    std::thread::Builder::new()
        .name("reaper".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            // A child that exited before the handler existed is reaped too:
            // the first pass runs without waiting for a signal.
            reap_all();
            for _ in signals.forever() {
                reap_all();
            }
        })
        .expect("spawn reaper thread");
    Reaper {
        table: Mutex::new(Table::default()),
        changed: Condvar::new(),
    }
});

/// Reaps every child that has exited and dispatches its status (the exit
/// code, or 128 + the signal that killed it).
fn reap_all() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => REAPER.dispatch(pid.as_raw(), code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                REAPER.dispatch(pid.as_raw(), 128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                log::warn!("waitpid: {e}");
                return;
            }
        }
    }
}

impl Reaper {
    /// The process-wide reaper; the first call starts reaping, so it must
    /// happen before the first child is spawned.
    pub fn get() -> &'static Reaper {
        &REAPER
    }

    fn dispatch(&self, pid: i32, status: i32) {
        let observer = {
            let mut t = self.table.lock().unwrap();
            match t.observers.remove(&pid) {
                Some(o) => Some(o),
                None => {
                    let now = Instant::now();
                    t.unclaimed
                        .retain(|_, (_, at)| now.duration_since(*at) < UNCLAIMED_TTL);
                    t.unclaimed.insert(pid, (status, now));
                    self.changed.notify_all();
                    None
                }
            }
        };
        if let Some(o) = observer {
            o.exited(status);
        }
    }

    /// Registers `observer` for `pid`. Returns the status instead when the pid
    /// already exited (the observer is then not called).
    pub fn watch(&self, pid: i32, observer: Arc<dyn ExitObserver>) -> Option<i32> {
        let mut t = self.table.lock().unwrap();
        if let Some((status, _)) = t.unclaimed.remove(&pid) {
            return Some(status);
        }
        t.observers.insert(pid, observer);
        None
    }

    /// Stops watching `pid`; its exit, if it comes, is dropped.
    pub fn forget(&self, pid: i32) {
        let mut t = self.table.lock().unwrap();
        t.observers.remove(&pid);
        t.unclaimed.remove(&pid);
    }

    /// Blocks until the (unwatched) child `pid` exits and returns its status.
    pub fn wait(&self, pid: i32) -> i32 {
        let mut t = self.table.lock().unwrap();
        loop {
            if let Some((status, _)) = t.unclaimed.remove(&pid) {
                return status;
            }
            t = self.changed.wait(t).unwrap();
        }
    }
}
