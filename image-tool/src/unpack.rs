//! Unpacking one layer tar into its own directory, with OCI whiteouts converted to the
//! overlayfs representation (0/0 character devices and `trusted.overlay.opaque=y`).

use crate::entry_meta::Meta;
use crate::error::{invalid, unsafe_entry, Error, IoContext, Result};
use crate::fsutil::{clean_components, set_xattr, SafeDir};
use crate::holes::HoleWriter;
use crate::sparse::{self, SparseFormat};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
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

/// How to unpack a layer.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// The layer's name in errors (its blob digest).
    pub layer: String,
    /// Refuse the layer once the sizes of its files (sparse files with their real
    /// size) add up to more than this many bytes.
    pub size_limit: Option<u64>,
}

/// What unpacking a layer made.
#[derive(Debug, Clone, Default)]
pub struct Unpacked {
    pub stats: UnpackStats,
    /// Directories the layer's entries needed but the layer did not list (created
    /// 0755, root-owned); `[]` stands for the layer root. Their metadata belongs to the
    /// same directories in the layers below (see `lower::inherit_parent_metadata`).
    pub implicit_dirs: Vec<Vec<OsString>>,
}

/// Unpack an uncompressed layer tar into the existing empty directory `dest`.
pub fn unpack_tar<R: Read>(reader: R, dest: &Path) -> Result<UnpackStats> {
    unpack_tar_with(reader, dest, &UnpackOptions::default()).map(|u| u.stats)
}

/// [`unpack_tar`] with options; also reports the directories the layer left implicit.
pub fn unpack_tar_with<R: Read>(reader: R, dest: &Path, opts: &UnpackOptions) -> Result<Unpacked> {
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
        implicit: HashSet::new(),
        root_listed: false,
        file_bytes: 0,
        opts,
    };
    for entry in archive.entries().ctx(|| "read layer tar".into())? {
        let mut entry = entry.ctx(|| "read layer tar entry".into())?;
        unpacker.entry(&mut entry)?;
    }
    unpacker.finish()
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

struct Unpacker<'o> {
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
    /// Parent directories created because entries needed them, not listed (yet).
    implicit: HashSet<Vec<OsString>>,
    /// The layer has an entry for its root directory.
    root_listed: bool,
    /// Sizes of the regular files so far (sparse ones with their real size).
    file_bytes: u64,
    opts: &'o UnpackOptions,
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

