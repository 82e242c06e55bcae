//! POSIX hooks: all six kinds run at the right moment with the state on stdin;
//! timeouts and failures are handled as the runtime spec says.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

const KINDS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// A hook running `sh -c script` with PATH and the test's tag in its env.
fn hook(sb: &Sandbox, script: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", script],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", format!("{TAG_VAR}={}", sb.tag)],
    })
}

/// Where a hook of `kind` sees the host directory: startContainer runs inside
/// the container (after pivot_root), the others see the host's paths.
fn dir_for(sb: &Sandbox, kind: &str) -> String {
    if kind == "startContainer" {
        "/host".to_string()
    } else {
        sb.host.display().to_string()
    }
}

/// Every kind records its name in hooks.log and its stdin in <kind>.json.
fn recording_hooks(sb: &mut Sandbox) {
    for kind in KINDS {
        let d = dir_for(sb, kind);
        let h = hook(
            sb,
            &format!("cat > {d}/{kind}.json; env > {d}/{kind}.env; echo {kind} >> {d}/hooks.log"),
        );
        sb.bundle.set(&format!("/hooks/{kind}"), json!([h]));
    }
}

fn log(sb: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sb.host.join("hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn hook_state(sb: &Sandbox, kind: &str) -> Value {
    let p = sb.host.join(format!("{kind}.json"));
    let text =
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{kind} hook left no state ({e})"));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{kind} hook got invalid JSON on stdin ({e}): {text:?}"))
}

#[test]
fn all_six_kinds_run_in_order_with_the_state_on_stdin() {
    let mut sb = Sandbox::new("hk-order");
    recording_hooks(&mut sb);
    sb.bundle
        .sh("echo ran > /host/marker; while :; do sleep 1000 & wait $!; done");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    let bundle = sb.bundle.dir.canonicalize().unwrap().display().to_string();
    let pid;
    {
        let c = sb.created(&id);
        pid = c.pid();
        assert_eq!(
            log(&sb),
            ["prestart", "createRuntime", "createContainer"],
            "after create"
        );
        assert!(!sb.host.join("marker").exists());

        sb.berth(&["start", &id]).expect_ok();
        // startContainer runs before the program, poststart before start returns.
        assert_eq!(
            log(&sb),
            [
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart"
            ],
            "after start"
        );
        sb.wait_file(&sb.host.join("marker"), "ran");

        sb.berth(&["delete", "--force", &id]).expect_ok();
        assert_eq!(log(&sb), KINDS, "after delete");
    }
    base.assert_clean(&sb);

    let want_status = [
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("startContainer", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ];
    for (kind, status) in want_status {
        let st = hook_state(&sb, kind);
        assert_eq!(st["id"], id.as_str(), "{kind}: {st}");
        assert_eq!(st["bundle"], bundle.as_str(), "{kind}: {st}");
        assert_eq!(st["status"], status, "{kind}: {st}");
        assert!(st["ociVersion"].is_string(), "{kind}: {st}");
        if kind != "poststop" {
            assert_eq!(st["pid"], pid, "{kind} must get the init's host pid: {st}");
        }
    }
    // Hooks get exactly the env the config gives them.
    for kind in KINDS {
        let env = std::fs::read_to_string(sb.host.join(format!("{kind}.env"))).unwrap();
        assert!(
            env.contains(&format!("{TAG_VAR}={}", sb.tag)),
            "{kind}: {env}"
        );
        assert!(
            !env.contains("CARGO_"),
            "{kind} hook inherited berth's environment: {env}"
        );
    }
}

#[test]
fn hook_timeout_is_honoured() {
    let mut sb = Sandbox::new("hk-timeout");
    sb.bundle.sh("echo ran > /host/marker");
    // If the timeout were ignored the hook would succeed after 30 s and create would pass.
    let mut h = hook(&sb, "exec sleep 30");
    h["timeout"] = json!(1);
    sb.bundle.set("/hooks/createRuntime", json!([h]));
    let id = sb.id("c");
    let base = sb.baseline(&id);
    sb.create(&id).expect_fail(&["createRuntime", "timed out"]);
    base.assert_clean(&sb);
    assert!(!sb.host.join("marker").exists());
}

fn failing_creation_hook(kind: &str) {
    let mut sb = Sandbox::new("hk-fail");
    sb.bundle.sh("echo ran > /host/marker");
    sb.bundle.set(
        &format!("/hooks/{kind}"),
        json!([hook(&sb, "echo hook-said-no >&2; exit 7")]),
    );
    let id = sb.id("c");
    let base = sb.baseline(&id);
    sb.create(&id).expect_fail(&[kind, "hook-said-no"]);
    base.assert_clean(&sb);
    assert!(
        !sb.host.join("marker").exists(),
        "the program ran although a {kind} hook failed"
    );
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    failing_creation_hook("createRuntime");
}

#[test]
fn failing_prestart_hook_fails_create_and_leaves_nothing() {
    failing_creation_hook("prestart");
}

#[test]
fn failing_create_container_hook_fails_create_and_leaves_nothing() {
    failing_creation_hook("createContainer");
}

#[test]
fn failing_start_container_hook_fails_start_and_the_program_never_runs() {
    let mut sb = Sandbox::new("hk-failstart");
    sb.bundle.sh("echo ran > /host/marker");
    sb.bundle
        .set("/hooks/startContainer", json!([hook(&sb, "exit 3")]));
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.created(&id);
        sb.berth(&["start", &id]).expect_fail(&["startContainer"]);
        assert!(
            !sb.host.join("marker").exists(),
            "the program ran although startContainer failed"
        );
        sb.wait_status(&id, "stopped");
        sb.berth(&["delete", &id]).expect_ok();
    }
    base.assert_clean(&sb);
}

