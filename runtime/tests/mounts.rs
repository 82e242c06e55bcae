//! Mounts as runc makes them: rootfsPropagation values, propagation options
//! on bind mounts, mounts in config order, flags on bind remounts, tmpfs
//! modes and tmpcopyup, /dev, idmapped mounts. Real containers (needs root).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;

/// A tmpfs the test mounts on the host (shared, so that propagation can be
/// observed), unmounted with everything below it when dropped.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn shared(at: &Path) -> HostTmpfs {
        std::fs::create_dir_all(at).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount a tmpfs on the host");
        let t = HostTmpfs(at.to_path_buf());
        // Its own peer group (not the one of the mount it sits on).
        for flag in [
            nix::mount::MsFlags::MS_PRIVATE,
            nix::mount::MsFlags::MS_SHARED,
        ] {
            nix::mount::mount(None::<&str>, at, None::<&str>, flag, None::<&str>).unwrap();
        }
        t
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let prefix = format!("{}/", self.0.display());
        let mut below: Vec<String> = mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&prefix))
            .collect();
        below.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in below {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The optional fields (`shared:N`, `master:N`, `unbindable`) of the
/// mountinfo line for mount point `mp` in `mountinfo`.
fn optional_fields(mountinfo: &str, mp: &str) -> String {
    mountinfo
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(mp))
        .last()
        .map(|l| {
            let head = l.split(" - ").next().unwrap_or("");
            head.split(' ').skip(6).collect::<Vec<_>>().join(" ")
        })
        .unwrap_or_else(|| panic!("no mount at {mp} in:\n{mountinfo}"))
}

/// `berth run` the bundle; assert success; its stdout.
#[track_caller]
fn run_ok(sb: &Sandbox) -> String {
    let id = sb.id("m");
    sb.bundle.save();
    let _c = sb.guard(&id);
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(o.code, 0, "berth run failed: {o:?}");
    o.stdout
}

/// Every rootfsPropagation value runc accepts is accepted, and applies to the
/// container's root after pivot_root.
#[test]
fn rootfs_propagation_accepts_every_runc_value() {
    let mut sb = Sandbox::new("mnt-rprop");
    sb.bundle.args(&["cat", "/proc/self/mountinfo"]);
    // A cgroup v1 mount binds the host's hierarchies, which runbindable makes
    // unbindable (runc fails there as well); it is not what this test is about.
    sb.bundle.without_mount("/sys/fs/cgroup");
    for value in [
        "shared",
        "rshared",
        "slave",
        "rslave",
        "private",
        "rprivate",
        "unbindable",
        "runbindable",
    ] {
        sb.bundle.set("/linux/rootfsPropagation", json!(value));
        let info = run_ok(&sb);
        let root = optional_fields(&info, "/");
        match value {
            "shared" | "rshared" => assert!(root.contains("shared:"), "{value}: {root:?}"),
            "unbindable" | "runbindable" => assert_eq!(root, "unbindable", "{value}"),
            "private" | "rprivate" => assert_eq!(root, "", "{value}"),
            _ => {}
        }
    }
}

/// Under a shared rootfsPropagation, an `rshared` bind mount stays in the
/// host mount's peer group, so a mount made inside the container appears on
/// the host (containerd's CRI "bidirectional" mounts).
#[test]
fn rshared_bind_propagates_back_to_the_host() {
    let mut sb = Sandbox::new("mnt-rshared");
    let src = sb.dir.join("bidi");
    let host = HostTmpfs::shared(&src);
    let host_peer = optional_fields(
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        src.to_str().unwrap(),
    );
    sb.bundle.set("/linux/rootfsPropagation", json!("shared"));
    sb.bundle.set(
        "/process/capabilities",
        json!({"bounding": ["CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"], "permitted": ["CAP_SYS_ADMIN"]}),
    );
    sb.bundle.add_mount(json!({
        "destination": "/mnt/bidi", "type": "bind", "source": src, "options": ["rbind", "rshared"]
    }));
    sb.bundle.sh(
        "mkdir -p /mnt/bidi/sub && mount -t tmpfs made-inside /mnt/bidi/sub && cat /proc/self/mountinfo",
    );
    let info = run_ok(&sb);
    assert_eq!(
        optional_fields(&info, "/mnt/bidi"),
        host_peer,
        "the bind left the host's peer group:\n{info}"
    );
    let host_info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let sub = src.join("sub");
    assert!(
        host_info
            .lines()
            .any(|l| l.split(' ').nth(4) == sub.to_str() && l.contains("made-inside")),
        "the container's mount did not reach the host:\n{host_info}"
    );
    drop(host);
}

/// Under rslave, a mount the host makes after the container started shows up
/// inside it.
#[test]
fn rslave_bind_receives_host_mounts() {
    let mut sb = Sandbox::new("mnt-rslave");
    let src = sb.dir.join("fromhost");
    let host = HostTmpfs::shared(&src);
    sb.bundle.set("/linux/rootfsPropagation", json!("rslave"));
    sb.bundle.add_mount(json!({
        "destination": "/mnt/fromhost", "type": "bind", "source": src, "options": ["rbind", "rslave"]
    }));
    sb.bundle.sh(
        "touch /host/started; while [ ! -e /mnt/fromhost/late/marker ]; do sleep 0.05; done; echo seen",
    );
    let id = sb.id("m");
    sb.bundle.save();
    let _c = sb.guard(&id);
    let cmd = sb.cmd(&["run", "--bundle", &sb.bundle_arg(), &id]);
    let (mut child, out, _) = spawn_to_files(&sb, cmd, "rslave");
    assert!(wait_until(POLL_TIMEOUT, || sb
        .host
        .join("started")
        .exists()));
    let late = src.join("late");
    std::fs::create_dir(&late).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &late,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    std::fs::write(late.join("marker"), "x").unwrap();
    let code = wait_child(&mut child, COMMAND_TIMEOUT, "berth run (rslave)");
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(out).unwrap(), "seen\n");
    drop(host);
}
