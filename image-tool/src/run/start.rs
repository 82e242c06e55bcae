//! `start`: run a created or stopped container on its kept R/W layer, attached
//! (this process supervises it, the container's stdio is ours) or detached (a
//! monitor process supervises it, output to its log).
//!
//! One run, supervised: take the container's lock, attach its network, `berth
//! run --keep`, read whether the memory cgroup OOM-killed it, `berth delete`,
//! detach the network, record the exit status (and remove the container with
//! `--rm`). The lock tells others a run is in progress; when its holder dies
//! the network attachment becomes stale and the next start cleans it up.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::fs::FlockOperation;

use super::control::{force_delete, status, Status};
use super::{
    container_dir, exit_code, load, network, now, remove_files, runtime_cmd, save_run_state, tty,
    ContainerRecord, RunState,
};
use crate::store::Store;

/// What a supervised run starts: the container from its bundle, or its
/// processes from its checkpoint (`berth-image restore`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Launch {
    #[default]
    Fresh,
    /// `berth restore` with these extra flags (`--tcp-established`, ...).
    Restore(Vec<String>),
}

/// Tells the monitor to restore instead of run: the restore flags, one per line.
const RESTORE_ENV: &str = "BERTH_IMAGE_MONITOR_RESTORE";

/// How `start` runs the container.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Stay attached: the container's output is ours, our status is its.
    pub attach: bool,
    /// Connect our stdin to it (`-i`).
    pub interactive: bool,
}

/// `start [-a] [-i] NAME`.
pub fn start(store: &Store, name: &str, opts: &StartOptions) -> Result<i32> {
    let rec = load(store, name)?;
    start_record(store, &rec, opts)
}

pub(super) fn start_record(
    store: &Store,
    rec: &ContainerRecord,
    opts: &StartOptions,
) -> Result<i32> {
    match status(store, rec)? {
        Status::Running | Status::Paused => {
            if opts.attach {
                bail!(
                    "container {} is already running (attach to it is not supported)",
                    rec.name
                );
            }
            return Ok(0);
        }
        Status::Starting => bail!("container {} is being started or stopped", rec.name),
        _ => {}
    }
    if opts.attach {
        let stdin = if opts.interactive || rec.interactive {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        return supervise(store, rec, Io::Attached { stdin }, None, &Launch::Fresh);
    }
    if rec.tty {
        bail!(
            "container {} has a terminal (-t): start it with -a",
            rec.name
        );
    }
    start_detached(store, rec, &Launch::Fresh)
}

/// Start a run under a monitor and return once it runs (or has already
/// ended).
pub(super) fn start_detached(store: &Store, rec: &ContainerRecord, launch: &Launch) -> Result<i32> {
    let mut report = spawn_monitor(store, rec, launch)?;
    // Wait until the runtime knows the container, or the monitor reports its
    // end (a short-lived container may be gone before it is seen).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(r) = monitor_report(&mut report)? {
            match r {
                Report::Exit(code) => {
                    eprintln!(
                        "berth-image: container {} exited at once with status {code}",
                        rec.name
                    );
                    return Ok(0);
                }
                Report::Error(msg) => bail!("start {}: {msg}", rec.name),
            }
        }
        match status(store, rec)? {
            Status::Running | Status::Paused => return Ok(0),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => bail!("container {} did not start within 30 s", rec.name),
        }
    }
}

/// Where a supervised run's stdio goes.
enum Io {
    Attached { stdin: Stdio },
    Log(fs::File),
}

/// The container's lock file (held for the whole of a run).
pub(super) fn lock_path(store: &Store, rec: &ContainerRecord) -> std::path::PathBuf {
    container_dir(store, &rec.id).join("lock")
}

/// Whether a run of the container is being supervised right now.
pub(super) fn is_supervised(store: &Store, rec: &ContainerRecord) -> bool {
    let Ok(f) = fs::File::open(lock_path(store, rec)) else {
        return false;
    };
    matches!(
        rustix::fs::flock(&f, FlockOperation::NonBlockingLockShared),
        Err(rustix::io::Errno::WOULDBLOCK)
    )
}

