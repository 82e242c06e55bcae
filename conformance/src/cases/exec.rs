//! `exec` (the runc command line extension every runc-compatible runtime has) and
//! the process fields that apply to exec'd processes (`exec --process FILE`),
//! plus the process attributes of config 1.1 (personality, ioPriority,
//! scheduler) where the runtime's `features` claims that config version.
//!
//! Every check reads what the kernel reports (/proc/self/status inside the
//! container, /proc/PID and syscalls on the host side), never the runtime's word.

use super::{create_ok, pid_alive, release, start_ok, waiting_bundle};
use crate::bundle::Bundle;
use crate::runtime::{poll, ContainerGuard, Output};
use crate::suite::{ensure, skip, Case, CaseResult, Ctx, NotPassed};
use serde_json::{json, Value};

/// exec is runc's command line (its man page, man/runc-exec.8.md), not runtime-spec.
const EXEC: &str = "runc-exec.8.md#options";

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            section: EXEC,
            desc: "exec joins the container's namespaces and cgroup",
            run: joins_namespaces,
        },
        Case {
            section: EXEC,
            desc: "exec --cwd and --env",
            run: cwd_and_env,
        },
        Case {
            section: EXEC,
            desc: "exec --user uid:gid",
            run: user_flag,
        },
        Case {
            section: EXEC,
            desc: "exec --additional-gids",
            run: additional_gids_flag,
        },
        Case {
            section: EXEC,
            desc: "exec --cap adds the capability",
            run: cap_flag,
        },
        Case {
            section: EXEC,
            desc: "exec --no-new-privs sets NoNewPrivs",
            run: nnp_flag,
        },
        Case {
            section: "runc-exec.8.md#exit-status",
            desc: "exec exit status propagates",
            run: exit_status,
        },
        Case {
            section: EXEC,
            desc: "exec into a stopped container fails and runs nothing",
            run: stopped_refused,
        },
        Case {
            section: "config.md#process",
            desc: "exec --process: args, env, cwd",
            run: process_basics,
        },
        Case {
            section: "config.md#user",
            desc: "exec --process: uid, gid, additionalGids, umask",
            run: process_user,
        },
        Case {
            section: "config.md#process",
            desc: "exec --process: rlimits",
            run: process_rlimits,
        },
        Case {
            section: "config.md#process",
            desc: "exec --process: capabilities, all five sets",
            run: process_caps,
        },
        Case {
            section: "config.md#process",
            desc: "exec --process: noNewPrivileges",
            run: process_nnp,
        },
        Case {
            section: "config.md#process",
            desc: "exec --process: oomScoreAdj",
            run: process_oom,
        },
        Case {
            section: "config-linux.md#personality",
            desc: "personality LINUX32",
            run: personality,
        },
        Case {
            section: "config.md#process",
            desc: "ioPriority",
            run: io_priority,
        },
        Case {
            section: "config.md#process",
            desc: "scheduler SCHED_BATCH with nice",
            run: scheduler,
        },
    ]
}

/// A started container whose process waits; deleted when the guard drops.
struct Running<'a> {
    bundle: Bundle,
    id: String,
    pid: i64,
    _guard: ContainerGuard<'a>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = release(&self.bundle);
    }
}

fn running_with<'a>(
    ctx: &'a Ctx,
    edit: impl FnOnce(&mut Bundle),
) -> Result<Running<'a>, NotPassed> {
    let (mut bundle, id) = waiting_bundle(ctx)?;
    edit(&mut bundle);
    bundle.write()?;
    let guard = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    start_ok(ctx, &id)?;
    let started = bundle.host().join("started");
    ensure(
        poll(|| started.exists()),
        "the container's process did not start",
    )?;
    let pid = ctx.runtime.state(&id)?["pid"].as_i64().unwrap_or(0);
    ensure(pid > 0, format!("state of {id} has no pid"))?;
    Ok(Running {
        bundle,
        id,
        pid,
        _guard: guard,
    })
}

fn running(ctx: &Ctx) -> Result<Running<'_>, NotPassed> {
    running_with(ctx, |_| {})
}

