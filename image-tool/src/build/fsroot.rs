//! A directory used as `/`: paths inside it are resolved with
//! `openat2(RESOLVE_IN_ROOT)`, so symlinks (absolute ones too) and `..` never
//! lead outside it, the way they resolve inside a container. The build reads
//! its sources (the context, another stage) and writes COPY destinations
//! through this.

use anyhow::{Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub struct Root {
    fd: OwnedFd,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = rfs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("open {}", path.display()))?;
        Ok(Root { fd })
    }

    /// Open `rel` (slash separated, relative to this root) following symlinks inside it.
    pub fn open_in(&self, rel: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let rel = if rel.is_empty() { "." } else { rel };
        rfs::openat2(
            &self.fd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
    }

    /// The type of what `rel` resolves to, `None` if it does not exist.
    pub fn kind(&self, rel: &str) -> Result<Option<FileType>> {
        match self.open_in(rel, OFlags::PATH) {
            Ok(fd) => {
                let st = rfs::fstat(&fd).with_context(|| format!("stat /{rel}"))?;
                Ok(Some(FileType::from_raw_mode(st.st_mode)))
            }
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("resolve /{rel}")),
        }
    }

    /// Open the directory `parts` below the root, creating what is missing
    /// (mode 0755, owned by `owner`).
    pub fn mkdir_all(&self, parts: &[&str], owner: (u32, u32)) -> Result<OwnedFd> {
        let mut cur: OwnedFd = self.open_in(".", dir_flags()).context("open the root")?;
        for i in 0..parts.len() {
            let prefix = parts[..=i].join("/");
            match self.open_in(&prefix, dir_flags()) {
                Ok(fd) => cur = fd,
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(&cur, parts[i], Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e).with_context(|| format!("create /{prefix}")),
                    }
                    chown_at(&cur, OsStr::new(parts[i]), owner)
                        .with_context(|| format!("chown /{prefix}"))?;
                    cur = self
                        .open_in(&prefix, dir_flags())
                        .with_context(|| format!("open /{prefix}"))?;
                }
                Err(Errno::NOTDIR) => {
                    anyhow::bail!("/{prefix} exists and is not a directory")
                }
                Err(e) => return Err(e).with_context(|| format!("open /{prefix}")),
            }
        }
        Ok(cur)
    }
}

impl AsFd for Root {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

pub fn dir_flags() -> OFlags {
    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC
}

/// Names in the directory `dir`, sorted, without `.` and `..`.
pub fn names(dir: &impl AsFd) -> Result<Vec<OsString>> {
    let fd = rfs::openat(dir, ".", dir_flags(), Mode::empty()).context("reopen directory")?;
    let mut d = rfs::Dir::new(fd).context("read directory")?;
    let mut out = Vec::new();
    for ent in d.by_ref() {
        let ent = ent.context("read directory entry")?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    out.sort();
    Ok(out)
}

pub fn chown_at(dir: &impl AsFd, name: &OsStr, (uid, gid): (u32, u32)) -> rustix::io::Result<()> {
    rfs::chownat(
        dir,
        name,
        Some(rfs::Uid::from_raw(uid)),
        Some(rfs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// `lstat` of `name` in `dir`.
pub fn lstat(dir: &impl AsFd, name: &OsStr) -> rustix::io::Result<rfs::Stat> {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
}

/// The host path of an open directory (its `/proc/self/fd` link).
pub fn fd_path(fd: &impl AsFd) -> Result<PathBuf> {
    use std::os::fd::AsRawFd;
    let link = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    std::fs::read_link(&link).with_context(|| format!("readlink {link}"))
}
