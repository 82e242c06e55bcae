//! Guards shared by the integration tests: every cgroup and process a test
//! creates is removed when the guard drops, also when an assertion fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_cgroups::{CgroupManager, LinuxResources};

/// A `sleep` child killed and reaped on drop.
pub struct Sleeper(pub Child);

impl Sleeper {
    pub fn spawn() -> Self {
        Sleeper(
            Command::new("sleep")
                .arg("1000")
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn sleep"),
        )
    }
    /// A `sleep` that joins `cgroup_dir` itself before exec, so the memory it
    /// touches from then on is charged there.
    pub fn spawn_in(cgroup_dir: &Path) -> Self {
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec sleep 1000",
            cgroup_dir.display()
        );
        Sleeper(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn sh"),
        )
    }

    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A cgroup manager whose cgroup is thawed, emptied and destroyed on drop.
pub struct CgGuard {
    pub m: Box<dyn CgroupManager>,
    /// Extra directories to remove after the manager's own (deepest first).
    pub extra: Vec<PathBuf>,
}

impl CgGuard {
    pub fn new(m: Box<dyn CgroupManager>) -> Self {
        CgGuard {
            m,
            extra: Vec::new(),
        }
    }
}

impl std::ops::Deref for CgGuard {
    type Target = dyn CgroupManager;
    fn deref(&self) -> &Self::Target {
        &*self.m
    }
}

impl Drop for CgGuard {
    fn drop(&mut self) {
        let _ = self.m.thaw();
        let _ = self.m.kill_all(libc::SIGKILL);
        let _ = wait_until(Duration::from_secs(5), || {
            self.m.pids().map(|p| p.is_empty()).unwrap_or(true)
        });
        // A memory cgroup whose last task was just killed can stay busy for a
        // moment (an OOM-killed task's teardown, above all under load): retry.
        let _ = wait_until(Duration::from_secs(10), || {
            self.m.destroy().is_ok() || !self.m.exists()
        });
        for d in &self.extra {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Poll `f` until it is true or `limit` passes; returns the last result.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
}

pub fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("resources {json}: {e}"))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A name unique to this test process and `tag`.
pub fn unique(tag: &str) -> String {
    format!("berth-test-{}-{tag}", std::process::id())
}

static SUBTREE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Disables `controller` again in `root`'s cgroup.subtree_control on drop if it
/// was not enabled before. Tests holding one run one at a time, so no other
/// test cgroup still uses the controller when it is disabled. Declare it before
/// the cgroup guards so that it drops after them.
pub struct RestoreSubtreeControl {
    restore: Option<(PathBuf, String)>,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl RestoreSubtreeControl {
    pub fn new(root: &Path, controller: &str) -> Self {
        let serial = SUBTREE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let enabled = std::fs::read_to_string(root.join("cgroup.subtree_control"))
            .map(|s| s.split_whitespace().any(|c| c == controller))
            .unwrap_or(true);
        RestoreSubtreeControl {
            restore: (!enabled).then(|| (root.to_path_buf(), controller.to_string())),
            _serial: serial,
        }
    }
}

impl Drop for RestoreSubtreeControl {
    fn drop(&mut self) {
        if let Some((root, c)) = &self.restore {
            let _ = std::fs::write(root.join("cgroup.subtree_control"), format!("-{c}"));
        }
    }
}
