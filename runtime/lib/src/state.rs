//! Container state: `<root>/<id>/state.json`, written atomically and guarded by a lock.
//!
//! The status is derived from facts each time it is read: the init's pid *and* its
//! start time (so a reused pid is never taken for the container), the presence of
//! the exec FIFO (created but not started) and the freezer (paused).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
pub const CONFIG_COPY: &str = "config.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What berth keeps about a container. The first fields are the spec's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// Internal: init start time (clock ticks since boot) to detect pid reuse.
    #[serde(default)]
    pub pid_start_time: u64,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub owner: String,
    /// cgroupsPath as given in the config (None: the default).
    #[serde(default)]
    pub cgroups_path: Option<String>,
    /// How many trailing cgroup path components berth created (removed on delete).
    #[serde(default)]
    pub cgroup_owned_depth: Option<usize>,
    /// A rootless container without a cgroup (the user may not write one and
    /// the config asks for no resources).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_cgroup: bool,
    /// A process exec'd into the container could hold CAP_SYS_PTRACE: later
    /// exec'd processes must run from a protected binary (see `exe_seal`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ptrace_exec: bool,
    /// The cgroup is a systemd scope (`--systemd-cgroup` at create).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub systemd_cgroup: bool,
}

/// The JSON `berth state` prints (the spec's state plus runc's extra fields).
#[derive(Debug, Serialize)]
pub struct PublicState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
    pub owner: &'a str,
}

impl State {
    pub fn public(&self) -> PublicState<'_> {
        PublicState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid: if self.status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: self.status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            annotations: &self.annotations,
            owner: &self.owner,
        }
    }

    /// The state the spec hands to hooks on stdin.
    pub fn hook_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct HookState<'a> {
            #[serde(rename = "ociVersion")]
            oci_version: &'a str,
            id: &'a str,
            status: Status,
            #[serde(skip_serializing_if = "Option::is_none")]
            pid: Option<i32>,
            bundle: &'a Path,
            #[serde(skip_serializing_if = "HashMap::is_empty")]
            annotations: &'a HashMap<String, String>,
        }
        serde_json::to_vec(&HookState {
            oci_version: &self.oci_version,
            id: &self.id,
            status: self.status,
            pid: (self.pid > 0 && self.status != Status::Stopped).then_some(self.pid),
            bundle: &self.bundle,
            annotations: &self.annotations,
        })
        .unwrap_or_default()
    }
}

/// Container ids as runc accepts them: `[A-Za-z0-9_+.-]+`, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidId(id.into(), "empty"));
    }
    if id == "." || id == ".." {
        return Err(Error::InvalidId(id.into(), "reserved name"));
    }
    if id.len() > 1024 {
        return Err(Error::InvalidId(id.into(), "longer than 1024 bytes"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+.-".contains(&b))
    {
        return Err(Error::InvalidId(
            id.into(),
            "only letters, digits and _ + . - are allowed",
        ));
    }
    Ok(())
}

/// A container's state directory, held under an exclusive flock for the
/// lifetime of this value.
pub struct ContainerDir {
    pub path: PathBuf,
    lock: File,
}

impl ContainerDir {
    /// Open and lock an existing container directory.
    pub fn open(root: &Path, id: &str) -> Result<Self> {
        validate_id(id)?;
        let path = root.join(id);
        let lock = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.into()))
            }
            Err(e) => return Err(e).ctx(|| format!("open {}", path.display())),
        };
        flock(&lock, &path)?;
        // The directory may have been removed while we waited for the lock.
        if !path.join(STATE_FILE).exists() {
            return Err(Error::NotFound(id.into()));
        }
        Ok(ContainerDir { path, lock })
    }

    /// Create a new container directory; fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<Self> {
        validate_id(id)?;
        if let Err(e) = std::fs::create_dir(root) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                std::fs::create_dir_all(root).ctx(|| {
                    let hint = if crate::rootless::is_rootless() {
                        " (as a non-root user, set XDG_RUNTIME_DIR or pass --root)"
                    } else {
                        ""
                    };
                    format!("create state root {}{hint}", root.display())
                })?;
            }
        }
        let path = root.join(id);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.into()))
            }
            Err(e) => return Err(e).ctx(|| format!("create {}", path.display())),
        }
        let lock = File::open(&path).ctx(|| format!("open {}", path.display()))?;
        flock(&lock, &path)?;
        Ok(ContainerDir { path, lock })
    }

    pub fn state_path(&self) -> PathBuf {
        self.path.join(STATE_FILE)
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn load(&self) -> Result<State> {
        let p = self.state_path();
        let text = std::fs::read(&p).ctx(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&text)
            .map_err(|e| Error::Other(format!("{}: corrupt state: {e}", p.display())))
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let data =
            serde_json::to_vec(state).map_err(|e| Error::Other(format!("serialize state: {e}")))?;
        crate::sys::write_atomic(&self.state_path(), &data)
    }

    /// Remove the directory and everything in it (the lock is released after).
    pub fn remove(self) -> Result<()> {
        let r =
            std::fs::remove_dir_all(&self.path).ctx(|| format!("remove {}", self.path.display()));
        drop(self.lock);
        r
    }

    /// Status derived from facts, not from what was last written.
    pub fn derive_status(&self, state: &State) -> Status {
        if !crate::sys::process_alive(state.pid, state.pid_start_time) {
            return Status::Stopped;
        }
        if state.status == Status::Creating {
            return Status::Creating;
        }
        // A created container can be paused too (runc allows it): the freezer
        // comes first.
        if crate::container::is_frozen(state) {
            return Status::Paused;
        }
        if self.fifo_path().exists() {
            return Status::Created;
        }
        Status::Running
    }

    /// Load and refresh the status.
    pub fn load_current(&self) -> Result<State> {
        let mut s = self.load()?;
        s.status = self.derive_status(&s);
        Ok(s)
    }
}

