//! Container escapes, performed from inside containers as a hostile tenant
//! would, each against the defence that closes it:
//!
//! 1. Overwriting the runtime binary through `/proc/PID/exe` of a berth process
//!    visible in the container's pid namespace (CVE-2019-5736 class): while
//!    `berth exec` runs its child there, while a created init waits in a shared
//!    pid namespace, and while it waits with an exec'd process beside it, each
//!    with and without `CAP_SYS_PTRACE`. The attacks aim at a private copy of
//!    the binary, so a successful one cannot break other tests.
//! 2. `linux.devices` entries must not widen a deny-all device cgroup.
//! 3. Only stdio and the `--preserve-fds` range of the caller's fds may reach
//!    the init (and hooks) while the container is `created`.
//! 4. `--no-pivot` must not leave a fully visible procfs or sysfs in the mount
//!    namespace (which lets a user namespace in the container mount a new one).

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::json;

// ---------------------------------------------------------------------------
// 1. The runtime binary through /proc/PID/exe.

fn sha256(path: &Path) -> String {
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

/// `exe_attack` (tests/fixtures/exe_attack.c) built static into `rootfs/attack`.
fn install_attacker(rootfs: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exe_attack.c");
    let out = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(rootfs.join("attack"))
        .arg(&src)
        .output()
        .expect("run gcc (install gcc and libc6-dev)");
    assert!(
        out.status.success(),
        "gcc -static exe_attack.c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn add_capability(b: &mut Bundle, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        let caps = &mut b.config["process"]["capabilities"][set];
        if !caps.is_array() {
            *caps = json!([]);
        }
        caps.as_array_mut().unwrap().push(json!(cap));
    }
}

/// The attacker's report: one line per step (see exe_attack.c).
struct Report(PathBuf);

impl Report {
    fn text(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }

    fn has(&self, word: &str) -> bool {
        self.text()
            .lines()
            .any(|l| l.split(' ').next() == Some(word))
    }

    fn wait_for(&self, words: &[&str], timeout: Duration) -> bool {
        wait_until(timeout, || words.iter().any(|w| self.has(w)))
    }

    /// Wait until the attack has ended one way or another.
    #[track_caller]
    fn wait_end(&self) -> String {
        let ended = self.wait_for(
            &["none", "reopen-failed", "write-failed", "written"],
            Duration::from_secs(60),
        );
        assert!(ended, "the attack did not finish: {:?}", self.text());
        self.text()
    }
}

/// The verdict on one attack: the binary must be unchanged and no write may
/// have succeeded. With `CAP_SYS_PTRACE` the attacker must also have held an
/// fd to a berth process's exe (else the test proved nothing); without it,
/// the non-dumpable berth processes must have kept it from opening any.
#[track_caller]
fn assert_defended(report: &Report, bin: &Path, before: &str, ptrace: bool) {
    let text = report.wait_end();
    eprintln!("attack report:\n{text}");
    assert_eq!(
        sha256(bin),
        before,
        "the container overwrote the runtime binary; attack report:\n{text}"
    );
    assert!(!report.has("written"), "attack report:\n{text}");
    if ptrace {
        assert!(
            report.has("got"),
            "the attacker never held an fd to a berth process's exe, so the \
             test shows nothing; report:\n{text}"
        );
        assert!(
            report.has("reopen-failed") || report.has("write-failed"),
            "attack report:\n{text}"
        );
    } else {
        assert!(
            report.has("none"),
            "without CAP_SYS_PTRACE the attacker opened a berth process's exe; report:\n{text}"
        );
    }
}

/// A long-running container whose init starts the attacker in the background.
fn attacker_container(sb: &mut Sandbox, ptrace: bool, seconds: u32) -> (String, Report) {
    let size = std::fs::metadata(&sb.bin).unwrap().len();
    install_attacker(&sb.bundle.rootfs());
    if ptrace {
        add_capability(&mut sb.bundle, "CAP_SYS_PTRACE");
    }
    sb.bundle.sh(&format!(
        "/attack {size} /host/report {seconds} </dev/null >/dev/null 2>&1 & exec sleep 1000"
    ));
    let id = sb.id("attacker");
    (id, Report(sb.host.join("report")))
}

fn exec_race(ptrace: bool) {
    let mut sb = Sandbox::with_private_binary(if ptrace { "esc-exec-pt" } else { "esc-exec" });
    let before = sha256(&sb.bin);
    let (id, report) = attacker_container(&mut sb, ptrace, if ptrace { 40 } else { 6 });
    let _c = sb.started(&id);
    assert!(
        report.wait_for(&["ready"], POLL_TIMEOUT),
        "attacker did not start"
    );
    // Each exec puts a berth child into the container's pid namespace until it
    // execs `true`; the attacker scans /proc for it.
    for _ in 0..40 {
        sb.berth(&["exec", &id, "true"]).expect_ok();
        if report.has("got") || report.has("none") {
            break;
        }
    }
    assert_defended(&report, &sb.bin, &before, ptrace);
}

#[test]
fn exe_of_exec_child_cannot_be_overwritten_with_ptrace() {
    exec_race(true);
}

#[test]
fn exe_of_exec_child_cannot_be_opened_without_ptrace() {
    exec_race(false);
}

/// The created init of a container that joins the attacker's pid namespace
/// waits there for `start` (the pod case: containers sharing a pid namespace).
fn shared_pid_namespace(ptrace: bool) {
    let mut sb = Sandbox::with_private_binary(if ptrace { "esc-pidns-pt" } else { "esc-pidns" });
    let before = sha256(&sb.bin);
    let (attacker, report) = attacker_container(&mut sb, ptrace, if ptrace { 40 } else { 4 });
    let a = sb.started(&attacker);
    assert!(
        report.wait_for(&["ready"], POLL_TIMEOUT),
        "attacker did not start"
    );

    let mut joiner = sb.new_bundle("joiner");
    let pidns = format!("/proc/{}/ns/pid", a.pid());
    for ns in joiner.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "pid" {
            ns["path"] = json!(pidns);
        }
    }
    joiner.args(&["true"]).save();
    let id = sb.id("joiner");
    sb.berth(&["create", "--bundle", &joiner.dir.display().to_string(), &id])
        .expect_ok();
    let _j = sb.guard(&id);
    report.wait_for(&["got", "none"], Duration::from_secs(45));
    sb.berth(&["start", &id]).expect_ok();
    // (Before any further berth command: a successful attack replaced the binary.)
    assert_defended(&report, &sb.bin, &before, ptrace);
    sb.wait_status(&id, "stopped");
    sb.berth(&["delete", &id]).expect_ok();
}