/// The number of OOM kills in the container's memory cgroup (it still
/// exists: the runtime keeps a stopped container until `delete`).
fn oom_kills(rec: &ContainerRecord) -> u64 {
    let Ok(mode) = berth_cgroups::detect() else {
        return 0;
    };
    let Ok(mgr) = berth_cgroups::new_manager(None, &rec.id, mode) else {
        return 0;
    };
    let paths = mgr.paths();
    let file = match paths.get("memory") {
        Some(d) => d.join("memory.oom_control"),
        None => match paths.get("") {
            Some(d) => d.join("memory.events"),
            None => return 0,
        },
    };
    fs::read_to_string(file)
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// One run of the container, from lock to exit record. Returns its status.
fn supervise(
    store: &Store,
    rec: &ContainerRecord,
    io: Io,
    report: Option<fs::File>,
    launch: &Launch,
) -> Result<i32> {
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(store, rec))
        .context("open the container's lock")?;
    rustix::fs::flock(&lock, FlockOperation::LockExclusive).context("lock the container")?;
    let detached = matches!(io, Io::Log(_));
    let mut state = RunState {
        started_at: Some(now()),
        detached,
        ..RunState::default()
    };
    save_run_state(store, &rec.id, &state)?;
    let attached = match network::setup(store, rec) {
        Ok(a) => a,
        Err(e) => {
            state.error = Some(format!("{e:#}"));
            save_run_state(store, &rec.id, &state)?;
            if let Some(mut r) = report {
                let _ = writeln!(r, "error {e:#}");
            }
            return Err(e);
        }
    };
    // The runtime state of a run whose supervisor died.
    let _ = force_delete(store, rec);
    let bundle = container_dir(store, &rec.id).join("bundle");
    let ran = match io {
        Io::Attached { .. } if rec.tty => tty::run_with_terminal(store, rec),
        Io::Attached { stdin } => match open_log(store, rec) {
            Ok(log) => run_keep(store, rec, &bundle, stdin, Output::Tee(log), launch),
            Err(e) => Err(e),
        },
        Io::Log(log) => run_keep(store, rec, &bundle, Stdio::null(), Output::Log(log), launch),
    };
    state.oom_killed = oom_kills(rec) > 0;
    let _ = force_delete(store, rec);
    if let Some(a) = attached {
        if let Err(e) = a.detach(store) {
            eprintln!("berth-image: container {}: network teardown: {e}", rec.name);
        }
    }
    let code = match &ran {
        Ok(c) => *c,
        Err(e) => {
            state.error = Some(format!("{e:#}"));
            125
        }
    };
    state.exit_code = Some(code);
    state.finished_at = Some(now());
    save_run_state(store, &rec.id, &state)?;
    if let Some(mut r) = report {
        let _ = match &ran {
            Ok(c) => writeln!(r, "exit {c}"),
            Err(e) => writeln!(r, "error {e:#}"),
        };
    }
    if rec.rm {
        drop(lock);
        remove_files(store, rec)?;
    }
    ran
}

/// Where the container's stdout and stderr go.
enum Output {
    /// Through pipes appended to the log (a detached run; pipes, not the
    /// file itself, so that the container holds nothing outside its mounts
    /// and can be checkpointed, as under containerd and conmon).
    Log(fs::File),
    /// Through pipes to this process's stdout and stderr, and appended to the
    /// log (an attached run: `logs` has it too, and the container writes to a
    /// pipe, not to this terminal, as under docker).
    Tee(fs::File),
}

pub(super) fn open_log(store: &Store, rec: &ContainerRecord) -> Result<fs::File> {
    let p = container_dir(store, &rec.id).join("log");
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .with_context(|| format!("open {}", p.display()))
}

/// Copy `from` to `to` and to the shared log until EOF.
fn tee(
    mut from: impl Read + Send + 'static,
    mut to: Box<dyn Write + Send>,
    log: std::sync::Arc<std::sync::Mutex<fs::File>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let _ = to.write_all(&buf[..n]);
            let _ = to.flush();
            if let Ok(mut l) = log.lock() {
                let _ = l.write_all(&buf[..n]);
            }
        }
    })
}

/// `berth run --keep` in the foreground: the runtime keeps the stopped
/// container (and its cgroup, for the OOM count) until `delete`. A restore
/// runs `berth restore` in the foreground instead (which deletes the
/// container when it ends).
fn run_keep(
    store: &Store,
    rec: &ContainerRecord,
    bundle: &std::path::Path,
    stdin: Stdio,
    output: Output,
    launch: &Launch,
) -> Result<i32> {
    let mut cmd = runtime_cmd(store, &rec.runtime);
    match launch {
        Launch::Fresh => {
            cmd.args(["run", "--keep", "--bundle"]);
        }
        Launch::Restore(flags) => {
            let images = super::checkpoint::images_dir(store, &rec.id);
            cmd.arg("restore")
                .arg("--image-path")
                .arg(&images)
                .arg("--work-path")
                .arg(&images)
                .args(flags)
                .arg("--bundle");
        }
    }
    cmd.arg(bundle).arg(&rec.id).stdin(stdin);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let (log, to_terminal) = match output {
        Output::Log(log) => (log, false),
        Output::Tee(log) => (log, true),
    };
    let log = std::sync::Arc::new(std::sync::Mutex::new(log));
    let mut child = cmd
        .spawn()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    let mut copiers = Vec::new();
    if let Some(out) = child.stdout.take() {
        copiers.push(match to_terminal {
            true => tee(out, Box::new(std::io::stdout()), log.clone()),
            false => tee(out, Box::new(std::io::sink()), log.clone()),
        });
    }
    if let Some(err) = child.stderr.take() {
        copiers.push(match to_terminal {
            true => tee(err, Box::new(std::io::stderr()), log),
            false => tee(err, Box::new(std::io::sink()), log),
        });
    }
    let forwarder = super::signals::Forwarder::start(child.id());
    let status = child.wait().context("wait for the runtime")?;
    drop(forwarder);
    for c in copiers {
        let _ = c.join();
    }
    Ok(exit_code(status))
}

