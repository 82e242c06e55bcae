//! config.md#process: what the runtime must set up for the user program.

use crate::suite::{ensure, Case, CaseResult, Ctx};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            section: "config.md#process",
            desc: "args are passed verbatim",
            run: args,
        },
        Case {
            section: "config.md#process",
            desc: "env is set",
            run: env,
        },
        Case {
            section: "config.md#process",
            desc: "cwd is the working directory",
            run: cwd,
        },
        Case {
            section: "config.md#user",
            desc: "uid, gid and additionalGids",
            run: user,
        },
        Case {
            section: "config.md#user",
            desc: "umask",
            run: umask,
        },
        Case {
            section: "config.md#process",
            desc: "rlimits",
            run: rlimits,
        },
        Case {
            section: "config.md#process",
            desc: "capabilities: all five sets",
            run: capabilities,
        },
        Case {
            section: "config.md#process",
            desc: "noNewPrivileges true",
            run: nnp_true,
        },
        Case {
            section: "config.md#process",
            desc: "noNewPrivileges false",
            run: nnp_false,
        },
        Case {
            section: "config.md#process",
            desc: "oomScoreAdj",
            run: oom_score_adj,
        },
        Case {
            section: "config.md#process",
            desc: "terminal=false: stdout and stderr reach the caller of run",
            run: stdio,
        },
        Case {
            section: "runtime.md#operations",
            desc: "exit code of run equals the process's",
            run: exit_code,
        },
    ]
}

fn args(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    ctx.run_checks(
        &mut b,
        &id,
        &["args", "--", "two words", "", "ünïcødé", "--flag=x"],
    )
}

fn env(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.push_env("CONFORMANCE_SPACES=a b  c");
    b.push_env("CONFORMANCE_EMPTY=");
    b.push_env("CONFORMANCE_EQUALS=x=y");
    ctx.run_checks(&mut b, &id, &["env"])
}

fn cwd(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["process"]["cwd"] = json!("/work");
    ctx.run_checks(&mut b, &id, &["cwd"])
}

fn user(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["process"]["user"] =
        json!({ "uid": 1000, "gid": 1001, "additionalGids": [2000, 3000] });
    ctx.run_checks(&mut b, &id, &["user"])
}

fn umask(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["process"]["user"] = json!({ "uid": 0, "gid": 0, "umask": 0o027 });
    ctx.run_checks(&mut b, &id, &["user"])
}

fn rlimits(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["process"]["rlimits"] = json!([
        { "type": "RLIMIT_NOFILE", "soft": 256, "hard": 512 },
        { "type": "RLIMIT_CORE", "soft": 4096, "hard": 8192 },
        { "type": "RLIMIT_NPROC", "soft": 1000, "hard": 2000 },
    ]);
    ctx.run_checks(&mut b, &id, &["rlimits"])
}

fn capabilities(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let bounding = json!([
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_RAW",
        "CAP_SETUID",
        "CAP_SYS_CHROOT"
    ]);
    b.config["process"]["capabilities"] = json!({
        "bounding": bounding,
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        // For uid 0 the kernel recomputes effective = permitted on execve.
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
        "ambient": ["CAP_NET_RAW"],
    });
    ctx.run_checks(&mut b, &id, &["capabilities"])
}

fn nnp_true(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["process"]["noNewPrivileges"] = json!(true);
    ctx.run_checks(&mut b, &id, &["no-new-privileges"])
}

fn nnp_false(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["process"]["noNewPrivileges"] = json!(false);
    ctx.run_checks(&mut b, &id, &["no-new-privileges"])
}

fn oom_score_adj(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["process"]["oomScoreAdj"] = json!(503);
    ctx.run_checks(&mut b, &id, &["oom-score-adj"])
}

fn stdio(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.set_args(&["/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2"]);
    b.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.run(&b.dir, &id);
    ensure(out.success(), format!("run failed: {}", out.describe()))?;
    ensure(
        b.stdout() == "to-stdout\n",
        format!("stdout was {:?}", b.stdout()),
    )?;
    ensure(
        b.stderr().contains("to-stderr\n"),
        format!("stderr was {:?}", b.stderr()),
    )
}

fn exit_code(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.set_args(&["/bin/sh", "-c", "exit 42"]);
    b.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.run(&b.dir, &id);
    ensure(
        out.code() == Some(42),
        format!(
            "run exited {:?}, expected 42 ({})",
            out.code(),
            out.describe()
        ),
    )
}
