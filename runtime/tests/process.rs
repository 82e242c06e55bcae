//! The container process: env, cwd, user, umask, rlimits, capabilities,
//! no_new_privs, oom score, hostname, read-only root, terminal, preserved fds.
//! Each test runs a busybox program that reports what it sees.

mod common;

use std::os::fd::AsRawFd;

use common::*;
use serde_json::json;

/// `berth run` the bundle's program; assert exit 0 and return its stdout.
#[track_caller]
fn run_ok(sb: &Sandbox) -> String {
    let id = sb.id("p");
    let base = sb.baseline(&id);
    sb.bundle.save();
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(o.code, 0, "berth run failed: {o:?}");
    base.assert_clean(sb);
    o.stdout
}

#[test]
fn env_is_exactly_the_configured_one() {
    let mut sb = Sandbox::new("pr-env");
    let tag = format!("{TAG_VAR}={}", sb.tag);
    sb.bundle.set(
        "/process/env",
        json!(["PATH=/bin", "FOO=bar baz", "EMPTY=", tag]),
    );
    sb.bundle.args(&["env"]);
    let out = run_ok(&sb);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    // HOME is added from the container's /etc/passwd ("/" without an entry),
    // as runc does.
    let mut want = vec!["PATH=/bin", "FOO=bar baz", "EMPTY=", tag.as_str(), "HOME=/"];
    want.sort();
    // berth's own environment (CARGO_*, HOME, ...) must not leak in.
    assert_eq!(lines, want, "container env: {out}");
}

#[test]
fn cwd_is_created_when_missing() {
    let mut sb = Sandbox::new("pr-cwd");
    sb.bundle.set("/process/cwd", json!("/work/some/dir"));
    sb.bundle.args(&["pwd"]);
    assert!(!sb.bundle.rootfs().join("work").exists());
    assert_eq!(run_ok(&sb), "/work/some/dir\n");
    assert!(sb.bundle.rootfs().join("work/some/dir").is_dir());
}

#[test]
fn user_uid_gid_and_additional_gids() {
    let mut sb = Sandbox::new("pr-user");
    sb.bundle.set(
        "/process/user",
        json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 20, 1234]}),
    );
    sb.bundle
        .sh("cat /proc/self/status; echo hi > /tmp/owned; stat -c 'owner=%u:%g' /tmp/owned");
    std::fs::set_permissions(
        sb.bundle.rootfs().join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let out = run_ok(&sb);
    assert_eq!(
        field(&out, "Uid").split_whitespace().collect::<Vec<_>>(),
        ["1000"; 4],
        "{out}"
    );
    assert_eq!(
        field(&out, "Gid").split_whitespace().collect::<Vec<_>>(),
        ["1001"; 4],
        "{out}"
    );
    let mut groups: Vec<&str> = field(&out, "Groups").split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["1234", "20", "5"], "{out}");
    assert!(out.contains("owner=1000:1001"), "{out}");
}

#[test]
fn umask_applies() {
    let mut sb = Sandbox::new("pr-umask");
    sb.bundle.set("/process/user/umask", json!(0o027));
    sb.bundle.sh("umask; touch /tmp/f; stat -c %a /tmp/f");
    assert_eq!(run_ok(&sb), "0027\n640\n");
}

#[test]
fn rlimits_apply() {
    let mut sb = Sandbox::new("pr-rlimit");
    sb.bundle.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096}]),
    );
    sb.bundle.args(&["cat", "/proc/self/limits"]);
    let out = run_ok(&sb);
    let row = |name: &str| -> Vec<String> {
        let l = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {out}"));
        l[name.len()..]
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(row("Max open files")[..2], ["123", "456"], "{out}");
    assert_eq!(row("Max core file size")[..2], ["0", "4096"], "{out}");
}

#[test]
fn invalid_rlimit_fails_create() {
    let mut sb = Sandbox::new("pr-badrlimit");
    sb.bundle.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]),
    );
    let id = sb.id("p");
    let base = sb.baseline(&id);
    sb.create(&id).expect_fail(&["RLIMIT_NOPE"]);
    base.assert_clean(&sb);
}

