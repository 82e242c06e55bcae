//! /proc/self/mountinfo (every mount, and the cgroup mounts in particular)
//! and the process's own cgroups from /proc/self/cgroup.

use std::path::PathBuf;

use crate::fs::io_err;
use crate::Result;

/// One line of /proc/PID/mountinfo (the fields berth uses), unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Field 4: the path of the mounted filesystem's root (`/` for a whole
    /// filesystem, a sub-path for a bind mount of part of it).
    pub root: String,
    /// Field 5: where it is mounted, in the reader's mount namespace.
    pub mount_point: PathBuf,
    /// The filesystem type after the ` - ` separator.
    pub fs_type: String,
}

/// Every mount listed in `text` (the content of a mountinfo file), in order.
pub fn entries(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let fs_type = post.split(' ').next()?;
            if pre.len() < 5 {
                return None;
            }
            Some(MountEntry {
                root: unescape(pre[3]),
                mount_point: unescape_path(pre[4]),
                fs_type: fs_type.to_string(),
            })
        })
        .collect()
}

/// One mounted v1 hierarchy (possibly several controllers, e.g. `cpu,cpuacct`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    /// Controllers of the hierarchy, e.g. `["cpu", "cpuacct"]` or `["name=systemd"]`.
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    /// The hierarchy path mounted there (`/` unless it is a sub-tree bind mount).
    pub root: String,
}

/// All cgroup mounts of the current mount namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    pub v1: Vec<V1Mount>,
    /// The first cgroup2 mount point and its root.
    pub v2: Option<(PathBuf, String)>,
    /// The host's cgroup mode these mounts make (see [`crate::detect`]);
    /// `None` when no cgroup filesystem is mounted.
    pub mode: Option<crate::Mode>,
}

impl CgroupMounts {
    pub fn read() -> Result<Self> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| io_err("/proc/self/mountinfo", e))?;
        Ok(Self::parse(&text))
    }

    pub fn parse(text: &str) -> Self {
        let mut mounts = CgroupMounts::default();
        let mut seen_devs: Vec<String> = Vec::new();
        let (mut any_v1, mut any_v2, mut v2_at_root) = (false, false, false);
        for line in text.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 {
                continue;
            }
            match post[0] {
                "cgroup" => any_v1 = true,
                "cgroup2" => {
                    any_v2 = true;
                    v2_at_root |= pre[4] == "/sys/fs/cgroup";
                }
                _ => continue,
            }
            if post.len() < 3 {
                continue;
            }
            let (dev, root, mount_point) = (pre[2], unescape(pre[3]), unescape_path(pre[4]));
            match post[0] {
                "cgroup2"
                    if mounts.v2.as_ref().is_none_or(|(mp, r)| {
                        preference(&mount_point, &root) > preference(mp, r)
                    }) =>
                {
                    mounts.v2 = Some((mount_point, root));
                }
                "cgroup" => {
                    // The same hierarchy can be mounted more than once (a
                    // container without a mount namespace of its own binds
                    // parts of it below its rootfs, and a cloned mount
                    // namespace lists mounts in tree order, not in the order
                    // they were made): keep the preferred one.
                    if let Some(i) = seen_devs.iter().position(|d| d == dev) {
                        let kept = &mut mounts.v1[i];
                        if preference(&mount_point, &root)
                            > preference(&kept.mount_point, &kept.root)
                        {
                            kept.mount_point = mount_point;
                            kept.root = root;
                        }
                        continue;
                    }
                    let controllers = post[2]
                        .split(',')
                        .filter(|o| is_controller(o))
                        .map(str::to_string)
                        .collect::<Vec<_>>();
                    if !controllers.is_empty() {
                        seen_devs.push(dev.to_string());
                        mounts.v1.push(V1Mount {
                            controllers,
                            mount_point,
                            root,
                        });
                    }
                }
                _ => {}
            }
        }
        mounts.mode = match (any_v1, any_v2, v2_at_root) {
            (false, _, true) => Some(crate::Mode::Unified),
            (true, true, _) => Some(crate::Mode::Hybrid),
            (true, false, _) => Some(crate::Mode::Legacy),
            (false, _, false) => None,
        };
        mounts
    }
}

/// Which of two mounts of one hierarchy to use: the whole hierarchy (root
/// `/`) over a part of it, then one under /sys/fs/cgroup over one elsewhere.
fn preference(mount_point: &std::path::Path, root: &str) -> (bool, bool) {
    (root == "/", mount_point.starts_with("/sys/fs/cgroup"))
}

const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "net_cls",
    "net_prio",
    "hugetlb",
    "rdma",
    "perf_event",
    "misc",
];

fn is_controller(opt: &str) -> bool {
    V1_CONTROLLERS.contains(&opt) || opt.starts_with("name=")
}

/// mountinfo escapes space, tab, newline and backslash as octal `\NNN`.
fn unescape(s: &str) -> String {
    String::from_utf8_lossy(&unescape_bytes(s)).into_owned()
}

