//! Records the commit berth is built from, for `berth --version` (runc prints
//! one too; outside a git checkout the line says "unknown"), and lays out a
//! release binary's code in the order the runtime first calls it.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The release binary's functions are placed in the order of
/// `symbol-order.txt`: the functions create, start, run, exec, kill and delete
/// call, in the order they are first called (written by
/// scripts/symbol-order.sh). A command then touches a few hundred contiguous
/// kilobytes of code instead of pages spread over the whole text, which is
/// most of its resident memory and of its page faults. Names that no longer
/// exist are skipped, so a stale list only costs locality. The linker is
/// rust-lld, the default for this target.
fn order_functions() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let order = std::path::Path::new(&manifest).join("symbol-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let target = std::env::var("TARGET").unwrap_or_default();
    if release && target == "x86_64-unknown-linux-gnu" && order.exists() {
        println!(
            "cargo:rustc-link-arg-bin=berth=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=berth=-Wl,--no-warn-symbol-ordering");
    }
}

fn main() {
    order_functions();
    let commit = git(&["describe", "--always", "--dirty", "--abbrev=12"])
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BERTH_COMMIT={commit}");
    // Rebuilt when HEAD moves (a commit, a checkout) or the index changes (dirty).
    for what in ["HEAD", "index"] {
        if let Some(p) = git(&["rev-parse", "--git-path", what]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &r]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
