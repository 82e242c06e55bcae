//! Reproductions of known container-runtime escapes; each shows the attack fails.

mod common;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;

const SECRET: &str = "host-secret-7d1e";

/// A host directory holding a secret file, outside the rootfs.
fn host_secret_dir(sb: &Sandbox) -> PathBuf {
    let d = sb.dir.join("hostdir");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("secret"), SECRET).unwrap();
    d
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// CVE-2024-21626: a leaked host directory fd used as the process cwd.

#[test]
fn cve_2024_21626_leaked_fd_as_cwd_does_not_give_a_host_cwd() {
    let mut sb = Sandbox::new("sec-21626");
    let hostdir = host_secret_dir(&sb);
    let dirfd = high_fd(&std::fs::File::open(&hostdir).unwrap());
    sb.bundle.set("/process/cwd", json!("/proc/self/fd/7"));
    sb.bundle
        .sh("pwd; cat secret 2>&1; cat ../hostdir/secret 2>&1; ls");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    sb.bundle.save();
    let mut cmd = sb.cmd(&["run", "--bundle", &sb.bundle_arg(), &id]);
    pass_fd(&mut cmd, dirfd.as_raw_fd(), 7);
    let o = sb.run_cmd(cmd, "berth run (cwd /proc/self/fd/7, fd 7 leaked)");
    assert!(
        !o.stdout.contains(SECRET),
        "the container read a host file through its cwd: {o:?}"
    );
    if o.ok() {
        let pwd = o.stdout.lines().next().unwrap_or_default();
        assert!(
            pwd.starts_with('/') && !pwd.contains("unreachable") && !pwd.contains("hostdir"),
            "host cwd inside the container: {o:?}"
        );
    } else {
        assert!(
            o.stderr.contains("cwd") || o.stderr.contains("proc/self/fd/7"),
            "create failed, but not because of the cwd: {o:?}"
        );
    }
    base.assert_clean(&sb);
    assert_eq!(
        entries(&hostdir),
        ["secret"],
        "the host directory was modified"
    );
}

/// Names of fds 3..=64 the container's program sees (shell builtins only, so
/// the check itself opens nothing).
const FD_SCAN: &str =
    "for i in $(seq 3 64); do [ -e /proc/self/fd/$i ] && echo fd$i; done; echo scanned";

#[test]
fn cve_2024_21626_no_host_fd_reaches_the_container() {
    let mut sb = Sandbox::new("sec-fds");
    let hostdir = host_secret_dir(&sb);
    let dirfd = high_fd(&std::fs::File::open(&hostdir).unwrap());
    let filefd = high_fd(&std::fs::File::open(hostdir.join("secret")).unwrap());
    sb.bundle.sh(&format!(
        "{FD_SCAN}; ls -l /proc/self/fd/ >&2; cat /proc/self/fd/7/secret 2>/dev/null; true"
    ));
    let id = sb.id("c");
    sb.bundle.save();
    let mut cmd = sb.cmd(&["run", "--bundle", &sb.bundle_arg(), &id]);
    pass_fd(&mut cmd, dirfd.as_raw_fd(), 7);
    pass_fd(&mut cmd, filefd.as_raw_fd(), 9);
    let o = sb.run_cmd(cmd, "berth run (fds 7 and 9 leaked)");
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        o.stdout, "scanned\n",
        "host fds visible in the container: {o:?}"
    );

    // With --preserve-fds 1 the requested fd 3 is there, the leaked 7 and 9 are not.
    let id = sb.id("c");
    let mut cmd = sb.cmd(&[
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        &sb.bundle_arg(),
        &id,
    ]);
    pass_fd(&mut cmd, filefd.as_raw_fd(), 3);
    pass_fd(&mut cmd, dirfd.as_raw_fd(), 7);
    pass_fd(&mut cmd, filefd.as_raw_fd(), 9);
    let o = sb.run_cmd(cmd, "berth run --preserve-fds 1 (fds 7 and 9 leaked)");
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "fd3\nscanned\n", "{o:?}");
}