#[test]
fn exe_of_init_in_shared_pid_namespace_cannot_be_overwritten_with_ptrace() {
    shared_pid_namespace(true);
}

#[test]
fn exe_of_init_in_shared_pid_namespace_cannot_be_opened_without_ptrace() {
    shared_pid_namespace(false);
}

/// A process exec'd into a created container finds the waiting init as pid 1.
fn exec_into_created(ptrace: bool) {
    let mut sb = Sandbox::with_private_binary(if ptrace {
        "esc-created-pt"
    } else {
        "esc-created"
    });
    let before = sha256(&sb.bin);
    let size = std::fs::metadata(&sb.bin).unwrap().len();
    install_attacker(&sb.bundle.rootfs());
    if ptrace {
        add_capability(&mut sb.bundle, "CAP_SYS_PTRACE");
    }
    sb.bundle.args(&["sleep", "1000"]);
    let id = sb.id("c");
    let _c = sb.created(&id);
    let seconds = if ptrace { "40" } else { "4" };
    sb.berth(&[
        "exec",
        "-d",
        &id,
        "/attack",
        &size.to_string(),
        "/host/report",
        seconds,
    ])
    .expect_ok();
    let report = Report(sb.host.join("report"));
    report.wait_for(&["got", "none"], Duration::from_secs(45));
    // The init execs the program: no berth process is left running the binary.
    sb.berth(&["start", &id]).expect_ok();
    assert_defended(&report, &sb.bin, &before, ptrace);
}

#[test]
fn exe_of_created_init_cannot_be_overwritten_by_exec_with_ptrace() {
    exec_into_created(true);
}

#[test]
fn exe_of_created_init_cannot_be_opened_by_exec_without_ptrace() {
    exec_into_created(false);
}