impl Unpacker<'_> {
    /// Open (creating as needed) the parent directory `parents`, starting from the
    /// cached directory when it is a prefix. Directories created here are recorded as
    /// implicit; a whiteout of this layer in the way becomes an opaque directory (the
    /// lower one is deleted, this layer's entries go into a new one).
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
        // The directory reached so far, once past `start`.
        let mut reached: Option<SafeDir> = None;
        for (i, comp) in parents.iter().enumerate().skip(n) {
            let dir = reached.as_ref().unwrap_or(&start);
            let next = match dir.child(comp) {
                Ok(d) => d,
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(dir, *comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e).ctx(|| format!("{name}: create parent {comp:?}")),
                    }
                    self.implicit.insert(key[..=i].to_vec());
                    dir.child(comp).map_err(|e| dir.walk_error(comp, e, name))?
                }
                Err(e) if is_whiteout(dir, comp) => {
                    rfs::unlinkat(dir, *comp, AtFlags::empty())
                        .ctx(|| format!("{name}: remove whiteout {comp:?}"))?;
                    rfs::mkdirat(dir, *comp, Mode::from_raw_mode(0o755))
                        .ctx(|| format!("{name}: create parent {comp:?}"))?;
                    let d = dir.child(comp).map_err(|_| dir.walk_error(comp, e, name))?;
                    set_opaque(&d, name)?;
                    d
                }
                Err(e) => return Err(dir.walk_error(comp, e, name)),
            };
            reached = Some(next);
        }
        let dir = match reached {
            Some(d) => Rc::new(d),
            None => start,
        };
        let cache = self.cache.get_or_insert_with(Default::default);
        if cache.len() >= DIR_CACHE {
            cache.clear();
        }
        cache.insert(key, dir.clone());
        Ok(dir)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let meta = Meta::read(entry, &shown)?;
        let raw_path = match &meta.real_name {
            Some(real) => real.clone(),
            None => entry.path_bytes().into_owned(),
        };
        let name = String::from_utf8_lossy(&raw_path).into_owned();
        let comps = clean_components(&raw_path).map_err(|r| unsafe_entry(&name, r))?;
        self.stats.entries += 1;
        let Some((leaf, parents)) = comps.split_last() else {
            return self.root_entry(kind, &meta, &name);
        };
        let leaf_bytes = leaf.as_bytes();
        if leaf_bytes == OPAQUE_MARKER.as_bytes() {
            self.stats.whiteouts += 1;
            let parent = self.parent(parents, &name)?;
            return set_opaque(&parent, &name);
        }
        if let Some(target) = leaf_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if target.is_empty() || target == b"." || target == b".." {
                return Err(unsafe_entry(&name, "whiteout names no file"));
            }
            self.stats.whiteouts += 1;
            let parent = self.parent(parents, &name)?;
            return whiteout(&parent, OsStr::from_bytes(target), &name);
        }
        if meta.sparse.is_some()
            && !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous)
        {
            return Err(Error::BadSparse {
                entry: name,
                reason: format!("sparse records on a {kind:?} entry"),
            });
        }
        let parent = self.parent(parents, &name)?;
        self.create(entry, kind, &parent, leaf, &meta, &name)?;
        if kind == tar::EntryType::Directory {
            if meta.mode & 0o2000 != 0 {
                self.setgid_dirs = true;
            }
            let path: Vec<OsString> = comps.iter().map(|c| c.to_os_string()).collect();
            self.implicit.remove(&path);
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
        self.root_listed = true;
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
                self.regular_file(entry, parent, leaf, meta, name)
            }
            E::Directory => {
                let fix = self.fixups(meta, 0o700);
                let mode = Mode::from_raw_mode(fix.create_mode);
                match rfs::mkdirat(parent, leaf, mode) {
                    Ok(()) => self.apply_meta(parent, leaf, meta, name, fix),
                    Err(Errno::EXIST) => {
                        let existing = parent.file_type(leaf).ctx(|| format!("{name}: stat"))?;
                        if existing != Some(FileType::Directory) {
                            // Over a whiteout of this layer: a new directory in place of
                            // the lower one, whose contents stay hidden.
                            let over_whiteout = is_whiteout(parent, leaf);
                            self.cache = None;
                            parent.remove_all(leaf)?;
                            rfs::mkdirat(parent, leaf, mode).ctx(|| format!("{name}: mkdir"))?;
                            if over_whiteout {
                                let dir = parent.child(leaf).ctx(|| format!("{name}: open"))?;
                                set_opaque(&dir, name)?;
                            }
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

    /// Count `size` more bytes of file data against the size limit.
    fn account(&mut self, size: u64) -> Result<()> {
        self.file_bytes = self.file_bytes.saturating_add(size);
        match self.opts.size_limit {
            Some(limit) if self.file_bytes > limit => Err(Error::LayerTooLarge {
                layer: self.opts.layer.clone(),
                limit,
            }),
            _ => Ok(()),
        }
    }

    /// A regular file: plain, an old GNU sparse entry (expanded by the tar crate) or a
    /// PAX sparse entry (its map checked before anything is created). Zero blocks are
    /// left as holes.
    fn regular_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        parent: &SafeDir,
        leaf: &OsStr,
        meta: &Meta,
        name: &str,
    ) -> Result<()> {
        let bad = |reason: String| Error::BadSparse {
            entry: name.to_string(),
            reason,
        };
        let stored = entry.size();
        let (size, extents) = match &meta.sparse {
            None => (stored, vec![(0, stored)]),
            Some(SparseFormat::Records { real_size, extents }) => {
                sparse::validate(extents, *real_size, stored).map_err(bad)?;
                (*real_size, extents.clone())
            }
            Some(SparseFormat::InData { real_size }) => {
                let (extents, map_len) = sparse::read_map(entry).map_err(bad)?;
                sparse::validate(
                    extents.as_slice(),
                    *real_size,
                    stored.saturating_sub(map_len),
                )
                .map_err(bad)?;
                (*real_size, extents)
            }
        };
        self.account(size)?;
        let fix = self.fixups(meta, 0o600);
        let fd = self.replacing(parent, leaf, name, "create file", || {
            rfs::openat(
                parent,
                leaf,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(fix.create_mode),
            )
        })?;
        let file = File::from(fd);
        let mut out = HoleWriter::new(&file);
        for (offset, length) in extents {
            let mut done = 0u64;
            while done < length {
                let want = (length - done).min(self.buf.len() as u64) as usize;
                let n = read_full(entry, &mut self.buf[..want])
                    .ctx(|| format!("{name}: read file data"))?;
                if n == 0 {
                    return Err(unsafe_entry(name, "file data ends early"));
                }
                out.write_at(offset + done, &self.buf[..n])
                    .ctx(|| format!("{name}: write file"))?;
                done += n as u64;
            }
        }
        out.finish(size).ctx(|| format!("{name}: set size"))?;
        drop(file);
        self.apply_meta(parent, leaf, meta, name, fix)
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

    /// Directory mtimes are set last, after their contents stopped changing. Returns
    /// what was made, with the implicit directories that are still directories.
    fn finish(mut self) -> Result<Unpacked> {
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
        let mut implicit_dirs: Vec<Vec<OsString>> = std::mem::take(&mut self.implicit)
            .into_iter()
            .filter(|path| {
                let comps: Vec<&OsStr> = path.iter().map(|c| c.as_os_str()).collect();
                self.root.walk(&comps, false, "").is_ok()
            })
            .collect();
        if !self.root_listed {
            implicit_dirs.push(Vec::new());
        }
        implicit_dirs.sort();
        Ok(Unpacked {
            stats: self.stats,
            implicit_dirs,
        })
    }
}

/// Is `name` in `dir` an overlayfs whiteout (a 0/0 character device)?
fn is_whiteout(dir: &SafeDir, name: &OsStr) -> bool {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
        FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
    })
}

/// Mark `dir` opaque: the same directory in lower layers is hidden.
fn set_opaque(dir: &SafeDir, name: &str) -> Result<()> {
    rfs::fsetxattr(dir, OVERLAY_OPAQUE_XATTR, b"y", rfs::XattrFlags::empty())
        .ctx(|| format!("{name}: set {OVERLAY_OPAQUE_XATTR}"))
}

/// A whiteout entry for `target` in `parent`. Whiteouts hide what lower layers have;
/// what this layer itself put there stays (image-spec: "files that are present in the
/// same layer as a whiteout file can only be hidden by whiteout files in subsequent
/// layers"). A file of this layer already hides the lower one; a directory of this
/// layer becomes opaque, so the lower directory's contents go and its own stay.
fn whiteout(parent: &SafeDir, target: &OsStr, name: &str) -> Result<()> {
    match parent.file_type(target).ctx(|| format!("{name}: stat"))? {
        None => rfs::mknodat(parent, target, FileType::CharacterDevice, Mode::empty(), 0)
            .ctx(|| format!("{name}: create whiteout device")),
        Some(FileType::Directory) => {
            let dir = parent.child(target).ctx(|| format!("{name}: open"))?;
            set_opaque(&dir, name)
        }
        Some(_) => Ok(()),
    }
}
