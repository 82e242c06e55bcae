//! config.md#root: the root filesystem.

use crate::suite::{Case, CaseResult, Ctx};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            section: "config.md#root",
            desc: "readonly root: / is ro and writes fail with EROFS",
            run: readonly,
        },
        Case {
            section: "config.md#root",
            desc: "writable root when readonly is false",
            run: writable,
        },
        Case {
            section: "config.md#root",
            desc: "relative root.path is resolved against the bundle",
            run: relative,
        },
        Case {
            section: "config.md#root",
            desc: "absolute root.path",
            run: absolute,
        },
    ]
}

fn readonly(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["root"]["readonly"] = json!(true);
    ctx.run_checks(&mut b, &id, &["root-readonly", "erofs:/etc/new-file"])
}

fn writable(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["root"]["readonly"] = json!(false);
    b.set_args(&[
        "/bin/sh",
        "-c",
        "echo written > /etc/written && /runtimetest root-readonly file:/etc/written=written",
    ]);
    b.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.run(&b.dir, &id);
    crate::suite::verdict(&b.stdout(), out.code(), &b.stderr())?;
    crate::suite::ensure(
        std::fs::read_to_string(b.rootfs().join("etc/written")).is_ok_and(|s| s == "written\n"),
        "the write did not land in the bundle's rootfs",
    )
}

fn relative(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    std::fs::rename(b.rootfs(), b.dir.join("alt-root")).map_err(|e| e.to_string())?;
    b.config["root"]["path"] = json!("./alt-root/");
    b.set_args(&["/runtimetest", "args"]);
    let text = serde_json::to_string_pretty(&b.config).map_err(|e| e.to_string())?;
    std::fs::write(b.dir.join("alt-root/config.json"), &text).map_err(|e| e.to_string())?;
    std::fs::write(b.dir.join("config.json"), &text).map_err(|e| e.to_string())?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.run(&b.dir, &id);
    crate::suite::verdict(&b.stdout(), out.code(), &b.stderr())
}

fn absolute(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["root"]["path"] = json!(b.rootfs().display().to_string());
    ctx.run_checks(&mut b, &id, &["args", "root-readonly"])
}
