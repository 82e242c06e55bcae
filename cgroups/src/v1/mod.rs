//! cgroup v1 backend: one directory per mounted hierarchy (plus, in hybrid mode,
//! one in the v2 mount, as runc does).

mod blkio;
mod cpu;
mod cpuset;
mod devices;
mod freezer;
mod hugetlb;
mod memory;
mod net;
pub(crate) mod pids;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::fs::{self, CgDir};
use crate::mountinfo::{CgroupMounts, OwnCgroups};
use crate::path::CgroupPath;
use crate::stats::Stats;
use crate::{
    CgroupError, CgroupManager, FreezerState, LinuxResources, ManagerOptions, Mode, Result,
};

#[derive(Debug)]
struct Hierarchy {
    controllers: Vec<String>,
    mount: PathBuf,
    dir: PathBuf,
    /// Joined at apply (otherwise only when `set` needs it).
    selected: bool,
}

/// Controllers a container always joins: accounting, pause and device control.
const ALWAYS: &[&str] = &["cpu", "cpuacct", "memory", "devices", "freezer", "pids"];

/// Controllers that `r` asks something of, besides [`ALWAYS`].
fn wanted_by(r: &LinuxResources) -> Vec<&'static str> {
    let mut out = Vec::new();
    if r.cpu()
        .as_ref()
        .is_some_and(|c| c.cpus().is_some() || c.mems().is_some())
    {
        out.push("cpuset");
    }
    if r.block_io().is_some() {
        out.push("blkio");
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        out.push("hugetlb");
    }
    if let Some(n) = r.network() {
        if n.class_id().is_some() {
            out.push("net_cls");
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            out.push("net_prio");
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        out.push("rdma");
    }
    out
}

#[derive(Debug)]
pub struct V1Manager {
    hierarchies: Vec<Hierarchy>,
    /// Hybrid hosts: (v2 mount point, directory in it).
    unified: Option<(PathBuf, PathBuf)>,
    mode: Mode,
    owned: AtomicUsize,
    max_owned: usize,
    /// The directories may already exist with the container's processes in
    /// them (systemd made them for the container's scope).
    adopt: bool,
}

impl V1Manager {
    pub(crate) fn new(path: &CgroupPath, opts: &ManagerOptions<'_>) -> Result<Self> {
        let mounts = match opts.mounts {
            Some(m) => m.clone(),
            None => CgroupMounts::read()?,
        };
        if mounts.v1.is_empty() {
            return Err(CgroupError::Unsupported(
                "no cgroup v1 hierarchy is mounted".into(),
            ));
        }
        let own = match path {
            CgroupPath::Relative(_) => OwnCgroups::read()?,
            CgroupPath::Absolute(_) => OwnCgroups::default(),
        };
        let wanted = opts.resources.map(wanted_by);
        let hierarchies = mounts
            .v1
            .iter()
            .map(|m| Hierarchy {
                dir: path.dir_in(
                    &m.mount_point,
                    &m.root,
                    own.path_of(Some(&m.controllers[0])),
                ),
                selected: match &wanted {
                    None => true,
                    Some(w) => m
                        .controllers
                        .iter()
                        .any(|c| ALWAYS.contains(&c.as_str()) || w.contains(&c.as_str())),
                },
                controllers: m.controllers.clone(),
                mount: m.mount_point.clone(),
            })
            .collect();
        let unified = match opts.mode {
            Mode::Hybrid => mounts
                .v2
                .as_ref()
                .map(|(mp, root)| (mp.clone(), path.dir_in(mp, root, own.path_of(None)))),
            _ => None,
        };
        Ok(V1Manager {
            hierarchies,
            unified,
            mode: opts.mode,
            owned: AtomicUsize::new(opts.owned_depth.unwrap_or(0)),
            max_owned: crate::path::max_owned_depth(opts.cgroups_path),
            adopt: false,
        })
    }

