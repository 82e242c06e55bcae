//! config-linux.md#seccomp: the filter the runtime installs, judged by what the
//! container's programs get from the kernel, and the notify-fd handoff to
//! `listenerPath`.

use crate::bundle::Bundle;
use crate::suite::{ensure, Case, CaseResult, Ctx, NotPassed};
use berth_testsupport::seccomp_agent::Agent;
use serde_json::{json, Value};
use std::path::Path;

const SECTION: &str = "config-linux.md#seccomp";

/// Docker's default profile for amd64 as a `linux.seccomp` object (see that
/// directory's README.md for how it was derived).
const DOCKER_PROFILE: &str =
    include_str!("../../../runtime/tests/fixtures/seccomp/docker-default-amd64.json");

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            section: SECTION,
            desc: "SCMP_ACT_ERRNO with errnoRet: mkdir fails with EACCES, Seccomp: 2",
            run: errno_ret,
        },
        Case {
            section: SECTION,
            desc: "SCMP_ACT_ERRNO without errnoRet returns EPERM",
            run: errno_default,
        },
        Case {
            section: SECTION,
            desc:
                "argument filter: personality(PER_LINUX32) denied, personality(PER_LINUX) allowed",
            run: arg_filter,
        },
        Case {
            section: SECTION,
            desc: "Docker's default profile: unshare denied, ordinary programs work",
            run: docker_default,
        },
        Case {
            section: SECTION,
            desc: "SCMP_ACT_NOTIFY: the listener gets the fd and the state and answers",
            run: notify,
        },
        Case {
            section: SECTION,
            desc: "unknown action: create fails and leaves nothing",
            run: bad_action,
        },
    ]
}

/// `t NAME CMD...` prints `NAME rc=N <output on one line>`.
const T_FN: &str = r#"t() { n=$1; shift; o=$("$@" 2>&1); rc=$?; echo "$n rc=$rc $(echo $o)"; }"#;

fn allow_profile(rules: Value) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    })
}

/// Runs `script` (with [`T_FN`] defined) under `profile` with `run`; returns stdout.
fn run_script(ctx: &Ctx, profile: Value, script: &str) -> Result<(Bundle, String), NotPassed> {
    let (mut b, id) = ctx.bundle()?;
    b.config["linux"]["seccomp"] = profile;
    b.set_args(&["/bin/sh", "-c", &format!("{T_FN}\n{script}")]);
    b.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.run(&b.dir, &id);
    ensure(out.success(), format!("run failed: {}", out.describe()))?;
    let stdout = b.stdout();
    Ok((b, stdout))
}

/// The `NAME rc=N msg` line for `name`, as (rc, msg).
fn result(stdout: &str, name: &str) -> Result<(i32, String), NotPassed> {
    stdout
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(" rc=")?;
            let (rc, msg) = rest.split_once(' ').unwrap_or((rest, ""));
            Some((rc.parse().ok()?, msg.to_string()))
        })
        .ok_or_else(|| NotPassed::Fail(format!("no {name} result in {stdout:?}")))
}

fn expect_ok(stdout: &str, name: &str) -> CaseResult {
    let (rc, msg) = result(stdout, name)?;
    ensure(rc == 0, format!("{name} failed ({rc}): {msg}"))
}

fn expect_err(stdout: &str, name: &str, needle: &str) -> CaseResult {
    let (rc, msg) = result(stdout, name)?;
    ensure(
        rc != 0 && msg.contains(needle),
        format!("{name} should fail with {needle:?}, got rc={rc}: {msg}"),
    )
}

fn expect_seccomp_mode(stdout: &str) -> CaseResult {
    let (_, msg) = result(stdout, "status")?;
    ensure(msg == "Seccomp: 2", format!("/proc/self/status: {msg:?}"))
}

const STATUS: &str = "t status grep Seccomp: /proc/self/status";

fn errno_ret(ctx: &Ctx) -> CaseResult {
    let profile = allow_profile(json!([
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES}
    ]));
    let script = format!(
        "{STATUS}\nt mkdir mkdir /dev/shm/x\nt exists test -e /dev/shm/x\nt touch touch /dev/shm/y"
    );
    let (_, out) = run_script(ctx, profile, &script)?;
    expect_seccomp_mode(&out)?;
    expect_err(&out, "mkdir", "Permission denied")?;
    let (rc, _) = result(&out, "exists")?;
    ensure(rc != 0, "the directory was created after all")?;
    expect_ok(&out, "touch")
}