/// `exec [FLAGS] ID ARGS...`, in the foreground.
fn exec(ctx: &Ctx, flags: &[&str], id: &str, args: &[&str]) -> Output {
    let mut v = vec!["exec"];
    v.extend_from_slice(flags);
    v.push(id);
    v.extend_from_slice(args);
    ctx.runtime.exec(&v)
}

fn exec_ok(ctx: &Ctx, flags: &[&str], id: &str, args: &[&str]) -> Result<String, NotPassed> {
    let out = exec(ctx, flags, id, args);
    ensure(out.success(), format!("exec failed: {}", out.describe()))?;
    Ok(out.stdout)
}

/// `exec --process FILE ID` with `process` written beside the bundle.
fn exec_process(ctx: &Ctx, r: &Running, process: &Value) -> Result<String, NotPassed> {
    let file = r.bundle.dir.join("process.json");
    std::fs::write(&file, process.to_string())
        .map_err(|e| NotPassed::Fail(format!("write {}: {e}", file.display())))?;
    let f = file.display().to_string();
    exec_ok(ctx, &["--process", &f], &r.id, &[])
}

/// A process.json based on the container's own process, with `args`.
fn process_json(r: &Running, args: &[&str]) -> Value {
    let mut p = r.bundle.config["process"].clone();
    p["args"] = json!(args);
    p["terminal"] = json!(false);
    p
}

/// The value of `Key:` in /proc/self/status output.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

fn cap_mask(names: &[&str]) -> u64 {
    names
        .iter()
        .filter_map(|n| cap_number(n))
        .fold(0, |m, b| m | 1 << b)
}

fn cap_number(name: &str) -> Option<u32> {
    Some(match name {
        "CAP_CHOWN" => 0,
        "CAP_DAC_OVERRIDE" => 1,
        "CAP_FOWNER" => 3,
        "CAP_KILL" => 5,
        "CAP_SETGID" => 6,
        "CAP_SETUID" => 7,
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_NET_RAW" => 13,
        "CAP_SYS_CHROOT" => 18,
        "CAP_SYS_ADMIN" => 21,
        "CAP_AUDIT_WRITE" => 29,
        _ => return None,
    })
}

fn hex_field(status: &str, key: &str) -> Result<u64, NotPassed> {
    let v = status_field(status, key)
        .ok_or_else(|| NotPassed::Fail(format!("no {key} in /proc/self/status:\n{status}")))?;
    u64::from_str_radix(v, 16).map_err(|e| NotPassed::Fail(format!("{key} {v:?}: {e}")))
}

fn joins_namespaces(ctx: &Ctx) -> CaseResult {
    let r = running(ctx)?;
    let script =
        "for n in mnt pid net ipc uts cgroup; do echo $n=$(readlink /proc/self/ns/$n); done; \
                  echo init-cgroup; cat /proc/1/cgroup; echo self-cgroup; cat /proc/self/cgroup";
    let out = exec_ok(ctx, &[], &r.id, &["/bin/sh", "-c", script])?;
    for n in ["mnt", "pid", "net", "ipc", "uts", "cgroup"] {
        let want = std::fs::read_link(format!("/proc/{}/ns/{n}", r.pid))
            .map_err(|e| NotPassed::Fail(format!("readlink /proc/{}/ns/{n}: {e}", r.pid)))?;
        let want = format!("{n}={}", want.display());
        ensure(
            out.lines().any(|l| l == want),
            format!("exec'd process is not in the init's {n} namespace ({want}): {out}"),
        )?;
    }
    let (init, own) = out
        .split_once("self-cgroup\n")
        .ok_or_else(|| NotPassed::Fail(format!("unexpected output: {out}")))?;
    let init = init.split_once("init-cgroup\n").map(|x| x.1).unwrap_or("");
    ensure(
        init == own,
        format!("exec'd process cgroups differ from the init's:\ninit:\n{init}self:\n{own}"),
    )
}

fn cwd_and_env(ctx: &Ctx) -> CaseResult {
    let r = running(ctx)?;
    let out = exec_ok(
        ctx,
        &["--cwd", "/tmp", "--env", "CONFORMANCE_X=a b=c"],
        &r.id,
        &["/bin/sh", "-c", "pwd; echo \"$CONFORMANCE_X\""],
    )?;
    ensure(
        out == "/tmp\na b=c\n",
        format!("expected \"/tmp\\na b=c\\n\", got {out:?}"),
    )
}

