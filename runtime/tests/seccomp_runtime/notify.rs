//! SCMP_ACT_NOTIFY: the listener gets the notify fd and the container state and answers.

use super::*;

pub(super) use berth_testsupport::seccomp_agent::Agent;

pub(super) fn notify_profile(listener: &Path) -> Value {
    let mut p =
        allow_profile(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]));
    p["listenerPath"] = json!(listener);
    p["listenerMetadata"] = json!("meta-xyz");
    p
}

fn notify_round_trip(nnp: bool) {
    let mut sb = Sandbox::new(if nnp { "sc-notify-nnp" } else { "sc-notify" });
    let sock: PathBuf = sb.dir.join("agent.sock");
    let agent = Agent::start(&sock, Some(libc::EXDEV)).unwrap();
    set_nnp(&mut sb.bundle, nnp);
    sb.bundle.set("/linux/seccomp", notify_profile(&sock));
    sb.bundle.sh(&format!(
        "{T_FN}\nt mkdir mkdir /tmp/x\nt touch touch /tmp/y\nt fds ls -l /proc/self/fd/"
    ));
    let id = sb.id("c");
    let base = sb.baseline(&id);
    let out = run(&sb, &id);
    let rep = agent.finish();
    out.expect_ok();
    assert!(rep.errors.is_empty(), "agent errors: {:?}", rep.errors);
    let r = results(&out);
    expect_err(&r, "mkdir", "Invalid cross-device link", &out);
    expect_ok(&r, "touch", &out);
    let fds = get(&r, "fds", &out);
    assert!(
        !fds.msg.contains("seccomp"),
        "the container holds a seccomp notify fd: {}",
        fds.msg
    );
    assert!(!sb.bundle.rootfs().join("tmp/x").exists());

    // The fd and the container process state.
    let kind = rep.fd_kind.clone().unwrap_or_default();
    assert!(
        kind.contains("seccomp"),
        "the fd received is not a seccomp listener: {kind:?}"
    );
    let st = rep.state.as_ref().expect("the agent got no state");
    assert_eq!(st["fds"], json!(["seccompFd"]), "{st:#}");
    assert_eq!(st["metadata"], json!("meta-xyz"), "{st:#}");
    assert!(
        st["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "{st:#}"
    );
    assert_eq!(st["state"]["id"], json!(id), "{st:#}");
    let pid = st["pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "pid: {st:#}");
    assert_eq!(st["state"]["pid"].as_i64(), Some(pid), "{st:#}");
    assert!(st["state"]["status"].is_string(), "{st:#}");
    let bundle = std::fs::canonicalize(&sb.bundle.dir).unwrap();
    assert_eq!(st["state"]["bundle"], json!(bundle), "{st:#}");

    // Each notification was a mkdir/mkdirat of the container.
    assert!(
        !rep.notifications.is_empty(),
        "no notification reached the agent"
    );
    for (nr, npid) in &rep.notifications {
        assert!(
            i64::from(*nr) == libc::SYS_mkdir || i64::from(*nr) == libc::SYS_mkdirat,
            "notified syscall {nr}"
        );
        assert!(*npid > 0);
    }
    base.assert_clean(&sb);
}

#[test]
fn notify_agent_answers_mkdir_with_exdev() {
    notify_round_trip(true);
}

#[test]
fn notify_agent_answers_mkdir_with_exdev_without_no_new_privileges() {
    notify_round_trip(false);
}

/// `berth exec` installs the filter in the new process too and hands its own
/// notify fd (with the exec'd process's pid) to the listener.
#[test]
fn exec_process_gets_its_own_notify_fd() {
    let mut sb = Sandbox::new("sc-notify-exec");
    let sock = sb.dir.join("agent.sock");
    sb.bundle.set("/linux/seccomp", notify_profile(&sock));
    sb.bundle.sh("exec sleep 1000");
    let id = sb.id("c");
    let base = sb.baseline(&id);

    let agent = Agent::start(&sock, Some(libc::EXDEV)).unwrap();
    let c = sb.started(&id);
    let init_pid = c.pid();
    let rep = agent.finish();
    assert!(rep.errors.is_empty(), "init agent errors: {:?}", rep.errors);
    let st = rep.state.expect("no state for the init");
    assert_eq!(st["pid"].as_i64(), Some(i64::from(init_pid)), "{st:#}");

    // A second agent on the same path for the exec'd process.
    std::fs::remove_file(&sock).unwrap();
    let agent = Agent::start(&sock, Some(libc::EXDEV)).unwrap();
    let out = sb.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        &format!(
            "{T_FN}\nt mkdir mkdir /tmp/x\nt status grep Seccomp: /proc/self/status\necho self=$$"
        ),
    ]);
    let rep = agent.finish();
    out.expect_ok();
    assert!(rep.errors.is_empty(), "exec agent errors: {:?}", rep.errors);
    let r = results(&out);
    expect_err(&r, "mkdir", "Invalid cross-device link", &out);
    assert_eq!(get(&r, "status", &out).msg, "Seccomp: 2");
    let st = rep.state.expect("no state for the exec'd process");
    assert_eq!(st["metadata"], json!("meta-xyz"), "{st:#}");
    assert_eq!(st["state"]["id"], json!(id), "{st:#}");
    let pid = st["pid"].as_i64().unwrap_or(0);
    assert!(
        pid > 0 && pid != i64::from(init_pid),
        "exec'd pid {pid}, init {init_pid}: {st:#}"
    );
    assert!(
        !rep.notifications.is_empty(),
        "no notification from the exec'd process"
    );
    drop(c);
    base.assert_clean(&sb);
}

/// An agent that closes the notify fd right away: the kernel then fails the
/// notified syscalls with ENOSYS. If berth (the `run` process or the init)
/// still held a copy of the fd, the container's mkdir would block instead.
#[test]
fn notify_fd_closed_by_the_agent_gives_enosys() {
    let mut sb = Sandbox::new("sc-notify-close");
    let sock = sb.dir.join("agent.sock");
    let agent = Agent::start(&sock, None).unwrap();
    sb.bundle.set("/linux/seccomp", notify_profile(&sock));
    sb.bundle
        .sh(&format!("{T_FN}\nt mkdir mkdir /tmp/x\nt echo echo fine"));
    let id = sb.id("c");
    let base = sb.baseline(&id);
    let out = run(&sb, &id);
    let rep = agent.finish();
    out.expect_ok();
    assert!(rep.errors.is_empty(), "agent errors: {:?}", rep.errors);
    assert!(rep.fd_kind.unwrap_or_default().contains("seccomp"));
    let r = results(&out);
    expect_err(&r, "mkdir", "Function not implemented", &out);
    expect_ok(&r, "echo", &out);
    base.assert_clean(&sb);
}

/// KILL, KILL_PROCESS and TRAP end the program with SIGSYS; LOG allows.
#[test]
fn kill_trap_and_log_actions() {
    let mut sb = Sandbox::new("sc-kill");
    sb.bundle.set(
        "/linux/seccomp",
        allow_profile(json!([
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"},
            {"names": ["rmdir"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_TRAP"},
            {"names": ["link", "linkat"], "action": "SCMP_ACT_LOG"}
        ])),
    );
    sb.bundle.sh(&format!(
        "{T_FN}\nrm -f /tmp/f /tmp/l; touch /tmp/f\nt mkdir mkdir /tmp/x\nt rmdir rmdir /tmp\nt symlink ln -s /tmp/f /tmp/s\nt link ln /tmp/f /tmp/l\nt echo echo fine"
    ));
    let id = sb.id("c");
    let out = run(&sb, &id);
    out.expect_ok();
    let r = results(&out);
    let sigsys = 128 + libc::SIGSYS;
    for name in ["mkdir", "rmdir", "symlink"] {
        assert_eq!(
            get(&r, name, &out).rc,
            sigsys,
            "{name} should die of SIGSYS: {r:#?}"
        );
    }
    expect_ok(&r, "link", &out);
    expect_ok(&r, "echo", &out);
    assert!(sb.bundle.rootfs().join("tmp/l").exists());
    assert!(!sb.bundle.rootfs().join("tmp/x").exists());
}

#[test]
fn notify_with_missing_listener_fails_create_cleanly() {
    let mut sb = Sandbox::new("sc-nolistener");
    let missing = sb.dir.join("no-such.sock");
    sb.bundle.set("/linux/seccomp", notify_profile(&missing));
    let id = sb.id("c");
    let base = sb.baseline(&id);
    sb.create(&id).expect_fail(&["linux.seccomp.listenerPath"]);
    base.assert_clean(&sb);
    assert!(sb.state(&id).is_none());

    // A socket nobody accepts on after connecting: still clean (a listener
    // that closes right away).
    let sock = sb.dir.join("closing.sock");
    let l = UnixListener::bind(&sock).unwrap();
    drop(l); // the path stays, nobody listens: connect gets ECONNREFUSED
    sb.bundle.set("/linux/seccomp", notify_profile(&sock));
    let id = sb.id("c2");
    let base = sb.baseline(&id);
    sb.create(&id).expect_fail(&["linux.seccomp.listenerPath"]);
    base.assert_clean(&sb);
}
