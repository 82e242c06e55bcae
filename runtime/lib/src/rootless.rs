//! Rootless containers: berth run by an unprivileged user.
//!
//! The container always has a user namespace (the id maps are written by the
//! unprivileged parent, so they can only map the caller's own uid and gid).
//! The state root defaults to `$XDG_RUNTIME_DIR/berth`, as runc's does. A cgroup
//! is used when the user may write it (a cgroup delegated to the user: the
//! directories chowned to them, on v1 and v2 alike); otherwise the container has
//! none, which is allowed only when the config asks for no resources. Device
//! cgroup rules are never applied rootless (they need CAP_SYS_ADMIN on the
//! host), as with runc.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_cgroups::{CgroupError, CgroupManager, FreezerState, LinuxResources, Mode, Stats};
use oci_spec::runtime::Linux;

/// Whether berth runs without root privileges on the host.
pub fn is_rootless() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// The default `--root`: `/run/berth` for root; `$XDG_RUNTIME_DIR/berth` for
/// other users when that variable is set (as runc does).
pub fn default_state_root() -> PathBuf {
    if is_rootless() {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("berth");
        }
    }
    PathBuf::from("/run/berth")
}

/// The resources a rootless container asks for, without device rules (which
/// are skipped rootless). `None` when nothing remains to apply.
pub fn requested_resources(linux: &Linux) -> Option<LinuxResources> {
    let mut r = linux.resources().clone()?;
    r.set_devices(None);
    (!is_all_unset(&r)).then_some(r)
}

/// Every field of `r` is absent or an empty block/list.
fn is_all_unset(r: &LinuxResources) -> bool {
    let v = serde_json::to_value(r).unwrap_or_default();
    v.as_object().is_none_or(|m| {
        m.values().all(|x| match x {
            serde_json::Value::Null => true,
            serde_json::Value::Array(a) => a.is_empty(),
            serde_json::Value::Object(o) => o.values().all(serde_json::Value::is_null),
            _ => false,
        })
    })
}

/// Whether a cgroup error comes from missing permissions (EACCES, EPERM,
/// or EROFS for a read-only cgroupfs).
pub fn is_permission_error(e: &CgroupError) -> bool {
    let source = match e {
        CgroupError::Io { source, .. } | CgroupError::Write { source, .. } => source,
        _ => return false,
    };
    matches!(
        source.raw_os_error(),
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
    )
}

/// The error when a rootless container asks for resources but its cgroup
/// cannot be written.
pub fn cgroup_not_writable(e: &CgroupError) -> crate::Error {
    crate::Error::Config(format!(
        "field linux.resources: a rootless container can only have resource limits in a \
         cgroup delegated to uid {} (its directories owned by that user), but the cgroup \
         is not writable: {e}; remove linux.resources or delegate the cgroup (linux.cgroupsPath)",
        nix::unistd::geteuid()
    ))
}

/// The stand-in for a cgroup when a rootless container has none: the
/// container's processes are those in the init's pid namespace (or the init
/// alone when the container shares the host's). Nothing can be limited,
/// frozen or measured.
#[derive(Debug)]
pub struct NoCgroup {
    pub init_pid: i32,
    pub init_start_time: u64,
}

impl NoCgroup {
    fn unsupported(&self, what: &str) -> CgroupError {
        CgroupError::Unsupported(format!(
            "{what} needs a cgroup, and this rootless container has none \
             (delegate a cgroup to uid {} and set linux.cgroupsPath)",
            nix::unistd::geteuid()
        ))
    }

    fn init_alive(&self) -> bool {
        self.init_pid > 0 && crate::sys::process_alive(self.init_pid, self.init_start_time)
    }
}

fn pid_ns_of(pid: i32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/proc/{pid}/ns/pid")).ok()?;
    Some((m.dev(), m.ino()))
}

impl CgroupManager for NoCgroup {
    fn apply(&self, _pid: i32) -> berth_cgroups::Result<()> {
        Ok(())
    }
    fn add_task(&self, _pid: i32) -> berth_cgroups::Result<()> {
        Ok(())
    }
    fn join_self(&self) -> berth_cgroups::Result<()> {
        Ok(())
    }
    fn join_self_v1(&self) -> berth_cgroups::Result<()> {
        Ok(())
    }
    fn set(&self, _r: &LinuxResources) -> berth_cgroups::Result<()> {
        Err(self.unsupported("setting resources"))
    }
    fn freeze(&self) -> berth_cgroups::Result<()> {
        Err(self.unsupported("pausing"))
    }
    fn thaw(&self) -> berth_cgroups::Result<()> {
        Err(self.unsupported("resuming"))
    }
    fn freezer_state(&self) -> berth_cgroups::Result<FreezerState> {
        Ok(FreezerState::Thawed)
    }
    fn pids(&self) -> berth_cgroups::Result<Vec<i32>> {
        if !self.init_alive() {
            return Ok(Vec::new());
        }
        let ours = pid_ns_of(std::process::id() as i32);
        let theirs = pid_ns_of(self.init_pid);
        if theirs.is_none() || theirs == ours {
            return Ok(vec![self.init_pid]);
        }
        let mut out = Vec::new();
        let dir = std::fs::read_dir("/proc").map_err(|source| CgroupError::Io {
            path: "/proc".into(),
            source,
        })?;
        for ent in dir.flatten() {
            let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if pid_ns_of(pid) == theirs {
                out.push(pid);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
    fn kill_all(&self, signal: i32) -> berth_cgroups::Result<()> {
        for pid in self.pids()? {
            // SAFETY: plain kill(2); a process that is already gone is fine.
            // Raw because the signal may be real-time (SIGRTMIN+n), which
            // nix's Signal cannot name.
            unsafe { libc::kill(pid, signal) };
        }
        Ok(())
    }
    fn destroy(&self) -> berth_cgroups::Result<()> {
        Ok(())
    }
    fn exists(&self) -> bool {
        false
    }
    fn stats(&self) -> berth_cgroups::Result<Stats> {
        Err(self.unsupported("statistics"))
    }
    fn paths(&self) -> BTreeMap<String, PathBuf> {
        BTreeMap::new()
    }
    fn owned_depth(&self) -> usize {
        0
    }
    fn mode(&self) -> Mode {
        crate::container::cgroup_mode()
    }
    fn oom_notifier(&self) -> berth_cgroups::Result<berth_cgroups::oom::OomNotifier> {
        Err(self.unsupported("OOM notification"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(json: &str) -> Linux {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn device_rules_alone_request_nothing() {
        let l = linux(r#"{"resources":{"devices":[{"allow":false,"access":"rwm"}]}}"#);
        assert!(requested_resources(&l).is_none());
        assert!(requested_resources(&linux("{}")).is_none());
        let l = linux(r#"{"resources":{"memory":{},"devices":[]}}"#);
        assert!(requested_resources(&l).is_none());
    }

    #[test]
    fn limits_are_requests() {
        let l = linux(r#"{"resources":{"pids":{"limit":10}}}"#);
        assert!(requested_resources(&l).is_some());
        let l = linux(r#"{"resources":{"memory":{"limit":1048576}}}"#);
        assert!(requested_resources(&l).is_some());
    }

    #[test]
    fn permission_errors_are_recognised() {
        let e = CgroupError::Io {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(is_permission_error(&e));
        let e = CgroupError::Io {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert!(!is_permission_error(&e));
        assert!(!is_permission_error(&CgroupError::Invalid("x".into())));
    }
}
