//! The flags of a bind mount, set as runc sets them. A bind copies the
//! source mount's flags; with any flag option given (set or cleared), the
//! mount is remounted with exactly the flags asked for, the others cleared
//! (a ro source becomes rw unless `ro` is asked) except the atime ones,
//! which the kernel keeps unless one is asked. In a user namespace flags the
//! source has may be locked: then the source's lockable flags are kept,
//! unless the config explicitly clears one of them or asks for a different
//! atime behaviour, which is an error.

use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use super::options::MountOptions;
use crate::error::{Error, Result};
use crate::sys::{errno_text, fd_path};

/// MS_NOSYMFOLLOW (Linux 5.10), which nix does not name.
const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// The atime behaviours (mutually exclusive) and the diratime flag.
fn atime_flags() -> MsFlags {
    MsFlags::MS_NOATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME | MsFlags::MS_NODIRATIME
}

/// Flags a mount inherited into another user namespace keeps locked.
fn lockable_flags() -> MsFlags {
    MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | atime_flags()
}

/// The per-mount flags of the mount `fd` lies on, from statfs(2).
fn mount_flags_of(fd: &impl AsRawFd) -> Result<MsFlags> {
    let st = nix::sys::statfs::fstatfs(unsafe_borrow(fd))
        .map_err(|e| Error::Other(format!("statfs of the bind source: {}", errno_text(e))))?;
    let f = st.flags();
    use nix::sys::statvfs::FsFlags as S;
    let mut out = MsFlags::empty();
    for (st_flag, ms) in [
        (S::ST_RDONLY, MsFlags::MS_RDONLY),
        (S::ST_NOSUID, MsFlags::MS_NOSUID),
        (S::ST_NODEV, MsFlags::MS_NODEV),
        (S::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (S::ST_NOATIME, MsFlags::MS_NOATIME),
        (S::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (S::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(st_flag) {
            out |= ms;
        }
    }
    // ST_NOSYMFOLLOW (0x2000) is not named by nix.
    if f.bits() & 0x2000 != 0 {
        out |= MS_NOSYMFOLLOW;
    }
    // No statfs flag says strictatime: it is the atime behaviour without one.
    if !out.intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME) {
        out |= MsFlags::MS_STRICTATIME;
    }
    Ok(out)
}

fn unsafe_borrow(fd: &impl AsRawFd) -> std::os::fd::BorrowedFd<'_> {
    // SAFETY: the caller's fd outlives the borrow.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) }
}

/// Apply the flag options of `o` to the bind mount `mounted` (made from
/// `source`, open as `source_fd`).
pub fn apply(
    mounted: &impl AsRawFd,
    source_fd: &impl AsRawFd,
    o: &MountOptions,
    source: &Path,
    dest: &Path,
) -> Result<()> {
    let asked = o.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if asked.is_empty() && o.cleared.is_empty() {
        return Ok(());
    }
    let flags = o.flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    let remount = |flags: MsFlags| {
        mount(
            None::<&str>,
            fd_path(mounted).as_str(),
            None::<&str>,
            flags,
            None::<&str>,
        )
    };
    let failed = |e: Errno| Error::Path {
        path: dest.into(),
        msg: format!(
            "error mounting \"{}\" to rootfs at \"{}\": remount: {}",
            source.display(),
            dest.display(),
            errno_text(e)
        ),
    };
    let first = match remount(flags) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let src = mount_flags_of(source_fd)?;
    if src.intersects(o.cleared & lockable_flags()) {
        return Err(failed(first));
    }
    let asked_atime = o.flags & atime_flags();
    if !asked_atime.is_empty() && asked_atime != src & atime_flags() {
        return Err(failed(first));
    }
    remount(flags | (src & lockable_flags())).map_err(failed)
}
