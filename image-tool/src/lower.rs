//! The layers below a layer, seen merged as overlayfs shows them, for what a layer tar
//! leaves unsaid: the metadata of parent directories it does not list.
//!
//! A layer holding `root/.bashrc` but no `root/` entry means "this file in the existing
//! /root", so the directory it needs is given the mode, owner, extended attributes and
//! times of `/root` in the layers below (as umoci and containerd do); only a directory
//! no lower layer has gets the default (0755, root-owned). Paths are resolved in the
//! merged lower layers, following symlinks inside that root filesystem the way
//! containerd's `fs.RootPath` does, so a directory replacing a lower `lib -> usr/lib`
//! takes the metadata of `usr/lib`.

use crate::error::{IoContext, Result};
use crate::fsutil::{get_xattr, list_xattrs, set_xattr, SafeDir};
use crate::unpack::OVERLAY_OPAQUE_XATTR;
use rustix::fs::{self as rfs, AtFlags, FileType, Timespec, Timestamps};
use rustix::io::Errno;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Symlinks followed in one lookup before giving up (Linux's own limit).
const MAX_SYMLINKS: u32 = 40;

/// The lower layers of one layer, top first.
pub struct LowerLayers {
    roots: Vec<SafeDir>,
}

/// What is at a name in one layer directory.
enum Found {
    Absent,
    Whiteout,
    Dir(SafeDir),
    Symlink(Vec<u8>),
    Other,
}

fn look(dir: &SafeDir, name: &OsStr) -> Result<Found> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(Found::Absent),
        Err(e) => return Err(e).ctx(|| format!("stat lower {name:?}")),
    };
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Found::Dir(dir.child(name).ctx(|| format!("open lower {name:?}"))?),
        FileType::Symlink => Found::Symlink(
            rfs::readlinkat(dir, name, Vec::new())
                .ctx(|| format!("readlink lower {name:?}"))?
                .into_bytes(),
        ),
        FileType::CharacterDevice if st.st_rdev == 0 => Found::Whiteout,
        _ => Found::Other,
    })
}

fn is_opaque(dir: &SafeDir) -> bool {
    get_xattr(dir, OsStr::new("."), OVERLAY_OPAQUE_XATTR).as_deref() == Some(b"y")
}

impl LowerLayers {
    /// Open the layer directories `bottom_first`.
    pub fn open(bottom_first: &[PathBuf]) -> Result<Self> {
        let roots = bottom_first
            .iter()
            .rev()
            .map(|p| SafeDir::open(p))
            .collect::<Result<_>>()?;
        Ok(LowerLayers { roots })
    }

    fn roots(&self) -> Result<Vec<SafeDir>> {
        self.roots.iter().map(SafeDir::try_clone).collect()
    }

    /// The directory at `path` in the merged lower layers (its topmost copy), following
    /// symlinks inside the merged root; `None` if there is no directory there.
    pub fn directory(&self, path: &[OsString]) -> Result<Option<SafeDir>> {
        let mut todo: VecDeque<OsString> = path.iter().cloned().collect();
        // The visible copies of the directory reached so far, top first.
        let mut here = self.roots()?;
        let mut resolved: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(comp) = todo.pop_front() {
            if comp.is_empty() || comp == "." {
                continue;
            }
            if comp == ".." {
                // From the root again, down the resolved path without its last part.
                resolved.pop();
                for c in resolved.drain(..).rev() {
                    todo.push_front(c);
                }
                here = self.roots()?;
                continue;
            }
            match step(&here, &comp)? {
                Step::Dir(next) => {
                    here = next;
                    resolved.push(comp);
                }
                Step::Symlink(target) => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Ok(None);
                    }
                    if target.first() == Some(&b'/') {
                        resolved.clear();
                        here = self.roots()?;
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        todo.push_front(OsStr::from_bytes(part).to_os_string());
                    }
                }
                Step::Nothing => return Ok(None),
            }
        }
        Ok(here.into_iter().next())
    }
}

/// Where one path component leads from the visible copies `here` of a directory.
enum Step {
    /// The visible copies of the child directory, top first.
    Dir(Vec<SafeDir>),
    /// The topmost entry is a symlink with this target.
    Symlink(Vec<u8>),
    /// No directory (absent, whited out, or not a directory).
    Nothing,
}

fn step(here: &[SafeDir], comp: &OsStr) -> Result<Step> {
    let mut next: Vec<SafeDir> = Vec::new();
    for dir in here {
        match look(dir, comp)? {
            Found::Absent => continue,
            Found::Dir(d) => {
                // An opaque copy hides the copies below it.
                let opaque = is_opaque(&d);
                next.push(d);
                if opaque {
                    break;
                }
            }
            Found::Symlink(target) if next.is_empty() => return Ok(Step::Symlink(target)),
            // A whiteout, a file, or anything not a directory below one, ends the merge.
            _ => break,
        }
    }
    Ok(if next.is_empty() {
        Step::Nothing
    } else {
        Step::Dir(next)
    })
}

/// Give `to` the mode, owner, extended attributes (but overlayfs' own) and times of
/// `from`.
pub fn copy_dir_metadata(from: &SafeDir, to: &SafeDir, what: &str) -> Result<()> {
    let st = rfs::fstat(from).ctx(|| format!("{what}: stat lower directory"))?;
    rfs::fchown(
        to,
        Some(rfs::Uid::from_raw(st.st_uid)),
        Some(rfs::Gid::from_raw(st.st_gid)),
    )
    .ctx(|| format!("{what}: chown"))?;
    rfs::fchmod(to, rfs::Mode::from_raw_mode(st.st_mode & 0o7777))
        .ctx(|| format!("{what}: chmod"))?;
    let dot = OsStr::new(".");
    for attr in list_xattrs(from, dot) {
        if attr.starts_with("trusted.overlay.") {
            continue;
        }
        if let Some(v) = get_xattr(from, dot, &attr) {
            set_xattr(to, dot, &attr, &v).ctx(|| format!("{what}: set xattr {attr}"))?;
        }
    }
    let ts = |s: i64, ns: u64| Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    let times = Timestamps {
        last_access: ts(st.st_atime, st.st_atime_nsec),
        last_modification: ts(st.st_mtime, st.st_mtime_nsec),
    };
    rfs::utimensat(to, dot, &times, AtFlags::empty()).ctx(|| format!("{what}: set times"))
}

/// Give the directories `implicit` of the layer at `layer` (paths a layer's entries
/// needed but the layer did not list; `[]` is its root) the metadata of the same
/// directories in `lower`. Directories the lower layers lack keep what they have.
pub fn inherit_parent_metadata(
    layer: &SafeDir,
    implicit: &[Vec<OsString>],
    lower: &LowerLayers,
) -> Result<()> {
    // Deepest first: setting a directory's times must come after its children.
    let mut paths: Vec<&Vec<OsString>> = implicit.iter().collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in paths {
        let what = format!("parent directory {:?}", path.join(OsStr::new("/")));
        let Some(from) = lower.directory(path)? else {
            continue;
        };
        let comps: Vec<&OsStr> = path.iter().map(|c| c.as_os_str()).collect();
        let to = layer.walk(&comps, false, &what)?;
        copy_dir_metadata(&from, &to, &what)?;
    }
    Ok(())
}
