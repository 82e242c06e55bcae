//! `tmpcopyup`: fill a new tmpfs with a copy of the directory it covers (what
//! podman's `--read-only`, `--tmpfs` and `--mount type=tmpfs` ask for). The
//! covered directory is read through an fd opened before the tmpfs went on
//! top of it; nothing is followed out of either tree (every step is an *at
//! call on a directory fd, symlinks are copied as links).

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fchmodat, fstatat, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};

use crate::error::{Error, Result};

/// Copy the contents of directory `from` into directory `to`.
pub fn copy_tree(from: &OwnedFd, to: &OwnedFd, what: &str) -> Result<()> {
    copy_dir(from.as_fd(), to.as_fd(), 0)
        .map_err(|e| Error::Other(format!("tmpcopyup of {what}: {e}")))
}

/// Deeper trees than this are refused (an image cannot make the runtime
/// recurse without bound).
const MAX_DEPTH: usize = 256;

fn open_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlag,
) -> std::result::Result<OwnedFd, String> {
    nix::fcntl::openat(
        dir,
        name,
        flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| format!("open {}: {e}", name.to_string_lossy()))
}

fn entries(dir: BorrowedFd<'_>) -> std::result::Result<Vec<CString>, String> {
    let dup = nix::unistd::dup(dir).map_err(|e| format!("dup: {e}"))?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(|e| format!("opendir: {e}"))?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(|e| format!("readdir: {e}"))?;
        let name: &CStr = e.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

fn copy_dir(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    depth: usize,
) -> std::result::Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("directory tree too deep".into());
    }
    for name in entries(from)? {
        let name = OsStr::from_bytes(name.to_bytes());
        let st = fstatat(from, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| format!("stat {}: {e}", name.to_string_lossy()))?;
        let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        match kind {
            SFlag::S_IFDIR => {
                mkdirat(to, name, Mode::from_bits_truncate(0o700))
                    .map_err(|e| format!("mkdir {}: {e}", name.to_string_lossy()))?;
                let src = open_at(from, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                let dst = open_at(to, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                copy_dir(src.as_fd(), dst.as_fd(), depth + 1)?;
            }
            SFlag::S_IFREG => {
                let mut src = std::fs::File::from(open_at(from, name, OFlag::O_RDONLY)?);
                let dst = nix::fcntl::openat(
                    to,
                    name,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| format!("create {}: {e}", name.to_string_lossy()))?;
                let mut dst = std::fs::File::from(dst);
                std::io::copy(&mut src, &mut dst)
                    .map_err(|e| format!("copy {}: {e}", name.to_string_lossy()))?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(from, name)
                    .map_err(|e| format!("readlink {}: {e}", name.to_string_lossy()))?;
                nix::unistd::symlinkat(target.as_os_str(), to, name)
                    .map_err(|e| format!("symlink {}: {e}", name.to_string_lossy()))?;
            }
            SFlag::S_IFIFO | SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFSOCK => {
                match mknodat(to, name, kind, perm, st.st_rdev) {
                    Ok(()) => {}
                    // A socket is only a name; a device may be refused (user
                    // namespaces): the copy goes on without it, as mkdir -p would.
                    Err(Errno::EPERM) | Err(Errno::EOPNOTSUPP) => continue,
                    Err(e) => return Err(format!("mknod {}: {e}", name.to_string_lossy())),
                }
            }
            _ => continue,
        }
        fchownat(
            to,
            name,
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .or_else(|e| {
            if e == Errno::EINVAL || e == Errno::EPERM {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| format!("chown {}: {e}", name.to_string_lossy()))?;
        if kind != SFlag::S_IFLNK {
            // After the chown, which clears set-id bits.
            // Not a link: this process just made the entry in the new tmpfs.
            fchmodat(to, name, perm, FchmodatFlags::FollowSymlink)
                .map_err(|e| format!("chmod {}: {e}", name.to_string_lossy()))?;
        }
    }
    Ok(())
}
