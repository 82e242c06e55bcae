//! Mount stubs: the empty files and directories the runtime makes in a
//! container's root to mount over (`/etc/hosts`, `/etc/hostname`,
//! `/etc/resolv.conf`, `/proc`, ... when the image lacks them). They are not
//! the RUN command's doing, so they are taken out of the step's writable
//! layer after the run (as BuildKit removes its mount stubs; docker's init
//! layer keeps them out of commits), and so are directories copied up only
//! to hold them.
//!
//! [`MountStubs::find`] looks at the mounted root before the run;
//! [`MountStubs::remove_from`] edits the unmounted writable layer after it.

use super::fsroot::{fd_path, Root};
use crate::fsutil::{get_xattr, SafeDir};
use anyhow::{Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, OFlags, Timestamps};
use rustix::io::Errno;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

/// Type and permission bits, owner and group of a directory.
type DirMeta = (u32, u32, u32);

/// What the runtime may make to mount over, found before the run.
#[derive(Debug, Default)]
pub(super) struct MountStubs {
    /// Paths (relative to the root, symlinks resolved) missing before the run.
    missing: Vec<String>,
    /// The directories above them that existed, with their metadata then.
    holders: BTreeMap<String, DirMeta>,
}

fn depth(p: &str) -> usize {
    p.matches('/').count()
}

fn meta(st: &rfs::Stat) -> DirMeta {
    (st.st_mode, st.st_uid, st.st_gid)
}

impl MountStubs {
    /// The mount destinations of `config` (an OCI runtime config) that the
    /// root mounted at `rootfs` lacks.
    pub fn find(rootfs: &Path, config: &Value) -> Result<MountStubs> {
        let root = Root::open(rootfs)?;
        let root_path = fd_path(&root)?;
        let mut stubs = MountStubs::default();
        let destinations = config["mounts"].as_array().into_iter().flatten();
        for dest in destinations.filter_map(|m| m["destination"].as_str()) {
            stubs.add(&root, &root_path, dest)?;
        }
        stubs.missing.sort_by_key(|p| std::cmp::Reverse(depth(p)));
        stubs.missing.dedup();
        Ok(stubs)
    }

    fn add(&mut self, root: &Root, root_path: &Path, dest: &str) -> Result<()> {
        let parts: Vec<&str> = dest
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.contains(&"..") {
            return Ok(());
        }
        // The deepest existing directory on the way (symlinks resolved in the root).
        let mut found = 0;
        while found < parts.len() {
            match root.open_in(&parts[..=found].join("/"), OFlags::PATH) {
                Ok(_) => found += 1,
                Err(Errno::NOENT) => break,
                Err(_) => return Ok(()),
            }
        }
        if found == parts.len() {
            return Ok(());
        }
        let dir = root
            .open_in(&parts[..found].join("/"), OFlags::PATH | OFlags::DIRECTORY)
            .with_context(|| format!("open the parent of {dest}"))?;
        // A dangling symlink: the runtime makes its target, not this name.
        if rfs::statat(&dir, parts[found], AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            return Ok(());
        }
        let real = fd_path(&dir)?;
        let Ok(base) = real.strip_prefix(root_path) else {
            return Ok(());
        };
        let base = base.to_string_lossy().into_owned();
        let mut path = base.clone();
        for p in &parts[found..] {
            path = if path.is_empty() {
                p.to_string()
            } else {
                format!("{path}/{p}")
            };
            self.missing.push(path.clone());
        }
        let mut holder = base;
        while !holder.is_empty() {
            if !self.holders.contains_key(&holder) {
                let fd = root
                    .open_in(&holder, OFlags::PATH | OFlags::DIRECTORY)
                    .with_context(|| format!("open /{holder}"))?;
                let st = rfs::fstat(&fd).with_context(|| format!("stat /{holder}"))?;
                self.holders.insert(holder.clone(), meta(&st));
            }
            holder = match holder.rsplit_once('/') {
                Some((up, _)) => up.to_string(),
                None => String::new(),
            };
        }
        Ok(())
    }

    /// Remove from the unmounted writable layer `upper` each stub the run
    /// left (an empty file or directory where a missing path was), then each
    /// directory that was copied up only for them (empty, not opaque, with
    /// the type, mode and owner it had).
    pub fn remove_from(&self, upper: &Path) -> Result<()> {
        let top = SafeDir::open(upper)?;
        for p in &self.missing {
            remove_if(&top, p, |parent, name, st| {
                match FileType::from_raw_mode(st.st_mode) {
                    FileType::RegularFile => Ok(st.st_size == 0),
                    FileType::Directory => is_empty_dir(parent, name),
                    _ => Ok(false),
                }
            })?;
        }
        let mut holders: Vec<(&String, &DirMeta)> = self.holders.iter().collect();
        holders.sort_by_key(|(p, _)| std::cmp::Reverse(depth(p)));
        for (p, before) in holders {
            remove_if(&top, p, |parent, name, st| {
                Ok(meta(st) == *before
                    && get_xattr(parent, name, "trusted.overlay.opaque").is_none()
                    && is_empty_dir(parent, name)?)
            })?;
        }
        Ok(())
    }
}

fn is_empty_dir(parent: &SafeDir, name: &OsStr) -> Result<bool> {
    let dir = parent
        .child(name)
        .with_context(|| format!("open {name:?}"))?;
    Ok(dir.names()?.is_empty())
}

/// Remove `rel` below `top` when `stub` says it is one, keeping the times
/// of its directory. Nothing happens when `rel` is gone or lies past a
/// symlink or a non-directory.
fn remove_if(
    top: &SafeDir,
    rel: &str,
    stub: impl Fn(&SafeDir, &OsStr, &rfs::Stat) -> Result<bool>,
) -> Result<()> {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", rel),
    };
    let comps: Vec<&OsStr> = dir
        .split('/')
        .filter(|c| !c.is_empty())
        .map(OsStr::new)
        .collect();
    let Ok(parent) = top.walk(&comps, false, rel) else {
        return Ok(());
    };
    let name = OsStr::new(name);
    let st = match rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("stat {rel}")),
    };
    if !stub(&parent, name, &st)? {
        return Ok(());
    }
    let times = rfs::fstat(&parent).with_context(|| format!("stat the directory of {rel}"))?;
    let flags = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    rfs::unlinkat(&parent, name, flags).with_context(|| format!("remove {rel}"))?;
    let ts = Timestamps {
        last_access: rfs::Timespec {
            tv_sec: times.st_atime,
            tv_nsec: times.st_atime_nsec as _,
        },
        last_modification: rfs::Timespec {
            tv_sec: times.st_mtime,
            tv_nsec: times.st_mtime_nsec as _,
        },
    };
    rfs::futimens(&parent, &ts).with_context(|| format!("restore the times of /{dir}"))
}
