//! runtime.md: the state machine and the operations create/start/state/kill/delete.

use super::{create_ok, pid_alive, release, start_ok, waiting_bundle};
use crate::runtime::poll;
use crate::suite::{ensure, Case, CaseResult, Ctx};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            section: "runtime.md#create",
            desc: "state after create is created with a live pid",
            run: created_state,
        },
        Case {
            section: "runtime.md#create",
            desc: "create does not run the user program",
            run: create_does_not_start,
        },
        Case {
            section: "runtime.md#state",
            desc: "state reports ociVersion, id, status, pid, bundle, annotations",
            run: state_fields,
        },
        Case {
            section: "runtime.md#start",
            desc: "start runs the user program; status running then stopped",
            run: start_runs_program,
        },
        Case {
            section: "runtime.md#start",
            desc: "start of a started container fails",
            run: start_twice,
        },
        Case {
            section: "runtime.md#start",
            desc: "start of an unknown id fails",
            run: start_unknown,
        },
        Case {
            section: "runtime.md#kill",
            desc: "kill of a created container stops it",
            run: kill_created,
        },
        Case {
            section: "runtime.md#kill",
            desc: "kill TERM reaches a running process",
            run: kill_running,
        },
        Case {
            section: "runtime.md#delete",
            desc: "delete of a running container without --force fails and changes nothing",
            run: delete_running_refused,
        },
        Case {
            section: "runtime.md#delete",
            desc: "delete of a created container removes it and its process",
            run: delete_created,
        },
        Case {
            section: "runtime.md#lifecycle",
            desc: "after the process exits the status is stopped",
            run: exit_means_stopped,
        },
        Case {
            section: "runtime.md#delete",
            desc: "delete of a stopped container removes it (state fails)",
            run: delete_stopped,
        },
        Case {
            section: "runtime.md#create",
            desc: "create with a duplicate id fails and keeps the first",
            run: duplicate_id,
        },
        Case {
            section: "runtime.md#create",
            desc: "config.json that is not JSON fails, nothing left",
            run: invalid_json,
        },
        Case {
            section: "config.md#specification-version",
            desc: "unknown ociVersion 9.9.9 fails, nothing left",
            run: unknown_version,
        },
        Case {
            section: "config.md#root",
            desc: "missing root.path fails, nothing left",
            run: missing_root_path,
        },
        Case {
            section: "runtime.md#create",
            desc: "missing bundle directory fails, nothing left",
            run: missing_bundle,
        },
    ]
}

fn created_state(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = waiting_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    let state = ctx.runtime.state(&id)?;
    ensure(
        state["status"] == "created",
        format!("status {} after create", state["status"]),
    )?;
    let pid = state["pid"].as_i64().unwrap_or(0);
    ensure(pid > 0, format!("pid {} is not positive", state["pid"]))?;
    ensure(pid_alive(pid), format!("pid {pid} is not a live process"))
}

fn create_does_not_start(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = waiting_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    ensure(
        !bundle.host().join("started").exists(),
        "user program ran during create",
    )?;
    start_ok(ctx, &id)?;
    ensure(
        poll(|| bundle.host().join("started").exists()),
        "user program did not run after start",
    )?;
    release(&bundle)
}