/// Remove `<root>/<id>` if it is a directory without state.json: what a
/// `create` killed before its first save, or a `delete` killed while removing
/// the directory, leaves behind. The lock is taken first, so a `create` still
/// running is waited for. Returns whether a directory was removed.
pub fn remove_incomplete(root: &Path, id: &str) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    validate_id(id)?;
    let path = root.join(id);
    let lock = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).ctx(|| format!("open {}", path.display())),
    };
    flock(&lock, &path)?;
    if path.join(STATE_FILE).exists() {
        return Ok(false);
    }
    // Only the directory we locked, never a symlink or a newer directory.
    let same = match (lock.metadata(), std::fs::symlink_metadata(&path)) {
        (Ok(a), Ok(b)) => b.is_dir() && a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    if !same {
        return Ok(false);
    }
    std::fs::remove_dir_all(&path).ctx(|| format!("remove {}", path.display()))?;
    Ok(true)
}

fn flock(f: &File, path: &Path) -> Result<()> {
    loop {
        match rustix::fs::flock(f, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                return Err(std::io::Error::from(e)).ctx(|| format!("lock {}", path.display()))
            }
        }
    }
}

/// Ids of every container under `root`.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(e).ctx(|| format!("read {}", root.display())),
    };
    for e in rd.flatten() {
        if let Some(name) = e.file_name().to_str() {
            if e.path().join(STATE_FILE).exists() {
                ids.push(name.to_string());
            }
        }
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-DEF_1.2+3", "0"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x", "é"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_is_exclusive_and_state_roundtrips() {
        let t = tempfile::tempdir().unwrap();
        let d = ContainerDir::create(t.path(), "c1").unwrap();
        assert!(matches!(
            ContainerDir::create(t.path(), "c1"),
            Err(Error::Exists(_))
        ));
        let s = State {
            oci_version: "1.0.0".into(),
            id: "c1".into(),
            status: Status::Created,
            pid: i32::MAX,
            bundle: "/b".into(),
            annotations: HashMap::new(),
            pid_start_time: 1,
            rootfs: "/b/rootfs".into(),
            created: crate::sys::rfc3339_now(),
            owner: String::new(),
            cgroups_path: None,
            cgroup_owned_depth: None,
            no_cgroup: false,
            ptrace_exec: false,
            systemd_cgroup: false,
        };
        d.save(&s).unwrap();
        let back = d.load_current().unwrap();
        assert_eq!(back.id, "c1");
        // pid i32::MAX does not exist: derived status is stopped, whatever was written.
        assert_eq!(back.status, Status::Stopped);
        d.remove().unwrap();
        assert!(matches!(
            ContainerDir::open(t.path(), "c1"),
            Err(Error::NotFound(_))
        ));
    }
}
