//! `exec [-i] [-t] [-e K=V] [-w DIR] [-u USER] NAME CMD...`: a new process in
//! a running container, through `berth exec` (which makes and relays the pty
//! for `-t` itself).

use std::process::Stdio;

use anyhow::{bail, Context, Result};

use super::control::{status, Status};
use super::{container_dir, exit_code, load, runtime_cmd};
use crate::store::Store;

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub interactive: bool,
    pub tty: bool,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub detach: bool,
}

/// Run `args` in the container; the exit status of the process.
pub fn exec(store: &Store, name: &str, args: &[String], opts: &ExecOptions) -> Result<i32> {
    let rec = load(store, name)?;
    if args.is_empty() {
        bail!("exec: no command given");
    }
    match status(store, &rec)? {
        Status::Running => {}
        Status::Paused => bail!("container {name} is paused, unpause it first"),
        st => bail!("container {name} is not running ({st})"),
    }
    let mut cmd = runtime_cmd(store, &rec.runtime);
    cmd.arg("exec");
    if opts.tty {
        cmd.arg("--tty");
    }
    if opts.detach {
        cmd.arg("--detach");
    }
    for e in &opts.env {
        if e.split('=').next().is_none_or(str::is_empty) {
            bail!("exec -e {e:?}: expected KEY=VALUE");
        }
        let kv = if e.contains('=') {
            e.clone()
        } else {
            match std::env::var(e) {
                Ok(v) => format!("{e}={v}"),
                Err(_) => continue,
            }
        };
        cmd.arg("--env").arg(kv);
    }
    if let Some(w) = &opts.workdir {
        if !w.starts_with('/') {
            bail!("exec -w {w}: the working directory must be an absolute path");
        }
        cmd.arg("--cwd").arg(w);
    }
    if let Some(u) = &opts.user {
        let rootfs = container_dir(store, &rec.id).join("bundle/rootfs");
        let user =
            crate::config_gen::resolve_user(u, &rootfs).with_context(|| format!("exec -u {u}"))?;
        cmd.arg("--user").arg(format!("{}:{}", user.uid, user.gid));
        for g in user.additional_gids {
            cmd.arg("--additional-gids").arg(g.to_string());
        }
    }
    cmd.arg(&rec.id).args(args);
    if !opts.interactive {
        cmd.stdin(Stdio::null());
    }
    let st = cmd
        .status()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    Ok(exit_code(st))
}
