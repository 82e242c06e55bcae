//! config.md#mounts: bind, rbind, ro, tmpfs options, proc, sysfs, and symlink escapes.

use crate::bundle::Bundle;
use crate::suite::{ensure, Case, CaseResult, Ctx, NotPassed};
use serde_json::json;
use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            section: "config.md#mounts",
            desc: "bind mount shows the host directory",
            run: bind,
        },
        Case {
            section: "config.md#mounts",
            desc: "bind is not recursive: submounts stay hidden",
            run: bind_not_recursive,
        },
        Case {
            section: "config.md#mounts",
            desc: "rbind carries submounts",
            run: rbind,
        },
        Case {
            section: "config.md#mounts",
            desc: "ro bind mount is read-only",
            run: ro_bind,
        },
        Case {
            section: "config.md#mounts",
            desc: "tmpfs with size and mode",
            run: tmpfs,
        },
        Case {
            section: "config.md#mounts",
            desc: "proc at /proc and sysfs at /sys",
            run: proc_sysfs,
        },
        Case {
            section: "config.md#mounts",
            desc: "options nosuid, nodev, noexec",
            run: flags,
        },
        Case {
            section: "config.md#mounts",
            desc: "rshared bind under a shared rootfsPropagation: a mount made inside reaches the host",
            run: rshared_bind,
        },
        Case {
            section: "config.md#mounts",
            desc: "uidMappings/gidMappings on a bind mount: files show the mapped owner",
            run: idmapped_bind,
        },
        Case {
            section: "config.md#mounts",
            desc: "destination through an absolute symlink stays inside the rootfs",
            run: symlink_absolute,
        },
        Case {
            section: "config.md#mounts",
            desc: "destination through a ../ symlink stays inside the rootfs",
            run: symlink_relative,
        },
    ]
}

/// A tmpfs mounted on the host, unmounted when dropped.
struct HostMount(PathBuf);