    /// A manager for hierarchy directories that already exist, e.g. those a
    /// running container is in ([`crate::manager_of_pid`]): `(controllers,
    /// directory)` per hierarchy, `""` as the only controller for a hybrid
    /// host's cgroup2 directory. It owns none of them (`owned_depth` 0) and
    /// never creates or removes anything above them.
    pub fn existing(dirs: impl IntoIterator<Item = (Vec<String>, PathBuf)>) -> Self {
        let mut hierarchies = Vec::new();
        let mut unified = None;
        for (controllers, dir) in dirs {
            if controllers.iter().all(|c| c.is_empty()) {
                unified = Some((dir.clone(), dir));
                continue;
            }
            hierarchies.push(Hierarchy {
                controllers,
                mount: dir.clone(),
                dir,
                selected: true,
            });
        }
        V1Manager {
            mode: if unified.is_some() {
                Mode::Hybrid
            } else {
                Mode::Legacy
            },
            hierarchies,
            unified,
            owned: AtomicUsize::new(0),
            max_owned: 0,
            adopt: true,
        }
    }

    /// A manager for directories another party (systemd) creates and fills:
    /// apply accepts them as they are, and destroy removes only the leaf.
    pub(crate) fn adopting(mut self) -> Self {
        self.adopt = true;
        self.max_owned = 1;
        self
    }

