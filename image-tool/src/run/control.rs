//! What `ps`, `logs`, `stop`, `kill`, `wait`, `pause`, `unpause`, `rename`,
//! `port`, `restart` and `rm` do with the containers `create` made.

use std::fs;
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::start::{is_supervised, start_record, StartOptions};
use super::{
    config::signal_name, container_dir, containers_dir, load, load_id, names_dir, now,
    remove_files, run_state, runtime_cmd, save, validate_container_name, ContainerRecord,
};
use crate::store::Store;

/// A container's status, docker's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Made and never started (or its start failed).
    Created,
    /// A run is being set up or torn down.
    Starting,
    Running,
    Paused,
    /// Stopped, with the exit status of its last run.
    Exited(i32),
}

impl Status {
    /// docker's `State.Status` word.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Exited(_) => "exited",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Exited(c) => write!(f, "exited ({c})"),
            s => f.write_str(s.word()),
        }
    }
}

/// The runtime's view: `Some(status word, pid)` when it knows the container.
pub(super) fn runtime_state(store: &Store, rec: &ContainerRecord) -> Result<Option<(String, i32)>> {
    let out = runtime_cmd(store, &rec.runtime)
        .args(["state", &rec.id])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    if !out.status.success() {
        return Ok(None);
    }
    let state: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("runtime state: invalid JSON")?;
    Ok(Some((
        state["status"].as_str().unwrap_or("").to_string(),
        state["pid"].as_i64().unwrap_or(0) as i32,
    )))
}

/// The container's status from the runtime, its lock and its last run.
pub fn status(store: &Store, rec: &ContainerRecord) -> Result<Status> {
    let supervised = is_supervised(store, rec);
    let last = run_state(store, &rec.id);
    let exited = || Status::Exited(last.exit_code.unwrap_or(255));
    Ok(match runtime_state(store, rec)?.map(|s| s.0) {
        Some(s) if s == "running" => Status::Running,
        Some(s) if s == "paused" => Status::Paused,
        Some(s) if s == "created" || s == "creating" => Status::Starting,
        // Stopped but not deleted yet: its supervisor is tearing it down.
        Some(_) if supervised => Status::Running,
        Some(_) => exited(),
        None if supervised => Status::Starting,
        None if last.exit_code.is_some() => exited(),
        None if last.started_at.is_none() || last.error.is_some() => Status::Created,
        // Started, never recorded an end and nobody supervises it: its
        // supervisor died.
        None => exited(),
    })
}