const CAP_CHOWN: u64 = 1 << 0;
const CAP_KILL: u64 = 1 << 5;

fn caps(out: &str, key: &str) -> u64 {
    u64::from_str_radix(field(out, key), 16).unwrap()
}

#[test]
fn capabilities_for_root() {
    let mut sb = Sandbox::new("pr-caps");
    let set = json!(["CAP_KILL"]);
    sb.bundle.set(
        "/process/capabilities",
        json!({"bounding": set, "effective": set, "permitted": set}),
    );
    // Without CAP_CHOWN even root cannot give a file away.
    sb.bundle.sh("cat /proc/self/status; touch /tmp/f; chown 1:1 /tmp/f 2>/dev/null && echo CHOWN-OK || echo CHOWN-DENIED");
    let out = run_ok(&sb);
    assert_eq!(caps(&out, "CapBnd"), CAP_KILL, "{out}");
    assert_eq!(caps(&out, "CapPrm"), CAP_KILL, "{out}");
    assert_eq!(caps(&out, "CapEff"), CAP_KILL, "{out}");
    assert_eq!(caps(&out, "CapInh"), 0, "{out}");
    assert_eq!(caps(&out, "CapAmb"), 0, "{out}");
    assert!(out.contains("CHOWN-DENIED"), "{out}");

    // The same program with CAP_CHOWN can.
    let set = json!(["CAP_KILL", "CAP_CHOWN"]);
    sb.bundle.set(
        "/process/capabilities",
        json!({"bounding": set, "effective": set, "permitted": set}),
    );
    let out = run_ok(&sb);
    assert_eq!(caps(&out, "CapEff"), CAP_KILL | CAP_CHOWN, "{out}");
    assert!(out.contains("CHOWN-OK"), "{out}");
}

#[test]
fn capabilities_for_a_non_root_user_via_ambient() {
    let mut sb = Sandbox::new("pr-ambient");
    sb.bundle
        .set("/process/user", json!({"uid": 1000, "gid": 1000}));
    let set = json!(["CAP_KILL"]);
    sb.bundle.set(
        "/process/capabilities",
        json!({"bounding": set, "effective": set, "permitted": set, "inheritable": set, "ambient": set}),
    );
    sb.bundle.args(&["cat", "/proc/self/status"]);
    let out = run_ok(&sb);
    assert_eq!(field(&out, "Uid").split_whitespace().next(), Some("1000"));
    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(caps(&out, k), CAP_KILL, "{k}: {out}");
    }
}

/// Unknown capability names are ignored with runc's warning; the known ones
/// still apply.
#[test]
fn unknown_capability_is_ignored_with_a_warning() {
    let mut sb = Sandbox::new("pr-badcap");
    let set = json!(["CAP_KILL", "CAP_NOPE"]);
    sb.bundle.set(
        "/process/capabilities",
        json!({"bounding": set, "effective": set, "permitted": set}),
    );
    sb.bundle.args(&["cat", "/proc/self/status"]);
    let id = sb.id("p");
    let base = sb.baseline(&id);
    sb.bundle.save();
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("ignoring unknown or unavailable capabilities: [CAP_NOPE]"),
        "{o:?}"
    );
    assert_eq!(caps(&o.stdout, "CapEff"), CAP_KILL, "{o:?}");
    base.assert_clean(&sb);
}

/// An ambient capability the kernel refuses (not inheritable, or not
/// permitted) is skipped with runc's per-capability warning; the others are
/// raised.
#[test]
fn unraisable_ambient_capability_is_skipped_with_a_warning() {
    let mut sb = Sandbox::new("pr-ambwarn");
    let set = json!(["CAP_KILL", "CAP_CHOWN"]);
    sb.bundle.set(
        "/process/capabilities",
        json!({"bounding": set, "effective": set, "permitted": set,
               "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL", "CAP_CHOWN"]}),
    );
    sb.bundle.args(&["cat", "/proc/self/status"]);
    let id = sb.id("p");
    let base = sb.baseline(&id);
    sb.bundle.save();
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("can't raise ambient capability CAP_CHOWN: operation not permitted"),
        "{o:?}"
    );
    assert!(!o.stderr.contains("CAP_KILL"), "{o:?}");
    assert_eq!(caps(&o.stdout, "CapAmb"), CAP_KILL, "{o:?}");
    base.assert_clean(&sb);
}

