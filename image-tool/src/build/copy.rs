//! Writing COPY/ADD sources into a stage's filesystem (Docker's reference,
//! COPY and ADD): a directory source has its contents copied, a file lands at
//! the destination path or, when the destination ends with `/`, is an
//! existing directory or several sources are given, inside it; missing parent
//! directories are created. Copies keep modes and modification times; owners
//! become 0:0 or `--chown`'s, modes `--chmod`'s. ADD unpacks local tar
//! archives (plain, gzip, zstd, bzip2 or xz) into the destination directory.

use super::fsroot::{chown_at, dir_flags, fd_path, lstat, names, Root};
use super::pattern::clean_parts;
use super::sources::{child_rel, Matched, SourceTree};
use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, OwnedFd};

/// How copied entries are owned and moded.
#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    pub owner: (u32, u32),
    pub chmod: Option<u32>,
    /// ADD: unpack local tar archives.
    pub unpack: bool,
}

/// Copy the matched sources to `dest` (absolute, in `dst`); `dest_is_dir` when
/// the instruction's destination ends with `/` or names several sources.
pub fn copy_all(
    tree: &SourceTree,
    matched: &[Matched],
    dst: &Root,
    dest: &str,
    dest_is_dir: bool,
    opts: &CopyOptions,
) -> Result<()> {
    let parts = clean_parts(dest);
    for m in matched {
        let fd = tree.open(m)?;
        if m.kind == FileType::Directory {
            let to = dst.mkdir_all(&parts, opts.owner)?;
            copy_dir(tree, &fd, &m.rel, &to, opts)?;
            continue;
        }
        if opts.unpack && m.kind == FileType::RegularFile {
            if let Some(mut reader) =
                archive(File::from(fd.try_clone()?)).with_context(|| format!("read {}", m.rel))?
            {
                let to = dst.mkdir_all(&parts, opts.owner)?;
                crate::unpack::unpack_tar(&mut reader, &fd_path(&to)?)
                    .with_context(|| format!("unpack {}", m.rel))?;
                // Read what follows the tar's end too: a damaged compressed
                // stream shows only there (checksums, a cut-off end).
                std::io::copy(&mut reader, &mut std::io::sink())
                    .with_context(|| format!("unpack {}", m.rel))?;
                continue;
            }
        }
        let into_dir = dest_is_dir
            || parts.is_empty()
            || dst.kind(&parts.join("/"))? == Some(FileType::Directory);
        let (dir, name) = if into_dir {
            (dst.mkdir_all(&parts, opts.owner)?, m.name.clone())
        } else {
            let (last, parent) = parts.split_last().expect("not empty");
            (dst.mkdir_all(parent, opts.owner)?, last.to_string())
        };
        if m.kind != FileType::RegularFile {
            bail!(
                "{}: only regular files, directories and symlinks can be copied",
                m.rel
            );
        }
        let st = rfs::fstat(&fd).with_context(|| format!("stat {}", m.rel))?;
        write_file(&dir, OsStr::new(&name), fd, &st, opts, &m.rel)?;
    }
    Ok(())
}

fn times(st: &rfs::Stat) -> Timestamps {
    let t = Timespec {
        tv_sec: st.st_mtime,
        tv_nsec: st.st_mtime_nsec as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Remove a non-directory at `name` so a new entry can take its place.
fn make_room(dir: &impl AsFd, name: &OsStr, shown: &str) -> Result<Option<FileType>> {
    match lstat(dir, name) {
        Ok(st) => {
            let kind = FileType::from_raw_mode(st.st_mode);
            if kind != FileType::Directory {
                rfs::unlinkat(dir, name, AtFlags::empty())
                    .with_context(|| format!("replace {shown}"))?;
                return Ok(None);
            }
            Ok(Some(kind))
        }
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("stat {shown}")),
    }
}

fn set_meta(
    dir: &impl AsFd,
    name: &OsStr,
    st: &rfs::Stat,
    opts: &CopyOptions,
    symlink: bool,
    shown: &str,
) -> Result<()> {
    chown_at(dir, name, opts.owner).with_context(|| format!("chown {shown}"))?;
    if !symlink {
        let mode = opts.chmod.unwrap_or(st.st_mode & 0o7777);
        rfs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty())
            .with_context(|| format!("chmod {shown}"))?;
    }
    rfs::utimensat(dir, name, &times(st), AtFlags::SYMLINK_NOFOLLOW)
        .with_context(|| format!("set times of {shown}"))
}

/// Write the regular file `src` as `name` into `dir`.
fn write_file(
    dir: &OwnedFd,
    name: &OsStr,
    src: OwnedFd,
    st: &rfs::Stat,
    opts: &CopyOptions,
    shown: &str,
) -> Result<()> {
    if make_room(dir, name, shown)? == Some(FileType::Directory) {
        bail!("cannot copy {shown}: a directory of that name is in the way");
    }
    let to = rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .with_context(|| format!("create {shown}"))?;
    std::io::copy(&mut File::from(src), &mut File::from(to))
        .with_context(|| format!("copy {shown}"))?;
    set_meta(dir, name, st, opts, false, shown)
}

