//! What `ps`, `logs`, `stop` and `rm` do with the containers `run` made.

use std::fs;
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{container_dir, containers_dir, load, remove_files, runtime_cmd, ContainerRecord};
use crate::store::Store;

/// What the runtime says about a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    /// Stopped (the runtime deleted it, or it is stopped); the exit status
    /// when known.
    Exited(i32),
    /// Neither the runtime nor an exit record knows it yet.
    Unknown,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Created => write!(f, "created"),
            Status::Running => write!(f, "running"),
            Status::Paused => write!(f, "paused"),
            Status::Exited(c) => write!(f, "exited ({c})"),
            Status::Unknown => write!(f, "unknown"),
        }
    }
}

pub(super) fn exit_record(store: &Store, name: &str) -> Option<i32> {
    fs::read_to_string(container_dir(store, name).join("exit"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// The container's status from `berth state` and the exit record.
pub fn status(store: &Store, rec: &ContainerRecord) -> Result<Status> {
    if let Some(c) = exit_record(store, &rec.name) {
        return Ok(Status::Exited(c));
    }
    let out = runtime_cmd(store, &rec.runtime)
        .args(["state", &rec.name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    if !out.status.success() {
        return Ok(Status::Unknown);
    }
    let state: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("runtime state: invalid JSON")?;
    Ok(match state["status"].as_str() {
        Some("created") | Some("creating") => Status::Created,
        Some("running") => Status::Running,
        Some("paused") => Status::Paused,
        _ => Status::Unknown,
    })
}

/// Every container `run` made, by name.
pub fn list(store: &Store) -> Result<Vec<ContainerRecord>> {
    let dir = containers_dir(store);
    let mut out = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    for e in rd {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if let Ok(rec) = load(store, &name) {
            out.push(rec);
        }
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// `ps`: one line per container.
pub fn ps(store: &Store, all: bool) -> Result<String> {
    let mut s = format!(
        "{:<20} {:<30} {:<30} {}\n",
        "NAME", "IMAGE", "COMMAND", "STATUS"
    );
    for rec in list(store)? {
        let st = status(store, &rec)?;
        if !all && matches!(st, Status::Exited(_) | Status::Unknown) {
            continue;
        }
        let mut cmd = rec.command.join(" ");
        if cmd.len() > 30 {
            cmd.truncate(27);
            cmd.push_str("...");
        }
        s.push_str(&format!(
            "{:<20} {:<30} {:<30} {st}\n",
            rec.name, rec.image, cmd
        ));
    }
    Ok(s)
}

/// `logs`: the log of a detached container; with `follow`, until it stops.
pub fn logs(store: &Store, name: &str, follow: bool, out: &mut dyn Write) -> Result<()> {
    let rec = load(store, name)?;
    if !rec.detach {
        bail!("container {name} ran in the foreground; its output went to the terminal");
    }
    let path = container_dir(store, name).join("log");
    let mut f = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
    };
    let mut buf = [0u8; 65536];
    loop {
        let n = f.read(&mut buf)?;
        if n > 0 {
            out.write_all(&buf[..n])?;
            continue;
        }
        out.flush()?;
        if !follow || matches!(status(store, &rec)?, Status::Exited(_)) {
            // One more read: output written just before the exit.
            let n = f.read(&mut buf)?;
            out.write_all(&buf[..n])?;
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal_arg(s: &str) -> String {
    s.trim_start_matches("SIG").to_string()
}

/// `stop`: the image's stop signal, then SIGKILL after `timeout`; waits
/// until the container has stopped.
pub fn stop(store: &Store, name: &str, timeout: Duration) -> Result<Status> {
    let rec = load(store, name)?;
    let st = status(store, &rec)?;
    if matches!(st, Status::Exited(_)) {
        return Ok(st);
    }
    if st == Status::Paused {
        let _ = runtime_cmd(store, &rec.runtime)
            .args(["resume", name])
            .status();
    }
    let kill = |sig: &str| {
        runtime_cmd(store, &rec.runtime)
            .args(["kill", name, &signal_arg(sig)])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
    };
    let _ = kill(&rec.stop_signal);
    let wait = |limit: Duration| -> Result<Option<Status>> {
        let deadline = Instant::now() + limit;
        loop {
            let st = status(store, &rec)?;
            if matches!(st, Status::Exited(_)) {
                return Ok(Some(st));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    if let Some(st) = wait(timeout)? {
        return Ok(st);
    }
    let _ = kill("KILL");
    match wait(Duration::from_secs(30))? {
        Some(st) => Ok(st),
        None => bail!("container {name} did not stop after SIGKILL"),
    }
}

pub(super) fn force_delete(store: &Store, rec: &ContainerRecord) -> Result<()> {
    let out = runtime_cmd(store, &rec.runtime)
        .args(["delete", "--force", &rec.name])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !err.contains("does not exist") && !err.contains("not exist") {
        bail!(
            "{} delete --force {}: {}",
            rec.runtime.display(),
            rec.name,
            err.trim()
        );
    }
    Ok(())
}

/// `rm`: remove a stopped container and its R/W layer; `force` kills a
/// running one first.
pub fn rm(store: &Store, name: &str, force: bool) -> Result<()> {
    let rec = load(store, name)?;
    let st = status(store, &rec)?;
    if !matches!(st, Status::Exited(_) | Status::Unknown) {
        if !force {
            bail!("container {name} is {st}: stop it first or use rm -f");
        }
        force_delete(store, &rec)?;
        // The monitor records the exit when `berth run` returns, and removes
        // a `--rm` container itself: wait for it rather than race it.
        let cdir = container_dir(store, name);
        let done = || {
            if rec.rm {
                !cdir.exists()
            } else {
                exit_record(store, name).is_some()
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while rec.detach && !done() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !cdir.exists() {
            return Ok(());
        }
    } else {
        force_delete(store, &rec)?;
    }
    remove_files(store, name)
}