fn user_flag(ctx: &Ctx) -> CaseResult {
    let r = running(ctx)?;
    let out = exec_ok(
        ctx,
        &["--user", "1000:1001"],
        &r.id,
        &["/bin/cat", "/proc/self/status"],
    )?;
    let uid = status_field(&out, "Uid").unwrap_or("");
    let gid = status_field(&out, "Gid").unwrap_or("");
    ensure(
        uid.split_whitespace().all(|x| x == "1000") && !uid.is_empty(),
        format!("Uid: {uid}"),
    )?;
    ensure(
        gid.split_whitespace().all(|x| x == "1001") && !gid.is_empty(),
        format!("Gid: {gid}"),
    )
}

fn additional_gids_flag(ctx: &Ctx) -> CaseResult {
    let r = running(ctx)?;
    let out = exec_ok(
        ctx,
        &["--user", "1000:1001", "--additional-gids", "2000"],
        &r.id,
        &["/bin/cat", "/proc/self/status"],
    )?;
    let groups = status_field(&out, "Groups").unwrap_or("");
    ensure(
        groups.split_whitespace().any(|g| g == "2000"),
        format!("Groups: {groups:?} lacks 2000"),
    )
}

fn cap_flag(ctx: &Ctx) -> CaseResult {
    let r = running(ctx)?;
    let bit = 1u64 << 21;
    let without = exec_ok(ctx, &[], &r.id, &["/bin/cat", "/proc/self/status"])?;
    ensure(
        hex_field(&without, "CapBnd")? & bit == 0,
        "CAP_SYS_ADMIN is already in the bounding set without --cap; the case proves nothing",
    )?;
    let with = exec_ok(
        ctx,
        &["--cap", "CAP_SYS_ADMIN"],
        &r.id,
        &["/bin/cat", "/proc/self/status"],
    )?;
    for key in ["CapBnd", "CapPrm", "CapEff"] {
        ensure(
            hex_field(&with, key)? & bit != 0,
            format!("exec --cap CAP_SYS_ADMIN: not in {key}"),
        )?;
    }
    Ok(())
}

fn nnp_flag(ctx: &Ctx) -> CaseResult {
    let r = running_with(ctx, |b| {
        b.config["process"]["noNewPrivileges"] = json!(false)
    })?;
    let plain = exec_ok(ctx, &[], &r.id, &["/bin/cat", "/proc/self/status"])?;
    ensure(
        status_field(&plain, "NoNewPrivs") == Some("0"),
        format!(
            "without --no-new-privs, NoNewPrivs is {:?}",
            status_field(&plain, "NoNewPrivs")
        ),
    )?;
    let out = exec_ok(
        ctx,
        &["--no-new-privs"],
        &r.id,
        &["/bin/cat", "/proc/self/status"],
    )?;
    ensure(
        status_field(&out, "NoNewPrivs") == Some("1"),
        format!(
            "with --no-new-privs, NoNewPrivs is {:?}",
            status_field(&out, "NoNewPrivs")
        ),
    )
}

fn exit_status(ctx: &Ctx) -> CaseResult {
    let r = running(ctx)?;
    for code in [0, 7, 123] {
        let out = exec(ctx, &[], &r.id, &["/bin/sh", "-c", &format!("exit {code}")]);
        ensure(
            out.code() == Some(code),
            format!("exec of `exit {code}` returned {:?}", out.code()),
        )?;
    }
    Ok(())
}

fn stopped_refused(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.set_args(&["/bin/true"]);
    b.write()?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &b, &id)?;
    let pid = ctx.runtime.state(&id)?["pid"].as_i64().unwrap_or(0);
    start_ok(ctx, &id)?;
    ctx.runtime.wait_status(&id, "stopped")?;
    ensure(!pid_alive(pid), "init still alive after stopped")?;
    let out = exec(ctx, &[], &id, &["/bin/touch", "/hostdir/ran"]);
    ensure(!out.success(), "exec into a stopped container succeeded")?;
    ensure(
        !b.host().join("ran").exists(),
        "exec into a stopped container ran its process",
    )?;
    ensure(
        ctx.runtime.status(&id)? == "stopped",
        "the failed exec changed the container's status",
    )
}