/// Copy the contents of the source directory `src` (context path `rel`) into `to`.
fn copy_dir(
    tree: &SourceTree,
    src: &OwnedFd,
    rel: &str,
    to: &OwnedFd,
    opts: &CopyOptions,
) -> Result<()> {
    for name in names(src)? {
        let child = child_rel(rel, &name);
        let st = lstat(src, &name).with_context(|| format!("stat {child}"))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if tree.ignored(&child)
            && (kind != FileType::Directory || !tree.ignore.is_some_and(|i| i.has_exceptions()))
        {
            continue;
        }
        match kind {
            FileType::Directory => {
                if make_room(to, &name, &child)?.is_none() {
                    rfs::mkdirat(to, &name, Mode::from_raw_mode(0o700))
                        .with_context(|| format!("create {child}"))?;
                }
                let sub_src =
                    rfs::openat(src, &name, dir_flags() | OFlags::NOFOLLOW, Mode::empty())
                        .with_context(|| format!("open {child}"))?;
                let sub_to = rfs::openat(to, &name, dir_flags() | OFlags::NOFOLLOW, Mode::empty())
                    .with_context(|| format!("open {child} at the destination"))?;
                copy_dir(tree, &sub_src, &child, &sub_to, opts)?;
                set_meta(to, &name, &st, opts, false, &child)?;
            }
            FileType::RegularFile => {
                let fd = rfs::openat(
                    src,
                    &name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .with_context(|| format!("open {child}"))?;
                write_file(to, &name, fd, &st, opts, &child)?;
            }
            FileType::Symlink => {
                make_room(to, &name, &child)?;
                let target = rfs::readlinkat(src, &name, Vec::new())
                    .with_context(|| format!("readlink {child}"))?;
                rfs::symlinkat(target.as_c_str(), to, &name)
                    .with_context(|| format!("symlink {child}"))?;
                set_meta(to, &name, &st, opts, true, &child)?;
            }
            FileType::Socket => {} // not copyable, as docker skips them
            _ => {
                make_room(to, &name, &child)?;
                rfs::mknodat(to, &name, kind, Mode::from_raw_mode(0o600), st.st_rdev)
                    .with_context(|| format!("mknod {child}"))?;
                set_meta(to, &name, &st, opts, false, &child)?;
            }
        }
    }
    Ok(())
}

/// The uncompressed stream of `f`: gzip, zstd, bzip2 and xz are recognized by
/// their magic bytes, anything else is read as it is.
fn decompressed(mut f: File) -> Result<Box<dyn Read>> {
    let mut head = [0u8; 6];
    let n = crate::unpack::read_full(&mut f, &mut head)?;
    f.rewind()?;
    let head = &head[..n];
    if head.starts_with(b"BZh") {
        return Ok(Box::new(bzip2::read::MultiBzDecoder::new(f)));
    }
    if head == [0xfd, b'7', b'z', b'X', b'Z', 0] {
        // lzma-rs decodes into a writer: it runs on a thread of its own that
        // writes into a pipe, and its error is the reader's at the end.
        // The thread reads a file description of its own: a dup would share
        // the caller's offset (and an earlier detection thread's).
        let own = File::open(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&f)
        ))?;
        let (pipe, mut writer) = std::io::pipe()?;
        let thread = std::thread::spawn(move || {
            let mut input = std::io::BufReader::new(own);
            lzma_rs::xz_decompress(&mut input, &mut writer).map_err(|e| e.to_string())
        });
        return Ok(Box::new(XzReader {
            pipe,
            thread: Some(thread),
        }));
    }
    Ok(crate::unpack::decompress(f)?)
}

/// The reading end of an xz decoding thread.
struct XzReader {
    pipe: std::io::PipeReader,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Read for XzReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(t) = self.thread.take() {
                match t.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(std::io::Error::other(format!("xz: {e}"))),
                    Err(_) => return Err(std::io::Error::other("xz decoder panicked")),
                }
            }
        }
        Ok(n)
    }
}

/// If `f` is a tar archive (plain, or compressed with gzip, zstd, bzip2 or
/// xz), a reader of the uncompressed tar; `None` for any other file (ADD
/// copies it as it is). The file's offset (shared with the caller's
/// descriptor) is back at 0 after.
fn archive(mut f: File) -> Result<Option<Box<dyn Read>>> {
    let mut block = vec![0u8; 512];
    let m = {
        let mut dec = decompressed(f.try_clone()?)?;
        crate::unpack::read_full(&mut dec, &mut block).unwrap_or(0)
    };
    f.rewind()?;
    if m < 512 || &block[257..262] != b"ustar" {
        return Ok(None);
    }
    Ok(Some(decompressed(f)?))
}
