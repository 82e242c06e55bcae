//! Mounting an overlay of shared read-only layers plus one writable layer.

use crate::error::{invalid, IoContext, Result};
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MountFlags, MoveMountFlags,
};
use std::path::{Path, PathBuf};

/// Layers and directories of one overlay mount.
#[derive(Debug, Clone)]
pub struct OverlaySpec {
    /// Top layer first.
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// Mount `spec` on `target`. Uses the new mount API (one `lowerdir+` per layer, so the
/// number of layers is not limited by the page-sized option string); falls back to
/// mount(2), with paths relative to the common parent of the layers when they do not fit.
pub fn mount(spec: &OverlaySpec, target: &Path) -> Result<()> {
    match mount_fsconfig(spec, target) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => mount_legacy(spec, target),
        Err(e) => Err(e).ctx(|| format!("mount overlay on {}", target.display())),
    }
}

fn mount_fsconfig(spec: &OverlaySpec, target: &Path) -> rustix::io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for l in &spec.lower {
        fsconfig_set_string(&fs, "lowerdir+", l.as_path())?;
    }
    fsconfig_set_string(&fs, "upperdir", spec.upper.as_path())?;
    for (key, value) in FIXED_OPTIONS {
        fsconfig_set_string(&fs, *key, *value)?;
    }
    fsconfig_set_string(&fs, "workdir", spec.work.as_path())?;
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

/// Keep the upper directory a complete, self-contained diff (so `commit` can read it):
/// no metadata-only copy-ups and no directory redirects.
const FIXED_OPTIONS: &[(&str, &str)] = &[("redirect_dir", "off"), ("metacopy", "off")];

fn option_string(lower: &[String], spec: &OverlaySpec) -> String {
    let fixed: String = FIXED_OPTIONS
        .iter()
        .map(|(k, v)| format!(",{k}={v}"))
        .collect();
    format!(
        "lowerdir={},upperdir={},workdir={}{fixed}",
        lower.join(":"),
        spec.upper.display(),
        spec.work.display()
    )
}

/// mount(2) with an option string; relative layer paths when absolute ones do not fit.
pub fn mount_legacy(spec: &OverlaySpec, target: &Path) -> Result<()> {
    let page = rustix::param::page_size() - 1;
    let absolute: Vec<String> = spec.lower.iter().map(|p| p.display().to_string()).collect();
    let opts = option_string(&absolute, spec);
    if opts.len() <= page {
        return do_mount(&opts, target);
    }
    // Shorten with paths relative to the layers' common parent, mounting from inside it.
    let parent = spec.lower[0]
        .parent()
        .ok_or_else(|| invalid("layer path has no parent"))?
        .to_path_buf();
    if spec
        .lower
        .iter()
        .any(|l| l.parent() != Some(parent.as_path()))
    {
        return Err(invalid(format!(
            "{} layers do not fit one mount option string",
            spec.lower.len()
        )));
    }
    let relative: Vec<String> = spec
        .lower
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let opts = option_string(&relative, spec);
    if opts.len() > page {
        return Err(invalid(format!(
            "{} layers do not fit one mount option string ({} bytes) and the kernel lacks lowerdir+",
            spec.lower.len(),
            opts.len()
        )));
    }
    let old = std::env::current_dir().ctx(|| "current dir".into())?;
    std::env::set_current_dir(&parent).ctx(|| format!("chdir {}", parent.display()))?;
    let target_abs = if target.is_absolute() {
        target.to_path_buf()
    } else {
        old.join(target)
    };
    let r = do_mount(&opts, &target_abs);
    std::env::set_current_dir(&old).ctx(|| format!("chdir {}", old.display()))?;
    r
}

fn do_mount(opts: &str, target: &Path) -> Result<()> {
    let data = std::ffi::CString::new(opts).map_err(|_| invalid("NUL in overlay options"))?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        data.as_c_str(),
    )
    .ctx(|| format!("mount overlay on {}", target.display()))
}

/// Unmount `target` (lazily if busy); not mounted is fine.
pub fn unmount(target: &Path) -> Result<()> {
    use rustix::mount::UnmountFlags;
    match rustix::mount::unmount(target, UnmountFlags::NOFOLLOW) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(rustix::io::Errno::BUSY) => {
            rustix::mount::unmount(target, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW)
                .ctx(|| format!("unmount {}", target.display()))
        }
        Err(e) => Err(e).ctx(|| format!("unmount {}", target.display())),
    }
}

/// Is `path` a mount point?
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    text.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}
