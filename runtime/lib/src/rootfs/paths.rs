//! Resolving paths *inside* the rootfs. Every lookup goes through openat2(2) with
//! RESOLVE_IN_ROOT, so `..` and symlinks (absolute or relative) can never lead out
//! of the rootfs, whatever the image contains. Mounts then target the resolved
//! object through its /proc/self/fd path, never a re-walked string.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::sys::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};

/// The rootfs as a directory fd.
pub struct Root {
    pub fd: OwnedFd,
    pub path: PathBuf,
}

/// What to create when a mount destination is missing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Dir,
    File,
}

/// `p` as a path relative to the rootfs, cleaned lexically as runc's
/// `filepath.Clean` does (`..` pops, but never above the root).
fn rel(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// How many dangling symlinks a single mkdir-all may follow before giving up
/// (the kernel's own limit for a path walk is 40).
const MAX_SYMLINKS: u32 = 40;

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Path {
            path: path.into(),
            msg: format!("open rootfs: {e}"),
        })?;
        Ok(Root {
            fd,
            path: path.into(),
        })
    }

    /// Open `p` (interpreted inside the rootfs) with O_PATH.
    pub fn open_path(&self, p: &Path, extra: i32) -> std::result::Result<OwnedFd, Errno> {
        let r = rel(p);
        let target = if r.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            r
        };
        openat2(
            self.fd.as_raw_fd(),
            &target,
            libc::O_PATH | extra,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        )
    }

    /// Open with real access flags (for writing files such as sysctls or reading).
    pub fn open_file(&self, p: &Path, flags: i32) -> std::result::Result<OwnedFd, Errno> {
        openat2(
            self.fd.as_raw_fd(),
            &rel(p),
            flags,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        )
    }

    /// mkdir -p inside the rootfs; returns an O_PATH fd of the final directory.
    pub fn mkdir_all(&self, p: &Path, mode: u32) -> Result<OwnedFd> {
        let mut budget = MAX_SYMLINKS;
        self.mkdir_all_inner(p, mode, &mut budget)
    }

    fn mkdir_all_inner(&self, p: &Path, mode: u32, budget: &mut u32) -> Result<OwnedFd> {
        let r = rel(p);
        let mut cur = PathBuf::new();
        let mut fd = self
            .open_path(Path::new("."), libc::O_DIRECTORY)
            .map_err(|e| self.err(p, "open", e))?;
        for comp in r.components() {
            let parent = cur.clone();
            cur.push(comp);
            match self.open_path(&cur, libc::O_DIRECTORY) {
                Ok(next) => fd = next,
                Err(Errno::ENOENT) => {
                    match nix::sys::stat::mkdirat(
                        &fd,
                        comp.as_os_str(),
                        Mode::from_bits_truncate(mode),
                    ) {
                        Ok(()) => {}
                        // Made meanwhile by someone else (containers sharing a
                        // rootfs are created concurrently): walk on through it.
                        Err(Errno::EEXIST) if self.open_path(&cur, libc::O_DIRECTORY).is_ok() => {}
                        Err(Errno::EEXIST) => {
                            // Something is there but does not resolve: a dangling
                            // symlink. Create its target, resolved inside the rootfs
                            // (as runc's securejoin does), then walk on through it.
                            self.create_link_target(
                                &fd,
                                &parent,
                                comp.as_os_str(),
                                &cur,
                                mode,
                                budget,
                            )?;
                        }
                        Err(e) => return Err(self.err(&cur, "mkdir", e)),
                    }
                    fd = self
                        .open_path(&cur, libc::O_DIRECTORY)
                        .map_err(|e| self.err(&cur, "open after mkdir", e))?;
                }
                Err(e) => return Err(self.err(&cur, "open", e)),
            }
        }
        Ok(fd)
    }

    /// `dirfd/name` is a symlink whose target does not exist: make the target
    /// a directory inside the rootfs.
    fn create_link_target(
        &self,
        dirfd: &OwnedFd,
        parent: &Path,
        name: &std::ffi::OsStr,
        cur: &Path,
        mode: u32,
        budget: &mut u32,
    ) -> Result<()> {
        let target = self.dangling_target(dirfd, parent, name, cur, budget)?;
        self.mkdir_all_inner(&target, mode, budget).map(|_| ())
    }

    /// The rootfs-relative path a dangling symlink `dirfd/name` points to.
    fn dangling_target(
        &self,
        dirfd: &OwnedFd,
        parent: &Path,
        name: &std::ffi::OsStr,
        cur: &Path,
        budget: &mut u32,
    ) -> Result<PathBuf> {
        if *budget == 0 {
            return Err(self.err(cur, "resolve", Errno::ELOOP));
        }
        *budget -= 1;
        let link = nix::fcntl::readlinkat(dirfd, name).map_err(|e| self.err(cur, "readlink", e))?;
        let link = PathBuf::from(link);
        Ok(if link.is_absolute() {
            rel(&link)
        } else {
            rel(&parent.join(link))
        })
    }

    /// Make sure `p` exists inside the rootfs as `kind` (creating parents), and
    /// return an O_PATH fd to it (following symlinks only within the rootfs).
    pub fn ensure(&self, p: &Path, kind: Kind) -> Result<OwnedFd> {
        match self.open_path(p, 0) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(self.err(p, "open", e)),
        }
        match kind {
            Kind::Dir => self.mkdir_all(p, 0o755),
            Kind::File => {
                let parent = p.parent().unwrap_or(Path::new("/"));
                let name = p.file_name().ok_or_else(|| Error::Path {
                    path: p.into(),
                    msg: "no file name".into(),
                })?;
                let dir = self.mkdir_all(parent, 0o755)?;
                // Re-open the parent as a real directory fd for openat with O_CREAT.
                let dirfd = openat2(
                    dir.as_raw_fd(),
                    Path::new("."),
                    libc::O_DIRECTORY | libc::O_RDONLY,
                    0,
                    0,
                )
                .map_err(|e| self.err(parent, "open", e))?;
                match openat2(
                    dirfd.as_raw_fd(),
                    Path::new(name),
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                    0o644,
                    0,
                ) {
                    Ok(_) => {}
                    Err(Errno::EEXIST) => {
                        if let Err(Errno::ENOENT) = self.open_path(p, 0) {
                            // A dangling symlink: create the file it names, inside the rootfs.
                            let mut budget = MAX_SYMLINKS;
                            let parent_rel = rel(parent);
                            let target =
                                self.dangling_target(&dirfd, &parent_rel, name, p, &mut budget)?;
                            return self.ensure(&target, Kind::File);
                        }
                    }
                    Err(e) => return Err(self.err(p, "create", e)),
                }
                self.open_path(p, 0)
                    .map_err(|e| self.err(p, "open after create", e))
            }
        }
    }

    fn err(&self, p: &Path, what: &str, e: Errno) -> Error {
        Error::Path {
            path: self.path.join(rel(p)),
            msg: format!("{what} (resolved inside the rootfs): {e}"),
        }
    }
}

/// fstat an fd.
pub fn fstat(fd: &impl AsFd) -> std::result::Result<libc::stat, Errno> {
    nix::sys::stat::fstat(fd)
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_mkdir_all_of_the_same_path() {
        // Containers sharing a rootfs make their mount points concurrently: a
        // directory made by another between our open and mkdir is walked through.
        let base = std::env::temp_dir().join(format!("berth-paths-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        for round in 0..200 {
            let root = Root::open(&base).unwrap();
            let p = PathBuf::from(format!("/r{round}/a/b"));
            let barrier = std::sync::Barrier::new(8);
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            root.mkdir_all(&p, 0o755).map(|_| ())
                        })
                    })
                    .collect();
                for h in hs {
                    if let Err(e) = h.join().unwrap() {
                        panic!("round {round}: {e}");
                    }
                }
            });
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
