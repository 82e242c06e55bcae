//! Resolution of `linux.cgroupsPath`.
//!
//! * absent: `/berth/<container id>`;
//! * absolute (`/a/b`): relative to the root of every hierarchy;
//! * relative (`a/b`): below the runtime's own cgroup in every hierarchy, read
//!   from /proc/self/cgroup — what runc's cgroupfs driver does (it joins the
//!   path under `GetOwnCgroupPath`).
//!
//! systemd-style `slice:prefix:name` paths are refused here: they belong to
//! the systemd driver (`--systemd-cgroup`, [`crate::systemd`]).

use std::path::{Component, Path, PathBuf};

use crate::{CgroupError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPath {
    /// Cleaned path below each hierarchy root, without the leading `/`.
    Absolute(PathBuf),
    /// Cleaned path below the runtime's own cgroup.
    Relative(PathBuf),
}

impl CgroupPath {
    /// The path components below the base (hierarchy root or own cgroup).
    pub fn inner(&self) -> &Path {
        match self {
            CgroupPath::Absolute(p) | CgroupPath::Relative(p) => p,
        }
    }

    /// The directory in a hierarchy mounted at `mount_point` whose root is
    /// `mount_root`, given this process's own cgroup there.
    pub fn dir_in(&self, mount_point: &Path, mount_root: &str, own: Option<&str>) -> PathBuf {
        match self {
            CgroupPath::Absolute(p) => mount_point.join(p),
            CgroupPath::Relative(p) => {
                let own = own.unwrap_or("/");
                let below_root = own
                    .strip_prefix(mount_root)
                    .filter(|_| mount_root != "/")
                    .unwrap_or(own);
                mount_point.join(below_root.trim_start_matches('/')).join(p)
            }
        }
    }
}

/// Resolve `cgroupsPath` for `container_id`.
pub fn resolve(cgroups_path: Option<&str>, container_id: &str) -> Result<CgroupPath> {
    validate_id(container_id)?;
    let Some(raw) = cgroups_path else {
        return Ok(CgroupPath::Absolute(Path::new("berth").join(container_id)));
    };
    if raw.is_empty() {
        return Err(CgroupError::Invalid("linux.cgroupsPath is empty".into()));
    }
    if raw.contains(':') {
        return Err(CgroupError::Unsupported(format!(
            "linux.cgroupsPath {raw:?}: systemd-style \"slice:prefix:name\" paths need the systemd cgroup driver (--systemd-cgroup); without it, use a cgroupfs path"
        )));
    }
    let mut clean = PathBuf::new();
    for comp in Path::new(raw).components() {
        match comp {
            Component::Normal(c) => clean.push(c),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(CgroupError::Invalid(format!(
                    "linux.cgroupsPath {raw:?} must not contain \"..\""
                )))
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(CgroupError::Invalid(format!(
            "linux.cgroupsPath {raw:?} names the root cgroup; a container needs its own cgroup"
        )));
    }
    Ok(if raw.starts_with('/') {
        CgroupPath::Absolute(clean)
    } else {
        CgroupPath::Relative(clean)
    })
}

/// How many trailing path components `destroy` may remove at most. The default
/// parent `/berth` is shared by all containers and stays (removing it would race
/// with concurrent creates and cost two extra syscalls per hierarchy each time).
pub fn max_owned_depth(cgroups_path: Option<&str>) -> usize {
    if cgroups_path.is_none() {
        1
    } else {
        usize::MAX
    }
}

pub(crate) fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(CgroupError::Invalid(format!(
            "invalid container id {id:?} for a cgroup name"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_berth_id() {
        assert_eq!(
            resolve(None, "c1").unwrap(),
            CgroupPath::Absolute("berth/c1".into())
        );
    }

    #[test]
    fn absolute_and_relative_are_cleaned() {
        assert_eq!(
            resolve(Some("/a//b/./c/"), "x").unwrap(),
            CgroupPath::Absolute("a/b/c".into())
        );
        assert_eq!(
            resolve(Some("a/b"), "x").unwrap(),
            CgroupPath::Relative("a/b".into())
        );
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in ["/", "", "/a/../b", "system.slice:berth:x"] {
            assert!(resolve(Some(bad), "x").is_err(), "{bad:?} accepted");
        }
        assert!(resolve(None, "a/b").is_err());
        assert!(resolve(None, "").is_err());
    }

    #[test]
    fn dir_in_joins_own_cgroup_for_relative() {
        let rel = CgroupPath::Relative("a/b".into());
        let mp = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            rel.dir_in(mp, "/", Some("/own/x")),
            PathBuf::from("/sys/fs/cgroup/memory/own/x/a/b")
        );
        assert_eq!(
            rel.dir_in(mp, "/own", Some("/own/x")),
            PathBuf::from("/sys/fs/cgroup/memory/x/a/b")
        );
        let abs = CgroupPath::Absolute("a/b".into());
        assert_eq!(
            abs.dir_in(mp, "/", Some("/own/x")),
            PathBuf::from("/sys/fs/cgroup/memory/a/b")
        );
    }
}
