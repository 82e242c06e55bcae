//! cgroup v1 and v2 management for berth.
//!
//! The runtime only ever talks to [`CgroupManager`]; which backend sits behind it
//! (v1 for legacy/hybrid hosts, v2 for unified hosts) is decided once from the
//! host's mounts by [`detect`], and a manager is built with [`new_manager`] (or
//! [`new_manager_with`] for the less common knobs).
//!
//! Why not the `cgroups-rs` crate: it builds a full controller model per cgroup
//! (reading many interface files of every hierarchy on construction), lacks several
//! OCI fields (cpu idle/burst, memory checkBeforeUpdate, v2 device filtering, the
//! runc `events --stats` shape) and cannot be pointed at a fake root for tests. The
//! runtime's whole create+start+delete budget is ~20 ms, so this backend does the
//! minimum: one `mkdir` and one `cgroup.procs` write per hierarchy at apply, one
//! `rmdir` per hierarchy at destroy, and it only writes the files a config asks for.
//!
//! Layout: [`mountinfo`] finds the hierarchies, [`path`] resolves `cgroupsPath`,
//! `fs` holds the small file helpers, `v1/` and `v2/` hold one module per
//! controller, [`convert`] the v1 -> v2 value conversions and [`stats`] the
//! runc-compatible statistics types.

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use oci_spec::runtime::LinuxResources;

pub mod convert;
mod fs;
pub mod mountinfo;
mod of_pid;
pub mod oom;
pub mod path;
mod shared;
pub mod stats;
pub mod systemd;
mod v1;
mod v2;

pub use of_pid::manager_of_pid;
pub use stats::{Event, Stats};
pub use systemd::SystemdManager;
pub use v1::V1Manager;
pub use v2::{bpf, V2Manager};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    /// The kernel refused a value (or the interface file is missing).
    #[error("{resource}: cannot write {value:?} to {path}: {source}")]
    Write {
        resource: String,
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    /// The configuration asks for something this host or backend cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// A call to systemd (the systemd driver) failed.
    #[error("systemd: {0}")]
    Systemd(String),
}

pub type Result<T> = std::result::Result<T, CgroupError>;

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only v1 controllers.
    Legacy,
    /// v1 controllers plus a v2 mount at /sys/fs/cgroup/unified.
    Hybrid,
    /// Pure cgroup v2 at /sys/fs/cgroup.
    Unified,
}

/// Freezer state as the OCI/runc tooling reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    Frozen,
}

/// One container's cgroup (a directory per controller on v1, one directory on v2).
pub trait CgroupManager {
    /// Create the cgroup (all needed directories) and move `pid` into it.
    /// A `pid` <= 0 only creates the directories (for `CLONE_INTO_CGROUP`),
    /// unless [`CgroupManager::apply_needs_pid`].
    fn apply(&self, pid: i32) -> Result<()>;
    /// Whether the cgroup can only be made with its first process (systemd
    /// starts a scope unit with its pids): the container's init is then
    /// forked first and handed to `apply`.
    fn apply_needs_pid(&self) -> bool {
        false
    }
    /// Move one more process (e.g. an exec'd process) into the cgroup.
    fn add_task(&self, pid: i32) -> Result<()>;
    /// Move the calling single-threaded process into the cgroup (after
    /// `apply(0)` made the directories). On v1 this writes `0` to each
    /// hierarchy's `tasks` file: migrating only the calling thread skips the
    /// global threadgroup lock, whose first writer waits for an RCU grace
    /// period (milliseconds, on every container start). cgroup2 directories
    /// take `0` in `cgroup.procs`.
    fn join_self(&self) -> Result<()>;
    /// [`CgroupManager::join_self`] for a process that was started in the cgroup2
    /// directory (`paths()[""]`) by `clone3(CLONE_INTO_CGROUP)`: joins only the v1
    /// hierarchies (nothing on v2).
    fn join_self_v1(&self) -> Result<()>;
    /// Apply `linux.resources`.
    fn set(&self, resources: &LinuxResources) -> Result<()>;
    /// Change the resources of a live cgroup (`update`): like [`CgroupManager::set`],
    /// but device rules are never touched (runc's update skips them too, so that
    /// running processes never see a transient deny-all), and fields left unset
    /// (or 0, which OCI tools use for "unchanged") keep their current values.
    fn update(&self, resources: &LinuxResources) -> Result<()> {
        if resources.devices().is_some() {
            let mut r = resources.clone();
            r.set_devices(None);
            return self.set(&r);
        }
        self.set(resources)
    }
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
    fn freezer_state(&self) -> Result<FreezerState>;
    /// Every pid currently in the cgroup (recursively).
    fn pids(&self) -> Result<Vec<i32>>;
    /// Signal every process in the cgroup.
    fn kill_all(&self, signal: i32) -> Result<()>;
    /// Remove the cgroup directories (the cgroup must be empty).
    fn destroy(&self) -> Result<()>;
    /// Whether the cgroup directories exist.
    fn exists(&self) -> bool;
    /// Resource usage, shaped like runc's `events --stats` data.
    fn stats(&self) -> Result<Stats>;
    /// The cgroup directory of every hierarchy, keyed by controller list
    /// (`"cpu,cpuacct"`, `"memory"`, ...; `""` for the v2/unified directory).
    fn paths(&self) -> BTreeMap<String, PathBuf>;
    /// How many trailing components of the cgroup path this manager created
    /// (0 when it only joined existing directories). Persist it with the
    /// container's state and pass it back through [`ManagerOptions::owned_depth`]
    /// so that `destroy` in a later process also removes the parents it created.
    fn owned_depth(&self) -> usize;
    /// The backend's mode.
    fn mode(&self) -> Mode;
    /// A notifier for OOM events in this cgroup (after apply).
    fn oom_notifier(&self) -> Result<oom::OomNotifier>;
}

