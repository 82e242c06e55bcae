//! Unpacking one layer tar into its own directory, with OCI whiteouts converted to the
//! overlayfs representation (0/0 character devices and `trusted.overlay.opaque=y`).

use crate::error::{invalid, unsafe_entry, IoContext, Result};
use crate::fsutil::{clean_components, set_xattr, SafeDir};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

/// Prefix of OCI whiteout entries.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the OCI opaque-directory marker.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The overlayfs xattr marking an opaque directory.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Wrap `reader` in the decompressor its magic bytes call for (gzip, zstd or none).
pub fn decompress<'a, R: Read + 'a>(reader: R) -> Result<Box<dyn Read + 'a>> {
    decompress_buffered(BufReader::with_capacity(256 * 1024, reader))
}

/// [`decompress`] for a reader that buffers already.
pub fn decompress_buffered<'a, R: BufRead + 'a>(mut buf: R) -> Result<Box<dyn Read + 'a>> {
    let head = buf.fill_buf().ctx(|| "read layer header".into())?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buf)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let dec =
            zstd::stream::read::Decoder::with_buffer(buf).ctx(|| "start zstd decoder".into())?;
        Ok(Box::new(dec))
    } else {
        Ok(Box::new(buf))
    }
}

/// Counts of what a layer contained.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub whiteouts: u64,
}

/// Unpack an uncompressed layer tar into the existing empty directory `dest`.
pub fn unpack_tar<R: Read>(reader: R, dest: &Path) -> Result<UnpackStats> {
    let root = Rc::new(SafeDir::open(dest)?);
    let mut archive = tar::Archive::new(reader);
    let mut unpacker = Unpacker {
        root,
        cache: None,
        dir_times: Vec::new(),
        stats: UnpackStats::default(),
        buf: vec![0u8; WRITE_BUFFER],
        euid: rustix::process::geteuid().as_raw(),
        egid: rustix::process::getegid().as_raw(),
        umask: process_umask(),
        setgid_dirs: false,
    };
    for entry in archive.entries().ctx(|| "read layer tar".into())? {
        let mut entry = entry.ctx(|| "read layer tar entry".into())?;
        unpacker.entry(&mut entry)?;
    }
    unpacker.finish()?;
    Ok(unpacker.stats)
}

/// At most this many parent directories are kept open.
const DIR_CACHE: usize = 256;

/// File contents are written in pieces of up to this size.
const WRITE_BUFFER: usize = 1 << 20;

/// The process umask, from /proc (reading it with umask(2) would change it briefly);
/// all bits set (never trust the creation mode) if unknown.
fn process_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o7777)
}

/// Read until `buf` is full or the reader ends.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct Unpacker {
    root: Rc<SafeDir>,
    /// Open parent directories by path (dropped whenever anything is removed, since a
    /// removal can replace a cached directory).
    cache: Option<HashMap<Vec<OsString>, Rc<SafeDir>>>,
    dir_times: Vec<(Vec<OsString>, Timespec)>,
    stats: UnpackStats,
    buf: Vec<u8>,
    euid: u32,
    egid: u32,
    umask: u32,
    /// A set-group-ID directory was created: new entries may not get our gid by default.
    setgid_dirs: bool,
}

/// Which metadata calls a newly created entry still needs.
#[derive(Clone, Copy)]
struct Fixups {
    /// Create with this mode.
    create_mode: u32,
    chown: bool,
    chmod: bool,
    /// Set extended attributes (not on symlinks: user.* is not allowed there).
    xattrs: bool,
}