#[test]
fn cve_2024_21626_running_program_holds_only_stdio() {
    // Seen from the host: the running program's fd table is 0, 1, 2.
    let mut sb = Sandbox::new("sec-fdhost");
    let hostdir = host_secret_dir(&sb);
    let dirfd = high_fd(&std::fs::File::open(&hostdir).unwrap());
    sb.bundle.sh("echo ready > /host/ready; exec sleep 1000");
    let id = sb.id("c");
    sb.bundle.save();
    let mut cmd = sb.cmd(&["create", "--bundle", &sb.bundle_arg(), &id]);
    pass_fd(&mut cmd, dirfd.as_raw_fd(), 7);
    sb.run_cmd(cmd, "berth create (fd 7 leaked)").expect_ok();
    let c = sb.guard(&id);
    sb.berth(&["start", &id]).expect_ok();
    sb.wait_file(&sb.host.join("ready"), "ready");
    let pid = c.pid();
    let mut fds = Vec::new();
    assert!(
        wait_until(POLL_TIMEOUT, || {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            fds = entries(Path::new(&format!("/proc/{pid}/fd")));
            exe.ends_with("busybox") && fds.len() <= 3
        }),
        "the program holds fds {fds:?}"
    );
    assert_eq!(fds, ["0", "1", "2"]);
}

// ---------------------------------------------------------------------------
// CVE-2019-5736: the runtime binary must not be reachable from the container.

fn sha256(path: &str) -> String {
    let o = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn cve_2019_5736_init_exe_is_not_reachable_from_the_container() {
    let mut sb = Sandbox::new("sec-5736");
    let before = sha256(berth_bin());
    assert_eq!(before.len(), 64);
    // The startContainer hook runs inside the container while /proc/1 is still
    // berth's init (before execve). It tries to open /proc/1/exe for reading and
    // writing, and keeps a read fd in a background process that tries to write
    // through it once the init has exec'd the program (the original attack).
    let script = r#"
        tr '\0' ' ' < /proc/1/cmdline > /host/init-cmdline
        if cat /proc/1/exe > /dev/null 2>/host/exe-err; then echo OPENED; else echo DENIED; fi > /host/exe-result
        sleep 5 & p=$!
        cat /proc/$p/exe > /dev/null 2>&1 && echo CONTROL-OK > /host/control
        kill $p
        { echo pwned >> /proc/1/exe; } 2>/dev/null && echo WRITTEN > /host/direct-write
        ( exec 3< /proc/1/exe || exit 0
          i=0; while [ $i -lt 250 ] && grep -q create /proc/1/cmdline; do sleep 0.02; i=$((i+1)); done
          { echo pwned >> /proc/self/fd/3; } 2>/dev/null && echo WRITTEN > /host/late-write ) </dev/null >/dev/null 2>&1 &
        exit 0
    "#;
    sb.bundle.set(
        "/hooks/startContainer",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["PATH=/bin", format!("{TAG_VAR}={}", sb.tag)]}]),
    );
    sb.bundle
        .sh("echo ran > /host/marker; sleep 1; echo done >> /host/marker");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.started(&id);
        sb.wait_file(&sb.host.join("marker"), "done");
        sb.wait_status(&id, "stopped");
        sb.berth(&["delete", &id]).expect_ok();
    }
    base.assert_clean(&sb);
    let cmdline = std::fs::read_to_string(sb.host.join("init-cmdline")).unwrap();
    assert!(
        cmdline.contains("create"),
        "the hook did not see berth's init as pid 1: {cmdline:?}"
    );
    let result = std::fs::read_to_string(sb.host.join("exe-result")).unwrap();
    assert_eq!(
        result.trim(),
        "DENIED",
        "the container could open the runtime binary via /proc/1/exe"
    );
    // Control: the same hook can open the exe of an ordinary (dumpable) process
    // of the container, so DENIED above comes from the init's protection.
    assert!(
        sb.host.join("control").exists(),
        "control failed: the hook cannot open any /proc/PID/exe"
    );
    assert!(
        !sb.host.join("direct-write").exists(),
        "the container wrote to the runtime binary"
    );
    assert!(
        !sb.host.join("late-write").exists(),
        "the container wrote to the runtime binary through a kept fd"
    );
    assert_eq!(sha256(berth_bin()), before, "the berth binary changed");
}

#[test]
fn cve_2019_5736_program_cannot_touch_the_runtime_binary() {
    let mut sb = Sandbox::new("sec-5736b");
    let before = sha256(berth_bin());
    // After execve the program's /proc/self/exe and /proc/1/exe are the
    // container's busybox; writing through them must not reach berth (and the
    // busybox being executed is busy).
    sb.bundle.sh(
        "for p in /proc/self/exe /proc/1/exe; do { echo pwned >> $p; } 2>/dev/null && echo WROTE $p; done; \
         readlink /proc/1/exe; echo end",
    );
    let id = sb.id("c");
    sb.bundle.save();
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.ends_with("/bin/busybox\nend\n"), "{o:?}");
    assert!(!o.stdout.contains("WROTE"), "{o:?}");
    assert_eq!(sha256(berth_bin()), before, "the berth binary changed");
}