/// `berth run` (create and start in one process) in a shared pid namespace.
#[test]
fn exe_of_run_in_shared_pid_namespace_cannot_be_overwritten_with_ptrace() {
    let mut sb = Sandbox::with_private_binary("esc-run-pt");
    let before = sha256(&sb.bin);
    let (attacker, report) = attacker_container(&mut sb, true, 40);
    let a = sb.started(&attacker);
    assert!(
        report.wait_for(&["ready"], POLL_TIMEOUT),
        "attacker did not start"
    );
    let mut joiner = sb.new_bundle("joiner");
    let pidns = format!("/proc/{}/ns/pid", a.pid());
    for ns in joiner.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "pid" {
            ns["path"] = json!(pidns);
        }
    }
    // A program that runs until the attacker has its fd, so the init's window
    // does not depend on timing.
    joiner
        .sh("i=0; while [ $i -lt 400 ] && ! grep -q -e '^got' -e '^none' /host/report; do sleep 0.05; i=$((i+1)); done")
        .save();
    let id = sb.id("joiner");
    let _j = sb.guard(&id);
    // The init is visible between create and exec of the program: run it until
    // the attacker reports, at most a few times.
    for _ in 0..10 {
        let _ = sb.berth(&["run", "--bundle", &joiner.dir.display().to_string(), &id]);
        if report.has("got") || report.has("none") {
            break;
        }
    }
    assert_defended(&report, &sb.bin, &before, true);
}

/// A container without CAP_SYS_PTRACE (its init ran from the real binary),
/// then a process exec'd with `--cap CAP_SYS_PTRACE`: every later exec child
/// must come from the protected copy.
#[test]
fn exe_of_exec_child_after_an_exec_granted_ptrace_cannot_be_overwritten() {
    let mut sb = Sandbox::with_private_binary("esc-exec-grant");
    let before = sha256(&sb.bin);
    let size = std::fs::metadata(&sb.bin).unwrap().len();
    install_attacker(&sb.bundle.rootfs());
    sb.bundle.args(&["sleep", "1000"]);
    let id = sb.id("c");
    let _c = sb.started(&id);
    sb.berth(&[
        "exec",
        "-d",
        "--cap",
        "CAP_SYS_PTRACE",
        &id,
        "/attack",
        &size.to_string(),
        "/host/report",
        "40",
    ])
    .expect_ok();
    let report = Report(sb.host.join("report"));
    assert!(
        report.wait_for(&["ready"], POLL_TIMEOUT),
        "attacker did not start"
    );
    for _ in 0..40 {
        sb.berth(&["exec", &id, "true"]).expect_ok();
        if report.has("got") || report.has("none") {
            break;
        }
    }
    assert_defended(&report, &sb.bin, &before, true);
}

/// Into a created container whose init runs the real binary (no
/// CAP_SYS_PTRACE in its config), a process that could trace it is refused;
/// other processes are not.
#[test]
fn exec_with_ptrace_into_an_unprotected_created_container_is_refused() {
    let mut sb = Sandbox::new("esc-created-grant");
    sb.bundle.args(&["sleep", "1000"]);
    let id = sb.id("c");
    let _c = sb.created(&id);
    sb.berth(&["exec", "--cap", "CAP_SYS_PTRACE", &id, "true"])
        .expect_fail(&["CAP_SYS_PTRACE", "start"]);
    sb.berth(&["exec", &id, "true"]).expect_ok();
    sb.berth(&["start", &id]).expect_ok();
    sb.berth(&["exec", "--cap", "CAP_SYS_PTRACE", &id, "true"])
        .expect_ok();
}

/// With its own user namespace, CAP_SYS_PTRACE in the container does not reach
/// berth's (non-dumpable, host-namespace) processes: no exe to open at all.
#[test]
fn exe_of_exec_child_in_a_user_namespace_cannot_be_opened_with_ptrace() {
    let mut sb = Sandbox::with_private_binary("esc-userns");
    let before = sha256(&sb.bin);
    std::fs::create_dir_all(sb.bundle.rootfs().join("host")).unwrap();
    let mut ns = sb.bundle.config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .clone();
    ns.push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    sb.bundle
        .set("/linux/namespaces", json!(ns))
        .set("/linux/uidMappings", map.clone())
        .set("/linux/gidMappings", map);
    let (id, report) = attacker_container(&mut sb, true, 6);
    let _c = sb.started(&id);
    assert!(
        report.wait_for(&["ready"], POLL_TIMEOUT),
        "attacker did not start"
    );
    for _ in 0..20 {
        sb.berth(&["exec", &id, "true"]).expect_ok();
        if report.has("got") || report.has("none") {
            break;
        }
    }
    assert_defended(&report, &sb.bin, &before, false);
}

// ---------------------------------------------------------------------------
// 2. linux.devices and the device cgroup.