/// Metadata of one entry, PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta> {
        let h = entry.header();
        let num = |r: std::io::Result<u64>, what: &str| {
            r.map_err(|e| unsafe_entry(name, format!("bad {what} field: {e}")))
        };
        let mut meta = Meta {
            mode: num(h.mode().map(u64::from), "mode")? as u32 & 0o7777,
            uid: 0,
            gid: 0,
            mtime: Timespec {
                tv_sec: num(h.mtime(), "mtime")? as i64,
                tv_nsec: 0,
            },
            xattrs: Vec::new(),
        };
        let (mut uid, mut gid) = (num(h.uid(), "uid")?, num(h.gid(), "gid")?);
        if let Some(exts) = entry
            .pax_extensions()
            .ctx(|| format!("{name}: read PAX header"))?
        {
            for ext in exts {
                let ext = ext.ctx(|| format!("{name}: read PAX record"))?;
                let key = ext.key().unwrap_or("");
                let parse_u64 = || ext.value().ok().and_then(|v| v.parse::<u64>().ok());
                if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                    meta.xattrs
                        .push((attr.to_string(), ext.value_bytes().to_vec()));
                } else if key == "uid" {
                    uid = parse_u64().ok_or_else(|| unsafe_entry(name, "bad PAX uid"))?;
                } else if key == "gid" {
                    gid = parse_u64().ok_or_else(|| unsafe_entry(name, "bad PAX gid"))?;
                }
            }
        }
        // An owner must fit in 32 bits and not be -1, chown's "leave unchanged" (rustix
        // asserts against it); truncating would pick another owner (2^32 became root).
        let id = |v: u64, what: &str| {
            u32::try_from(v)
                .ok()
                .filter(|v| *v != u32::MAX)
                .ok_or_else(|| unsafe_entry(name, format!("{what} {v} is out of range")))
        };
        meta.uid = id(uid, "uid")?;
        meta.gid = id(gid, "gid")?;
        for (attr, _) in &meta.xattrs {
            if attr.starts_with("trusted.overlay.") {
                return Err(unsafe_entry(
                    name,
                    format!("layer sets overlayfs xattr {attr}"),
                ));
            }
        }
        Ok(meta)
    }
}