fn state_fields(ctx: &Ctx) -> CaseResult {
    let (mut bundle, id) = waiting_bundle(ctx)?;
    bundle.config["annotations"] = json!({ "org.opencontainers.conformance": "yes", "a.b": "c d" });
    bundle.write()?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    let state = ctx.runtime.state(&id)?;
    ensure(
        state["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        format!("ociVersion {}", state["ociVersion"]),
    )?;
    ensure(
        state["id"] == id.as_str(),
        format!("id {} instead of {id}", state["id"]),
    )?;
    ensure(
        state["status"] == "created",
        format!("status {}", state["status"]),
    )?;
    ensure(
        state["pid"].as_i64().is_some_and(|p| p > 0),
        format!("pid {}", state["pid"]),
    )?;
    let want_bundle = bundle.dir.display().to_string();
    ensure(
        state["bundle"] == want_bundle.as_str(),
        format!("bundle {} instead of {want_bundle}", state["bundle"]),
    )?;
    ensure(
        state["annotations"] == bundle.config["annotations"],
        format!(
            "annotations {} instead of {}",
            state["annotations"], bundle.config["annotations"]
        ),
    )
}

fn start_runs_program(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = waiting_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    start_ok(ctx, &id)?;
    ensure(
        poll(|| bundle.host().join("started").exists()),
        "user program did not run after start",
    )?;
    let status = ctx.runtime.status(&id)?;
    ensure(
        status == "running",
        format!("status {status} while the program runs"),
    )?;
    release(&bundle)?;
    ctx.runtime.wait_status(&id, "stopped")?;
    ensure(
        bundle.host().join("finished").exists(),
        "program did not finish",
    )
}

fn start_twice(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = waiting_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    start_ok(ctx, &id)?;
    let again = ctx.runtime.start(&id);
    ensure(!again.success(), "second start succeeded")?;
    let status = ctx.runtime.status(&id)?;
    ensure(
        status == "running",
        format!("status {status} after the refused start"),
    )?;
    release(&bundle)
}

fn start_unknown(ctx: &Ctx) -> CaseResult {
    let id = format!("{}-does-not-exist", ctx.tag);
    let out = ctx.runtime.start(&id);
    ensure(!out.success(), "start of an unknown id succeeded")?;
    ctx.runtime.assert_absent(&id).map_err(Into::into)
}

fn kill_created(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = waiting_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    let pid = ctx.runtime.state(&id)?["pid"].as_i64().unwrap_or(0);
    let out = ctx.runtime.kill(&id, "KILL");
    ensure(out.success(), format!("kill failed: {}", out.describe()))?;
    ctx.runtime.wait_status(&id, "stopped")?;
    ensure(poll(|| !pid_alive(pid)), format!("pid {pid} still alive"))?;
    ensure(
        !bundle.host().join("started").exists(),
        "user program ran after kill of a created container",
    )?;
    let del = ctx.runtime.delete(&id);
    ensure(
        del.success(),
        format!("delete after kill failed: {}", del.describe()),
    )?;
    ctx.runtime.assert_absent(&id).map_err(Into::into)
}

fn kill_running(ctx: &Ctx) -> CaseResult {
    let (mut bundle, id) = ctx.bundle()?;
    bundle.set_args(&[
        "/bin/sh",
        "-c",
        "trap 'echo term > /hostdir/got-term; exit 3' TERM; touch /hostdir/started; while true; do sleep 0.05; done",
    ]);
    bundle.write()?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    start_ok(ctx, &id)?;
    ensure(
        poll(|| bundle.host().join("started").exists()),
        "program did not start",
    )?;
    let out = ctx.runtime.kill(&id, "TERM");
    ensure(
        out.success(),
        format!("kill TERM failed: {}", out.describe()),
    )?;
    ctx.runtime.wait_status(&id, "stopped")?;
    ensure(
        bundle.host().join("got-term").exists(),
        "the TERM trap did not run",
    )
}

fn delete_running_refused(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = waiting_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    start_ok(ctx, &id)?;
    ensure(
        poll(|| bundle.host().join("started").exists()),
        "program did not start",
    )?;
    let pid = ctx.runtime.state(&id)?["pid"].as_i64().unwrap_or(0);
    let out = ctx.runtime.delete(&id);
    ensure(!out.success(), "delete of a running container succeeded")?;
    let state = ctx.runtime.state(&id)?;
    ensure(
        state["status"] == "running",
        format!("status {} after refused delete", state["status"]),
    )?;
    ensure(
        state["pid"].as_i64() == Some(pid) && pid_alive(pid),
        "process changed or died",
    )?;
    release(&bundle)?;
    ctx.runtime.wait_status(&id, "stopped")?;
    ensure(
        bundle.host().join("finished").exists(),
        "program was disturbed",
    )
}

fn delete_created(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = waiting_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    let pid = ctx.runtime.state(&id)?["pid"].as_i64().unwrap_or(0);
    let out = ctx.runtime.delete(&id);
    if !out.success() {
        return Err(format!("delete of a created container failed: {}", out.describe()).into());
    }
    ctx.runtime.assert_absent(&id)?;
    ensure(
        poll(|| !pid_alive(pid)),
        format!("pid {pid} still alive after delete"),
    )?;
    ensure(!bundle.host().join("started").exists(), "user program ran")
}

fn exit_means_stopped(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = waiting_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    start_ok(ctx, &id)?;
    release(&bundle)?;
    ensure(
        poll(|| bundle.host().join("finished").exists()),
        "program did not finish",
    )?;
    ctx.runtime.wait_status(&id, "stopped").map_err(Into::into)
}

fn delete_stopped(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = waiting_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    start_ok(ctx, &id)?;
    release(&bundle)?;
    ctx.runtime.wait_status(&id, "stopped")?;
    let out = ctx.runtime.delete(&id);
    ensure(out.success(), format!("delete failed: {}", out.describe()))?;
    ctx.runtime.assert_absent(&id).map_err(Into::into)
}

fn duplicate_id(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = waiting_bundle(ctx)?;
    let _g = ctx.guard(&id);
    create_ok(ctx, &bundle, &id)?;
    let pid = ctx.runtime.state(&id)?["pid"].clone();
    let (other, _) = waiting_bundle(ctx)?;
    let out = ctx.runtime.create(&other.dir, &id);
    ensure(!out.success(), "second create with the same id succeeded")?;
    let state = ctx.runtime.state(&id)?;
    ensure(
        state["status"] == "created" && state["pid"] == pid,
        format!("first container changed: {state}"),
    )?;
    ensure(
        state["bundle"] == bundle.dir.display().to_string().as_str(),
        "bundle of the first container changed",
    )
}

/// Create must fail for the bundle as written, and the runtime must keep nothing.
fn create_fails_cleanly(ctx: &Ctx, bundle: &crate::bundle::Bundle, id: &str) -> CaseResult {
    let _g = ctx.guard(id);
    let out = ctx.runtime.create(&bundle.dir, id);
    ensure(!out.success(), "create succeeded")?;
    ctx.runtime.assert_absent(id)?;
    ensure(!bundle.host().join("started").exists(), "user program ran")
}

fn invalid_json(ctx: &Ctx) -> CaseResult {
    let (bundle, id) = waiting_bundle(ctx)?;
    bundle.write_raw("{ \"ociVersion\": \"1.0.2\", \"process\": ")?;
    create_fails_cleanly(ctx, &bundle, &id)
}

fn unknown_version(ctx: &Ctx) -> CaseResult {
    let (mut bundle, id) = waiting_bundle(ctx)?;
    bundle.config["ociVersion"] = json!("9.9.9");
    bundle.write()?;
    create_fails_cleanly(ctx, &bundle, &id)
}

fn missing_root_path(ctx: &Ctx) -> CaseResult {
    let (mut bundle, id) = waiting_bundle(ctx)?;
    bundle.config["root"]
        .as_object_mut()
        .expect("root is an object")
        .remove("path");
    bundle.write()?;
    create_fails_cleanly(ctx, &bundle, &id)
}

fn missing_bundle(ctx: &Ctx) -> CaseResult {
    let id = format!("{}-nobundle", ctx.tag);
    let _g = ctx.guard(&id);
    let dir = ctx.work.join("no-such-bundle");
    let out = ctx.runtime.create(&dir, &id);
    ensure(!out.success(), "create succeeded")?;
    ctx.runtime.assert_absent(&id).map_err(Into::into)
}
