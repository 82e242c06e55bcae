//! Every conformance case, grouped by spec area.

mod devices;
mod exec;
mod hooks;
mod lifecycle;
mod mounts;
mod namespaces;
mod process;
mod resources;
mod root;
mod seccomp;
mod spec_misc;

use crate::bundle::Bundle;
use crate::suite::{Case, Ctx, NotPassed};

pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(lifecycle::cases());
    cases.extend(hooks::cases());
    cases.extend(process::cases());
    cases.extend(root::cases());
    cases.extend(mounts::cases());
    cases.extend(namespaces::cases());
    cases.extend(devices::cases());
    cases.extend(seccomp::cases());
    cases.extend(exec::cases());
    cases.extend(resources::cases());
    cases.extend(spec_misc::cases());
    cases
}

/// Shell run by containers that must stay alive until the runner creates host/exit.
/// It records that the user program started by creating host/started.
pub const WAIT_FOR_EXIT: &str =
    "touch /hostdir/started; while [ ! -e /hostdir/exit ]; do sleep 0.05; done; echo done > /hostdir/finished";

/// A bundle whose process runs [`WAIT_FOR_EXIT`].
pub fn waiting_bundle(ctx: &Ctx) -> Result<(Bundle, String), NotPassed> {
    let (mut bundle, id) = ctx.bundle()?;
    bundle.set_args(&["/bin/sh", "-c", WAIT_FOR_EXIT]);
    bundle.write()?;
    Ok((bundle, id))
}

/// Lets a [`WAIT_FOR_EXIT`] process finish.
pub fn release(bundle: &Bundle) -> Result<(), NotPassed> {
    std::fs::write(bundle.host().join("exit"), "")
        .map_err(|e| NotPassed::Fail(format!("write exit marker: {e}")))
}

/// `create` that must succeed.
pub fn create_ok(ctx: &Ctx, bundle: &Bundle, id: &str) -> Result<(), NotPassed> {
    let out = ctx.runtime.create(&bundle.dir, id);
    if out.success() {
        Ok(())
    } else {
        Err(NotPassed::Fail(format!(
            "create failed: {}",
            out.describe()
        )))
    }
}

/// `start` that must succeed.
pub fn start_ok(ctx: &Ctx, id: &str) -> Result<(), NotPassed> {
    let out = ctx.runtime.start(id);
    if out.success() {
        Ok(())
    } else {
        Err(NotPassed::Fail(format!("start failed: {}", out.describe())))
    }
}

pub fn pid_alive(pid: i64) -> bool {
    // A zombie has exited: only count processes that are not in state Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}
