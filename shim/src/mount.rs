//! The container's rootfs from the mounts in the Create request (an overlay
//! from containerd's snapshotter, usually), mounted at `<bundle>/rootfs`.

use std::path::Path;

use containerd_shim::protos::types::mount::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};

/// Option string → (flag, whether the option clears it).
const FLAGS: &[(&str, MsFlags, bool)] = &[
    ("ro", MsFlags::MS_RDONLY, false),
    ("rw", MsFlags::MS_RDONLY, true),
    ("bind", MsFlags::MS_BIND, false),
    ("rbind", MsFlags::MS_BIND.union(MsFlags::MS_REC), false),
    ("nosuid", MsFlags::MS_NOSUID, false),
    ("suid", MsFlags::MS_NOSUID, true),
    ("nodev", MsFlags::MS_NODEV, false),
    ("dev", MsFlags::MS_NODEV, true),
    ("noexec", MsFlags::MS_NOEXEC, false),
    ("exec", MsFlags::MS_NOEXEC, true),
    ("sync", MsFlags::MS_SYNCHRONOUS, false),
    ("async", MsFlags::MS_SYNCHRONOUS, true),
    ("dirsync", MsFlags::MS_DIRSYNC, false),
    ("remount", MsFlags::MS_REMOUNT, false),
    ("mand", MsFlags::MS_MANDLOCK, false),
    ("nomand", MsFlags::MS_MANDLOCK, true),
    ("noatime", MsFlags::MS_NOATIME, false),
    ("atime", MsFlags::MS_NOATIME, true),
    ("nodiratime", MsFlags::MS_NODIRATIME, false),
    ("diratime", MsFlags::MS_NODIRATIME, true),
    ("relatime", MsFlags::MS_RELATIME, false),
    ("norelatime", MsFlags::MS_RELATIME, true),
    ("strictatime", MsFlags::MS_STRICTATIME, false),
    ("nostrictatime", MsFlags::MS_STRICTATIME, true),
    ("private", MsFlags::MS_PRIVATE, false),
    (
        "rprivate",
        MsFlags::MS_PRIVATE.union(MsFlags::MS_REC),
        false,
    ),
    ("shared", MsFlags::MS_SHARED, false),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC), false),
    ("slave", MsFlags::MS_SLAVE, false),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC), false),
    ("unbindable", MsFlags::MS_UNBINDABLE, false),
    (
        "runbindable",
        MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC),
        false,
    ),
];

const PROPAGATION: MsFlags = MsFlags::MS_SHARED
    .union(MsFlags::MS_PRIVATE)
    .union(MsFlags::MS_SLAVE)
    .union(MsFlags::MS_UNBINDABLE);

/// mount(2) takes at most a page of data; overlays with many layers need the
/// library's helper, which compacts lowerdir paths from a forked child.
const MAX_DATA: usize = 4096 - 512;

/// Splits mount options into flags and the filesystem's data string.
fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match FLAGS.iter().find(|(name, _, _)| name == o) {
            Some((_, f, true)) => flags.remove(*f),
            Some((_, f, false)) => flags.insert(*f),
            None => data.push(o.as_str()),
        }
    }
    (flags, data.join(","))
}

pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for m in mounts {
        mount_one(m, target).map_err(|e| {
            unmount_all(target);
            e.context(format_args!(
                "mount {} ({}) on {}",
                m.source,
                m.type_,
                target.display()
            ))
        })?;
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> Result<()> {
    let (flags, data) = parse_options(&m.options);
    let opt = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    let (fstype, source) = (opt(&m.type_), opt(&m.source));
    if data.len() > MAX_DATA {
        return containerd_shim::mount::mount_rootfs(
            fstype.as_deref(),
            source.as_deref(),
            &m.options,
            target,
        )
        .map_err(Error::from);
    }
    let data = opt(&data);
    if !flags.contains(MsFlags::MS_REMOUNT) || data.is_some() {
        mount(
            source.as_deref(),
            target,
            fstype.as_deref(),
            flags - PROPAGATION,
            data.as_deref(),
        )?;
    }
    if flags.intersects(PROPAGATION) {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            flags & (PROPAGATION | MsFlags::MS_REC),
            None::<&str>,
        )?;
    }
    if flags.contains(MsFlags::MS_BIND | MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            (flags - PROPAGATION) | MsFlags::MS_REMOUNT,
            None::<&str>,
        )?;
    }
    Ok(())
}

/// Unmounts everything stacked on `target` (lazily; ignores "not mounted").
pub fn unmount_all(target: &Path) {
    loop {
        match umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => break,
            Err(e) => {
                log::warn!("unmount {}: {e}", target.display());
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = [
            "ro",
            "nosuid",
            "lowerdir=/a:/b",
            "upperdir=/u",
            "rw",
            "rprivate",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (flags, data) = parse_options(&opts);
        assert_eq!(
            flags,
            MsFlags::MS_NOSUID | MsFlags::MS_PRIVATE | MsFlags::MS_REC
        );
        assert_eq!(data, "lowerdir=/a:/b,upperdir=/u");
    }
}