/// HOME comes from the container's /etc/passwd for the process user when
/// process.env lacks it or sets it empty ("/" for a user without an entry);
/// a non-empty HOME is kept; a repeated variable keeps its last value.
#[test]
fn home_from_the_containers_passwd_and_last_value_wins() {
    let mut sb = Sandbox::new("pr-home");
    std::fs::write(
        sb.bundle.rootfs().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
    )
    .unwrap();
    sb.bundle.sh("echo \"HOME=$HOME\"");
    let cases: [(u32, &[&str], &str); 6] = [
        (0, &[], "HOME=/root"),
        (1000, &[], "HOME=/home/user"),
        (2000, &[], "HOME=/"),
        (0, &["HOME="], "HOME=/root"),
        (0, &["HOME=/override"], "HOME=/override"),
        (0, &["HOME=/override", "HOME="], "HOME=/root"),
    ];
    for (uid, extra, want) in cases {
        let mut env = vec!["PATH=/bin".to_string(), format!("{TAG_VAR}={}", sb.tag)];
        env.extend(extra.iter().map(|s| s.to_string()));
        sb.bundle.set("/process/env", json!(env));
        sb.bundle
            .set("/process/user", json!({"uid": uid, "gid": uid}));
        assert_eq!(run_ok(&sb).trim(), want, "uid {uid}, env {extra:?}");
    }
    // Duplicates: only the last ONE, once; HOME added once.
    sb.bundle.set(
        "/process/env",
        json!(["ONE=two", "ONE=three", "PATH=/bin", "HOME="]),
    );
    sb.bundle.set("/process/user", json!({"uid": 0, "gid": 0}));
    sb.bundle.args(&["env"]);
    let out = run_ok(&sb);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["HOME=/root", "ONE=three", "PATH=/bin"], "{out}");
}

/// A program that exists but cannot be executed, a directory, a missing path
/// and a name not on $PATH fail `create` with the words runc uses (clients map
/// "permission denied" and "is a directory" to 126, the others to 127).
#[test]
fn unexecutable_programs_fail_with_runcs_words() {
    let mut sb = Sandbox::new("pr-noexec");
    std::fs::write(sb.bundle.rootfs().join("etc/data"), "x").unwrap();
    let cases: [(&str, &str); 4] = [
        ("/etc/data", "exec: \"/etc/data\": permission denied"),
        ("/etc", "exec: \"/etc\": is a directory"),
        (
            "/no/such",
            "exec: \"/no/such\": stat /no/such: no such file or directory",
        ),
        (
            "no-such-program",
            "exec: \"no-such-program\": executable file not found in $PATH",
        ),
    ];
    for (prog, words) in cases {
        sb.bundle.args(&[prog]);
        let id = sb.id("p");
        let base = sb.baseline(&id);
        sb.create(&id).expect_fail(&[words]);
        base.assert_clean(&sb);
    }
}

#[test]
fn no_new_privileges() {
    let mut sb = Sandbox::new("pr-nnp");
    sb.bundle.args(&["cat", "/proc/self/status"]);
    sb.bundle.set("/process/noNewPrivileges", json!(true));
    assert_eq!(field(&run_ok(&sb), "NoNewPrivs"), "1");
    sb.bundle.set("/process/noNewPrivileges", json!(false));
    assert_eq!(field(&run_ok(&sb), "NoNewPrivs"), "0");
}

#[test]
fn oom_score_adj() {
    let mut sb = Sandbox::new("pr-oom");
    sb.bundle.set("/process/oomScoreAdj", json!(123));
    sb.bundle.args(&["cat", "/proc/self/oom_score_adj"]);
    assert_eq!(run_ok(&sb), "123\n");
}

