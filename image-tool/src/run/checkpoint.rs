//! `checkpoint` and `restore` of a container, podman's `container
//! checkpoint/restore` on berth's pieces: `berth checkpoint` writes CRIU's
//! images into `<store>/containers/<id>/checkpoint/`; without
//! `--leave-running` the container then stops (its run ends as a kill
//! would end it, its network is detached). `restore` starts a run whose
//! supervisor (the same monitor as a detached `start`) attaches the network
//! again and runs `berth restore` instead of `berth run`: the processes go
//! on where they were, their output again to the container's log. A
//! successful restore consumes the checkpoint, as podman's does.
//!
//! CRIU must be on PATH (or next to the runtime's own search: `berth` runs
//! `criu`; scripts/criu.sh builds one).

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::control::{status, Status};
use super::start::{is_supervised, start_detached, Launch};
use super::{container_dir, load, runtime_cmd, ContainerRecord};
use crate::store::Store;

/// Where a container's checkpoint lives.
pub(super) fn images_dir(store: &Store, id: &str) -> PathBuf {
    container_dir(store, id).join("checkpoint")
}

/// Whether the container has a checkpoint to restore.
pub fn has_checkpoint(store: &Store, id: &str) -> bool {
    images_dir(store, id).join("inventory.img").is_file()
}

/// Flags of `checkpoint` (podman's names).
#[derive(clap::Args, Debug, Clone)]
pub struct CheckpointArgs {
    /// Keep the container running after the checkpoint.
    #[arg(short = 'R', long = "leave-running")]
    pub leave_running: bool,
    /// Checkpoint established TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Checkpoint file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Flags of `restore`.
#[derive(clap::Args, Debug, Clone)]
pub struct RestoreArgs {
    /// Restore established TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Restore file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

fn refuse_terminal(rec: &ContainerRecord, verb: &str) -> Result<()> {
    if rec.tty {
        bail!(
            "container {} has a terminal (-t): {verb} of a terminal container is not supported",
            rec.name
        );
    }
    Ok(())
}

/// `checkpoint [-R] [--tcp-established] [--file-locks] NAME...`.
pub fn checkpoint(store: &Store, a: &CheckpointArgs) -> Result<i32> {
    for name in &a.names {
        checkpoint_one(store, name, a)?;
        println!("{name}");
    }
    Ok(0)
}

fn checkpoint_one(store: &Store, name: &str, a: &CheckpointArgs) -> Result<()> {
    let rec = load(store, name)?;
    refuse_terminal(&rec, "checkpoint")?;
    if status(store, &rec)? != Status::Running {
        bail!("container {name} is not running");
    }
    let images = images_dir(store, &rec.id);
    match fs::remove_dir_all(&images) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", images.display())),
    }
    let mut cmd = runtime_cmd(store, &rec.runtime);
    cmd.arg("checkpoint")
        .arg("--image-path")
        .arg(&images)
        .arg("--work-path")
        .arg(&images);
    for (on, flag) in [
        (a.leave_running, "--leave-running"),
        (a.tcp_established, "--tcp-established"),
        (a.file_locks, "--file-locks"),
    ] {
        if on {
            cmd.arg(flag);
        }
    }
    let out = cmd
        .arg(&rec.id)
        .output()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(&images);
        bail!(
            "checkpoint {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if !a.leave_running {
        // The run ends now: wait until its supervisor has recorded it and
        // detached the network, so the container can be restored at once.
        let deadline = Instant::now() + Duration::from_secs(30);
        while is_supervised(store, &rec) {
            if Instant::now() >= deadline {
                bail!("container {name}: its run did not end after the checkpoint");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// `restore [--tcp-established] [--file-locks] NAME...`.
pub fn restore(store: &Store, a: &RestoreArgs) -> Result<i32> {
    for name in &a.names {
        restore_one(store, name, a)?;
        println!("{name}");
    }
    Ok(0)
}

fn restore_one(store: &Store, name: &str, a: &RestoreArgs) -> Result<()> {
    let rec = load(store, name)?;
    refuse_terminal(&rec, "restore")?;
    match status(store, &rec)? {
        Status::Created | Status::Exited(_) => {}
        s => bail!(
            "container {name} is {}: stop it before restoring it",
            s.word()
        ),
    }
    if !has_checkpoint(store, &rec.id) {
        bail!("container {name} has no checkpoint (make one with: berth-image checkpoint {name})");
    }
    let mut flags = Vec::new();
    if a.tcp_established {
        flags.push("--tcp-established".to_string());
    }
    if a.file_locks {
        flags.push("--file-locks".to_string());
    }
    start_detached(store, &rec, &Launch::Restore(flags))
        .with_context(|| format!("restore {name}"))?;
    if status(store, &rec)? != Status::Running {
        // The runtime's error went to the container's log with its output.
        bail!(
            "restore {name} failed: {}",
            runtime_error(store, &rec).unwrap_or_else(|| "see berth-image logs".into())
        );
    }
    let images = images_dir(store, &rec.id);
    fs::remove_dir_all(&images).with_context(|| format!("remove {}", images.display()))
}

/// The last error line the runtime wrote to the container's log.
fn runtime_error(store: &Store, rec: &ContainerRecord) -> Option<String> {
    let log = fs::read_to_string(container_dir(store, &rec.id).join("log")).ok()?;
    log.lines()
        .rev()
        .find_map(|l| l.strip_prefix("berth: "))
        .map(str::to_string)
}
