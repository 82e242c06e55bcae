//! The default runtime configuration (`config.json`) that `berth spec`,
//! `berth-image` and the conformance suite start from: the mounts, masked and
//! read-only paths, capabilities, rlimits, namespaces and device rules of
//! `runc spec` (runc's `specconv.Example`), with the few knobs in
//! [`Defaults`] where those users legitimately differ.
//!
//! The result is a `serde_json::Value`, not an `oci_spec::runtime::Spec`:
//! oci-spec keeps capabilities in a `HashSet`, so a typed spec writes them in
//! a different order on every run instead of the order runc and docker write,
//! and its builders fill in oci-spec's own defaults for fields left unset.
//! The tests check that every variant parses as an `oci_spec` spec.

mod rootless;

use serde_json::{json, Value};

pub use rootless::to_rootless;

/// `PATH` as runc, containerd and docker set it when the image gives none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities `runc spec` grants.
pub const RUNC_CAPABILITIES: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The capabilities docker, podman and containerd grant a container by
/// default, in the order docker writes them.
pub const ENGINE_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The paths `runc spec` masks.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// What docker's default masked paths add to runc's (moby's
/// `oci.DefaultSpec`): the RAPL energy counters, a side channel.
pub const ENGINE_EXTRA_MASKED_PATHS: &[&str] = &["/sys/devices/virtual/powercap"];

/// The paths `runc spec` makes read-only.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The namespaces `runc spec` asks for on every host; see
/// [`Defaults::cgroup_namespace`] for the cgroup one.
pub const NAMESPACES: &[&str] = &["pid", "network", "ipc", "uts", "mount"];

/// A capability set of `process.capabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapabilitySet {
    Bounding,
    Effective,
    Permitted,
    Inheritable,
    Ambient,
}

impl CapabilitySet {
    /// The key of the set in `process.capabilities`.
    pub fn key(self) -> &'static str {
        match self {
            CapabilitySet::Bounding => "bounding",
            CapabilitySet::Effective => "effective",
            CapabilitySet::Permitted => "permitted",
            CapabilitySet::Inheritable => "inheritable",
            CapabilitySet::Ambient => "ambient",
        }
    }
}

/// The sets runc and docker fill.
pub const RUNC_CAPABILITY_SETS: &[CapabilitySet] = &[
    CapabilitySet::Bounding,
    CapabilitySet::Effective,
    CapabilitySet::Permitted,
];

/// The knobs of the default configuration; [`Defaults::runc`] is what
/// `runc spec` writes on a host that is not cgroup v2 alone.
#[derive(Debug, Clone)]
pub struct Defaults<'a> {
    /// `ociVersion`: the runtime-spec version the user writes.
    pub oci_version: &'a str,
    /// `hostname` (a UTS namespace is always asked for).
    pub hostname: &'a str,
    /// `process.terminal`.
    pub terminal: bool,
    /// `root.readonly` (runc: true; docker: false unless `--read-only`).
    pub readonly_root: bool,
    /// The capabilities granted, in the order they are written.
    pub capabilities: &'a [&'a str],
    /// The capability sets the capabilities are put in.
    pub capability_sets: &'a [CapabilitySet],
    /// Whether to ask for a cgroup namespace. runc, docker and podman ask for
    /// one exactly when the host is cgroup v2 alone; on a v1 or hybrid host
    /// the container shares the host's.
    pub cgroup_namespace: bool,
    /// Paths masked after [`MASKED_PATHS`].
    pub extra_masked_paths: &'a [&'a str],
}

impl Defaults<'static> {
    /// `runc spec` on a host that is not cgroup v2 alone, for the given
    /// runtime-spec version.
    pub fn runc(oci_version: &'static str) -> Self {
        Defaults {
            oci_version,
            hostname: "runc",
            terminal: true,
            readonly_root: true,
            capabilities: RUNC_CAPABILITIES,
            capability_sets: RUNC_CAPABILITY_SETS,
            cgroup_namespace: false,
            extra_masked_paths: &[],
        }
    }
}

impl Defaults<'_> {
    /// The configuration: `process` runs `sh` as root in `/` with `PATH` and
    /// `TERM=xterm`, which users running something else replace.
    pub fn build(&self) -> Value {
        let capabilities: serde_json::Map<String, Value> = self
            .capability_sets
            .iter()
            .map(|set| (set.key().to_string(), json!(self.capabilities)))
            .collect();
        let mut namespaces: Vec<Value> = NAMESPACES.iter().map(|t| json!({ "type": t })).collect();
        if self.cgroup_namespace {
            namespaces.push(json!({"type": "cgroup"}));
        }
        let masked_paths: Vec<&str> = MASKED_PATHS
            .iter()
            .chain(self.extra_masked_paths)
            .copied()
            .collect();
        json!({
            "ociVersion": self.oci_version,
            "process": {
                "terminal": self.terminal,
                "user": {"uid": 0, "gid": 0},
                "args": ["sh"],
                "env": [DEFAULT_PATH, "TERM=xterm"],
                "cwd": "/",
                "capabilities": capabilities,
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                "noNewPrivileges": true
            },
            "root": {"path": "rootfs", "readonly": self.readonly_root},
            "hostname": self.hostname,
            "mounts": mounts(),
            "linux": {
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "namespaces": namespaces,
                "maskedPaths": masked_paths,
                "readonlyPaths": READONLY_PATHS
            }
        })
    }
}

/// The mounts of `runc spec`: proc, a tmpfs /dev with devpts, shm and mqueue,
/// a read-only sysfs and cgroup filesystem.
fn mounts() -> Vec<Value> {
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ]
}

#[cfg(test)]
mod tests;