#[test]
fn hostname() {
    let mut sb = Sandbox::new("pr-host");
    sb.bundle.set("/hostname", json!("berth-test-host"));
    sb.bundle.args(&["hostname"]);
    assert_eq!(run_ok(&sb), "berth-test-host\n");
    let host = nix::unistd::gethostname().unwrap();
    assert_ne!(
        host.to_string_lossy(),
        "berth-test-host",
        "the container changed the host's hostname"
    );
}

#[test]
fn readonly_root() {
    let mut sb = Sandbox::new("pr-ro");
    sb.bundle.set("/root/readonly", json!(true));
    sb.bundle.sh("touch /written 2>/dev/null && echo ROOT-WRITABLE || echo ROOT-READONLY; echo ok > /host/w && echo HOST-WRITABLE");
    let out = run_ok(&sb);
    assert_eq!(out, "ROOT-READONLY\nHOST-WRITABLE\n");
    assert!(!sb.bundle.rootfs().join("written").exists());
    // The same program with a writable root does write (the check above is real).
    sb.bundle.set("/root/readonly", json!(false));
    assert_eq!(run_ok(&sb), "ROOT-WRITABLE\nHOST-WRITABLE\n");
}

#[test]
fn terminal_via_console_socket() {
    let mut sb = Sandbox::new("pr-tty");
    sb.bundle.set("/process/terminal", json!(true));
    sb.bundle
        .sh("echo hello; [ -t 0 ] && [ -t 1 ] && echo on-a-tty; tty; read line; echo got:$line");
    let sock_path = sb.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let id = sb.id("p");
    let base = sb.baseline(&id);
    {
        sb.bundle.save();
        let _c = sb.guard(&id);
        sb.berth(&[
            "create",
            "--bundle",
            &sb.bundle_arg(),
            "--console-socket",
            &sock_path.display().to_string(),
            &id,
        ])
        .expect_ok();
        listener.set_nonblocking(true).unwrap();
        let mut conn = None;
        assert!(wait_until(POLL_TIMEOUT, || {
            conn = listener.accept().ok();
            conn.is_some()
        }));
        let (stream, _) = conn.unwrap();
        stream.set_nonblocking(false).unwrap();
        let master = recv_fd(&stream);
        sb.berth(&["start", &id]).expect_ok();
        let out = read_until(&master, "/dev/", POLL_TIMEOUT);
        assert!(out.contains("hello"), "terminal output: {out:?}");
        assert!(
            out.contains("on-a-tty"),
            "stdin/stdout are not the terminal: {out:?}"
        );
        nix::unistd::write(&master, b"typed\n").unwrap();
        let out = read_until(&master, "got:typed", POLL_TIMEOUT);
        assert!(
            out.contains("got:typed"),
            "input through the terminal: {out:?}"
        );
        sb.wait_status(&id, "stopped");
        sb.berth(&["delete", &id]).expect_ok();
    }
    base.assert_clean(&sb);
}

