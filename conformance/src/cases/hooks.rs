//! config.md#posix-platform-hooks: when each hook runs, what it receives, timeouts, failures.

use super::{create_ok, release, start_ok, waiting_bundle};
use crate::bundle::Bundle;
use crate::runtime::poll;
use crate::suite::{ensure, Case, CaseResult, Ctx, NotPassed};
use serde_json::{json, Value};
use std::fs;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            section: "config.md#posix-platform-hooks",
            desc: "create runs prestart, createRuntime, createContainer in order and nothing else",
            run: hooks_at_create,
        },
        Case {
            section: "config.md#posix-platform-hooks",
            desc: "start runs startContainer then poststart",
            run: hooks_at_start,
        },
        Case {
            section: "config.md#posix-platform-hooks",
            desc: "delete runs poststop last",
            run: hooks_at_delete,
        },
        Case {
            section: "config.md#posix-platform-hooks",
            desc: "every hook receives the container state on stdin",
            run: hooks_get_state,
        },
        Case {
            section: "config.md#posix-platform-hooks",
            desc: "hook timeout is enforced: create fails",
            run: hook_timeout,
        },
        Case {
            section: "config.md#posix-platform-hooks",
            desc: "failing createRuntime hook makes create fail, nothing left",
            run: failing_create_runtime,
        },
        Case {
            section: "config.md#posix-platform-hooks",
            desc: "failing poststop hook is only a warning",
            run: failing_poststop,
        },
    ]
}

const HOOK_NAMES: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// A hook that appends its name to host/hooks.log and saves its stdin to host/NAME.json.
/// startContainer runs in the container, so it uses the container's /hostdir and /bin/sh.
fn recording_hook(bundle: &Bundle, name: &str) -> Value {
    let dir = if name == "startContainer" {
        "/hostdir".to_string()
    } else {
        bundle.host().display().to_string()
    };
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {dir}/{name}.json; echo {name} >> {dir}/hooks.log")],
    })
}

fn hooked_bundle(ctx: &Ctx) -> Result<(Bundle, String), NotPassed> {
    let (mut bundle, id) = waiting_bundle(ctx)?;
    let hooks: serde_json::Map<String, Value> = HOOK_NAMES
        .iter()
        .map(|n| (n.to_string(), json!([recording_hook(&bundle, n)])))
        .collect();
    bundle.config["hooks"] = Value::Object(hooks);
    bundle.write()?;
    Ok((bundle, id))
}

