//! cgroup v2 backend: one directory in the unified hierarchy.
//!
//! The root can be injected ([`crate::ManagerOptions::root`]); with a plain
//! directory as root, writes create the interface files, so every conversion
//! and file write is testable without a v2 kernel.

pub mod bpf;
pub(crate) mod cpu;
pub(crate) mod devices;
mod freezer;
pub(crate) mod hugetlb;
pub(crate) mod io;
pub(crate) mod memory;
pub(crate) mod unified;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::fs::{self, CgDir};
use crate::mountinfo::{CgroupMounts, OwnCgroups};
use crate::path::CgroupPath;
use crate::stats::Stats;
use crate::v1::pids;
use crate::{
    CgroupError, CgroupManager, FreezerState, LinuxResources, ManagerOptions, Mode, Result,
};

#[derive(Debug)]
pub struct V2Manager {
    mount: PathBuf,
    dir: PathBuf,
    /// The root is a plain directory standing in for cgroupfs.
    fake: bool,
    owned: AtomicUsize,
    max_owned: usize,
    /// The directory may already exist with the container's processes in it
    /// (systemd made it for the container's scope).
    adopt: bool,
}

impl V2Manager {
    pub(crate) fn new(path: &CgroupPath, opts: &ManagerOptions<'_>) -> Result<Self> {
        let (mount, dir, fake) = match &opts.root {
            // A real cgroup2 mount given as root (e.g. a hybrid host's unified
            // mount) is driven for real; any other directory is a fake tree.
            Some(root) => (
                root.clone(),
                path.dir_in(root, "/", Some("/")),
                !is_cgroup2(root),
            ),
            None => {
                let mounts = match opts.mounts {
                    Some(m) => m.clone(),
                    None => CgroupMounts::read()?,
                };
                let (mount, root) = mounts.v2.ok_or_else(|| {
                    CgroupError::Unsupported("no cgroup2 filesystem is mounted".into())
                })?;
                let own = match path {
                    CgroupPath::Relative(_) => OwnCgroups::read()?,
                    CgroupPath::Absolute(_) => OwnCgroups::default(),
                };
                let dir = path.dir_in(&mount, &root, own.path_of(None));
                (mount, dir, false)
            }
        };
        Ok(V2Manager {
            mount,
            dir,
            fake,
            owned: AtomicUsize::new(opts.owned_depth.unwrap_or(0)),
            max_owned: crate::path::max_owned_depth(opts.cgroups_path),
            adopt: false,
        })
    }

    /// A manager for a directory another party (systemd) creates and fills:
    /// apply accepts it as it is, and destroy removes only the leaf.
    pub(crate) fn adopting(mut self) -> Self {
        self.adopt = true;
        self.max_owned = 1;
        self
    }

    /// A manager for a cgroup2 directory that already exists, e.g. the one a
    /// running container is in ([`crate::manager_of_pid`]). It owns nothing
    /// (`owned_depth` 0) and never creates or removes anything above `dir`.
    pub fn existing(dir: &Path) -> Self {
        V2Manager {
            mount: dir.to_path_buf(),
            dir: dir.to_path_buf(),
            fake: false,
            owned: AtomicUsize::new(0),
            max_owned: 0,
            adopt: true,
        }
    }

    fn d(&self) -> CgDir<'_> {
        CgDir::new(&self.dir, self.fake)
    }

    /// The container's cgroup directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn create(&self) -> Result<Vec<PathBuf>> {
        let created = fs::mkdir_all(&self.dir, &self.mount)?;
        let result = (|| {
            if created.is_empty() && !self.adopt {
                fs::refuse_busy_cgroup(&self.dir)?;
            }
            let available = available_controllers(&self.mount);
            let names: Vec<&str> = available.iter().map(String::as_str).collect();
            enable_controllers(&self.mount, &self.dir, &names, self.fake)
        })();
        if let Err(e) = result {
            for d in created.iter().rev() {
                let _ = fs::remove_owned(d, 1, self.fake);
            }
            return Err(e);
        }
        Ok(created)
    }
}

fn is_cgroup2(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into a zeroed struct we own; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == libc::CGROUP2_SUPER_MAGIC
    }
}