#[test]
fn preserve_fds_passes_exactly_the_requested_fds() {
    let mut sb = Sandbox::new("pr-fds");
    let a = sb.dir.join("fd3");
    let b = sb.dir.join("fd4");
    std::fs::write(&a, "preserved-content\n").unwrap();
    std::fs::write(&b, "not-preserved\n").unwrap();
    let fa = high_fd(&std::fs::File::open(&a).unwrap());
    let fb = high_fd(&std::fs::File::open(&b).unwrap());
    sb.bundle
        .sh("[ -e /proc/self/fd/3 ] && echo HAS3; cat <&3; \
         for i in $(seq 4 64); do [ -e /proc/self/fd/$i ] && echo LEAK$i; done; echo end");
    let id = sb.id("p");
    let base = sb.baseline(&id);
    sb.bundle.save();
    let mut cmd = sb.cmd(&[
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        &sb.bundle_arg(),
        &id,
    ]);
    pass_fd(&mut cmd, fa.as_raw_fd(), 3);
    pass_fd(&mut cmd, fb.as_raw_fd(), 4);
    let o = sb.run_cmd(cmd, "berth run --preserve-fds 1");
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "HAS3\npreserved-content\nend\n", "{o:?}");
    base.assert_clean(&sb);

    // Without --preserve-fds, fd 3 is not passed either.
    let id = sb.id("p");
    let mut cmd = sb.cmd(&["run", "--bundle", &sb.bundle_arg(), &id]);
    pass_fd(&mut cmd, fa.as_raw_fd(), 3);
    pass_fd(&mut cmd, fb.as_raw_fd(), 4);
    let o = sb.run_cmd(cmd, "berth run");
    assert!(
        !o.stdout.contains("HAS3")
            && !o.stdout.contains("preserved-content")
            && !o.stdout.contains("LEAK"),
        "{o:?}"
    );
    assert!(o.stdout.ends_with("end\n"), "{o:?}");
}

/// ioPriority, scheduler, execCPUAffinity, personality and memoryPolicy, each
/// read back by the container's own program.
#[test]
fn io_priority_scheduler_affinity_personality_memory_policy() {
    let mut sb = Sandbox::new("pr-attrs");
    sb.bundle.sh(
        "ionice -p $$; set -- $(cat /proc/self/stat); echo nice=${19} policy=${41}; \
         grep Cpus_allowed_list /proc/self/status; uname -m; grep -m1 -o 'bind:[0-9,-]*' /proc/self/numa_maps",
    );
    sb.bundle.set(
        "/process/ioPriority",
        json!({"class": "IOPRIO_CLASS_BE", "priority": 6}),
    );
    sb.bundle.set(
        "/process/scheduler",
        json!({"policy": "SCHED_BATCH", "nice": 5}),
    );
    sb.bundle.set(
        "/process/execCPUAffinity",
        json!({"initial": "0", "final": "0"}),
    );
    sb.bundle
        .set("/linux/personality", json!({"domain": "LINUX32"}));
    sb.bundle.set(
        "/linux/memoryPolicy",
        json!({"mode": "MPOL_BIND", "nodes": "0"}),
    );
    let out = run_ok(&sb);
    assert!(out.contains("best-effort: prio 6"), "{out}");
    // SCHED_BATCH is policy 3.
    assert!(out.contains("nice=5 policy=3"), "{out}");
    assert_eq!(field(&out, "Cpus_allowed_list"), "0", "{out}");
    assert!(
        out.lines().any(|l| l == "i686"),
        "personality LINUX32 should make uname -m say i686: {out}"
    );
    assert!(out.contains("bind:0"), "{out}");
}

/// Fields this host cannot honour fail `create` with the field named and
/// leave nothing behind.
#[test]
fn unsupported_process_fields_fail_cleanly() {
    let cases: [(&str, &str, serde_json::Value, &str); 4] = [
        (
            "apparmor",
            "/process/apparmorProfile",
            json!("docker-default"),
            "process.apparmorProfile",
        ),
        (
            "selinux",
            "/process/selinuxLabel",
            json!("system_u:system_r:container_t:s0"),
            "process.selinuxLabel",
        ),
        (
            "rdt",
            "/linux/intelRdt",
            json!({"closID": "x"}),
            "linux.intelRdt",
        ),
        (
            "ioprio",
            "/process/ioPriority",
            json!({"class": "IOPRIO_CLASS_BE", "priority": 9}),
            "process.ioPriority",
        ),
    ];
    for (name, pointer, value, needle) in cases {
        if name == "apparmor"
            && std::path::Path::new("/sys/module/apparmor/parameters/enabled").exists()
        {
            continue;
        }
        if name == "selinux" && std::path::Path::new("/sys/fs/selinux/enforce").exists() {
            continue;
        }
        let mut sb = Sandbox::new(&format!("pr-uns-{name}"));
        sb.bundle.set(pointer, value);
        let id = sb.id("u");
        let base = sb.baseline(&id);
        sb.create(&id).expect_fail(&[needle]);
        base.assert_clean(&sb);
    }
}

