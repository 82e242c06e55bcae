//! Copying layer directories on top of each other into one plain directory, applying
//! overlayfs whiteouts (0/0 char devices, opaque directories) the way overlayfs would.

use crate::error::{IoContext, Result};
use crate::fsutil::{get_xattr, list_xattrs, set_xattr, SafeDir};
use crate::unpack::OVERLAY_OPAQUE_XATTR;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timestamps};
use std::ffi::OsStr;
use std::fs::File;

/// Apply the layer directory `src` onto `dst`.
pub fn apply_layer(src: &SafeDir, dst: &SafeDir) -> Result<()> {
    for name in src.names()? {
        apply_entry(src, dst, &name)?;
    }
    Ok(())
}

fn apply_entry(src: &SafeDir, dst: &SafeDir, name: &OsStr) -> Result<()> {
    let st = rfs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW).ctx(|| format!("stat {name:?}"))?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if ft == FileType::CharacterDevice && st.st_rdev == 0 {
        return dst.remove_all(name);
    }
    if ft == FileType::Directory {
        if dst.file_type(name).ctx(|| format!("stat {name:?}"))? != Some(FileType::Directory) {
            dst.remove_all(name)?;
            rfs::mkdirat(dst, name, Mode::from_raw_mode(0o700))
                .ctx(|| format!("mkdir {name:?}"))?;
        }
        let s = src.child(name).ctx(|| format!("open {name:?}"))?;
        let d = dst.child(name).ctx(|| format!("open {name:?}"))?;
        if get_xattr(src, name, OVERLAY_OPAQUE_XATTR).as_deref() == Some(b"y") {
            d.clear()?;
        }
        apply_layer(&s, &d)?;
        return copy_meta(src, dst, name, &st, true);
    }
    dst.remove_all(name)?;
    match ft {
        FileType::RegularFile => {
            let from = rfs::openat(
                src,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("open {name:?}"))?;
            let to = rfs::openat(
                dst,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .ctx(|| format!("create {name:?}"))?;
            std::io::copy(&mut File::from(from), &mut File::from(to))
                .ctx(|| format!("copy {name:?}"))?;
        }
        FileType::Symlink => {
            let target =
                rfs::readlinkat(src, name, Vec::new()).ctx(|| format!("readlink {name:?}"))?;
            rfs::symlinkat(target.as_c_str(), dst, name).ctx(|| format!("symlink {name:?}"))?;
            return copy_meta(src, dst, name, &st, false);
        }
        _ => {
            rfs::mknodat(dst, name, ft, Mode::from_raw_mode(0o600), st.st_rdev)
                .ctx(|| format!("mknod {name:?}"))?;
        }
    }
    copy_meta(src, dst, name, &st, true)
}

fn copy_meta(
    src: &SafeDir,
    dst: &SafeDir,
    name: &OsStr,
    st: &rfs::Stat,
    chmod: bool,
) -> Result<()> {
    rfs::chownat(
        dst,
        name,
        Some(rfs::Uid::from_raw(st.st_uid)),
        Some(rfs::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .ctx(|| format!("chown {name:?}"))?;
    if chmod {
        rfs::chmodat(
            dst,
            name,
            Mode::from_raw_mode(st.st_mode & 0o7777),
            AtFlags::empty(),
        )
        .ctx(|| format!("chmod {name:?}"))?;
        for attr in list_xattrs(src, name) {
            if attr.starts_with("trusted.overlay.") {
                continue;
            }
            if let Some(v) = get_xattr(src, name, &attr) {
                set_xattr(dst, name, &attr, &v).ctx(|| format!("set xattr {attr} on {name:?}"))?;
            }
        }
    }
    let ts = |s: i64, ns: u64| rfs::Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    let times = Timestamps {
        last_access: ts(st.st_atime, st.st_atime_nsec),
        last_modification: ts(st.st_mtime, st.st_mtime_nsec),
    };
    rfs::utimensat(dst, name, &times, AtFlags::SYMLINK_NOFOLLOW)
        .ctx(|| format!("set times of {name:?}"))
}
