//! POSIX-platform hooks: each runs with the container state on stdin, its own
//! args and env, and an optional timeout (runtime-spec config.md#posix-platform-hooks).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

/// Where a kind of hook runs, as runc runs it: the directory (the bundle
/// for the runtime's hooks, the rootfs for createContainer; otherwise the
/// caller's) and the environment of a hook that sets none (startContainer
/// gets the process's).
#[derive(Debug, Default, Clone, Copy)]
pub struct Place<'a> {
    pub cwd: Option<&'a Path>,
    pub default_env: Option<&'a [String]>,
}

/// Run one hook (the `index`th of its kind) to completion.
pub fn run(hook: &Hook, state_json: &[u8], kind: &str, index: usize, place: Place) -> Result<()> {
    let path = hook.path().display().to_string();
    let err = |msg: String| Error::Hook {
        kind: kind.to_string(),
        index,
        path: path.clone(),
        msg,
    };
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    let env = match hook.env() {
        Some(e) if !e.is_empty() => e.as_slice(),
        _ => place.default_env.unwrap_or(&[]),
    };
    for kv in env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    if let Some(d) = place.cwd {
        cmd.current_dir(d);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| err(format!("start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state_json);
    }
    let mut out = child.stdout.take();
    let mut errp = child.stderr.take();
    let timeout = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(err(format!("wait: {e}"))),
        }
        if let Some(t) = timeout {
            if start.elapsed() >= t {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(format!("timed out after {}s", t.as_secs())));
            }
        }
        std::thread::sleep(Duration::from_millis(
            if start.elapsed() < Duration::from_millis(20) {
                1
            } else {
                5
            },
        ));
    };
    if !status.success() {
        let mut text = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut text);
        }
        if let Some(e) = errp.as_mut() {
            let _ = e.read_to_string(&mut text);
        }
        return Err(err(format!(
            "{status}{}{}",
            if text.trim().is_empty() { "" } else { ": " },
            text.trim()
        )));
    }
    Ok(())
}

/// Run every hook in order, stopping at the first failure.
pub fn run_all(
    hooks: Option<&Vec<Hook>>,
    state_json: &[u8],
    kind: &str,
    place: Place,
) -> Result<()> {
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        run(h, state_json, kind, i, place)?;
    }
    Ok(())
}

/// Run every hook; failures only produce warnings (poststart, poststop).
pub fn run_all_warn(hooks: Option<&Vec<Hook>>, state_json: &[u8], kind: &str) {
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        if let Err(e) = run(h, state_json, kind, i, Place::default()) {
            crate::logging::warn(&e.to_string());
        }
    }
}
