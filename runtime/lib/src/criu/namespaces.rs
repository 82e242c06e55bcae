//! Namespaces the container joined instead of creating (`linux.namespaces[]`
//! with a `path`): CRIU must leave them out of the image and put the restored
//! tree back into them (runc's handleCheckpointingExternalNamespaces and
//! handleRestoringNamespaces).
//!
//! Network and pid namespaces are "external": at dump they are named by
//! inode with a key, at restore an fd of the namespace to use is passed under
//! that key. The others are joined by path (`join_ns`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};

/// CRIU's name of a namespace type.
fn criu_name(t: LinuxNamespaceType) -> Option<&'static str> {
    Some(match t {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    })
}

/// The key an external namespace is dumped and restored under, as runc
/// names it (`extRootNetNS`, `extRootPidNS`).
pub fn external_key(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Pid => "extRootPidNS",
        _ => "extRootNetNS",
    }
}

fn joined(spec: &Spec) -> Vec<(LinuxNamespaceType, PathBuf)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|n| n.path().clone().map(|p| (n.typ(), p)))
        .collect()
}

fn is_external(t: LinuxNamespaceType) -> bool {
    matches!(t, LinuxNamespaceType::Network | LinuxNamespaceType::Pid)
}

/// `--external` entries for the dump: `net[INODE]:extRootNetNS`.
pub fn dump_externals(spec: &Spec) -> Result<Vec<String>> {
    let mut v = Vec::new();
    for (t, path) in joined(spec) {
        if !is_external(t) {
            continue;
        }
        let md = std::fs::metadata(&path).ctx(|| {
            format!(
                "{} namespace {} of the container",
                criu_name(t).unwrap_or("?"),
                path.display()
            )
        })?;
        v.push(format!(
            "{}[{}]:{}",
            criu_name(t).unwrap_or("?"),
            md.ino(),
            external_key(t)
        ));
    }
    Ok(v)
}

/// What a restore needs for the joined namespaces.
#[derive(Debug, Default)]
pub struct RestoreNamespaces {
    /// Open namespace files to pass to criu, with their keys.
    pub inherit: Vec<(String, std::fs::File)>,
    /// (CRIU namespace name, path) to join.
    pub join: Vec<(String, PathBuf)>,
}

/// Open the external namespaces and list those to join. Fails before
/// anything is made when a namespace is missing or cannot be restored into.
pub fn for_restore(spec: &Spec) -> Result<RestoreNamespaces> {
    let mut r = RestoreNamespaces::default();
    for (t, path) in joined(spec) {
        let name = criu_name(t).unwrap_or("?");
        if is_external(t) {
            let f = std::fs::File::open(&path).map_err(|e| {
                Error::Config(format!(
                    "linux.namespaces: the {name} namespace {} to restore into: {e}",
                    path.display()
                ))
            })?;
            r.inherit.push((external_key(t).to_string(), f));
        } else if t == LinuxNamespaceType::Cgroup {
            return Err(Error::Config(format!(
                "linux.namespaces: CRIU cannot restore into an existing cgroup namespace ({})",
                path.display()
            )));
        } else {
            if !Path::new(&path).exists() {
                return Err(Error::Config(format!(
                    "linux.namespaces: the {name} namespace {} to restore into does not exist",
                    path.display()
                )));
            }
            r.join.push((name.to_string(), path));
        }
    }
    Ok(r)
}