fn process_basics(ctx: &Ctx) -> CaseResult {
    let r = running(ctx)?;
    let mut p = process_json(
        &r,
        &["/bin/sh", "-c", "pwd; echo \"$CONFORMANCE_P\"", "two words"],
    );
    p["cwd"] = json!("/tmp");
    p["env"] = json!(["PATH=/bin", "CONFORMANCE_P=from-process"]);
    let out = exec_process(ctx, &r, &p)?;
    ensure(
        out == "/tmp\nfrom-process\n",
        format!("expected \"/tmp\\nfrom-process\\n\", got {out:?}"),
    )
}

fn process_user(ctx: &Ctx) -> CaseResult {
    let r = running(ctx)?;
    let mut p = process_json(&r, &["/bin/cat", "/proc/self/status"]);
    p["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [2000, 3000], "umask": 0o027});
    let out = exec_process(ctx, &r, &p)?;
    let uid = status_field(&out, "Uid").unwrap_or("");
    let gid = status_field(&out, "Gid").unwrap_or("");
    let groups: Vec<&str> = status_field(&out, "Groups")
        .unwrap_or("")
        .split_whitespace()
        .collect();
    ensure(
        uid.split_whitespace().all(|x| x == "1000") && !uid.is_empty(),
        format!("Uid: {uid}"),
    )?;
    ensure(
        gid.split_whitespace().all(|x| x == "1001") && !gid.is_empty(),
        format!("Gid: {gid}"),
    )?;
    ensure(
        groups.contains(&"2000") && groups.contains(&"3000"),
        format!("Groups: {groups:?}, expected 2000 and 3000"),
    )?;
    ensure(
        status_field(&out, "Umask") == Some("0027"),
        format!("Umask: {:?}, expected 0027", status_field(&out, "Umask")),
    )
}

fn process_rlimits(ctx: &Ctx) -> CaseResult {
    let r = running(ctx)?;
    let mut p = process_json(&r, &["/bin/cat", "/proc/self/limits"]);
    p["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
        {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
    ]);
    let out = exec_process(ctx, &r, &p)?;
    for (name, soft, hard) in [
        ("Max open files", "256", "512"),
        ("Max core file size", "4096", "8192"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| NotPassed::Fail(format!("no {name:?} in /proc/self/limits")))?;
        let cols: Vec<&str> = line[name.len()..].split_whitespace().collect();
        ensure(
            cols.first() == Some(&soft) && cols.get(1) == Some(&hard),
            format!("{name}: {cols:?}, expected soft {soft} hard {hard}"),
        )?;
    }
    Ok(())
}

fn process_caps(ctx: &Ctx) -> CaseResult {
    let r = running(ctx)?;
    let mut p = process_json(&r, &["/bin/cat", "/proc/self/status"]);
    let bounding = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_RAW",
        "CAP_SETUID",
        "CAP_SYS_CHROOT",
    ];
    let permitted = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"];
    let inheritable = ["CAP_KILL", "CAP_NET_RAW"];
    let ambient = ["CAP_NET_RAW"];
    p["user"] = json!({"uid": 0, "gid": 0});
    p["capabilities"] = json!({
        "bounding": bounding,
        "permitted": permitted,
        // For uid 0 the kernel recomputes effective = permitted on execve.
        "effective": permitted,
        "inheritable": inheritable,
        "ambient": ambient,
    });
    let out = exec_process(ctx, &r, &p)?;
    for (key, want) in [
        ("CapBnd", cap_mask(&bounding)),
        ("CapPrm", cap_mask(&permitted)),
        ("CapEff", cap_mask(&permitted)),
        ("CapInh", cap_mask(&inheritable)),
        ("CapAmb", cap_mask(&ambient)),
    ] {
        let got = hex_field(&out, key)?;
        ensure(got == want, format!("{key} {got:#x}, expected {want:#x}"))?;
    }
    Ok(())
}

