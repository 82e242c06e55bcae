//! Mounting `mounts[]` entries onto targets resolved inside the rootfs.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

use super::options::{self, MountOptions, RecAttr};
use super::paths::{fstat, is_dir, Kind, Root};
use crate::error::{Context, Error, Result};
use crate::sys::fd_path;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) on the mount an fd refers to.
pub fn setattr(fd: &impl AsRawFd, rec: RecAttr, recursive: bool, what: &Path) -> Result<()> {
    if rec == RecAttr::default() {
        return Ok(());
    }
    let attr = MountAttr {
        attr_set: rec.set,
        attr_clr: rec.clr,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= 0x8000; // AT_RECURSIVE
    }
    // SAFETY: valid pointers for the call. Raw because neither rustix 1.1 nor
    // nix 0.29 wraps mount_setattr(2).
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(Error::Path {
            path: what.into(),
            msg: format!("mount_setattr: {}", std::io::Error::last_os_error()),
        });
    }
    Ok(())
}

/// Context handed to the mount code.
pub struct MountCtx<'a> {
    pub root: &'a Root,
    /// The init is in a new cgroup namespace (cgroup filesystems can be mounted fresh).
    pub cgroupns: bool,
    /// The init is in a user namespace (device nodes must be bind mounted).
    pub userns: bool,
    /// SELinux mount label, if any.
    pub mount_label: Option<&'a str>,
    /// The channel to the runtime, which opens mount sources the container
    /// cannot reach and idmaps mounts (see `idmap`).
    pub runtime: Option<&'a crate::channel::Channel>,
}

/// `dest` relative to the container's root: a destination given as a path
/// inside the rootfs (`<rootfs>/mnt`, as runc's own tests write them) means
/// the same place as `/mnt`, as with runc.
pub fn strip_root(root: &Path, dest: &Path) -> PathBuf {
    match dest.strip_prefix(root) {
        Ok(rest) => Path::new("/").join(rest),
        Err(_) => dest.to_path_buf(),
    }
}

pub fn mount_entry(ctx: &MountCtx, m: &Mount, index: usize) -> Result<()> {
    let dest = &strip_root(&ctx.root.path, m.destination());
    let field = || format!("mounts[{index}] ({})", dest.display());
    let o = options::parse(m.options().as_deref().unwrap_or(&[]))
        .map_err(|e| Error::Config(format!("field {}: {e}", field())))?;
    let typ = m.typ().as_deref().unwrap_or("");
    match typ {
        "cgroup" => return super::cgroupfs::mount_v1(ctx, m, &o),
        "cgroup2" => return super::cgroupfs::mount_v2(ctx, m, &o),
        _ => {}
    }
    if o.is_bind() || typ == "bind" {
        bind_entry(ctx, m, index, &o, dest, &field)
    } else {
        fs_entry(ctx, m, &o, typ, dest)
    }
}

/// Where a bind mount comes from: the source itself, or a detached copy of
/// it (a tree the runtime opened, or one to be idmapped).
enum BindSource {
    Path(OwnedFd),
    Tree(OwnedFd),
}

impl BindSource {
    fn fd(&self) -> &OwnedFd {
        match self {
            BindSource::Path(fd) | BindSource::Tree(fd) => fd,
        }
    }
}

/// Ask the runtime for something on the channel and wait for its answer.
fn ask_runtime(
    ctx: &MountCtx,
    msg: &crate::channel::Msg,
    what: &str,
) -> Result<crate::channel::Msg> {
    let ch = ctx
        .runtime
        .ok_or_else(|| Error::Init(format!("{what}: no channel to the runtime")))?;
    ch.send(msg)?;
    ch.expect(what)
}

