//! Routes child exits. `containerd-shim` reaps every child (the shim is a
//! subreaper) and publishes `(pid, status)` on its monitor; one dispatcher
//! thread here hands each exit to the process that registered the pid, or keeps
//! it as *unclaimed* for a short while: a `berth` command waiting for its own
//! exit, or a container process whose pid was not yet known when it exited
//! (`berth exec --detach` returns after the process may already be gone).
//!
//! The dispatcher never takes a lock other than the reaper's own, so a request
//! handler that waits for a `berth` command can hold its process locks.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use containerd_shim::monitor::{monitor_subscribe, Subject, Topic};

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
    let subscription = monitor_subscribe(Topic::All).expect("subscribe to child exits");
    std::thread::Builder::new()
        .name("reaper".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            for event in subscription.rx.iter() {
                if let Subject::Pid(pid) = event.subject {
                    REAPER.dispatch(pid, event.exit_code);
                }
            }
        })
        .expect("spawn reaper thread");
    Reaper {
        table: Mutex::new(Table::default()),
        changed: Condvar::new(),
    }
});

impl Reaper {
    /// The process-wide reaper; the first call subscribes to exits, so it must
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