#[test]
fn listed_devices_do_not_widen_a_deny_all_device_cgroup() {
    let mut sb = Sandbox::new("esc-dev");
    // Reading the kernel log needs CAP_SYSLOG where dmesg_restrict is set:
    // grant it, so that only the device cgroup stands in the way.
    add_capability(&mut sb.bundle, "CAP_SYSLOG");
    sb.bundle
        .set(
            "/linux/resources/devices",
            json!([{"allow": false, "access": "rwm"}]),
        )
        .set(
            "/linux/devices",
            json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644, "uid": 0, "gid": 0}]),
        )
        .sh("ls -l /dev/kmsg > /host/node 2>&1; \
             if ( exec 3</dev/kmsg ) 2>/host/open-err; then echo OPENED; else echo DENIED; fi > /host/kmsg; \
             sleep 1000");
    let id = sb.id("c");
    let _c = sb.started(&id);
    // OPENED or DENIED.
    let result = sb.wait_file(&sb.host.join("kmsg"), "ED");
    // The node is made, as the spec asks ...
    let node = std::fs::read_to_string(sb.host.join("node")).unwrap();
    assert!(node.starts_with('c'), "/dev/kmsg was not created: {node}");
    // ... but access stays with linux.resources.devices (deny all).
    assert_eq!(
        result.trim(),
        "DENIED",
        "the container opened /dev/kmsg although linux.resources.devices denies every device"
    );
    let list = Path::new("/sys/fs/cgroup/devices/berth")
        .join(&id)
        .join("devices.list");
    if list.exists() {
        let rules = std::fs::read_to_string(&list).unwrap();
        assert!(
            !rules.lines().any(|l| l.starts_with("c 1:11")),
            "devices.list allows /dev/kmsg:\n{rules}"
        );
    }
}

#[test]
fn listed_devices_stay_usable_when_the_config_allows_them() {
    let mut sb = Sandbox::new("esc-dev-ok");
    add_capability(&mut sb.bundle, "CAP_SYSLOG");
    sb.bundle
        .set(
            "/linux/resources/devices",
            json!([{"allow": false, "access": "rwm"},
                   {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}]),
        )
        .set(
            "/linux/devices",
            json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644, "uid": 0, "gid": 0}]),
        )
        .sh("if ( exec 3</dev/kmsg ) 2>/host/open-err; then echo OPENED; else echo DENIED; fi > /host/kmsg");
    let id = sb.id("c");
    sb.bundle.save();
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(o.code, 0, "{o:?}");
    let result = std::fs::read_to_string(sb.host.join("kmsg")).unwrap();
    assert_eq!(
        result.trim(),
        "OPENED",
        "{}",
        std::fs::read_to_string(sb.host.join("open-err")).unwrap_or_default()
    );
}

// ---------------------------------------------------------------------------
// 3. The caller's fds and the created init.

/// Where each fd of `pid` points.
fn fd_targets(pid: i32) -> Vec<(i32, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let fd: i32 = e.file_name().to_str().unwrap().parse().unwrap();
        let t = std::fs::read_link(e.path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        v.push((fd, t));
    }
    v.sort();
    v
}

