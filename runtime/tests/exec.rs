//! `berth exec` with real containers (needs root): namespaces, cgroup, user,
//! cwd, env, capabilities, no_new_privs, seccomp, --process, --detach,
//! --pid-file, --tty with a console socket, exit status and refusals.

mod common;

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::*;
use serde_json::json;

/// A started container whose init waits forever.
fn running<'a>(sb: &'a Sandbox, name: &str) -> (Container<'a>, String) {
    let id = sb.id(name);
    let c = sb.started(&id);
    (c, id)
}

fn exec_ok(sb: &Sandbox, args: &[&str]) -> String {
    let mut v = vec!["exec"];
    v.extend_from_slice(args);
    let o = sb.berth(&v);
    o.expect_ok();
    o.stdout
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup() {
    let mut sb = Sandbox::new("ex-ns");
    sb.bundle.sh("exec sleep 1000");
    let base = sb.baseline(&sb.id("e"));
    let (c, id) = running(&sb, "e");
    let init = c.pid();
    let out = exec_ok(
        &sb,
        &[&id, "sh", "-c", "for n in mnt pid net ipc uts cgroup; do echo $n=$(readlink /proc/self/ns/$n); done; echo self=$$"],
    );
    for n in ["mnt", "pid", "net", "ipc", "uts", "cgroup"] {
        let host_view = std::fs::read_link(format!("/proc/{init}/ns/{n}")).unwrap();
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{n}=")))
            .unwrap_or_else(|| panic!("no {n} in {out}"));
        assert_eq!(
            &line[n.len() + 1..],
            host_view.to_str().unwrap(),
            "{n} namespace differs: {out}"
        );
    }
    // In the container's pid namespace the init is pid 1, so the exec'd shell is not.
    let self_pid: i32 = out
        .lines()
        .find_map(|l| l.strip_prefix("self="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(self_pid > 1, "{out}");

    // A detached exec lands in the container's cgroup (checked from the host).
    let pidfile = sb.dir.join("exec.pid");
    sb.berth(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ])
    .expect_ok();
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    let want = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    let got = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(got, want, "exec'd process is not in the container's cgroup");
    let ps = sb.berth(&["ps", "--format", "json", &id]);
    ps.expect_ok();
    assert!(
        ps.stdout.contains(&pid.to_string()),
        "ps does not list the exec'd pid {pid}: {}",
        ps.stdout
    );
    // delete --force takes the exec'd process with it.
    drop(c);
    assert!(
        wait_until(Duration::from_secs(5), || !alive(pid)),
        "exec'd process {pid} survived delete --force"
    );
    base.assert_clean(&sb);
}

#[test]
fn exec_exit_status_and_output() {
    let mut sb = Sandbox::new("ex-rc");
    sb.bundle.sh("exec sleep 1000");
    let (_c, id) = running(&sb, "e");
    let o = sb.berth(&["exec", &id, "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(o.code, 7, "{o:?}");
    assert_eq!(o.stdout.trim(), "out");
    assert!(o.stderr.contains("err"), "{o:?}");
    let o = sb.berth(&["exec", &id, "sh", "-c", "kill -9 $$"]);
    assert_eq!(o.code, 137, "{o:?}");
    let o = sb.berth(&["exec", &id, "/no/such/binary"]);
    o.expect_fail(&["/no/such/binary"]);
}

#[test]
fn exec_user_cwd_env_and_groups() {
    let mut sb = Sandbox::new("ex-user");
    sb.bundle.sh("exec sleep 1000");
    sb.bundle
        .set("/process/env", json!(["PATH=/bin", "KEEP=1", "OVER=old"]));
    let (_c, id) = running(&sb, "e");
    let out = exec_ok(
        &sb,
        &[
            "-u",
            "1000:2000",
            "-g",
            "3000",
            "-g",
            "3001",
            "--cwd",
            "/bin",
            "-e",
            "OVER=new",
            "-e",
            "ADD=x",
            &id,
            "sh",
            "-c",
            "id -u; id -g; id -G; pwd; echo KEEP=$KEEP OVER=$OVER ADD=$ADD",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000", "{out}");
    assert_eq!(lines[1], "2000", "{out}");
    assert!(
        lines[2].contains("3000") && lines[2].contains("3001"),
        "{out}"
    );
    assert_eq!(lines[3], "/bin", "{out}");
    assert_eq!(lines[4], "KEEP=1 OVER=new ADD=x", "{out}");
}

#[test]
fn exec_capabilities_and_no_new_privs() {
    let mut sb = Sandbox::new("ex-caps");
    sb.bundle.sh("exec sleep 1000");
    sb.bundle.set("/process/noNewPrivileges", json!(false));
    sb.bundle.set(
        "/process/capabilities",
        json!({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}),
    );
    let (_c, id) = running(&sb, "e");
    let out = exec_ok(&sb, &[&id, "cat", "/proc/self/status"]);
    assert_eq!(field(&out, "CapEff"), "0000000000000020", "{out}");
    assert_eq!(field(&out, "NoNewPrivs"), "0", "{out}");
    let out = exec_ok(
        &sb,
        &[
            "--cap",
            "CAP_SYS_ADMIN",
            "--no-new-privs",
            &id,
            "cat",
            "/proc/self/status",
        ],
    );
    let eff = u64::from_str_radix(field(&out, "CapEff"), 16).unwrap();
    assert_eq!(eff, (1 << 5) | (1 << 21), "{out}");
    assert_eq!(field(&out, "NoNewPrivs"), "1", "{out}");
}

#[test]
fn exec_process_file() {
    let mut sb = Sandbox::new("ex-pfile");
    sb.bundle.sh("exec sleep 1000");
    let (_c, id) = running(&sb, "e");
    let pf = sb.dir.join("process.json");
    std::fs::write(
        &pf,
        json!({
            "terminal": false,
            "user": {"uid": 5, "gid": 6},
            "args": ["sh", "-c", "id -u; id -g; echo $ONLY; pwd"],
            "env": ["PATH=/bin", "ONLY=this"],
            "cwd": "/bin"
        })
        .to_string(),
    )
    .unwrap();
    let out = exec_ok(&sb, &["--process", pf.to_str().unwrap(), &id]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["5", "6", "this", "/bin"],
        "{out}"
    );
    std::fs::write(&pf, r#"{"args": "not-a-list", "cwd": "/"}"#).unwrap();
    sb.berth(&["exec", "--process", pf.to_str().unwrap(), &id])
        .expect_fail(&["args"]);
}

#[test]
fn exec_refused_for_stopped_paused_and_unknown() {
    let mut sb = Sandbox::new("ex-refuse");
    sb.bundle.sh("exec sleep 1000");
    let (c, id) = running(&sb, "e");
    sb.berth(&["pause", &id]).expect_ok();
    sb.berth(&["exec", &id, "true"]).expect_fail(&["paused"]);
    sb.berth(&["resume", &id]).expect_ok();
    sb.berth(&["exec", &id, "true"]).expect_ok();
    sb.berth(&["kill", &id, "KILL"]).expect_ok();
    sb.wait_status(&id, "stopped");
    sb.berth(&["exec", &id, "true"]).expect_fail(&["stopped"]);
    drop(c);
    sb.berth(&["exec", "no-such-container-x", "true"])
        .expect_fail(&["does not exist"]);
    sb.berth(&["exec", &id]).expect_fail(&["no command"]);
}

#[test]
fn exec_gets_the_container_seccomp_filter() {
    let mut sb = Sandbox::new("ex-sc");
    sb.bundle.sh("exec sleep 1000");
    sb.bundle.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }),
    );
    let (_c, id) = running(&sb, "e");
    let out = exec_ok(
        &sb,
        &[
            &id,
            "sh",
            "-c",
            "grep Seccomp: /proc/self/status; mkdir /tmp/x 2>&1; echo rc=$?",
        ],
    );
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(
        out.contains("Permission denied") && out.contains("rc=1"),
        "{out}"
    );
}

#[test]
fn exec_tty_with_console_socket() {
    let mut sb = Sandbox::new("ex-tty");
    sb.bundle.sh("exec sleep 1000");
    let (_c, id) = running(&sb, "e");
    let sock = sb.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let sock_s = sock.to_str().unwrap().to_string();
    let id2 = id.clone();
    let out = std::thread::scope(|s| {
        let h = s.spawn(|| {
            sb.berth(&[
                "exec",
                "-t",
                "--console-socket",
                &sock_s,
                "-d",
                &id2,
                "sh",
                "-c",
                "tty; echo hello-tty; sleep 1",
            ])
        });
        listener.set_nonblocking(false).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let master = recv_fd(&conn);
        let o = h.join().unwrap();
        o.expect_ok();
        let mut f = std::fs::File::from(master);
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !text.contains("hello-tty") && std::time::Instant::now() < deadline {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        text
    });
    assert!(out.contains("/dev/pts/"), "tty output: {out:?}");
    assert!(out.contains("hello-tty"), "tty output: {out:?}");
}

/// Runtime errors of `exec` (a program that cannot run, a paused container)
/// exit 255, as runc's do, with runc's words.
#[test]
fn exec_errors_exit_255_with_runcs_words() {
    let mut sb = Sandbox::new("ex-255");
    sb.bundle.sh("exec sleep 1000");
    std::fs::write(sb.bundle.rootfs().join("etc/data"), "x").unwrap();
    let (_c, id) = running(&sb, "e");
    let o = sb.berth(&["exec", &id, "/etc/data"]);
    assert_eq!(o.code, 255, "{o:?}");
    o.expect_fail(&["exec: \"/etc/data\": permission denied"]);
    let o = sb.berth(&["exec", &id, "no-such-program"]);
    assert_eq!(o.code, 255, "{o:?}");
    o.expect_fail(&["exec: \"no-such-program\": executable file not found in $PATH"]);
    sb.berth(&["pause", &id]).expect_ok();
    let o = sb.berth(&["exec", &id, "true"]);
    assert_eq!(o.code, 255, "{o:?}");
    o.expect_fail(&["cannot exec in a paused container", "--ignore-paused"]);
    sb.berth(&["resume", &id]).expect_ok();
}

/// `exec --ignore-paused` into a paused container runs the process once the
/// container is resumed.
#[test]
fn exec_ignore_paused_runs_after_resume() {
    let mut sb = Sandbox::new("ex-igp");
    sb.bundle.sh("exec sleep 1000");
    let (_c, id) = running(&sb, "e");
    sb.berth(&["pause", &id]).expect_ok();
    let marker = sb.host.join("ran");
    let cmd = sb.cmd(&[
        "exec",
        "--ignore-paused",
        &id,
        "sh",
        "-c",
        "echo ran > /host/ran",
    ]);
    let (mut child, _, err) = spawn_to_files(&sb, cmd, "igp");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !marker.exists(),
        "the process ran inside a frozen container"
    );
    sb.berth(&["resume", &id]).expect_ok();
    let code = wait_child(&mut child, COMMAND_TIMEOUT, "exec --ignore-paused");
    assert_eq!(
        code,
        0,
        "{}",
        std::fs::read_to_string(err).unwrap_or_default()
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
}

/// A process file may leave out `user` (the process then runs as 0:0).
#[test]
fn exec_process_file_without_user_runs_as_root() {
    let mut sb = Sandbox::new("ex-nouser");
    sb.bundle.sh("exec sleep 1000");
    let (_c, id) = running(&sb, "e");
    let pf = sb.dir.join("process.json");
    std::fs::write(
        &pf,
        json!({"terminal": false, "args": ["sh", "-c", "id -u; id -g"], "cwd": "/", "env": ["PATH=/bin"]})
            .to_string(),
    )
    .unwrap();
    let out = exec_ok(&sb, &["--process", pf.to_str().unwrap(), &id]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["0", "0"], "{out}");
}

/// `exec --cap X` adds X to the bounding, effective and permitted sets, and
/// to the ambient set when the config has an inheritable set (runc's rule).
#[test]
fn exec_cap_adds_ambient_when_the_config_has_inheritable() {
    let mut sb = Sandbox::new("ex-capamb");
    sb.bundle.sh("exec sleep 1000");
    sb.bundle.set(
        "/process/capabilities",
        json!({
            "inheritable": ["CAP_CHOWN", "CAP_SYSLOG"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "effective": ["CAP_KILL"],
            "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_SYSLOG"],
            "ambient": ["CAP_CHOWN"]
        }),
    );
    let (_c, id) = running(&sb, "e");
    let out = exec_ok(
        &sb,
        &["--cap", "CAP_SYSLOG", &id, "cat", "/proc/self/status"],
    );
    assert_eq!(field(&out, "CapAmb"), "0000000400000001", "{out}");
    assert_eq!(field(&out, "CapBnd"), "0000000400000021", "{out}");
    // Without an inheritable set, --cap never reaches ambient.
    let mut sb = Sandbox::new("ex-capamb2");
    sb.bundle.sh("exec sleep 1000");
    sb.bundle.set("/process/capabilities", json!({}));
    let (_c, id) = running(&sb, "e");
    let out = exec_ok(
        &sb,
        &[
            "--cap",
            "CAP_KILL",
            "--cap",
            "CAP_AUDIT_WRITE",
            &id,
            "cat",
            "/proc/self/status",
        ],
    );
    assert_eq!(field(&out, "CapPrm"), "0000000020000020", "{out}");
    assert_eq!(field(&out, "CapAmb"), "0000000000000000", "{out}");
    assert_eq!(field(&out, "CapInh"), "0000000000000000", "{out}");
}

/// A sub-cgroup made by a test: its processes are killed and the directory
/// removed when the guard goes away, also when the test fails.
struct SubCgroup(std::path::PathBuf);

impl Drop for SubCgroup {
    fn drop(&mut self) {
        wait_until(POLL_TIMEOUT, || {
            let procs = std::fs::read_to_string(self.0.join("cgroup.procs")).unwrap_or_default();
            for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: plain kill(2).
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::fs::remove_dir(&self.0).is_ok() || !self.0.exists()
        });
    }
}

/// The `--cgroup` argument and directory of a new sub-cgroup of `init`'s pids
/// cgroup (`pids:NAME` on v1, `NAME` on a pure v2 host).
fn pids_sub_cgroup(init: i32, name: &str) -> (String, SubCgroup) {
    let own = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    let mut v1 = None;
    let mut v2 = None;
    for l in own.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctl, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        if ctl.split(',').any(|c| c == "pids") {
            v1 = Some(path.to_string());
        } else if ctl.is_empty() {
            v2 = Some(path.to_string());
        }
    }
    let (arg, dir) = match (v1, v2) {
        (Some(p), _) => (
            format!("pids:{name}"),
            format!("/sys/fs/cgroup/pids{p}/{name}"),
        ),
        (None, Some(p)) => (name.to_string(), format!("/sys/fs/cgroup{p}/{name}")),
        _ => panic!("the container is in no pids cgroup: {own}"),
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir(&dir).unwrap();
    (arg, SubCgroup(dir))
}

/// `exec --cgroup [CONTROLLER:]SUB` starts the process in an existing
/// sub-cgroup of the container; `--pidfd-socket` receives a pidfd of it.
#[test]
fn exec_into_a_sub_cgroup_and_pidfd_socket() {
    let mut sb = Sandbox::new("ex-subcg");
    sb.bundle.sh("exec sleep 1000");
    let (c, id) = running(&sb, "e");
    let (arg, sub) = pids_sub_cgroup(c.pid(), "exec_sub");
    let sock = sb.dir.join("pidfd.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let pidfile = sb.dir.join("exec.pid");
    sb.berth(&[
        "exec",
        "-d",
        "--cgroup",
        &arg,
        "--pid-file",
        pidfile.to_str().unwrap(),
        "--pidfd-socket",
        sock.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ])
    .expect_ok();
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let procs = std::fs::read_to_string(sub.0.join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), pid.to_string(), "sub-cgroup holds {procs:?}");
    // The pidfd received on the socket refers to the exec'd process.
    listener.set_nonblocking(true).unwrap();
    let mut conn = None;
    assert!(wait_until(POLL_TIMEOUT, || {
        conn = listener.accept().ok();
        conn.is_some()
    }));
    let (stream, _) = conn.unwrap();
    stream.set_nonblocking(false).unwrap();
    let pidfd = recv_fd(&stream);
    let raw = std::os::fd::AsRawFd::as_raw_fd(&pidfd);
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{raw}")).unwrap();
    assert_eq!(field(&fdinfo, "Pid"), pid.to_string(), "{fdinfo}");
    // SAFETY: pidfd_send_signal on a pidfd we own, no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            raw,
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    assert_eq!(r, 0, "pidfd_send_signal");
    assert!(wait_until(POLL_TIMEOUT, || !alive(pid)));
    // A sub-cgroup that does not exist, or one outside the container's, is refused.
    let missing = arg.replace("exec_sub", "no-such-sub");
    sb.berth(&["exec", "--cgroup", &missing, &id, "true"])
        .expect_fail(&["no-such-sub"]);
    let outside = arg.replace("exec_sub", "../..");
    sb.berth(&["exec", "--cgroup", &outside, &id, "true"])
        .expect_fail(&["../.."]);
    assert_eq!(sb.status(&id), "running");
    drop(sub);
}
