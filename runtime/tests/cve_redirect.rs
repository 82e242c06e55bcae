//! Redirected writes and mounts through the container's own /proc and /dev:
//! CVE-2025-52881 (a procfs file the runtime writes, covered by a mount of the
//! container's choosing) and CVE-2025-52565 (the /dev/console bind mount aimed
//! elsewhere by a symlink in the rootfs). Each test builds the attack against
//! berth and checks that the runtime wrote or mounted what it meant to and
//! nothing else.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;

fn host_pid(c: &Container<'_>) -> i32 {
    c.pid()
}

fn add_user_namespace(b: &mut Bundle) {
    // The init (host uid 100000) cannot make mount points in the root-owned rootfs.
    std::fs::create_dir_all(b.rootfs().join("host")).unwrap();
    let mut ns = b.config["linux"]["namespaces"].as_array().unwrap().clone();
    ns.push(json!({"type": "user"}));
    b.set("/linux/namespaces", json!(ns));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.set("/linux/uidMappings", map.clone());
    b.set("/linux/gidMappings", map);
}

/// A bind mount of a host "canary" file over /proc/self/oom_score_adj in the
/// container: a runtime that writes `process.oomScoreAdj` through the
/// container's /proc writes the canary instead of the real file.
fn oom_score_adj_overmount(name: &str, userns: bool) {
    let mut sb = Sandbox::new(name);
    let canary = sb.dir.join("canary");
    std::fs::write(&canary, "untouched\n").unwrap();
    std::fs::set_permissions(&canary, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    if userns {
        add_user_namespace(&mut sb.bundle);
    }
    sb.bundle.add_mount(json!({
        "destination": "/proc/self/oom_score_adj",
        "type": "bind",
        "source": canary,
        "options": ["bind", "rw"]
    }));
    sb.bundle.set("/process/oomScoreAdj", json!(123));
    sb.bundle.args(&["sleep", "1000"]);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let c = sb.created(&id);
        let pid = host_pid(&c);
        // The overmount really is there: inside the container the file that
        // looks like the init's oom_score_adj is the canary.
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        assert!(
            mounts.contains(" /proc/1/oom_score_adj "),
            "the overmount is missing, the test would prove nothing:\n{mounts}"
        );
        assert_eq!(
            std::fs::read_to_string(&canary).unwrap(),
            "untouched\n",
            "the runtime's write went to the file mounted over /proc/self/oom_score_adj"
        );
        assert_eq!(
            std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
                .unwrap()
                .trim(),
            "123",
            "process.oomScoreAdj did not reach the real procfs file"
        );
    }
    base.assert_clean(&sb);
}

#[test]
fn cve_2025_52881_oom_score_adj_write_ignores_a_proc_overmount() {
    oom_score_adj_overmount("cve-oom", false);
}

#[test]
fn cve_2025_52881_oom_score_adj_write_ignores_a_proc_overmount_in_a_user_namespace() {
    oom_score_adj_overmount("cve-oom-userns", true);
}

/// The same with a sysctl: the container's /proc/sys/kernel/shmmax is covered
/// by a canary; the value must land in the container's IPC namespace.
#[test]
fn cve_2025_52881_sysctl_write_ignores_a_proc_overmount() {
    let mut sb = Sandbox::new("cve-sysctl");
    let canary = sb.dir.join("canary");
    std::fs::write(&canary, "untouched\n").unwrap();
    sb.bundle.add_mount(json!({
        "destination": "/proc/sys/kernel/shmmax",
        "type": "bind",
        "source": canary,
        "options": ["bind", "rw"]
    }));
    sb.bundle
        .set("/linux/sysctl", json!({"kernel.shmmax": "123456789"}));
    sb.bundle.args(&["sleep", "1000"]);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let c = sb.created(&id);
        let pid = host_pid(&c);
        assert_eq!(std::fs::read_to_string(&canary).unwrap(), "untouched\n");
        let out = std::process::Command::new("nsenter")
            .args([
                "-t",
                &pid.to_string(),
                "-i",
                "cat",
                "/proc/sys/kernel/shmmax",
            ])
            .output()
            .expect("run nsenter (util-linux)");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "123456789");
    }
    base.assert_clean(&sb);
    // The host's own value is not what the container set.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax")
            .unwrap()
            .trim(),
        "123456789"
    );
}