#[test]
fn caller_fds_do_not_reach_the_created_init_or_hooks() {
    let mut sb = Sandbox::new("esc-fds");
    let secret = sb.dir.join("host-secret");
    std::fs::write(&secret, "secret").unwrap();
    let preserved = sb.dir.join("preserved");
    std::fs::write(&preserved, "preserved").unwrap();
    let hook_out = sb.dir.join("hook-fds");
    sb.bundle
        .set(
            "/hooks/createRuntime",
            json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("ls -l /proc/$$/fd > {}", hook_out.display())]}]),
        )
        .sh("ls -l /proc/self/fd > /host/program-fds");
    sb.bundle.save();
    let id = sb.id("c");
    let secret_f = std::fs::File::open(&secret).unwrap();
    let preserved_f = std::fs::File::open(&preserved).unwrap();
    let secret_h = high_fd(&secret_f);
    let preserved_h = high_fd(&preserved_f);
    let mut cmd = sb.cmd(&[
        "create",
        "--preserve-fds",
        "1",
        "--bundle",
        &sb.bundle_arg(),
        &id,
    ]);
    pass_fd(&mut cmd, preserved_h.as_raw_fd(), 3);
    pass_fd(&mut cmd, secret_h.as_raw_fd(), 7);
    sb.run_cmd(cmd, "berth create with fd 7 open").expect_ok();
    let c = sb.guard(&id);
    let secret_s = secret.display().to_string();
    let preserved_s = preserved.display().to_string();

    let init = fd_targets(c.pid());
    assert!(
        !init.iter().any(|(_, t)| t == &secret_s),
        "the created init holds the caller's fd 7 ({secret_s}): {init:?}"
    );
    assert!(
        init.iter().any(|(fd, t)| *fd == 3 && t == &preserved_s),
        "the preserved fd 3 is missing in the init: {init:?}"
    );
    // Nothing else that leads to the host either: no fd on the host's procfs
    // (`..` from any of its directories reaches every host process's root)
    // and no directory at all but the init's own procfs entries in the
    // container's /proc (a host directory fd is a way out, CVE-2024-21626).
    let host_proc = std::fs::metadata("/proc/self").unwrap().dev();
    for (fd, t) in &init {
        let Ok(md) = std::fs::metadata(format!("/proc/{}/fd/{fd}", c.pid())) else {
            continue;
        };
        assert!(
            md.dev() != host_proc,
            "the created init holds {t} of the host's procfs as fd {fd}: {init:?}"
        );
        if md.is_dir() {
            let procfs = nix::sys::statfs::statfs(format!("/proc/{}/fd/{fd}", c.pid()).as_str())
                .map(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
                .unwrap_or(false);
            assert!(
                procfs,
                "the created init holds directory {t} as fd {fd}: {init:?}"
            );
        }
    }
    let hook = std::fs::read_to_string(&hook_out).unwrap();
    assert!(
        !hook.contains(&secret_s),
        "the createRuntime hook inherited the caller's fd 7:\n{hook}"
    );
    sb.berth(&["start", &id]).expect_ok();
    let program = sb.wait_file(&sb.host.join("program-fds"), "0");
    assert!(!program.contains(&secret_s), "{program}");
    assert!(program.contains(&preserved_s), "{program}");
}

#[test]
fn caller_fds_do_not_reach_an_exec_process() {
    let mut sb = Sandbox::new("esc-fds-exec");
    sb.bundle.args(&["sleep", "1000"]);
    let id = sb.id("c");
    let _c = sb.started(&id);
    let secret = sb.dir.join("host-secret");
    std::fs::write(&secret, "secret").unwrap();
    let secret_f = std::fs::File::open(&secret).unwrap();
    let secret_h = high_fd(&secret_f);
    let mut cmd = sb.cmd(&["exec", &id, "sh", "-c", "ls -l /proc/self/fd"]);
    pass_fd(&mut cmd, secret_h.as_raw_fd(), 9);
    let o = sb.run_cmd(cmd, "berth exec with fd 9 open");
    o.expect_ok();
    assert!(
        !o.stdout.contains(&secret.display().to_string()),
        "{}",
        o.stdout
    );
}

// ---------------------------------------------------------------------------
// 4. --no-pivot and a new procfs/sysfs from a user namespace.

#[test]
fn no_pivot_leaves_no_fully_visible_proc_or_sys() {
    let mut sb = Sandbox::new("esc-nopivot");
    std::fs::create_dir_all(sb.bundle.rootfs().join("mnt")).unwrap();
    // Docker's default capability set (SETUID/SETGID let `unshare -r` map ids).
    let docker_caps = berth_spec_defaults::ENGINE_CAPABILITIES;
    sb.bundle.set(
        "/process/capabilities",
        json!({"bounding": docker_caps, "effective": docker_caps, "permitted": docker_caps}),
    );
    sb.bundle.sh(
        "for fs in proc sysfs; do \
           if unshare -mrpf mount -t $fs $fs /mnt 2>/host/$fs-err; then echo MOUNTED; else echo DENIED; fi > /host/$fs; \
         done",
    );
    sb.bundle.save();
    let id = sb.id("c");
    let base = sb.baseline(&id);
    let o = sb.berth(&["run", "--no-pivot", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(o.code, 0, "{o:?}");
    base.assert_clean(&sb);
    for fs in ["proc", "sysfs"] {
        let r = std::fs::read_to_string(sb.host.join(fs)).unwrap();
        let err = std::fs::read_to_string(sb.host.join(format!("{fs}-err"))).unwrap_or_default();
        assert_eq!(
            r.trim(),
            "DENIED",
            "with --no-pivot a user namespace in the container mounted a new {fs}"
        );
        assert!(
            !err.contains("nshare"),
            "the {fs} attempt failed before the mount (unshare itself): {err}"
        );
    }
    // The same container with pivot_root: denied as well (the control).
    let id2 = sb.id("c2");
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id2]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        std::fs::read_to_string(sb.host.join("proc"))
            .unwrap()
            .trim(),
        "DENIED"
    );
}