// ---------------------------------------------------------------------------
// CVE-2019-19921 class: mount destinations through symlinks in the rootfs.

/// rootfs/evil is a symlink to `link_target(<host dir>)`; mounts go to
/// /evil/x (tmpfs) and /evil/y (bind). `precreate`: the symlink's target also
/// exists inside the rootfs (otherwise it dangles there).
fn symlink_mount_case(name: &str, precreate: bool, link_target: impl Fn(&Path) -> PathBuf) {
    let mut sb = Sandbox::new(name);
    let target = sb.dir.join("target");
    std::fs::create_dir(&target).unwrap();
    let src = sb.dir.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("from-src"), "x").unwrap();
    let inside = sb.bundle.rootfs().join(target.strip_prefix("/").unwrap());
    if precreate {
        std::fs::create_dir_all(&inside).unwrap();
    }
    std::os::unix::fs::symlink(link_target(&target), sb.bundle.rootfs().join("evil")).unwrap();
    sb.bundle
        .add_mount(json!({"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"}));
    sb.bundle.add_mount(
        json!({"destination": "/evil/y", "type": "bind", "source": src, "options": ["rbind"]}),
    );
    sb.bundle
        .sh("{ cat /proc/self/mountinfo; ls /evil/y; echo end; } > /host/out");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    let created = sb.create(&id);
    let _c = sb.guard(&id);
    // Whatever create did, nothing happened on the host side of the symlink.
    assert!(
        entries(&target).is_empty(),
        "create made {:?} in the host directory",
        entries(&target)
    );
    let tpath = target.display().to_string();
    assert!(
        !mount_points().iter().any(|m| m.starts_with(&tpath)),
        "host mount under {tpath}"
    );
    if !created.ok() {
        base.assert_clean(&sb);
    }
    created.expect_ok();
    // The mounts landed inside the rootfs, at the symlink's target resolved there.
    assert!(
        inside.join("x").is_dir() && inside.join("y").is_dir(),
        "mount targets not created inside the rootfs at {}",
        inside.display()
    );
    sb.berth(&["start", &id]).expect_ok();
    sb.wait_status(&id, "stopped");
    let out = std::fs::read_to_string(sb.host.join("out")).unwrap_or_default();
    sb.berth(&["delete", &id]).expect_ok();
    base.assert_clean(&sb);
    assert!(
        entries(&target).is_empty(),
        "the host directory was touched: {:?}",
        entries(&target)
    );
    // Inside the container: tmpfs at <target>/x (a path inside the rootfs), the bind at <target>/y.
    let tmpfs_line = out
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(&format!("{tpath}/x")));
    assert!(
        tmpfs_line.is_some_and(|l| l.contains(" - tmpfs ")),
        "no tmpfs at {tpath}/x inside the container:\n{out}"
    );
    assert!(
        out.contains("from-src\nend\n"),
        "the bind mount is not visible at /evil/y:\n{out}"
    );
}

fn relative_to_root(t: &Path) -> PathBuf {
    PathBuf::from(format!(
        "{}{}",
        "../".repeat(12),
        t.display().to_string().trim_start_matches('/')
    ))
}

#[test]
fn cve_2019_19921_absolute_symlink_mount_stays_in_rootfs() {
    symlink_mount_case("sec-abs", true, |t| t.to_path_buf());
}

#[test]
fn cve_2019_19921_relative_symlink_mount_stays_in_rootfs() {
    symlink_mount_case("sec-rel", true, relative_to_root);
}

#[test]
fn cve_2019_19921_dangling_absolute_symlink_mount_stays_in_rootfs() {
    symlink_mount_case("sec-absd", false, |t| t.to_path_buf());
}

#[test]
fn cve_2019_19921_dangling_relative_symlink_mount_stays_in_rootfs() {
    symlink_mount_case("sec-reld", false, relative_to_root);
}