fn log(bundle: &Bundle) -> Vec<String> {
    fs::read_to_string(bundle.host().join("hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn expect_log(bundle: &Bundle, want: &[&str], when: &str) -> CaseResult {
    let got = log(bundle);
    ensure(
        got == want,
        format!("{when}: hooks ran {got:?}, expected {want:?}"),
    )
}

fn hooks_at_create(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = hooked_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    expect_log(
        &bundle,
        &["prestart", "createRuntime", "createContainer"],
        "after create",
    )?;
    ensure(
        !bundle.host().join("started").exists(),
        "user program ran during create",
    )
}

fn hooks_at_start(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = hooked_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    let at_create = log(&bundle);
    start_ok(ctx, &id)?;
    // poststart must have run before start returned, after startContainer.
    let at_start = log(&bundle);
    release(&bundle)?;
    ensure(
        !at_create
            .iter()
            .any(|h| h == "startContainer" || h == "poststart"),
        format!("start-time hooks ran during create: {at_create:?}"),
    )?;
    let new: Vec<&str> = at_start[at_create.len().min(at_start.len())..]
        .iter()
        .map(String::as_str)
        .collect();
    ensure(
        new == ["startContainer", "poststart"],
        format!("start ran hooks {new:?}, expected startContainer, poststart"),
    )
}

fn hooks_at_delete(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = hooked_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    start_ok(ctx, &id)?;
    release(&bundle)?;
    ctx.runtime.wait_status(&id, "stopped")?;
    ensure(
        !log(&bundle).contains(&"poststop".to_string()),
        "poststop ran before delete",
    )?;
    let out = ctx.runtime.delete(&id);
    ensure(out.success(), format!("delete failed: {}", out.describe()))?;
    let got = log(&bundle);
    ensure(
        got.last().map(String::as_str) == Some("poststop"),
        format!("poststop is not the last hook: {got:?}"),
    )?;
    ensure(
        got.len() == HOOK_NAMES.len(),
        format!("hooks ran {got:?}, expected each of {HOOK_NAMES:?} once"),
    )
}

fn hooks_get_state(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = hooked_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    start_ok(ctx, &id)?;
    release(&bundle)?;
    ctx.runtime.wait_status(&id, "stopped")?;
    let out = ctx.runtime.delete(&id);
    ensure(out.success(), format!("delete failed: {}", out.describe()))?;
    for name in HOOK_NAMES {
        let path = bundle.host().join(format!("{name}.json"));
        let text = fs::read_to_string(&path).map_err(|e| format!("{name}: no stdin saved: {e}"))?;
        let state: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{name}: stdin is not JSON ({e}): {text:?}"))?;
        ensure(
            state["id"] == id.as_str(),
            format!("{name}: state id {}", state["id"]),
        )?;
        ensure(
            state["ociVersion"].is_string(),
            format!("{name}: state without ociVersion"),
        )?;
        ensure(
            state["status"].is_string(),
            format!("{name}: state without status"),
        )?;
        ensure(
            state["bundle"] == bundle.dir.display().to_string().as_str(),
            format!("{name}: state bundle {}", state["bundle"]),
        )?;
        // pid is required while the container is created or running.
        if state["status"] == "created" || state["status"] == "running" {
            ensure(
                state["pid"].as_i64().is_some_and(|p| p > 0),
                format!("{name}: state pid {}", state["pid"]),
            )?;
        }
    }
    Ok(())
}

fn hook_timeout(ctx: &Ctx) -> CaseResult {
    let (mut bundle, id) = waiting_bundle(ctx)?;
    let host = bundle.host().display().to_string();
    bundle.config["hooks"] = json!({ "createRuntime": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("sleep 30; echo late >> {host}/hooks.log")],
        "timeout": 1
    }]});
    bundle.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.create(&bundle.dir, &id);
    ensure(
        !out.success(),
        "create succeeded although the hook outlived its timeout",
    )?;
    // The hook only logs after 30 s: if create returned first, the timeout cut it short.
    ensure(
        log(&bundle).is_empty(),
        "create waited for the hook to finish",
    )?;
    ctx.runtime.assert_absent(&id).map_err(Into::into)
}

fn failing_create_runtime(ctx: &Ctx) -> CaseResult {
    let (mut bundle, id) = waiting_bundle(ctx)?;
    bundle.config["hooks"] =
        json!({ "createRuntime": [{ "path": "/bin/sh", "args": ["sh", "-c", "exit 1"] }] });
    bundle.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.create(&bundle.dir, &id);
    ensure(
        !out.success(),
        "create succeeded although createRuntime failed",
    )?;
    ctx.runtime.assert_absent(&id)?;
    ensure(!bundle.host().join("started").exists(), "user program ran")
}

fn failing_poststop(ctx: &Ctx) -> CaseResult {
    let (mut bundle, id) = waiting_bundle(ctx)?;
    bundle.config["hooks"] =
        json!({ "poststop": [{ "path": "/bin/sh", "args": ["sh", "-c", "exit 1"] }] });
    bundle.write()?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    start_ok(ctx, &id)?;
    release(&bundle)?;
    ensure(
        poll(|| bundle.host().join("finished").exists()),
        "program did not finish",
    )?;
    ctx.runtime.wait_status(&id, "stopped")?;
    let out = ctx.runtime.delete(&id);
    ensure(
        out.success(),
        format!(
            "delete failed because of the poststop hook: {}",
            out.describe()
        ),
    )?;
    ctx.runtime.assert_absent(&id).map_err(Into::into)
}