/// A path field of mountinfo, unescaped byte for byte (a mount point need
/// not be UTF-8).
pub fn unescape_path(s: &str) -> PathBuf {
    PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(unescape_bytes(s)),
    )
}

fn unescape_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The process's own cgroup path per hierarchy, from /proc/self/cgroup:
/// `(controllers, path)`; the v2 entry has empty controllers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnCgroups(pub Vec<(Vec<String>, String)>);

impl OwnCgroups {
    pub fn read() -> Result<Self> {
        let text = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| io_err("/proc/self/cgroup", e))?;
        Ok(Self::parse(&text))
    }

    /// The cgroups of process `pid` (/proc/PID/cgroup).
    pub fn read_pid(pid: u32) -> Result<Self> {
        let file = format!("/proc/{pid}/cgroup");
        let text = std::fs::read_to_string(&file).map_err(|e| io_err(&file, e))?;
        Ok(Self::parse(&text))
    }

    pub fn parse(text: &str) -> Self {
        OwnCgroups(
            text.lines()
                .filter_map(|l| {
                    let mut parts = l.splitn(3, ':');
                    let _id = parts.next()?;
                    let ctrls = parts.next()?;
                    let path = parts.next()?;
                    let ctrls = ctrls
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .collect();
                    Some((ctrls, path.to_string()))
                })
                .collect(),
        )
    }

    /// The path of the hierarchy holding `controller` (`None` = the v2 entry).
    pub fn path_of(&self, controller: Option<&str>) -> Option<&str> {
        self.0
            .iter()
            .find(|(c, _)| match controller {
                Some(name) => c.iter().any(|x| x == name),
                None => c.is_empty(),
            })
            .map(|(_, p)| p.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 31 0:30 / /mnt/memory\\040again rw,relatime - cgroup cgroup rw,memory
35 31 0:31 /sub /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
36 31 0:32 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn entries_are_unescaped_with_root_and_type() {
        let e = entries(INFO);
        assert_eq!(e.len(), 6);
        assert_eq!(e[3].mount_point, PathBuf::from("/mnt/memory again"));
        assert_eq!(e[4].root, "/sub");
        assert_eq!(e[5].fs_type, "cgroup2");
    }

    #[test]
    fn parses_combined_and_named_mounts() {
        let m = CgroupMounts::parse(INFO);
        assert_eq!(m.v1.len(), 3);
        assert_eq!(m.v1[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(
            m.v1[0].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(m.v1[1].controllers, vec!["memory"]);
        assert_eq!(m.v1[2].controllers, vec!["name=systemd"]);
        assert_eq!(m.v1[2].root, "/sub");
        assert_eq!(
            m.v2,
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_string()))
        );
    }

    /// A cloned mount namespace lists mounts in tree order: a part of a
    /// hierarchy bound below another container's rootfs (under /tmp) may come
    /// before the host's mount of the whole hierarchy.
    #[test]
    fn the_whole_hierarchy_under_sys_fs_cgroup_wins_over_earlier_binds() {
        let info = "40 23 0:29 /berth/x /tmp/b/rootfs/sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
41 23 0:32 /berth/x /tmp/b/rootfs/sys/fs/cgroup rw - cgroup2 cgroup2 rw
42 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
43 31 0:32 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        let m = CgroupMounts::parse(info);
        assert_eq!(m.v1.len(), 1);
        assert_eq!(m.v1[0].mount_point, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(m.v1[0].root, "/");
        assert_eq!(
            m.v2,
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_string()))
        );
    }

    #[test]
    fn the_mode_follows_the_mounted_kinds() {
        use crate::Mode;
        assert_eq!(CgroupMounts::parse(INFO).mode, Some(Mode::Hybrid));
        let v1_only: String = INFO.lines().take(5).map(|l| format!("{l}\n")).collect();
        assert_eq!(CgroupMounts::parse(&v1_only).mode, Some(Mode::Legacy));
        let unified = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(CgroupMounts::parse(unified).mode, Some(Mode::Unified));
        let elsewhere = "30 23 0:26 / /mnt/cg rw - cgroup2 cgroup2 rw\n";
        assert_eq!(CgroupMounts::parse(elsewhere).mode, None);
        assert_eq!(CgroupMounts::parse("").mode, None);
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape("/plain"), "/plain");
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(
            unescape_path("/mnt/a\\040b\\377").as_os_str().as_bytes(),
            b"/mnt/a b\xff",
            "a mount point that is not UTF-8 keeps its bytes"
        );
    }

    #[test]
    fn parses_own_cgroups() {
        let own = OwnCgroups::parse("9:name=systemd:/\n4:memory:/a/b\n2:cpu,cpuacct:/c\n0::/u\n");
        assert_eq!(own.path_of(Some("memory")), Some("/a/b"));
        assert_eq!(own.path_of(Some("cpuacct")), Some("/c"));
        assert_eq!(own.path_of(Some("name=systemd")), Some("/"));
        assert_eq!(own.path_of(None), Some("/u"));
        assert_eq!(own.path_of(Some("pids")), None);
    }
}