#[test]
fn failing_poststart_hook_is_only_a_warning() {
    let mut sb = Sandbox::new("hk-poststart");
    sb.bundle
        .sh("echo ran > /host/marker; while :; do sleep 1000 & wait $!; done");
    sb.bundle
        .set("/hooks/poststart", json!([hook(&sb, "exit 1")]));
    let id = sb.id("c");
    let _c = sb.created(&id);
    let o = sb.berth(&["start", &id]);
    o.expect_ok();
    assert!(
        o.stderr.contains("poststart"),
        "the failure should be reported as a warning: {o:?}"
    );
    sb.wait_file(&sb.host.join("marker"), "ran");
    assert_eq!(sb.status(&id), "running");
}

#[test]
fn failing_poststop_hook_is_only_a_warning() {
    let mut sb = Sandbox::new("hk-poststop");
    sb.bundle.sh("true");
    sb.bundle.set(
        "/hooks/poststop",
        json!([hook(
            &sb,
            &format!("echo poststop-ran > {}/poststop; exit 1", sb.host.display())
        )]),
    );
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.started(&id);
        sb.wait_status(&id, "stopped");
        let o = sb.berth(&["delete", &id]);
        o.expect_ok();
        assert!(
            o.stderr.contains("poststop"),
            "the failure should be reported as a warning: {o:?}"
        );
        assert!(
            Path::new(&sb.host.join("poststop")).exists(),
            "the poststop hook did not run"
        );
        assert!(sb.state(&id).is_none());
    }
    base.assert_clean(&sb);
}

/// Hooks run where runc runs them: prestart and createRuntime in the bundle
/// directory, createContainer in the rootfs (before pivot_root),
/// startContainer in the process's cwd; a startContainer hook without an env
/// of its own gets the process's (HOME included).
#[test]
fn hooks_cwd_and_start_container_env_as_runc() {
    let mut sb = Sandbox::new("hk-cwd");
    let h = sb.host.display().to_string();
    for (kind, dir) in [
        ("prestart", h.clone()),
        ("createRuntime", h.clone()),
        ("createContainer", h.clone()),
    ] {
        let hk = hook(&sb, &format!("pwd > {dir}/{kind}.cwd"));
        sb.bundle.set(&format!("/hooks/{kind}"), json!([hk]));
    }
    sb.bundle.set(
        "/hooks/startContainer",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "pwd > /host/startContainer.cwd; env > /host/startContainer.env"]}]),
    );
    sb.bundle.set(
        "/process/env",
        json!([
            "PATH=/bin",
            "ONE=two",
            "FOO=bar",
            format!("{TAG_VAR}={}", sb.tag)
        ]),
    );
    sb.bundle.set("/process/cwd", json!("/tmp"));
    sb.bundle.args(&["true"]);
    let id = sb.id("c");
    sb.bundle.save();
    let _c = sb.guard(&id);
    sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id])
        .expect_ok();
    let read =
        |f: &str| std::fs::read_to_string(sb.host.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let bundle = sb.bundle.dir.canonicalize().unwrap().display().to_string();
    assert_eq!(read("prestart.cwd").trim(), bundle);
    assert_eq!(read("createRuntime.cwd").trim(), bundle);
    assert_eq!(
        read("createContainer.cwd").trim(),
        format!("{bundle}/rootfs")
    );
    assert_eq!(read("startContainer.cwd").trim(), "/tmp");
    let env = read("startContainer.env");
    for kv in ["ONE=two", "FOO=bar", "PATH=/bin", "HOME=/"] {
        assert!(env.lines().any(|l| l == kv), "{kv} missing: {env}");
    }
}

/// A failing hook is named as runc names it ("error running KIND hook #N:").
#[test]
fn failing_hook_is_named_with_its_kind_and_index() {
    let mut sb = Sandbox::new("hk-index");
    sb.bundle.set(
        "/hooks/createRuntime",
        json!([{"path": "/bin/true"}, {"path": "/bin/false"}]),
    );
    let id = sb.id("c");
    let base = sb.baseline(&id);
    sb.create(&id)
        .expect_fail(&["error running createRuntime hook #1:"]);
    base.assert_clean(&sb);
}