/// Everything [`new_manager_with`] needs.
#[derive(Debug, Clone)]
pub struct ManagerOptions<'a> {
    /// `linux.cgroupsPath`: absolute (`/a/b`, from each hierarchy's root), relative
    /// (`a/b`, below the runtime's own cgroup, as runc does) or absent
    /// (`/berth/<container_id>`).
    pub cgroups_path: Option<&'a str>,
    pub container_id: &'a str,
    pub mode: Mode,
    /// Use this directory as the cgroup2 root instead of the detected mount
    /// (unified mode only). A real cgroup2 mount (e.g. the v2 mount of a hybrid
    /// host) is driven for real; any other directory is a fake tree: writes then
    /// append `value\n` to the interface files (creating them), so the files
    /// record every write in order, and no eBPF program is loaded.
    pub root: Option<PathBuf>,
    /// Restore [`CgroupManager::owned_depth`] saved by the process that called apply.
    pub owned_depth: Option<usize>,
    /// The container's resources, when known before apply. On v1 this lets apply
    /// join only the hierarchies the container needs (cpu, cpuacct, memory,
    /// devices, freezer, pids, plus those the resources ask for); a later `set`
    /// that needs another hierarchy joins it then. Without it, every mounted
    /// hierarchy is joined, as runc does. The systemd driver starts the scope
    /// with the properties of these resources.
    pub resources: Option<&'a LinuxResources>,
    /// Manage the cgroup through systemd ([`SystemdManager`]): `cgroups_path`
    /// is then `slice:prefix:name` (or absent).
    pub systemd: bool,
    /// The cgroup mounts already read by the caller (else read from
    /// /proc/self/mountinfo): a command that builds several managers reads
    /// them once.
    pub mounts: Option<&'a mountinfo::CgroupMounts>,
}

impl<'a> ManagerOptions<'a> {
    pub fn new(cgroups_path: Option<&'a str>, container_id: &'a str, mode: Mode) -> Self {
        ManagerOptions {
            cgroups_path,
            container_id,
            mode,
            root: None,
            owned_depth: None,
            resources: None,
            systemd: false,
            mounts: None,
        }
    }
}

/// Build the manager for `container_id` on a host in `mode`.
pub fn new_manager(
    cgroups_path: Option<&str>,
    container_id: &str,
    mode: Mode,
) -> Result<Box<dyn CgroupManager>> {
    new_manager_with(&ManagerOptions::new(cgroups_path, container_id, mode))
}

/// Build a manager from [`ManagerOptions`].
pub fn new_manager_with(opts: &ManagerOptions<'_>) -> Result<Box<dyn CgroupManager>> {
    if opts.systemd {
        return Ok(Box::new(SystemdManager::new(opts)?));
    }
    let cg_path = path::resolve(opts.cgroups_path, opts.container_id)?;
    match opts.mode {
        Mode::Unified => Ok(Box::new(V2Manager::new(&cg_path, opts)?)),
        Mode::Legacy | Mode::Hybrid => {
            if opts.root.is_some() {
                return Err(CgroupError::Invalid(
                    "a custom cgroup root is only supported in unified (v2) mode".into(),
                ));
            }
            Ok(Box::new(V1Manager::new(&cg_path, opts)?))
        }
    }
}

/// Detect the host's cgroup mode from /proc/self/mountinfo: unified when a
/// cgroup2 filesystem is mounted at /sys/fs/cgroup and no v1 hierarchy is,
/// hybrid with both kinds, legacy with v1 only.
pub fn detect() -> Result<Mode> {
    mountinfo::CgroupMounts::read()?
        .mode
        .ok_or_else(|| CgroupError::Invalid("no cgroup filesystem is mounted".into()))
}
