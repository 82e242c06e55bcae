//! Linux namespaces: which to create, which to join, and uid/gid maps.

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

use crate::error::{Context, Error, Result};

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The namespace plan of a container.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// Namespaces to create.
    pub new: Vec<LinuxNamespaceType>,
    /// Namespaces to join, in the order they must be joined (user first).
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl Plan {
    pub fn from_linux(linux: &Linux) -> Self {
        let mut p = Plan::default();
        for ns in linux.namespaces().iter().flatten() {
            match ns.path() {
                Some(path) => p.join.push((ns.typ(), path.clone())),
                None => p.new.push(ns.typ()),
            }
        }
        p.join
            .sort_by_key(|(t, _)| if *t == LinuxNamespaceType::User { 0 } else { 1 });
        p
    }

    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(&t)
    }

    pub fn joins(&self, t: LinuxNamespaceType) -> Option<&Path> {
        self.join
            .iter()
            .find(|(x, _)| *x == t)
            .map(|(_, p)| p.as_path())
    }

    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.creates(t) || self.joins(t).is_some()
    }

    /// Whether a user namespace is involved (created or joined); then init is
    /// started through an intermediate process so every other namespace is
    /// owned by that user namespace.
    pub fn involves_user(&self) -> bool {
        self.has(LinuxNamespaceType::User)
    }

    /// Clone flags of the namespaces created by `unshare` in the init process
    /// (pid and time apply to children only and are handled by the parent;
    /// cgroup waits until the init is in its cgroup).
    pub fn unshare_flags(&self) -> CloneFlags {
        let mut f = CloneFlags::empty();
        for t in &self.new {
            match t {
                LinuxNamespaceType::Pid | LinuxNamespaceType::Time | LinuxNamespaceType::Cgroup => {
                }
                t => f |= clone_flag(*t),
            }
        }
        f
    }
}

/// setns(2) into the namespace at `path`.
pub fn join(t: LinuxNamespaceType, path: &Path) -> Result<()> {
    let f = std::fs::File::open(path)
        .ctx(|| format!("open {} namespace {}", proc_name(t), path.display()))?;
    nix::sched::setns(f.as_fd_compat(), clone_flag(t))
        .ctx(|| format!("join {} namespace {}", proc_name(t), path.display()))
}

trait AsFdCompat {
    fn as_fd_compat(&self) -> std::os::fd::BorrowedFd<'_>;
}
impl AsFdCompat for std::fs::File {
    fn as_fd_compat(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.as_fd()
    }
}

pub fn unshare(flags: CloneFlags) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(flags).ctx(|| format!("unshare namespaces {flags:?}"))
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Write /proc/PID/{uid_map,gid_map} from the config (done by the parent, which
/// holds the needed capabilities in the parent user namespace).
pub fn write_id_maps(pid: i32, linux: &Linux) -> Result<()> {
    if let Some(m) = linux.uid_mappings().as_ref().filter(|m| !m.is_empty()) {
        let p = format!("/proc/{pid}/uid_map");
        std::fs::write(&p, map_text(m))
            .map_err(|e| Error::Config(format!("field linux.uidMappings: write {p}: {e}")))?;
    }
    if let Some(m) = linux.gid_mappings().as_ref().filter(|m| !m.is_empty()) {
        let p = format!("/proc/{pid}/gid_map");
        if nix::unistd::geteuid().as_raw() != 0 {
            // Unprivileged writers must deny setgroups first.
            let _ = std::fs::write(format!("/proc/{pid}/setgroups"), "deny");
        }
        std::fs::write(&p, map_text(m))
            .map_err(|e| Error::Config(format!("field linux.gidMappings: write {p}: {e}")))?;
    }
    Ok(())
}

/// Write /proc/self/timens_offsets (before any process enters the new time namespace).
pub fn write_time_offsets(linux: &Linux) -> Result<()> {
    let Some(offsets) = linux.time_offsets() else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in offsets {
        let name = match clock.as_str() {
            "monotonic" => "monotonic",
            "boottime" => "boottime",
            other => {
                return Err(Error::Config(format!(
                    "field linux.timeOffsets: unknown clock \"{other}\""
                )))
            }
        };
        text.push_str(&format!(
            "{name} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", text)
        .map_err(|e| Error::Config(format!("field linux.timeOffsets: {e}")))
}