    /// The directory of `controller` if the cgroup has (or will have at apply) one.
    fn dir(&self, controller: &str) -> Option<CgDir<'_>> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .filter(|h| h.selected || h.dir.exists())
            .map(|h| CgDir::new(&h.dir, false))
    }

    /// The directory of `controller`, or an error naming the OCI field that needs it.
    /// A hierarchy not joined at apply is joined now by the cgroup's processes.
    fn need(&self, controller: &str, field: &str) -> Result<CgDir<'_>> {
        let h = self
            .hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller));
        let h = h.ok_or_else(|| {
            CgroupError::Unsupported(format!(
                "{field} needs the {controller} cgroup controller, which is not mounted on this host"
            ))
        })?;
        if !h.selected && !h.dir.exists() {
            self.join_late(h)?;
        }
        Ok(CgDir::new(&h.dir, false))
    }

    fn join_late(&self, h: &Hierarchy) -> Result<()> {
        let pids = self.pids()?;
        let created = fs::mkdir_all(&h.dir, &h.mount)?;
        self.owned
            .fetch_max(created.len().min(self.max_owned), Ordering::Relaxed);
        if h.controllers.iter().any(|c| c == "cpuset") {
            cpuset::inherit(&h.dir, &h.mount)?;
        }
        let d = CgDir::new(&h.dir, false);
        for pid in pids {
            match d.write_raw("cgroup.procs", &pid.to_string()) {
                Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                    return Err(CgroupError::Write {
                        resource: "cgroup.procs".into(),
                        path: d.file("cgroup.procs"),
                        value: pid.to_string(),
                        source: e,
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn mount_of(&self, dir: &Path) -> &Path {
        self.hierarchies
            .iter()
            .find(|h| h.dir == dir)
            .map_or(Path::new("/"), |h| h.mount.as_path())
    }

    /// Every directory with the mount it lives in: v1 hierarchies, then the v2 one.
    fn all_dirs(&self) -> impl Iterator<Item = (&Path, &Path)> {
        self.hierarchies
            .iter()
            .map(|h| (h.dir.as_path(), h.mount.as_path()))
            .chain(self.unified.iter().map(|(m, d)| (d.as_path(), m.as_path())))
    }

    /// The directories joined at apply.
    fn selected_dirs(&self) -> impl Iterator<Item = (&Path, &Path)> {
        self.hierarchies
            .iter()
            .filter(|h| h.selected)
            .map(|h| (h.dir.as_path(), h.mount.as_path()))
            .chain(self.unified.iter().map(|(m, d)| (d.as_path(), m.as_path())))
    }

    /// The directory used to list processes.
    fn procs_dir(&self) -> &Path {
        let pick = ["pids", "freezer", "memory"]
            .iter()
            .find_map(|c| self.dir(c));
        pick.map(|d| d.path).unwrap_or(&self.hierarchies[0].dir)
    }

    fn create_dirs(&self, created: &mut Vec<Vec<PathBuf>>) -> Result<()> {
        for (dir, mount) in self.selected_dirs() {
            let made = fs::mkdir_all(dir, mount)?;
            let existed = made.is_empty();
            created.push(made);
            if existed && !self.adopt {
                fs::refuse_busy_cgroup(dir)?;
            }
        }
        if let Some(h) = self
            .hierarchies
            .iter()
            .find(|h| h.selected && h.controllers.iter().any(|c| c == "cpuset"))
        {
            cpuset::inherit(&h.dir, &h.mount)?;
        }
        Ok(())
    }
}

impl CgroupManager for V1Manager {
    fn apply(&self, pid: i32) -> Result<()> {
        let mut created = Vec::new();
        if let Err(e) = self.create_dirs(&mut created) {
            for dir in created.iter().flat_map(|c| c.iter().rev()) {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(e);
        }
        let depth = created
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .min(self.max_owned);
        self.owned.fetch_max(depth, Ordering::Relaxed);
        if pid > 0 {
            self.add_task(pid)?;
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        let late = self
            .hierarchies
            .iter()
            .filter(|h| !h.selected && h.dir.exists())
            .map(|h| (h.dir.as_path(), h.mount.as_path()));
        for (dir, _) in self.selected_dirs().chain(late) {
            CgDir::new(dir, false).write("cgroup.procs", pid, "cgroup.procs")?;
        }
        Ok(())
    }

    fn join_self(&self) -> Result<()> {
        self.join_self_v1()?;
        if let Some((_, dir)) = &self.unified {
            CgDir::new(dir, false).write("cgroup.procs", 0, "cgroup.procs")?;
        }
        Ok(())
    }

    fn join_self_v1(&self) -> Result<()> {
        let late = self
            .hierarchies
            .iter()
            .filter(|h| !h.selected && h.dir.exists())
            .map(|h| h.dir.as_path());
        for dir in self
            .hierarchies
            .iter()
            .filter(|h| h.selected)
            .map(|h| h.dir.as_path())
            .chain(late)
        {
            CgDir::new(dir, false).write("tasks", 0, "tasks")?;
        }
        Ok(())
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        if let Some(cpu) = r.cpu() {
            if cpu.cpus().is_some() || cpu.mems().is_some() {
                cpuset::set(self.need("cpuset", "linux.resources.cpu.cpus/mems")?, cpu)?;
            }
        }
        if let Some(rules) = r.devices() {
            devices::set(self.need("devices", "linux.resources.devices")?, rules)?;
        }
        if let Some(mem) = r.memory() {
            memory::set(self.need("memory", "linux.resources.memory")?, mem)?;
        }
        if let Some(c) = r.cpu() {
            if cpu::wants(c) {
                let d = self.need("cpu", "linux.resources.cpu")?;
                cpu::set(d, self.mount_of(d.path), c)?;
            }
        }
        if let Some(p) = r.pids() {
            pids::set(self.need("pids", "linux.resources.pids")?, p)?;
        }
        if let Some(b) = r.block_io() {
            blkio::set(self.need("blkio", "linux.resources.blockIO")?, b)?;
        }
        if let Some(limits) = r.hugepage_limits() {
            if !limits.is_empty() {
                let v1 = match self
                    .hierarchies
                    .iter()
                    .any(|h| h.controllers.iter().any(|c| c == "hugetlb"))
                {
                    true => Some(self.need("hugetlb", "linux.resources.hugepageLimits")?),
                    false => None,
                };
                hugetlb::set(v1, self.unified.as_ref(), limits)?;
            }
        }
        if let Some(n) = r.network() {
            net::set(self, n)?;
        }
        if let Some(rdma) = r.rdma() {
            if !rdma.is_empty() {
                crate::shared::set_rdma(self.need("rdma", "linux.resources.rdma")?, rdma)?;
            }
        }
        if let Some(unified) = r.unified() {
            if !unified.is_empty() {
                let Some((mount, dir)) = &self.unified else {
                    return Err(CgroupError::Unsupported(
                        "linux.resources.unified needs cgroup v2, and this host has only cgroup v1"
                            .into(),
                    ));
                };
                crate::v2::unified::set(mount, dir, false, unified)?;
            }
        }
        Ok(())
    }

    fn freeze(&self) -> Result<()> {
        freezer::freeze(self.need("freezer", "freeze")?)
    }

    fn thaw(&self) -> Result<()> {
        freezer::thaw(self.need("freezer", "thaw")?)
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        match self.dir("freezer") {
            Some(d) => freezer::state(d),
            None => Ok(FreezerState::Thawed),
        }
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        fs::procs_recursive(self.procs_dir(), &mut out)?;
        Ok(out)
    }

    fn kill_all(&self, signal: i32) -> Result<()> {
        // An empty cgroup stays empty (only its members could fork into it):
        // no freeze/thaw round, which costs the kernel a code patch on every CPU.
        if self.pids()?.is_empty() {
            return Ok(());
        }
        // Freeze first so that no process forks between listing and signalling.
        let freezer = self.dir("freezer").filter(|d| d.path.exists());
        let was_frozen = match freezer {
            Some(d) => freezer::state(d)? == FreezerState::Frozen,
            None => false,
        };
        if let Some(d) = freezer {
            let _ = freezer::freeze(d);
        }
        let result = self.pids().and_then(|p| fs::signal_pids(&p, signal));
        if let Some(d) = freezer {
            // SIGKILL is only delivered once the processes run again.
            if !was_frozen || signal == libc::SIGKILL {
                freezer::thaw(d)?;
            }
        }
        result
    }

    fn destroy(&self) -> Result<()> {
        let owned = self.owned.load(Ordering::Relaxed).max(1);
        let mut first_err = None;
        for (dir, _) in self.all_dirs() {
            if let Err(e) = fs::remove_owned(dir, owned, false) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn exists(&self) -> bool {
        self.all_dirs().any(|(d, _)| d.exists())
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(d) = self.dir("cpuacct") {
            cpu::acct_stats(d, &mut s.cpu)?;
        }
        if let Some(d) = self.dir("cpu") {
            cpu::throttle_stats(d, &mut s.cpu)?;
        }
        if let Some(d) = self.dir("cpuset") {
            cpuset::stats(d, &mut s.cpuset)?;
        }
        if let Some(d) = self.dir("memory") {
            memory::stats(d, &mut s.memory)?;
        }
        if let Some(d) = self.dir("pids") {
            pids::stats(d, &mut s.pids)?;
        }
        if let Some(d) = self.dir("blkio") {
            blkio::stats(d, &mut s.blkio)?;
        }
        hugetlb::stats(self.dir("hugetlb"), self.unified.as_ref(), &mut s.hugetlb)?;
        Ok(s)
    }

    fn paths(&self) -> BTreeMap<String, PathBuf> {
        let mut out: BTreeMap<String, PathBuf> = self
            .hierarchies
            .iter()
            .map(|h| (h.controllers.join(","), h.dir.clone()))
            .collect();
        if let Some((_, d)) = &self.unified {
            out.insert(String::new(), d.clone());
        }
        out
    }

    fn owned_depth(&self) -> usize {
        self.owned.load(Ordering::Relaxed)
    }

    fn mode(&self) -> Mode {
        self.mode
    }

    fn oom_notifier(&self) -> Result<crate::oom::OomNotifier> {
        crate::oom::OomNotifier::v1(self.need("memory", "OOM notification")?.path)
    }
}
