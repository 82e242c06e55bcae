//! `linux.sysctl`: only namespaced keys, and only when the container has its own
//! namespace for them (as runc enforces), so a config can never change the host.

use oci_spec::runtime::{Linux, LinuxNamespaceType};

use crate::error::{Error, Result};

const IPC_KEYS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

fn has_own(linux: &Linux, t: LinuxNamespaceType) -> bool {
    linux.namespaces().iter().flatten().any(|n| n.typ() == t)
}

pub fn check_namespaced(key: &str, linux: &Linux) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Config(format!(
            "field linux.sysctl: \"{key}\": {why}"
        )))
    };
    if key.contains("..")
        || key.contains('/') && key.contains('.') && key.split('/').any(|c| c == "..")
    {
        return bad("invalid key");
    }
    let norm = key.replace('/', ".");
    if IPC_KEYS.contains(&norm.as_str()) || norm.starts_with("fs.mqueue.") {
        if !has_own(linux, LinuxNamespaceType::Ipc) {
            return bad("requires a new IPC namespace");
        }
        return Ok(());
    }
    if norm.starts_with("net.") {
        let host_net = linux
            .namespaces()
            .iter()
            .flatten()
            .find(|n| n.typ() == LinuxNamespaceType::Network);
        if host_net.is_none() {
            return bad("requires a network namespace other than the host's");
        }
        return Ok(());
    }
    if norm == "kernel.hostname" || norm == "kernel.domainname" {
        if !has_own(linux, LinuxNamespaceType::Uts) {
            return bad("requires a new UTS namespace");
        }
        return Ok(());
    }
    bad("not a namespaced sysctl; it would change the host")
}

/// Write every sysctl (the init is already in the container's namespaces, and
/// /proc/sys reflects the namespaces of the writer).
pub fn apply(linux: &Linux) -> Result<()> {
    for (k, v) in linux.sysctl().iter().flatten() {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        std::fs::write(&path, v).map_err(|e| {
            Error::Config(format!(
                "field linux.sysctl: \"{k}\" = \"{v}\": write {path}: {e}"
            ))
        })?;
    }
    Ok(())
}