/// Open a bind source: directly, or (in a user namespace, where the
/// container's root may not reach a host directory) as a tree the runtime
/// opens. An idmapped mount is always a detached tree, idmapped by the runtime.
fn open_bind_source(
    ctx: &MountCtx,
    m: &Mount,
    index: usize,
    o: &MountOptions,
    src: &Path,
    field: &dyn Fn() -> String,
) -> Result<BindSource> {
    use crate::channel::Msg;
    let not_found = |e: nix::errno::Errno| {
        Error::Config(format!(
            "field {}.source: {}: {}",
            field(),
            src.display(),
            std::io::Error::from(e)
        ))
    };
    let recursive = o.flags.contains(MsFlags::MS_REC);
    let from_runtime = |e: nix::errno::Errno| -> Result<OwnedFd> {
        if !(ctx.userns && matches!(e, nix::errno::Errno::EACCES | nix::errno::Errno::EPERM)) {
            return Err(not_found(e));
        }
        match ask_runtime(
            ctx,
            &Msg::OpenMountSource { index },
            "opening a mount source",
        )? {
            Msg::MountSource => ctx.runtime.expect("asked above").recv_fd(),
            other => Err(Error::Init(format!("unexpected message {other:?}"))),
        }
    };
    if super::idmap::requested(m, o).is_none() {
        return match crate::sys::openat2(libc::AT_FDCWD, src, libc::O_PATH, 0, 0) {
            Ok(fd) => Ok(BindSource::Path(fd)),
            Err(e) => from_runtime(e).map(BindSource::Tree),
        };
    }
    let tree = match super::idmap::open_tree(src, recursive) {
        Ok(t) => t,
        Err(e) => from_runtime(e)?,
    };
    let ch = ctx
        .runtime
        .ok_or_else(|| Error::Init("idmapped mount: no channel to the runtime".into()))?;
    ch.send(&Msg::IdmapMount { index })?;
    ch.send_fd(&tree)?;
    match ch.expect("idmapping a mount")? {
        Msg::Idmapped => Ok(BindSource::Tree(tree)),
        other => Err(Error::Init(format!("unexpected message {other:?}"))),
    }
}

/// A bind mount: the source is opened first, bound from its fd (or its
/// detached tree attached), and the requested flags applied to the new
/// mount (see `remount`).
fn bind_entry(
    ctx: &MountCtx,
    m: &Mount,
    index: usize,
    o: &MountOptions,
    dest: &Path,
    field: &dyn Fn() -> String,
) -> Result<()> {
    let src = m.source().as_ref().ok_or_else(|| {
        Error::Config(format!(
            "field {}.source: a bind mount needs a source",
            field()
        ))
    })?;
    let source = open_bind_source(ctx, m, index, o, src, field)?;
    let is_dir_src = fstat(source.fd()).map(|st| is_dir(&st)).unwrap_or(false);
    let target = ctx
        .root
        .ensure(dest, if is_dir_src { Kind::Dir } else { Kind::File })?;
    match &source {
        BindSource::Path(src_fd) => {
            let flags = MsFlags::MS_BIND | (o.flags & MsFlags::MS_REC);
            mount(
                Some(fd_path(src_fd).as_str()),
                fd_path(&target).as_str(),
                None::<&str>,
                flags,
                None::<&str>,
            )
            .ctx(|| format!("bind mount {} on {}", src.display(), dest.display()))?;
        }
        BindSource::Tree(tree) => super::idmap::attach(tree, &target, dest)?,
    }
    let mounted = reopen(ctx.root, dest)?;
    super::remount::apply(&mounted, source.fd(), o, src, dest)?;
    finish(ctx.root, &mounted, o, dest)
}

/// Whether a mount of `typ` at `dest` is made writable first and made
/// read-only only once the container's filesystem is complete (devices go
/// into /dev, tmpcopyup fills a tmpfs), as runc does.
pub fn read_only_later(typ: &str, dest: &Path) -> bool {
    typ == "tmpfs" || dest == Path::new("/dev")
}

