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

/// Path components looked at in one lookup (`..` walks the resolved path again)
/// before giving up: bounds the work a crafted chain of symlinks can cause.
const MAX_STEPS: u32 = 4096;

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
    /// symlinks inside the merged root; `None` if there is no directory there (or the
    /// lookup needs more than [`MAX_SYMLINKS`] symlinks or [`MAX_STEPS`] steps).
    pub fn directory(&self, path: &[OsString]) -> Result<Option<SafeDir>> {
        let mut todo: VecDeque<OsString> = path.iter().cloned().collect();
        // The visible copies of the directory reached so far, top first.
        let mut here = self.roots()?;
        let mut resolved: Vec<OsString> = Vec::new();
        let (mut links, mut steps) = (0, 0);
        while let Some(comp) = todo.pop_front() {
            steps += 1;
            if steps > MAX_STEPS {
                return Ok(None);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};
    use std::path::Path;

    fn mkdir(p: &Path, mode: u32) {
        std::fs::create_dir_all(p).unwrap();
        rfs::chmod(p, rfs::Mode::from_raw_mode(mode)).unwrap();
    }

    fn mode_of(d: &SafeDir) -> u32 {
        rfs::fstat(d).unwrap().st_mode & 0o7777
    }

    fn find(lower: &LowerLayers, path: &str) -> Option<u32> {
        let comps: Vec<OsString> = path.split('/').map(OsString::from).collect();
        lower.directory(&comps).unwrap().map(|d| mode_of(&d))
    }

    #[test]
    fn merged_lookup_follows_overlayfs_and_symlinks_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let (l0, l1) = (t.path().join("l0"), t.path().join("l1"));
        mkdir(&l0.join("usr/lib"), 0o750);
        mkdir(&l0.join("gone"), 0o700);
        mkdir(&l0.join("opq/below"), 0o711);
        mkdir(&l0.join("deep/a/b"), 0o701);
        symlink("usr/lib", l0.join("lib")).unwrap();
        symlink("/usr/../usr/./lib", l0.join("abs")).unwrap();
        symlink("../../../usr", l0.join("deep/a/up")).unwrap();
        symlink("loop", l0.join("loop")).unwrap();
        mkdir(&l1.join("opq"), 0o755);
        rfs::setxattr(
            l1.join("opq"),
            OVERLAY_OPAQUE_XATTR,
            b"y",
            rfs::XattrFlags::empty(),
        )
        .unwrap();
        rfs::mknodat(
            rfs::CWD,
            l1.join("gone"),
            FileType::CharacterDevice,
            rfs::Mode::empty(),
            0,
        )
        .unwrap();
        mkdir(&l1.join("usr"), 0o700);
        let lower = LowerLayers::open(&[l0, l1]).unwrap();
        assert_eq!(find(&lower, "usr"), Some(0o700), "the top copy");
        assert_eq!(find(&lower, "usr/lib"), Some(0o750), "merged from below");
        assert_eq!(
            find(&lower, "lib"),
            Some(0o750),
            "through a relative symlink"
        );
        assert_eq!(find(&lower, "abs"), Some(0o750), "absolute, with .. and .");
        assert_eq!(
            find(&lower, "deep/a/up/lib"),
            Some(0o750),
            ".. clamps at the root"
        );
        assert_eq!(find(&lower, "gone"), None, "whited out");
        assert_eq!(
            find(&lower, "opq/below"),
            None,
            "hidden by an opaque directory"
        );
        assert_eq!(find(&lower, "loop"), None, "a symlink loop ends");
        assert_eq!(find(&lower, "missing/x"), None);
        let root = lower.directory(&[]).unwrap().unwrap();
        assert_eq!(
            rfs::fstat(&root).unwrap().st_ino,
            std::fs::metadata(t.path().join("l1")).unwrap().ino(),
            "the root is the top layer's"
        );
    }
}