/// The fd number on which the monitor finds the write end of its report pipe.
const REPORT_FD: i32 = 3;
/// Tells the monitor that [`REPORT_FD`] is its report pipe.
const REPORT_ENV: &str = "BERTH_IMAGE_MONITOR_REPORT_FD";

/// Start the monitor of a detached run: this program again, as the hidden
/// `monitor` verb, in its own session with no terminal. Returns the read end
/// of a pipe on which the monitor reports the end of the run (`exit N`) or
/// an error that kept it from running (`error MSG`).
fn spawn_monitor(store: &Store, rec: &ContainerRecord, launch: &Launch) -> Result<fs::File> {
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .context("create the monitor's report pipe")?;
    rustix::io::ioctl_fionbio(&read_end, true).context("report pipe: non-blocking")?;
    let exe = std::env::current_exe().context("find this program")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--store")
        .arg(store.root())
        .arg("monitor")
        .arg(&rec.id)
        .env(REPORT_ENV, REPORT_FD.to_string())
        .env_remove(RESTORE_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Launch::Restore(flags) = launch {
        cmd.env(RESTORE_ENV, flags.join("\n"));
    }
    let w = std::os::fd::AsRawFd::as_raw_fd(&write_end);
    // SAFETY: setsid and dup2 are async-signal-safe and allocate nothing, as
    // the code between fork and exec must; dup2 leaves the copy without
    // FD_CLOEXEC, so the monitor inherits it. The block stays whatever the
    // calls inside: Command::pre_exec itself is unsafe.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if libc::dup2(w, REPORT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("start the container's monitor")?;
    drop(write_end);
    // The monitor forks once more (see `monitor`); reap its first stage.
    let _ = child.wait();
    Ok(fs::File::from(read_end))
}

enum Report {
    Exit(i32),
    Error(String),
}

/// What the monitor reported so far (`None` while the run goes on). A
/// monitor gone without a report is an error.
fn monitor_report(pipe: &mut fs::File) -> Result<Option<Report>> {
    let mut text = String::new();
    let done = match pipe.read_to_string(&mut text) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => return Err(e).context("read the monitor's report"),
    };
    let line = text.lines().next().unwrap_or("").trim();
    if let Some(c) = line.strip_prefix("exit ") {
        return Ok(Some(Report::Exit(c.parse().context("monitor report")?)));
    }
    if let Some(m) = line.strip_prefix("error ") {
        return Ok(Some(Report::Error(m.to_string())));
    }
    if done {
        bail!("the container's monitor ended without a report");
    }
    Ok(None)
}

/// The hidden `monitor` verb: fork once more (so the caller can reap this
/// process at once), then supervise a run with stdio on the log file.
pub fn monitor(store: &Store, id: &str) -> Result<()> {
    let rec = load(store, id)?;
    // SAFETY: fork in a single-threaded process; the child only continues
    // with plain Rust code and exits.
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => {}
        _ => return Ok(()),
    }
    let report: Option<fs::File> = std::env::var(REPORT_ENV).ok().and_then(|v| {
        let fd: i32 = v.parse().ok()?;
        // SAFETY: the fd was set up for this process by `spawn_monitor`.
        let f = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        rustix::io::fcntl_setfd(&f, rustix::io::FdFlags::CLOEXEC).ok()?;
        Some(f)
    });
    std::env::remove_var(REPORT_ENV);
    let launch = match std::env::var(RESTORE_ENV) {
        Ok(flags) => Launch::Restore(flags.lines().map(str::to_string).collect()),
        Err(_) => Launch::Fresh,
    };
    std::env::remove_var(RESTORE_ENV);
    let _ = match open_log(store, &rec) {
        Ok(log) => supervise(store, &rec, Io::Log(log), report, &launch),
        Err(e) => {
            if let Some(mut r) = report {
                let _ = writeln!(r, "error open the log: {e}");
            }
            Err(e)
        }
    };
    // SAFETY: leave without running anything else of the parent's state.
    unsafe { libc::_exit(0) }
}