fn process_nnp(ctx: &Ctx) -> CaseResult {
    let r = running_with(ctx, |b| {
        b.config["process"]["noNewPrivileges"] = json!(false)
    })?;
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let mut p = process_json(&r, &["/bin/cat", "/proc/self/status"]);
        p["noNewPrivileges"] = json!(nnp);
        let out = exec_process(ctx, &r, &p)?;
        ensure(
            status_field(&out, "NoNewPrivs") == Some(want),
            format!(
                "noNewPrivileges {nnp}: NoNewPrivs {:?}",
                status_field(&out, "NoNewPrivs")
            ),
        )?;
    }
    Ok(())
}

fn process_oom(ctx: &Ctx) -> CaseResult {
    let r = running(ctx)?;
    let mut p = process_json(&r, &["/bin/cat", "/proc/self/oom_score_adj"]);
    p["oomScoreAdj"] = json!(321);
    let out = exec_process(ctx, &r, &p)?;
    ensure(
        out.trim() == "321",
        format!("oom_score_adj {:?}, expected 321", out.trim()),
    )
}

/// Skips unless `features` reports an ociVersionMax of at least 1.1.0 (the
/// config version that added `what`).
fn require_config_1_1(ctx: &Ctx, what: &str) -> CaseResult {
    let out = ctx.runtime.exec(&["features"]);
    if !out.success() {
        return skip(format!(
            "{what} is config 1.1; the runtime has no usable `features` ({})",
            out.describe()
        ));
    }
    let v: Value = serde_json::from_str(&out.stdout)
        .map_err(|e| NotPassed::Fail(format!("features printed invalid JSON: {e}")))?;
    let max = v["ociVersionMax"].as_str().unwrap_or("");
    let mut parts = max.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (1, 1) {
        return skip(format!(
            "{what} is config 1.1; features says ociVersionMax {max:?}"
        ));
    }
    Ok(())
}

/// Runs a waiting container whose config gets `edit`, and returns its init pid.
fn init_with<'a>(ctx: &'a Ctx, edit: impl FnOnce(&mut Bundle)) -> Result<Running<'a>, NotPassed> {
    running_with(ctx, |b| {
        b.config["ociVersion"] = json!("1.1.0");
        edit(b);
    })
}

fn personality(ctx: &Ctx) -> CaseResult {
    require_config_1_1(ctx, "linux.personality")?;
    let r = init_with(ctx, |b| {
        b.config["linux"]["personality"] = json!({"domain": "LINUX32"})
    })?;
    let text = std::fs::read_to_string(format!("/proc/{}/personality", r.pid))
        .map_err(|e| NotPassed::Fail(format!("read /proc/{}/personality: {e}", r.pid)))?;
    let v = u64::from_str_radix(text.trim(), 16).unwrap_or(u64::MAX);
    ensure(
        v & 0xff == 0x0008,
        format!(
            "personality {:?}, expected PER_LINUX32 (0x0008)",
            text.trim()
        ),
    )
}

fn io_priority(ctx: &Ctx) -> CaseResult {
    require_config_1_1(ctx, "process.ioPriority")?;
    let r = init_with(ctx, |b| {
        b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6})
    })?;
    // SAFETY: plain syscall; IOPRIO_WHO_PROCESS = 1.
    let v = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, r.pid as libc::c_long) };
    ensure(v >= 0, format!("ioprio_get({}) failed", r.pid))?;
    let (class, prio) = (v >> 13, v & 0x1fff);
    ensure(
        (class, prio) == (2, 6),
        format!("io priority class {class} data {prio}, expected BE (2) 6"),
    )
}

fn scheduler(ctx: &Ctx) -> CaseResult {
    require_config_1_1(ctx, "process.scheduler")?;
    let r = init_with(ctx, |b| {
        b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7})
    })?;
    // SAFETY: plain syscall on a pid.
    let policy = unsafe { libc::sched_getscheduler(r.pid as libc::pid_t) };
    ensure(
        policy == libc::SCHED_BATCH,
        format!(
            "policy {policy}, expected SCHED_BATCH ({})",
            libc::SCHED_BATCH
        ),
    )?;
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", r.pid))
        .map_err(|e| NotPassed::Fail(format!("read stat: {e}")))?;
    // Field 19 is nice; fields after the command name start at 3.
    let nice = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(16))
        .unwrap_or("");
    ensure(nice == "7", format!("nice {nice:?}, expected 7"))
}