fn proc_like_on_symlink(name: &str, dest: &str, link: impl Fn(&Sandbox, &Path) -> PathBuf) {
    let mut sb = Sandbox::new(name);
    let target = sb.dir.join("target");
    std::fs::create_dir(&target).unwrap();
    let rootfs = sb.bundle.rootfs();
    let d = rootfs.join(dest.trim_start_matches('/'));
    let _ = std::fs::remove_dir(&d);
    std::fs::create_dir_all(rootfs.join("real")).unwrap();
    std::os::unix::fs::symlink(link(&sb, &target), &d).unwrap();
    sb.bundle.sh("echo ran > /host/marker");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    // runc's words, which its clients and tests match, beside berth's own.
    sb.create(&id)
        .expect_fail(&["symlink", "must be mounted on ordinary directory"]);
    base.assert_clean(&sb);
    assert!(entries(&target).is_empty());
    assert!(
        entries(&rootfs.join("real")).is_empty(),
        "something was mounted or created through the symlink"
    );
    assert!(!sb.host.join("marker").exists());
}

#[test]
fn proc_destination_symlink_to_host_is_refused() {
    proc_like_on_symlink("sec-proc", "/proc", |_, t| t.to_path_buf());
}

#[test]
fn proc_destination_symlink_inside_rootfs_is_refused() {
    proc_like_on_symlink("sec-proc2", "/proc", |_, _| PathBuf::from("/real"));
}

#[test]
fn sysfs_destination_symlink_is_refused() {
    proc_like_on_symlink("sec-sys", "/sys", |_, t| t.to_path_buf());
}

// ---------------------------------------------------------------------------
// CVE-2025-31133 class: masked paths.

#[test]
fn masked_path_that_is_a_symlink_is_refused() {
    let mut sb = Sandbox::new("sec-masklink");
    let rootfs = sb.bundle.rootfs();
    std::fs::write(rootfs.join("etc/hostname"), "container\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", rootfs.join("etc/masked-link")).unwrap();
    let mut masked = sb.bundle.config["linux"]["maskedPaths"]
        .as_array()
        .unwrap()
        .clone();
    masked.push(json!("/etc/masked-link"));
    sb.bundle.set("/linux/maskedPaths", json!(masked));
    sb.bundle.sh("echo ran > /host/marker");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    sb.create(&id).expect_fail(&["masked-link", "symlink"]);
    base.assert_clean(&sb);
    assert!(!sb.host.join("marker").exists());
}

const MASK_CHECK: &str = "for f in /proc/kcore /proc/keys /proc/timer_list; do \
       [ -e $f ] || continue; echo \"$f $(stat -c '%F %t:%T' $f) size=$(wc -c < $f)\"; done; \
     for d in /proc/acpi /proc/scsi /sys/firmware; do [ -d $d ] && echo \"$d entries=$(ls -A $d | wc -l)\"; done; echo end";

fn assert_masked(out: &str) {
    let files: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("/proc/k") || l.starts_with("/proc/t"))
        .collect();
    assert!(!files.is_empty(), "no masked file checked:\n{out}");
    for l in files {
        assert!(
            l.contains("character special file 1:3 size=0"),
            "masked file is not the null device: {l}\n{out}"
        );
    }
    for l in out.lines().filter(|l| l.contains("entries=")) {
        assert!(l.ends_with("entries=0"), "masked directory not empty: {l}");
    }
    assert!(out.ends_with("end\n"), "{out}");
}

#[test]
fn masked_paths_are_the_null_device_and_empty() {
    let mut sb = Sandbox::new("sec-mask");
    sb.bundle.sh(MASK_CHECK);
    let id = sb.id("c");
    sb.bundle.save();
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_masked(&o.stdout);
    // /proc/keys exists on every kernel with keyrings; /sys/firmware is not empty on the host.
    assert!(
        o.stdout.contains("/proc/keys character special file"),
        "{o:?}"
    );
    if std::fs::read_dir("/sys/firmware")
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
    {
        assert!(o.stdout.contains("/sys/firmware entries=0"), "{o:?}");
    }
}

#[test]
fn cve_2025_31133_container_dev_null_symlink_is_not_used_for_masking() {
    // No /dev tmpfs: the rootfs's own /dev/null (a symlink to a host-global
    // sysctl) survives; masking must still use the real null device.
    let mut sb = Sandbox::new("sec-31133");
    let rootfs = sb.bundle.rootfs();
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", rootfs.join("dev/null")).unwrap();
    sb.bundle.without_mount("/dev");
    sb.bundle.sh(MASK_CHECK);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    sb.bundle.save();
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_masked(&o.stdout);
    base.assert_clean(&sb);
}