/// The runtime ignores SIGPIPE for itself; the container's program must not
/// inherit that (an ignored disposition survives execve).
#[test]
fn sigpipe_is_not_ignored_in_the_container() {
    let mut sb = Sandbox::new("pr-sigpipe");
    sb.bundle.sh("grep SigIgn /proc/self/status");
    let out = run_ok(&sb);
    let mask = out
        .trim()
        .strip_prefix("SigIgn:")
        .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(
        mask & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE ignored: {out:?}"
    );
}

/// The CPUs this test process may run on (`Cpus_allowed_list`).
fn own_cpus() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    field(&status, "Cpus_allowed_list").to_string()
}

/// Pin the command's process (berth) to CPU 0, as `taskset -c 0` would.
fn pinned_to_cpu0(cmd: &mut std::process::Command) {
    // SAFETY: sched_setaffinity in the child between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Without execCPUAffinity, neither the container's program nor an exec'd
/// process inherits the affinity of the berth that started it: both may run
/// on every CPU (as runc resets it).
#[test]
fn cpu_affinity_of_the_caller_is_not_inherited() {
    let all = own_cpus();
    assert_ne!(
        all, "0",
        "this test needs at least two CPUs to tell a reset affinity from CPU 0"
    );
    let mut sb = Sandbox::new("pr-affinity");
    sb.bundle
        .sh("grep Cpus_allowed_list /proc/self/status; exec sleep 1000");
    let id = sb.id("p");
    sb.bundle.save();
    let mut cmd = sb.cmd(&["run", "-d", "--bundle", &sb.bundle_arg(), &id]);
    pinned_to_cpu0(&mut cmd);
    let _c = sb.guard(&id);
    sb.run_cmd(cmd, "berth run -d (pinned)").expect_ok();
    let pid = sb.state(&id).unwrap()["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(field(&status, "Cpus_allowed_list"), all, "init: {status}");
    let mut cmd = sb.cmd(&[
        "exec",
        &id,
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ]);
    pinned_to_cpu0(&mut cmd);
    let o = sb.run_cmd(cmd, "berth exec (pinned)");
    o.expect_ok();
    assert_eq!(field(&o.stdout, "Cpus_allowed_list"), all, "exec: {o:?}");
}

/// A terminal `berth run` and `berth exec -t` make for themselves: the pty
/// does not turn "\n" into "\r\n" (ONLCR cleared, as runc does), and it
/// belongs to the process user (group tty, from devpts' gid=5).
#[test]
fn own_terminal_keeps_newlines_and_belongs_to_the_user() {
    let mut sb = Sandbox::new("pr-ttyown");
    sb.bundle.set("/process/terminal", json!(true));
    sb.bundle
        .set("/process/user", json!({"uid": 1000, "gid": 1000}));
    sb.bundle
        .sh("printf 'one\\ntwo\\n'; stat -c owner=%u:%g $(tty)");
    let id = sb.id("p");
    let base = sb.baseline(&id);
    sb.bundle.save();
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(!o.stdout.contains('\r'), "ONLCR left on: {:?}", o.stdout);
    assert!(o.stdout.starts_with("one\ntwo\n"), "{:?}", o.stdout);
    assert!(o.stdout.contains("owner=1000:5"), "{:?}", o.stdout);
    base.assert_clean(&sb);

    sb.bundle.set("/process/terminal", json!(false));
    sb.bundle.sh("exec sleep 1000");
    let id = sb.id("p");
    let _c = sb.started(&id);
    let o = sb.berth(&[
        "exec",
        "-t",
        &id,
        "sh",
        "-c",
        "printf 'one\\ntwo\\n'; stat -c owner=%u:%g $(tty)",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(!o.stdout.contains('\r'), "ONLCR left on: {:?}", o.stdout);
    assert!(o.stdout.contains("owner=1000:5"), "{:?}", o.stdout);
}