/// Controllers the hierarchy offers (`cgroup.controllers` of its root).
pub(crate) fn available_controllers(mount: &Path) -> Vec<String> {
    std::fs::read_to_string(mount.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

pub(crate) fn controller_available(mount: &Path, name: &str) -> bool {
    available_controllers(mount).iter().any(|c| c == name)
}

/// Enable `controllers` in `cgroup.subtree_control` of every ancestor of `dir`
/// from the mount down, so that `dir` gets their interface files. If the
/// combined write is refused, each controller is tried alone and refusals are
/// left for the resource writes to report (runc does the same).
pub(crate) fn enable_controllers(
    mount: &Path,
    dir: &Path,
    controllers: &[&str],
    fake: bool,
) -> Result<()> {
    if controllers.is_empty() {
        return Ok(());
    }
    let mut ancestors: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|a| a.starts_with(mount))
        .collect();
    ancestors.reverse();
    let all = controllers
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    for a in ancestors {
        let d = CgDir::new(a, fake);
        if d.write_raw("cgroup.subtree_control", &all).is_err() {
            for c in controllers {
                let _ = d.write_raw("cgroup.subtree_control", &format!("+{c}"));
            }
        }
    }
    Ok(())
}

impl CgroupManager for V2Manager {
    fn apply(&self, pid: i32) -> Result<()> {
        let created = self.create()?;
        self.owned
            .fetch_max(created.len().min(self.max_owned), Ordering::Relaxed);
        if pid > 0 {
            self.add_task(pid)?;
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        self.d().write("cgroup.procs", pid, "cgroup.procs")
    }

    fn join_self(&self) -> Result<()> {
        self.d().write("cgroup.procs", 0, "cgroup.procs")
    }

    fn join_self_v1(&self) -> Result<()> {
        Ok(())
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        let d = self.d();
        if let Some(c) = r.cpu() {
            cpu::set(d, c)?;
        }
        if let Some(m) = r.memory() {
            memory::set(d, m)?;
        }
        if let Some(p) = r.pids() {
            pids::set(d, p)?;
        }
        if let Some(b) = r.block_io() {
            io::set(d, b)?;
        }
        if let Some(h) = r.hugepage_limits() {
            hugetlb::set(d, h)?;
        }
        if let Some(rdma) = r.rdma() {
            if !rdma.is_empty() {
                crate::shared::set_rdma(d, rdma)?;
            }
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(CgroupError::Unsupported(
                    "linux.resources.network (net_cls/net_prio) does not exist on cgroup v2".into(),
                ));
            }
        }
        if let Some(rules) = r.devices() {
            devices::set(d, rules)?;
        }
        if let Some(u) = r.unified() {
            unified::set(&self.mount, &self.dir, self.fake, u)?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<()> {
        freezer::set(self.d(), true)
    }

    fn thaw(&self) -> Result<()> {
        freezer::set(self.d(), false)
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        freezer::state(self.d())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        fs::procs_recursive(&self.dir, &mut out)?;
        Ok(out)
    }

    fn kill_all(&self, signal: i32) -> Result<()> {
        let d = self.d();
        if signal == libc::SIGKILL && d.has("cgroup.kill") {
            return d.write("cgroup.kill", 1, "cgroup.kill");
        }
        // An empty cgroup stays empty (only its members could fork into it).
        if self.pids()?.is_empty() {
            return Ok(());
        }
        let can_freeze = d.has("cgroup.freeze");
        let was_frozen = can_freeze && freezer::state(d)? == FreezerState::Frozen;
        if can_freeze {
            let _ = freezer::set(d, true);
        }
        let result = self.pids().and_then(|p| fs::signal_pids(&p, signal));
        if can_freeze && (!was_frozen || signal == libc::SIGKILL) {
            freezer::set(d, false)?;
        }
        result
    }

    fn destroy(&self) -> Result<()> {
        fs::remove_owned(
            &self.dir,
            self.owned.load(Ordering::Relaxed).max(1),
            self.fake,
        )
    }

    fn exists(&self) -> bool {
        self.dir.exists()
    }

    fn stats(&self) -> Result<Stats> {
        let d = self.d();
        let mut s = Stats::default();
        cpu::stats(d, &mut s)?;
        memory::stats(d, &mut s.memory)?;
        pids::stats(d, &mut s.pids)?;
        io::stats(d, &mut s.blkio)?;
        hugetlb::stats(d, &mut s.hugetlb)?;
        Ok(s)
    }

    fn paths(&self) -> BTreeMap<String, PathBuf> {
        BTreeMap::from([(String::new(), self.dir.clone())])
    }

    fn owned_depth(&self) -> usize {
        self.owned.load(Ordering::Relaxed)
    }

    fn mode(&self) -> Mode {
        Mode::Unified
    }

    fn oom_notifier(&self) -> Result<crate::oom::OomNotifier> {
        crate::oom::OomNotifier::v2(&self.dir)
    }
}
