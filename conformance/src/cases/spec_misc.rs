//! Rules of config.md and runtime-linux.md that apply to the whole document or
//! process: unknown properties, invalid values, inherited file descriptors,
//! time namespace offsets.

use crate::suite::{ensure, skip, Case, CaseResult, Ctx, NotPassed};
use serde_json::json;
use std::path::Path;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            section: "config.md#extensibility",
            desc: "unknown properties are ignored: the container runs",
            run: unknown_properties,
        },
        Case {
            section: "config.md#valid-values",
            desc: "an invalid value (namespace type) fails create, nothing left",
            run: invalid_value,
        },
        Case {
            section: "runtime-linux.md#file-descriptors",
            desc: "the process has only stdin, stdout and stderr open",
            run: only_stdio,
        },
        Case {
            section: "config-linux.md#offset-for-time-namespace",
            desc: "timeOffsets reach the new time namespace",
            run: time_offsets,
        },
    ]
}

fn unknown_properties(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["org.example.unknown"] = json!({"nested": [1, 2, 3]});
    b.config["process"]["org.example.unknown"] = json!("x");
    b.config["linux"]["org.example.unknown"] = json!(true);
    ctx.run_checks(&mut b, &id, &["args"])
}

fn invalid_value(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(json!({"type": "org.example.bogus"}));
    b.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.create(&b.dir, &id);
    ensure(
        !out.success(),
        "create succeeded with namespace type org.example.bogus",
    )?;
    ctx.runtime.assert_absent(&id).map_err(NotPassed::Fail)
}

fn only_stdio(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    ctx.run_checks(&mut b, &id, &["fds"])
}

fn time_offsets(ctx: &Ctx) -> CaseResult {
    if !Path::new("/proc/self/ns/time").exists() {
        return skip("kernel has no time namespaces");
    }
    let (mut b, id) = ctx.bundle()?;
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 86400, "nanosecs": 0},
        "boottime": {"secs": 172800, "nanosecs": 0}
    });
    b.set_args(&["/bin/cat", "/proc/self/timens_offsets"]);
    b.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.run(&b.dir, &id);
    ensure(out.success(), format!("run failed: {}", out.describe()))?;
    let text = b.stdout();
    let has = |clock: &str, secs: &str| {
        text.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() == 3 && f[0] == clock && f[1] == secs && f[2] == "0"
        })
    };
    ensure(
        has("monotonic", "86400") && has("boottime", "172800"),
        format!("/proc/self/timens_offsets: {text:?}"),
    )
}
