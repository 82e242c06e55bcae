//! A manager for the cgroup a running process is in, found from
//! /proc/PID/cgroup and the cgroup mounts: how a process that did not make a
//! container's cgroup (the containerd shim) reads its statistics and OOM events.

use std::path::{Path, PathBuf};

use crate::mountinfo::{CgroupMounts, OwnCgroups};
use crate::{CgroupError, CgroupManager, Mode, Result, V1Manager, V2Manager};

/// The cgroup of process `pid` on this host (see [`V1Manager::existing`] and
/// [`V2Manager::existing`]: nothing is created, and `owned_depth` is 0).
pub fn manager_of_pid(pid: u32) -> Result<Box<dyn CgroupManager>> {
    let membership = OwnCgroups::read_pid(pid)?;
    let mounts = CgroupMounts::read()?;
    let mode = mounts
        .mode
        .ok_or_else(|| CgroupError::Invalid("no cgroup filesystem is mounted".into()))?;
    manager_for(mode, &mounts, &membership, pid)
}

fn manager_for(
    mode: Mode,
    mounts: &CgroupMounts,
    membership: &OwnCgroups,
    pid: u32,
) -> Result<Box<dyn CgroupManager>> {
    let v2_dir = || {
        let (mount_point, root) = mounts.v2.as_ref()?;
        Some(dir_below(mount_point, root, membership.path_of(None)?))
    };
    if mode == Mode::Unified {
        let dir = v2_dir().ok_or_else(|| {
            CgroupError::Invalid(format!("process {pid} is in no cgroup2 cgroup"))
        })?;
        return Ok(Box::new(V2Manager::existing(&dir)));
    }
    let mut dirs: Vec<(Vec<String>, PathBuf)> = mounts
        .v1
        .iter()
        .filter_map(|m| {
            let path = membership.path_of(Some(&m.controllers[0]))?;
            Some((
                m.controllers.clone(),
                dir_below(&m.mount_point, &m.root, path),
            ))
        })
        .collect();
    if dirs.is_empty() {
        return Err(CgroupError::Invalid(format!(
            "process {pid} is in no cgroup v1 hierarchy"
        )));
    }
    if mode == Mode::Hybrid {
        dirs.extend(v2_dir().map(|d| (vec![String::new()], d)));
    }
    Ok(Box::new(V1Manager::existing(dirs)))
}

/// The directory of cgroup `path` (from /proc/PID/cgroup) in a hierarchy
/// mounted at `mount_point` from its sub-tree `root`.
fn dir_below(mount_point: &Path, root: &str, path: &str) -> PathBuf {
    let below = path.strip_prefix(root).unwrap_or(path);
    let below = below.trim_start_matches('/');
    if below.is_empty() {
        mount_point.to_path_buf()
    } else {
        mount_point.join(below)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 /outer /mnt/mem\\040ory rw,relatime - cgroup cgroup rw,memory
36 31 0:32 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    const MEMBERSHIP: &str = "4:memory:/outer/c1\n2:cpu,cpuacct:/berth/c1\n0::/berth/c1\n";

    fn paths(mode: Mode) -> Vec<(String, PathBuf)> {
        let m = manager_for(
            mode,
            &CgroupMounts::parse(INFO),
            &OwnCgroups::parse(MEMBERSHIP),
            7,
        )
        .unwrap();
        m.paths().into_iter().collect()
    }

    #[test]
    fn v1_dirs_are_below_each_mount_with_its_root_taken_off() {
        assert_eq!(
            paths(Mode::Legacy),
            vec![
                (
                    "cpu,cpuacct".into(),
                    "/sys/fs/cgroup/cpu,cpuacct/berth/c1".into()
                ),
                ("memory".into(), "/mnt/mem ory/c1".into()),
            ]
        );
    }

    #[test]
    fn hybrid_adds_the_cgroup2_dir() {
        let p = paths(Mode::Hybrid);
        assert_eq!(
            p[0],
            (String::new(), "/sys/fs/cgroup/unified/berth/c1".into())
        );
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn unified_is_one_dir() {
        assert_eq!(
            paths(Mode::Unified),
            vec![(String::new(), "/sys/fs/cgroup/unified/berth/c1".into())]
        );
    }

    #[test]
    fn a_process_in_no_hierarchy_is_an_error() {
        let none = OwnCgroups::parse("");
        let mounts = CgroupMounts::parse(INFO);
        for mode in [Mode::Legacy, Mode::Unified] {
            let e = manager_for(mode, &mounts, &none, 7).err().unwrap();
            assert!(e.to_string().contains("process 7"), "{e}");
        }
    }

    #[test]
    fn root_cgroup_is_the_mount_point() {
        assert_eq!(
            dir_below(Path::new("/sys/fs/cgroup/pids"), "/", "/"),
            PathBuf::from("/sys/fs/cgroup/pids")
        );
    }
}