impl Unpacker {
    /// Open (creating as needed) the parent directory `parents`, starting from the
    /// cached directory when it is a prefix.
    fn parent(&mut self, parents: &[&OsStr], name: &str) -> Result<Rc<SafeDir>> {
        let cache = self.cache.get_or_insert_with(Default::default);
        let key: Vec<OsString> = parents.iter().map(|c| c.to_os_string()).collect();
        if let Some(dir) = cache.get(&key) {
            return Ok(dir.clone());
        }
        // Walk from the deepest cached ancestor.
        let (n, start) = (1..parents.len())
            .rev()
            .find_map(|n| cache.get(&key[..n]).map(|d| (n, d.clone())))
            .unwrap_or_else(|| (0, self.root.clone()));
        let dir = Rc::new(start.walk(&parents[n..], true, name)?);
        if cache.len() >= DIR_CACHE {
            cache.clear();
        }
        cache.insert(key, dir.clone());
        Ok(dir)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw_path = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_path).into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let comps = clean_components(&raw_path).map_err(|r| unsafe_entry(&name, r))?;
        self.stats.entries += 1;
        let meta = Meta::read(entry, &name)?;
        let Some((leaf, parents)) = comps.split_last() else {
            return self.root_entry(kind, &meta, &name);
        };
        let leaf_bytes = leaf.as_bytes();
        if leaf_bytes == OPAQUE_MARKER.as_bytes() {
            self.stats.whiteouts += 1;
            let parent = self.parent(parents, &name)?;
            rfs::fsetxattr(
                &*parent,
                OVERLAY_OPAQUE_XATTR,
                b"y",
                rfs::XattrFlags::empty(),
            )
            .ctx(|| format!("{name}: set {OVERLAY_OPAQUE_XATTR}"))?;
            return Ok(());
        }
        if let Some(target) = leaf_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if target.is_empty() || target == b"." || target == b".." {
                return Err(unsafe_entry(&name, "whiteout names no file"));
            }
            self.stats.whiteouts += 1;
            let parent = self.parent(parents, &name)?;
            let target = OsStr::from_bytes(target);
            self.cache = None;
            parent.remove_all(target)?;
            rfs::mknodat(
                &*parent,
                target,
                FileType::CharacterDevice,
                Mode::empty(),
                0,
            )
            .ctx(|| format!("{name}: create whiteout device"))?;
            return Ok(());
        }
        let parent = self.parent(parents, &name)?;
        self.create(entry, kind, &parent, leaf, &meta, &name)?;
        if kind == tar::EntryType::Directory {
            if meta.mode & 0o2000 != 0 {
                self.setgid_dirs = true;
            }
            let path = comps.iter().map(|c| c.to_os_string()).collect();
            self.dir_times.push((path, meta.mtime));
        }
        Ok(())
    }

    /// An entry naming the layer root itself (`.` or `./`): only a directory is allowed.
    fn root_entry(&mut self, kind: tar::EntryType, meta: &Meta, name: &str) -> Result<()> {
        if kind != tar::EntryType::Directory {
            return Err(unsafe_entry(
                name,
                format!("the layer root must be a directory, not {kind:?}"),
            ));
        }
        rfs::fchown(
            &*self.root,
            Some(rfs::Uid::from_raw(meta.uid)),
            Some(rfs::Gid::from_raw(meta.gid)),
        )
        .ctx(|| format!("{name}: chown"))?;
        rfs::fchmod(&*self.root, Mode::from_raw_mode(meta.mode))
            .ctx(|| format!("{name}: chmod"))?;
        if meta.mode & 0o2000 != 0 {
            self.setgid_dirs = true;
        }
        self.dir_times.push((Vec::new(), meta.mtime));
        Ok(())
    }

    /// What a newly created entry with `meta` needs after creation. Creating it with its
    /// final mode saves the chmod when the umask leaves that mode alone and there are
    /// no set-id/sticky bits (chown would clear those); chown is skipped when the entry
    /// would get our own ids anyway.
    fn fixups(&self, meta: &Meta, private_mode: u32) -> Fixups {
        let chown = meta.uid != self.euid || meta.gid != self.egid || self.setgid_dirs;
        let plain = meta.mode & 0o7000 == 0 && meta.mode & self.umask == 0;
        if plain {
            Fixups {
                create_mode: meta.mode,
                chown,
                chmod: false,
                xattrs: true,
            }
        } else {
            Fixups {
                create_mode: private_mode,
                chown: true,
                chmod: true,
                xattrs: true,
            }
        }
    }

    /// Run `create`; if the name is taken, remove what is there and run it again.
    fn replacing<T>(
        &mut self,
        parent: &SafeDir,
        leaf: &OsStr,
        name: &str,
        what: &str,
        create: impl Fn() -> rustix::io::Result<T>,
    ) -> Result<T> {
        match create() {
            Err(Errno::EXIST) => {
                self.cache = None;
                parent.remove_all(leaf)?;
                create()
            }
            r => r,
        }
        .ctx(|| format!("{name}: {what}"))
    }

    fn create<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: tar::EntryType,
        parent: &SafeDir,
        leaf: &OsStr,
        meta: &Meta,
        name: &str,
    ) -> Result<()> {
        use tar::EntryType as E;
        match kind {
            E::Regular | E::Continuous | E::GNUSparse => {
                let fix = self.fixups(meta, 0o600);
                let fd = self.replacing(parent, leaf, name, "create file", || {
                    rfs::openat(
                        parent,
                        leaf,
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(fix.create_mode),
                    )
                })?;
                let mut file = File::from(fd);
                loop {
                    let n = read_full(entry, &mut self.buf)
                        .ctx(|| format!("{name}: read file data"))?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buf[..n])
                        .ctx(|| format!("{name}: write file"))?;
                    if n < self.buf.len() {
                        break;
                    }
                }
                drop(file);
                self.apply_meta(parent, leaf, meta, name, fix)
            }
            E::Directory => {
                let fix = self.fixups(meta, 0o700);
                let mode = Mode::from_raw_mode(fix.create_mode);
                match rfs::mkdirat(parent, leaf, mode) {
                    Ok(()) => self.apply_meta(parent, leaf, meta, name, fix),
                    Err(Errno::EXIST) => {
                        let existing = parent.file_type(leaf).ctx(|| format!("{name}: stat"))?;
                        if existing != Some(FileType::Directory) {
                            self.cache = None;
                            parent.remove_all(leaf)?;
                            rfs::mkdirat(parent, leaf, mode).ctx(|| format!("{name}: mkdir"))?;
                            return self.apply_meta(parent, leaf, meta, name, fix);
                        }
                        // An existing directory: set everything.
                        let all = Fixups {
                            create_mode: 0,
                            chown: true,
                            chmod: true,
                            xattrs: true,
                        };
                        self.apply_meta(parent, leaf, meta, name, all)
                    }
                    Err(e) => Err(e).ctx(|| format!("{name}: mkdir")),
                }
            }
            E::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(name, "symlink without target"))?;
                self.replacing(parent, leaf, name, "symlink", || {
                    rfs::symlinkat(OsStr::from_bytes(&target), parent, leaf)
                })?;
                let fix = Fixups {
                    create_mode: 0,
                    chown: meta.uid != self.euid || meta.gid != self.egid || self.setgid_dirs,
                    chmod: false,
                    xattrs: false,
                };
                self.apply_meta(parent, leaf, meta, name, fix)
            }
            E::Link => self.hardlink(entry, parent, leaf, name),
            E::Char | E::Block | E::Fifo => {
                let (ft, dev) = match kind {
                    E::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let h = entry.header();
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if kind == E::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rfs::makedev(major, minor))
                    }
                };
                let fix = self.fixups(meta, 0o600);
                self.replacing(parent, leaf, name, "mknod", || {
                    rfs::mknodat(parent, leaf, ft, Mode::from_raw_mode(fix.create_mode), dev)
                })?;
                self.apply_meta(parent, leaf, meta, name, fix)
            }
            other => Err(invalid(format!(
                "layer entry {name:?} has unsupported type {other:?}"
            ))),
        }
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        parent: &SafeDir,
        leaf: &OsStr,
        name: &str,
    ) -> Result<()> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| unsafe_entry(name, "hardlink without target"))?;
        let comps = clean_components(&target)
            .map_err(|r| unsafe_entry(name, format!("hardlink target {r}")))?;
        let Some((tleaf, tparents)) = comps.split_last() else {
            return Err(unsafe_entry(name, "hardlink to the layer root"));
        };
        let tdir = self.root.walk(tparents, false, name)?;
        match tdir
            .file_type(tleaf)
            .ctx(|| format!("{name}: stat link target"))?
        {
            None => Err(unsafe_entry(
                name,
                format!(
                    "hardlink target {:?} is not in this layer",
                    String::from_utf8_lossy(&target)
                ),
            )),
            Some(FileType::Directory) => Err(unsafe_entry(name, "hardlink to a directory")),
            Some(_) => self.replacing(parent, leaf, name, "hardlink", || {
                rfs::linkat(&tdir, *tleaf, parent, leaf, AtFlags::empty())
            }),
        }
    }

    fn apply_meta(
        &self,
        parent: &SafeDir,
        leaf: &OsStr,
        meta: &Meta,
        name: &str,
        fix: Fixups,
    ) -> Result<()> {
        if fix.chown {
            rfs::chownat(
                parent,
                leaf,
                Some(rfs::Uid::from_raw(meta.uid)),
                Some(rfs::Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .ctx(|| format!("{name}: chown"))?;
        }
        if fix.chmod {
            // After chown, which clears set-id bits.
            rfs::chmodat(
                parent,
                leaf,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .ctx(|| format!("{name}: chmod"))?;
        }
        if fix.xattrs {
            for (attr, value) in &meta.xattrs {
                if attr == "security.selinux" {
                    continue;
                }
                set_xattr(parent, leaf, attr, value).ctx(|| format!("{name}: set xattr {attr}"))?;
            }
        }
        let times = Timestamps {
            last_access: meta.mtime,
            last_modification: meta.mtime,
        };
        rfs::utimensat(parent, leaf, &times, AtFlags::SYMLINK_NOFOLLOW)
            .ctx(|| format!("{name}: set mtime"))
    }

    /// Directory mtimes are set last, after their contents stopped changing.
    fn finish(&mut self) -> Result<()> {
        for (path, mtime) in self.dir_times.iter().rev() {
            let comps: Vec<&OsStr> = path.iter().map(|c| c.as_os_str()).collect();
            let display = format!("{comps:?}");
            let Ok(dir) = self.root.walk(&comps, false, &display) else {
                continue; // replaced by a later entry
            };
            let times = Timestamps {
                last_access: *mtime,
                last_modification: *mtime,
            };
            rfs::utimensat(&dir, ".", &times, AtFlags::empty())
                .ctx(|| format!("{display}: set mtime"))?;
        }
        Ok(())
    }
}
