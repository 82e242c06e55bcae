//! Directory operations that never follow symlinks out of a root.
//!
//! Every path is resolved one component at a time with `openat(O_NOFOLLOW|O_DIRECTORY)`
//! starting from an open directory, so nothing outside that directory can be reached
//! through `..`, absolute paths or symlinks.

use crate::error::{unsafe_entry, IoContext, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An open directory used as the starting point of relative lookups.
#[derive(Debug)]
pub struct SafeDir {
    fd: OwnedFd,
}

impl AsFd for SafeDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

/// Split an archive path into clean components: leading `./` and empty/`.` parts are
/// dropped; absolute paths and `..` are rejected. A bare `/` (umoci writes one for the
/// layer root) names the root like `.` does.
pub fn clean_components(entry: &[u8]) -> std::result::Result<Vec<&OsStr>, String> {
    if entry.first() == Some(&b'/') && !entry.iter().all(|b| *b == b'/') {
        return Err("absolute path".into());
    }
    let mut out = Vec::new();
    for part in entry.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("path contains a '..' component".into()),
            p => out.push(OsStr::from_bytes(p)),
        }
    }
    Ok(out)
}

impl SafeDir {
    /// Open an existing directory (the final component must not be a symlink).
    pub fn open(path: &Path) -> Result<Self> {
        let fd = rfs::open(path, DIR_FLAGS, Mode::empty())
            .ctx(|| format!("open directory {}", path.display()))?;
        Ok(SafeDir { fd })
    }

    /// Duplicate the handle.
    pub fn try_clone(&self) -> Result<Self> {
        let fd = self.fd.try_clone().ctx(|| "dup directory fd".to_string())?;
        Ok(SafeDir { fd })
    }

    /// Open the child directory `name` without following a symlink.
    pub fn child(&self, name: &OsStr) -> rustix::io::Result<SafeDir> {
        rfs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()).map(|fd| SafeDir { fd })
    }

    /// Walk `comps` below this directory, creating missing directories (mode 0755) when
    /// `create` is set. Symlinks and non-directories on the way are errors naming `entry`.
    pub fn walk(&self, comps: &[&OsStr], create: bool, entry: &str) -> Result<SafeDir> {
        let Some((first, rest)) = comps.split_first() else {
            return self.try_clone();
        };
        let mut cur = self.step(first, create, entry)?;
        for comp in rest {
            cur = cur.step(comp, create, entry)?;
        }
        Ok(cur)
    }

    fn step(&self, comp: &OsStr, create: bool, entry: &str) -> Result<SafeDir> {
        match self.child(comp) {
            Ok(d) => Ok(d),
            Err(Errno::NOENT) if create => {
                match rfs::mkdirat(&self.fd, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e).ctx(|| format!("{entry}: create parent {comp:?}")),
                }
                self.child(comp)
                    .map_err(|e| self.walk_error(comp, e, entry))
            }
            Err(e) => Err(self.walk_error(comp, e, entry)),
        }
    }

    pub(crate) fn walk_error(&self, comp: &OsStr, err: Errno, entry: &str) -> crate::Error {
        match self.file_type(comp) {
            Ok(Some(FileType::Symlink)) => unsafe_entry(
                entry,
                format!("parent component {comp:?} is a symlink (refusing to follow it)"),
            ),
            Ok(Some(_)) if err == Errno::NOTDIR || err == Errno::LOOP => unsafe_entry(
                entry,
                format!("parent component {comp:?} is not a directory"),
            ),
            Ok(None) => unsafe_entry(entry, format!("parent directory {comp:?} does not exist")),
            _ => crate::Error::Io {
                context: format!("{entry}: open parent {comp:?}"),
                source: err.into(),
            },
        }
    }

    /// The type of `name` (not following symlinks), or `None` if absent.
    pub fn file_type(&self, name: &OsStr) -> rustix::io::Result<Option<FileType>> {
        match rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Remove `name` whatever it is (directories recursively); absent is fine.
    pub fn remove_all(&self, name: &OsStr) -> Result<()> {
        match self.file_type(name).ctx(|| format!("stat {name:?}"))? {
            None => Ok(()),
            Some(FileType::Directory) => {
                let child = self.child(name).ctx(|| format!("open {name:?}"))?;
                child.clear()?;
                rfs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR).ctx(|| format!("rmdir {name:?}"))
            }
            Some(_) => {
                rfs::unlinkat(&self.fd, name, AtFlags::empty()).ctx(|| format!("unlink {name:?}"))
            }
        }
    }

    /// Remove every entry of this directory.
    pub fn clear(&self) -> Result<()> {
        for name in self.names()? {
            self.remove_all(&name)?;
        }
        Ok(())
    }

    /// Names of the entries of this directory (without `.` and `..`), sorted.
    pub fn names(&self) -> Result<Vec<OsString>> {
        let fd =
            rfs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty()).ctx(|| "reopen dir".into())?;
        let mut dir = rfs::Dir::new(fd).ctx(|| "read dir".into())?;
        let mut names = Vec::new();
        for ent in dir.by_ref() {
            let ent = ent.ctx(|| "read dir entry".into())?;
            let name = ent.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Read an extended attribute of `name` inside `dir` without following symlinks.
pub fn get_xattr(dir: &SafeDir, name: &OsStr, attr: &str) -> Option<Vec<u8>> {
    let path = proc_path(dir, name);
    let mut buf = vec![0u8; 4096];
    match rfs::lgetxattr(&path, attr, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

/// List extended attribute names of `name` inside `dir` without following symlinks.
pub fn list_xattrs(dir: &SafeDir, name: &OsStr) -> Vec<String> {
    let path = proc_path(dir, name);
    let mut buf = vec![0u8; 65536];
    match rfs::llistxattr(&path, &mut buf[..]) {
        Ok(n) => buf[..n]
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Set an extended attribute on `name` inside `dir` without following symlinks.
pub fn set_xattr(dir: &SafeDir, name: &OsStr, attr: &str, value: &[u8]) -> rustix::io::Result<()> {
    rfs::lsetxattr(proc_path(dir, name), attr, value, rfs::XattrFlags::empty())
}

/// Remove an extended attribute of `name` inside `dir` without following symlinks.
pub fn remove_xattr(dir: &SafeDir, name: &OsStr, attr: &str) -> rustix::io::Result<()> {
    rfs::lremovexattr(proc_path(dir, name), attr)
}

/// `/proc/self/fd/<dirfd>/<name>`: a path whose only symlink is the magic link to `dir`.
fn proc_path(dir: &SafeDir, name: &OsStr) -> OsString {
    use std::os::fd::AsRawFd;
    let mut p = OsString::from(format!("/proc/self/fd/{}/", dir.fd.as_raw_fd()));
    p.push(name);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_components_normalizes_and_rejects() {
        let c = clean_components(b"./a//b/./c/").unwrap();
        assert_eq!(c, vec![OsStr::new("a"), OsStr::new("b"), OsStr::new("c")]);
        assert!(clean_components(b"./").unwrap().is_empty());
        assert!(clean_components(b"/etc/passwd").is_err());
        assert!(clean_components(b"/").unwrap().is_empty());
        assert!(clean_components(b"a/../../b").is_err());
        assert!(clean_components(b"..").is_err());
    }
}