/// A new filesystem (tmpfs, proc, sysfs, devpts, mqueue, overlay, ...).
fn fs_entry(ctx: &MountCtx, m: &Mount, o: &MountOptions, typ: &str, dest: &Path) -> Result<()> {
    if matches!(typ, "proc" | "sysfs") {
        refuse_symlink(ctx.root, dest, typ)?;
    }
    let tmpfs = typ == "tmpfs";
    // What a tmpfs covers: its mode becomes the tmpfs' default mode, and
    // tmpcopyup copies its contents (read through this fd once covered).
    let covered = if tmpfs {
        ctx.root
            .open_file(dest, libc::O_RDONLY | libc::O_DIRECTORY)
            .ok()
    } else {
        None
    };
    let target = ctx.root.ensure(dest, Kind::Dir)?;
    if !fstat(&target).map(|s| is_dir(&s)).unwrap_or(false) {
        return Err(Error::Path {
            path: dest.into(),
            msg: format!("mount destination for {typ} is not a directory"),
        });
    }
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.to_string());
    let mut data = o.data.clone();
    if let Some(st) = covered.as_ref().and_then(|fd| fstat(fd).ok()) {
        // Before the config's own options, so that an explicit mode= wins.
        let mode = format!("mode={:04o}", st.st_mode & 0o7777);
        data = if data.is_empty() {
            mode
        } else {
            format!("{mode},{data}")
        };
    }
    if let (Some(label), true) = (
        ctx.mount_label,
        matches!(typ, "tmpfs" | "devpts" | "mqueue"),
    ) {
        if !label.is_empty() {
            if !data.is_empty() {
                data.push(',');
            }
            data.push_str(&format!("context=\"{label}\""));
        }
    }
    let mut flags = o.flags & !(MsFlags::MS_REC);
    if read_only_later(typ, dest) {
        flags.remove(MsFlags::MS_RDONLY);
    }
    mount(
        Some(source.as_str()),
        fd_path(&target).as_str(),
        Some(typ),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .ctx(|| {
        format!(
            "mount {typ} on {} (options {:?})",
            dest.display(),
            m.options().as_deref().unwrap_or(&[])
        )
    })?;
    let mounted = reopen(ctx.root, dest)?;
    if let (true, true, Some(from)) = (tmpfs, o.copy_up, covered.as_ref()) {
        let to = crate::sys::openat2(
            mounted.as_raw_fd(),
            Path::new("."),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
            0,
        )
        .ctx(|| format!("open the new tmpfs at {}", dest.display()))?;
        super::copyup::copy_tree(from, &to, &dest.display().to_string())?;
    }
    finish(ctx.root, &mounted, o, dest)
}

fn finish(_root: &Root, mounted: &OwnedFd, o: &MountOptions, dest: &Path) -> Result<()> {
    for p in &o.propagation {
        mount(
            None::<&str>,
            fd_path(mounted).as_str(),
            None::<&str>,
            *p,
            None::<&str>,
        )
        .ctx(|| format!("set propagation of {}", dest.display()))?;
    }
    setattr(mounted, o.rec, true, dest)
}

/// Open the mount that now sits on `dest` (a magic link to the old fd would
/// still name the directory underneath it).
pub fn reopen(root: &Root, dest: &Path) -> Result<OwnedFd> {
    root.open_path(dest, 0).map_err(|e| Error::Path {
        path: dest.into(),
        msg: format!("reopen after mount: {e}"),
    })
}

/// proc and sysfs must land on a real directory, never on a symlink (CVE-2019-19921).
pub fn refuse_symlink(root: &Root, dest: &Path, typ: &str) -> Result<()> {
    match root.open_path(dest, libc::O_NOFOLLOW) {
        Ok(fd) => {
            let st = fstat(&fd).ctx(|| format!("stat {}", dest.display()))?;
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                return Err(Error::Path {
                    path: dest.into(),
                    msg: format!(
                        "filesystem \"{typ}\" must be mounted on ordinary directory: the mount destination is a symlink; refusing to mount {typ} through it"
                    ),
                });
            }
            Ok(())
        }
        Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::Path {
            path: dest.into(),
            msg: format!("open: {e}"),
        }),
    }
}

/// Bind mount the host object behind `src_fd` onto `dest` inside the rootfs.
pub fn bind_fd(root: &Root, src_fd: &impl AsRawFd, dest: &Path, kind: Kind) -> Result<OwnedFd> {
    let target = root.ensure(dest, kind)?;
    mount(
        Some(fd_path(src_fd).as_str()),
        fd_path(&target).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind mount onto {}", dest.display()))?;
    reopen(root, dest)
}

pub fn join(base: &Path, p: &str) -> PathBuf {
    base.join(p.trim_start_matches('/'))
}