/// A bundle whose /dev is the rootfs's own directory (no tmpfs), with a
/// terminal, so the rootfs decides what /dev/console is.
fn console_bundle(sb: &mut Sandbox) {
    sb.bundle.without_mount("/dev");
    sb.bundle.set("/process/terminal", json!(true));
}

fn create_with_console(sb: &Sandbox, id: &str) -> (Out, Option<std::os::fd::OwnedFd>) {
    let sock = sb.dir.join(format!("{id}.sock"));
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    sb.bundle.save();
    let out = sb.berth(&[
        "create",
        "--bundle",
        &sb.bundle_arg(),
        "--console-socket",
        sock.to_str().unwrap(),
        id,
    ]);
    let master = if out.ok() {
        Some(accept_master(&listener))
    } else {
        None
    };
    (out, master)
}

#[test]
fn cve_2025_52565_console_symlink_in_the_rootfs_is_refused() {
    let mut sb = Sandbox::new("cve-console");
    console_bundle(&mut sb);
    let rootfs = sb.bundle.rootfs();
    std::fs::write(rootfs.join("etc/canary"), "untouched\n").unwrap();
    std::fs::create_dir_all(rootfs.join("dev/pts")).unwrap();
    std::os::unix::fs::symlink("/etc/canary", rootfs.join("dev/console")).unwrap();
    let id = sb.id("c");
    let base = sb.baseline(&id);
    let (out, _) = create_with_console(&sb, &id);
    out.expect_fail(&["/dev/console", "symlink"]);
    base.assert_clean(&sb);
    assert!(
        !mount_points()
            .iter()
            .any(|m| Path::new(m).ends_with("etc/canary")),
        "something was mounted over the symlink's target"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/canary")).unwrap(),
        "untouched\n"
    );
}

#[test]
fn cve_2025_52565_console_is_the_containers_pty() {
    let mut sb = Sandbox::new("cve-console-ok");
    sb.bundle.set("/process/terminal", json!(true));
    // /dev/console must be the pty the process has as stdin: same device.
    sb.bundle.sh(
        "echo console=$(stat -L -c %t:%T /dev/console) stdin=$(stat -L -c %t:%T /proc/self/fd/0) end",
    );
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let (out, master) = create_with_console(&sb, &id);
        out.expect_ok();
        let _c = sb.guard(&id);
        let master = master.unwrap();
        sb.berth(&["start", &id]).expect_ok();
        let text = read_until(&master, "end", POLL_TIMEOUT);
        let console = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("console="))
            .unwrap_or_else(|| panic!("no console line: {text:?}"));
        let stdin = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("stdin="))
            .unwrap_or_else(|| panic!("no stdin line: {text:?}"));
        assert_eq!(console, stdin, "{text:?}");
        // Unix98 pty slaves: majors 136-143 (hex 88-8f).
        assert!(console.starts_with("88:"), "{text:?}");
        sb.wait_status(&id, "stopped");
        sb.berth(&["delete", &id]).expect_ok();
    }
    base.assert_clean(&sb);
}

/// A rootfs that ships a regular file as /dev/ptmx (and no devpts) cannot pass
/// for a terminal.
#[test]
fn console_from_a_fake_ptmx_is_refused() {
    let mut sb = Sandbox::new("cve-ptmx");
    console_bundle(&mut sb);
    sb.bundle.without_mount("/dev/pts");
    let rootfs = sb.bundle.rootfs();
    std::fs::create_dir_all(rootfs.join("dev/pts")).unwrap();
    std::fs::write(rootfs.join("dev/ptmx"), "").unwrap();
    std::fs::write(rootfs.join("dev/pts/ptmx"), "").unwrap();
    let id = sb.id("c");
    let base = sb.baseline(&id);
    let (out, _) = create_with_console(&sb, &id);
    out.expect_fail(&["pty"]);
    base.assert_clean(&sb);
}