/// Every container, oldest first.
pub fn list(store: &Store) -> Result<Vec<ContainerRecord>> {
    let dir = containers_dir(store);
    let mut out = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    for e in rd {
        let id = e?.file_name().to_string_lossy().into_owned();
        if id.starts_with('.') {
            continue;
        }
        if let Ok(rec) = load_id(store, &id) {
            out.push(rec);
        }
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// docker's human durations ("5 seconds", "About a minute", "3 hours").
pub(super) fn human_duration(secs: u64) -> String {
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s if s < 14 * 86400 => format!("{} days", s / 86400),
        s if s < 60 * 86400 => format!("{} weeks", s / (7 * 86400)),
        s if s < 730 * 86400 => format!("{} months", s / (30 * 86400)),
        s => format!("{} years", s / (365 * 86400)),
    }
}

/// docker's STATUS column.
fn status_text(store: &Store, rec: &ContainerRecord, st: Status) -> String {
    let last = run_state(store, &rec.id);
    let since = |t: Option<u64>| human_duration(now().saturating_sub(t.unwrap_or(rec.created)));
    match st {
        Status::Created => "Created".into(),
        Status::Starting => "Starting".into(),
        Status::Running => format!("Up {}", since(last.started_at)),
        Status::Paused => format!("Up {} (Paused)", since(last.started_at)),
        Status::Exited(c) => format!("Exited ({c}) {} ago", since(last.finished_at)),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// `ps`: docker's columns; running containers, or all with `all`.
pub fn ps(store: &Store, all: bool) -> Result<String> {
    let mut rows = vec![[
        "CONTAINER ID".to_string(),
        "IMAGE".into(),
        "COMMAND".into(),
        "CREATED".into(),
        "STATUS".into(),
        "PORTS".into(),
        "NAMES".into(),
    ]];
    for rec in list(store)? {
        let st = status(store, &rec)?;
        if !all && !matches!(st, Status::Running | Status::Paused) {
            continue;
        }
        // docker shows the ports of running containers only.
        let ports: Vec<String> = match st {
            Status::Running | Status::Paused => rec.ports.iter().map(|p| p.to_string()).collect(),
            _ => Vec::new(),
        };
        rows.push([
            rec.id[..12].to_string(),
            rec.image.clone(),
            format!("\"{}\"", truncate(&rec.command.join(" "), 20)),
            format!("{} ago", human_duration(now().saturating_sub(rec.created))),
            status_text(store, &rec, st),
            ports.join(", "),
            rec.name.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i == 6 {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    Ok(s)
}

/// `logs`: the output of the container's runs (terminal runs excepted); with `follow`,
/// until it stops.
pub fn logs(store: &Store, name: &str, follow: bool, out: &mut dyn Write) -> Result<()> {
    let rec = load(store, name)?;
    let path = container_dir(store, &rec.id).join("log");
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
        if !follow || matches!(status(store, &rec)?, Status::Exited(_) | Status::Created) {
            // One more read: output written just before the exit.
            let n = f.read(&mut buf)?;
            out.write_all(&buf[..n])?;
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn runtime_kill(store: &Store, rec: &ContainerRecord, sig: &str) -> Result<()> {
    let out = runtime_cmd(store, &rec.runtime)
        .args(["kill", &rec.id, sig])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    if !out.status.success() {
        bail!(
            "kill {}: {}",
            rec.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Poll until the container has stopped (its run fully torn down).
fn wait_stopped(store: &Store, rec: &ContainerRecord, limit: Duration) -> Result<Option<Status>> {
    let deadline = Instant::now() + limit;
    loop {
        let st = status(store, rec)?;
        if matches!(st, Status::Exited(_) | Status::Created) {
            return Ok(Some(st));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `stop`: the stop signal, then SIGKILL after `timeout`; waits until the
/// container has stopped.
pub fn stop(store: &Store, name: &str, timeout: Duration) -> Result<Status> {
    let rec = load(store, name)?;
    let st = status(store, &rec)?;
    if matches!(st, Status::Exited(_) | Status::Created) {
        return Ok(st);
    }
    if st == Status::Paused {
        let _ = runtime_cmd(store, &rec.runtime)
            .args(["resume", &rec.id])
            .status();
    }
    let _ = runtime_kill(store, &rec, &rec.stop_signal);
    if let Some(st) = wait_stopped(store, &rec, timeout)? {
        return Ok(st);
    }
    let _ = runtime_kill(store, &rec, "SIGKILL");
    match wait_stopped(store, &rec, Duration::from_secs(30))? {
        Some(st) => Ok(st),
        None => bail!("container {name} did not stop after SIGKILL"),
    }
}

/// `restart`: stop (if running), then start detached.
pub fn restart(store: &Store, name: &str, timeout: Duration) -> Result<()> {
    stop(store, name, timeout)?;
    let rec = load(store, name)?;
    start_record(store, &rec, &StartOptions::default())?;
    Ok(())
}

/// `kill -s SIGNAL`: signal a running container's init.
pub fn kill(store: &Store, name: &str, signal: &str) -> Result<()> {
    let sig = signal_name(signal)?;
    let rec = load(store, name)?;
    let st = status(store, &rec)?;
    if !matches!(st, Status::Running | Status::Paused) {
        bail!("container {name} is not running ({st})");
    }
    runtime_kill(store, &rec, &sig)
}

/// `wait`: block until the container stops; its exit status.
pub fn wait(store: &Store, name: &str) -> Result<i32> {
    let rec = load(store, name)?;
    loop {
        match status(store, &rec) {
            Ok(Status::Exited(c)) => return Ok(c),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
        if !container_dir(store, &rec.id).exists() {
            bail!("container {name} was removed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn freeze(store: &Store, name: &str, verb: &str, want: Status) -> Result<()> {
    let rec = load(store, name)?;
    let st = status(store, &rec)?;
    if st != want {
        bail!("container {name} is {st}");
    }
    let out = runtime_cmd(store, &rec.runtime)
        .args([verb, &rec.id])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    if !out.status.success() {
        bail!(
            "{verb} {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `pause`: freeze every process of a running container.
pub fn pause(store: &Store, name: &str) -> Result<()> {
    freeze(store, name, "pause", Status::Running)
}

/// `unpause`: thaw a paused container.
pub fn unpause(store: &Store, name: &str) -> Result<()> {
    freeze(store, name, "resume", Status::Paused)
}

/// `rename OLD NEW`: a new name (peers' /etc/hosts follow).
pub fn rename(store: &Store, old: &str, new: &str) -> Result<()> {
    validate_container_name(new)?;
    let mut rec = load(store, old)?;
    let link = names_dir(store).join(new);
    if let Err(e) = std::os::unix::fs::symlink(&rec.id, &link) {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            bail!("a container named {new} already exists");
        }
        return Err(e).with_context(|| format!("create {}", link.display()));
    }
    let old_name = std::mem::replace(&mut rec.name, new.to_string());
    if let Err(e) = save(store, &rec) {
        let _ = fs::remove_file(&link);
        return Err(e);
    }
    let _ = fs::remove_file(names_dir(store).join(&old_name));
    crate::net::rename(store, &rec.id, &rec.name, &rec.hostname)?;
    Ok(())
}

/// `port NAME [PORT[/PROTO]]`: the published ports, docker's lines.
pub fn port(store: &Store, name: &str, which: Option<&str>) -> Result<String> {
    let rec = load(store, name)?;
    let mut s = String::new();
    for p in &rec.ports {
        if let Some(w) = which {
            let (num, proto) = w.split_once('/').unwrap_or((w, "tcp"));
            if num != p.container_port.to_string() || proto != p.protocol.to_string() {
                continue;
            }
            s.push_str(&format!("{}\n", p.host_side()));
        } else {
            s.push_str(&format!("{} -> {}\n", p.container_side(), p.host_side()));
        }
    }
    if s.is_empty() {
        if let Some(w) = which {
            bail!("no public port '{w}' published for {name}");
        }
    }
    Ok(s)
}

pub(super) fn force_delete(store: &Store, rec: &ContainerRecord) -> Result<()> {
    let out = runtime_cmd(store, &rec.runtime)
        .args(["delete", "--force", &rec.id])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !err.contains("not exist") && !err.contains("not found") {
        bail!(
            "{} delete --force {}: {}",
            rec.runtime.display(),
            rec.name,
            err.trim()
        );
    }
    Ok(())
}

/// `rm`: remove a stopped container, its R/W layer and its network state;
/// `force` kills a running one first.
pub fn rm(store: &Store, name: &str, force: bool) -> Result<()> {
    let rec = load(store, name)?;
    let st = status(store, &rec)?;
    if matches!(st, Status::Running | Status::Paused | Status::Starting) {
        if !force {
            bail!("container {name} is {st}: stop it first or use rm -f");
        }
        force_delete(store, &rec)?;
        // Its supervisor records the exit, tears the network down and, for a
        // --rm container, removes it: wait for it rather than race it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while is_supervised(store, &rec) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !container_dir(store, &rec.id).exists() {
            return Ok(());
        }
        if is_supervised(store, &rec) {
            bail!("container {name}: its supervisor did not finish within 20 s");
        }
    }
    force_delete(store, &rec)?;
    // The network of a run whose supervisor died.
    crate::net::detach_stale(store, &rec.id)
        .with_context(|| format!("container {name}: network teardown"))?;
    remove_files(store, &rec)
}