fn errno_default(ctx: &Ctx) -> CaseResult {
    let profile =
        allow_profile(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]));
    let (_, out) = run_script(ctx, profile, "t mkdir mkdir /dev/shm/x")?;
    expect_err(&out, "mkdir", "Operation not permitted")
}

fn arg_filter(ctx: &Ctx) -> CaseResult {
    const PER_LINUX32: u64 = 0x0008;
    let profile = allow_profile(json!([
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EOPNOTSUPP,
         "args": [{"index": 0, "value": PER_LINUX32, "op": "SCMP_CMP_EQ"}]}
    ]));
    let (_, out) = run_script(
        ctx,
        profile,
        "t linux32 linux32 true\nt linux64 linux64 true",
    )?;
    expect_err(&out, "linux32", "not supported")?;
    expect_ok(&out, "linux64")
}

fn docker_default(ctx: &Ctx) -> CaseResult {
    if !cfg!(target_arch = "x86_64") {
        return crate::suite::skip("the fixture is Docker's amd64 profile");
    }
    let profile: Value = serde_json::from_str(DOCKER_PROFILE).map_err(|e| e.to_string())?;
    let script = format!(
        "{STATUS}\nt unshare unshare -U true\nt ls ls /bin/busybox\nt date date\nt pipe sh -c 'echo abc | tr a-c x-z | grep xyz'\nt bg sh -c 'sleep 0.01 & wait'\nt write sh -c 'echo hi > /dev/shm/f && cat /dev/shm/f'"
    );
    let (_, out) = run_script(ctx, profile, &script)?;
    expect_seccomp_mode(&out)?;
    expect_err(&out, "unshare", "Operation not permitted")?;
    for name in ["ls", "date", "pipe", "bg", "write"] {
        expect_ok(&out, name)?;
    }
    Ok(())
}

fn bad_action(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["linux"]["seccomp"] =
        allow_profile(json!([{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]));
    b.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.create(&b.dir, &id);
    ensure(
        !out.success(),
        "create succeeded with action SCMP_ACT_BOGUS",
    )?;
    ctx.runtime.assert_absent(&id).map_err(NotPassed::Fail)
}

// --- SCMP_ACT_NOTIFY -------------------------------------------------------

fn notify(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let sock = b.dir.join("agent.sock");
    let agent = Agent::start(&sock, Some(libc::EXDEV)).map_err(|e| e.to_string())?;
    let mut profile =
        allow_profile(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]));
    profile["listenerPath"] = json!(sock);
    profile["listenerMetadata"] = json!("conformance-meta");
    b.config["linux"]["seccomp"] = profile;
    b.set_args(&[
        "/bin/sh",
        "-c",
        &format!("{T_FN}\nt mkdir mkdir /dev/shm/x\nt touch touch /dev/shm/y"),
    ]);
    b.write()?;

    let out = {
        let _g = ctx.guard(&id);
        ctx.runtime.run(&b.dir, &id)
    };
    let rep = agent.finish();
    ensure(out.success(), format!("run failed: {}", out.describe()))?;
    ensure(rep.errors.is_empty(), format!("agent: {:?}", rep.errors))?;
    ensure(rep.fd_kind.is_some(), "no fd reached the listener")?;
    let stdout = b.stdout();
    expect_err(&stdout, "mkdir", "Invalid cross-device link")?;
    expect_ok(&stdout, "touch")?;
    ensure(
        !rep.notifications.is_empty(),
        "the agent answered no notification",
    )?;
    let p = rep.state.unwrap_or(Value::Null);
    ensure(p["fds"] == json!(["seccompFd"]), format!("fds: {p}"))?;
    ensure(
        p["metadata"] == json!("conformance-meta"),
        format!("metadata: {p}"),
    )?;
    ensure(p["ociVersion"].is_string(), format!("ociVersion: {p}"))?;
    ensure(
        p["pid"].as_i64().is_some_and(|x| x > 0),
        format!("pid: {p}"),
    )?;
    ensure(p["state"]["id"] == json!(id), format!("state.id: {p}"))?;
    ensure(p["state"]["pid"] == p["pid"], format!("state.pid: {p}"))?;
    let bundle = std::fs::canonicalize(Path::new(&b.dir)).map_err(|e| e.to_string())?;
    ensure(
        p["state"]["bundle"] == json!(bundle),
        format!("state.bundle: {p}"),
    )
}