impl HostMount {
    fn tmpfs(at: &Path) -> Result<Self, NotPassed> {
        fs::create_dir_all(at).map_err(|e| format!("mkdir {}: {e}", at.display()))?;
        let target = CString::new(at.display().to_string()).map_err(|e| e.to_string())?;
        let fstype = CString::new("tmpfs").expect("no NUL");
        // SAFETY: all pointers are valid NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(NotPassed::Skip(format!(
                "cannot mount tmpfs on the host: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(HostMount(at.to_path_buf()))
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        if let Ok(c) = CString::new(self.0.display().to_string()) {
            // SAFETY: c is a valid path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

impl HostMount {
    /// A tmpfs in a peer group of its own.
    fn shared_tmpfs(at: &Path) -> Result<Self, NotPassed> {
        let m = HostMount::tmpfs(at)?;
        let target = CString::new(at.display().to_string()).map_err(|e| e.to_string())?;
        for flag in [libc::MS_PRIVATE, libc::MS_SHARED] {
            // SAFETY: a valid path; no source, type or data.
            let rc = unsafe {
                libc::mount(
                    std::ptr::null(),
                    target.as_ptr(),
                    std::ptr::null(),
                    flag,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(NotPassed::Skip(format!(
                    "cannot make a host tmpfs shared: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        Ok(m)
    }
}

/// Mount points in the runner's mount namespace, from /proc/self/mountinfo.
fn host_mount_points() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

fn rshared_bind(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let src = b.dir.join("bidi");
    let _m = HostMount::shared_tmpfs(&src)?;
    b.config["linux"]["rootfsPropagation"] = json!("shared");
    let caps = json!(["CAP_SYS_ADMIN"]);
    b.config["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    bind_mount(&mut b, &src, "/mnt/bidi", &["rbind", "rshared"]);
    b.set_args(&[
        "/bin/sh",
        "-c",
        "mkdir -p /mnt/bidi/sub && mount -t tmpfs tmpfs /mnt/bidi/sub && /runtimetest mounted:/mnt/bidi/sub",
    ]);
    b.write()?;
    let sub = src.join("sub");
    let made = {
        let _g = ctx.guard(&id);
        let out = ctx.runtime.run(&b.dir, &id);
        crate::suite::verdict(&b.stdout(), out.code(), &b.stderr())?;
        host_mount_points().contains(&sub.display().to_string())
    };
    if made {
        let c = CString::new(sub.display().to_string()).map_err(|e| e.to_string())?;
        // SAFETY: c is a valid path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    ensure(
        made,
        "the mount made inside the container did not reach the host",
    )
}

fn idmapped_bind(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let src = b.dir.join("idmap-src");
    fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    fs::write(src.join("f"), "x").map_err(|e| e.to_string())?;
    std::os::unix::fs::chown(src.join("f"), Some(0), Some(0)).map_err(|e| e.to_string())?;
    let map = |host: u32| json!([{ "containerID": 0, "hostID": host, "size": 65536 }]);
    b.push_mount(json!({
        "destination": "/mnt/idmap", "type": "bind", "source": src.display().to_string(),
        "options": ["bind"], "uidMappings": map(4242), "gidMappings": map(4343)
    }));
    b.set_args(&[
        "/bin/sh",
        "-c",
        "stat -c %u:%g /mnt/idmap/f > /hostdir/owner && /runtimetest mounted:/mnt/idmap",
    ]);
    b.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.run(&b.dir, &id);
    crate::suite::verdict(&b.stdout(), out.code(), &b.stderr())?;
    let owner = fs::read_to_string(b.host().join("owner")).unwrap_or_default();
    ensure(
        owner.trim() == "4242:4343",
        format!(
            "the file shows owner {:?}, not the mapped 4242:4343",
            owner.trim()
        ),
    )
}

/// host source dir `src` with a file `f` and a tmpfs submount `sub` holding `sub/g`.
fn source_with_submount(b: &Bundle) -> Result<(PathBuf, HostMount), NotPassed> {
    let src = b.dir.join("src");
    fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    fs::write(src.join("f"), "from-host").map_err(|e| e.to_string())?;
    let mount = HostMount::tmpfs(&src.join("sub"))?;
    fs::write(src.join("sub/g"), "from-submount").map_err(|e| e.to_string())?;
    Ok((src, mount))
}

fn bind_mount(b: &mut Bundle, src: &Path, dest: &str, options: &[&str]) {
    b.push_mount(json!({ "destination": dest, "type": "bind", "source": src.display().to_string(), "options": options }));
}

fn bind(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let (src, _m) = source_with_submount(&b)?;
    bind_mount(&mut b, &src, "/mnt/bind", &["bind"]);
    ctx.run_checks(&mut b, &id, &["mounts", "file:/mnt/bind/f=from-host"])
}

fn bind_not_recursive(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let (src, _m) = source_with_submount(&b)?;
    bind_mount(&mut b, &src, "/mnt/bind", &["bind"]);
    ctx.run_checks(&mut b, &id, &["absent:/mnt/bind/sub/g"])
}

fn rbind(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let (src, _m) = source_with_submount(&b)?;
    bind_mount(&mut b, &src, "/mnt/rbind", &["rbind"]);
    ctx.run_checks(
        &mut b,
        &id,
        &[
            "mounts",
            "file:/mnt/rbind/f=from-host",
            "file:/mnt/rbind/sub/g=from-submount",
        ],
    )
}

fn ro_bind(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let src = b.dir.join("src");
    fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    bind_mount(&mut b, &src, "/mnt/ro", &["bind", "ro"]);
    ctx.run_checks(&mut b, &id, &["mounts", "erofs:/mnt/ro/new-file"])?;
    ensure(
        fs::read_dir(&src).map(|d| d.count()).unwrap_or(1) == 0,
        "a file appeared in the ro source",
    )
}

fn tmpfs(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.push_mount(
        json!({ "destination": "/mnt/tmp", "type": "tmpfs", "source": "tmpfs",
                         "options": ["size=1m", "mode=1750"] }),
    );
    ctx.run_checks(&mut b, &id, &["mounts"])
}

fn proc_sysfs(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    ctx.run_checks(&mut b, &id, &["mounts", "file:/proc/self/comm=runtimetest"])
}

fn flags(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.push_mount(
        json!({ "destination": "/mnt/flags", "type": "tmpfs", "source": "tmpfs",
                         "options": ["nosuid", "nodev", "noexec"] }),
    );
    b.push_mount(
        json!({ "destination": "/mnt/rw", "type": "tmpfs", "source": "tmpfs", "options": ["rw"] }),
    );
    ctx.run_checks(&mut b, &id, &["mounts"])
}

/// Links rootfs/escape to the host directory H (absolute, or with enough ../ to climb out),
/// mounts a tmpfs at /escape/mnt, and checks that the mount landed at rootfs/H/mnt while
/// the host's H stays untouched.
fn symlink_escape(ctx: &Ctx, relative: bool) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let outside = b.dir.join("outside");
    fs::create_dir_all(&outside).map_err(|e| e.to_string())?;
    let target = if relative {
        format!("../../../../../../../../../../..{}", outside.display())
    } else {
        outside.display().to_string()
    };
    std::os::unix::fs::symlink(&target, b.rootfs().join("escape")).map_err(|e| e.to_string())?;
    let inside = b
        .rootfs()
        .join(outside.strip_prefix("/").map_err(|e| e.to_string())?);
    fs::create_dir_all(&inside).map_err(|e| e.to_string())?;
    b.push_mount(json!({ "destination": "/escape/mnt", "type": "tmpfs", "source": "tmpfs" }));
    b.set_args(&[
        "/runtimetest",
        &format!("mounted:{}/mnt", outside.display()),
    ]);
    b.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.run(&b.dir, &id);
    let host_mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = outside.display().to_string();
    ensure(
        !host_mounts
            .lines()
            .any(|l| l.split(' ').nth(4).is_some_and(|p| p.starts_with(&prefix))),
        format!("a mount appeared under the host path {prefix}"),
    )?;
    let entries: Vec<_> = fs::read_dir(&outside)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    ensure(
        entries.is_empty(),
        format!("host path {prefix} was modified: {entries:?}"),
    )?;
    crate::suite::verdict(&b.stdout(), out.code(), &b.stderr())
}

fn symlink_absolute(ctx: &Ctx) -> CaseResult {
    symlink_escape(ctx, false)
}

fn symlink_relative(ctx: &Ctx) -> CaseResult {
    symlink_escape(ctx, true)
}
