//! The standalone run flow, the `docker run` sequence on berth's pieces:
//! `run` pulls the image when it is missing, makes a bundle with a fresh
//! writable layer over the shared read-only layers, and runs it with the
//! `berth` runtime; `ps`, `logs`, `stop` and `rm` manage what `run` made.
//!
//! Each container lives in `<store>/containers/<name>/`:
//!
//! * `bundle/`: the overlay bundle (its R/W layer is `bundle/.berth/upper`);
//! * `container.json`: what it was made from and how;
//! * `log`: stdout and stderr of a detached container;
//! * `exit`: the exit status, once it has stopped.
//!
//! The runtime's state lives in `<store>/containers/.runtime` (`berth --root`).
//! A detached container is supervised by a `berth-image` monitor process
//! (session leader, no terminal) that runs `berth run` in the foreground with
//! the log file as stdio, records the exit status and, with `--rm`, removes
//! the container when it stops.

use std::fs;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

mod manage;
mod tty;

pub use manage::{list, logs, ps, rm, status, stop, Status};

use crate::bundle::{self, BundleOptions};
use crate::store::{ImageRecord, Store};

/// Network of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    /// Its own network namespace with only a loopback interface.
    None,
    /// The host's network namespace.
    Host,
}

impl std::str::FromStr for Net {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Net> {
        match s {
            "none" => Ok(Net::None),
            "host" => Ok(Net::Host),
            _ => bail!("--net {s:?}: expected none or host"),
        }
    }
}

/// Options of `run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub name: Option<String>,
    pub rm: bool,
    pub detach: bool,
    pub tty: bool,
    pub net: Net,
    /// Replaces the image's Cmd when not empty.
    pub args: Vec<String>,
    /// The runtime binary (runc's command line).
    pub runtime: PathBuf,
}

/// `containers/<name>/container.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub created: u64,
    pub rm: bool,
    pub detach: bool,
    pub tty: bool,
    pub net: Net,
    pub runtime: PathBuf,
    /// The image's StopSignal (default SIGTERM).
    pub stop_signal: String,
}

/// The `berth` binary to use by default: next to this program, else `$PATH`.
pub fn default_runtime() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("berth")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("berth"))
}

fn containers_dir(store: &Store) -> PathBuf {
    store.root().join("containers")
}

fn runtime_root(store: &Store) -> PathBuf {
    containers_dir(store).join(".runtime")
}

fn container_dir(store: &Store, name: &str) -> PathBuf {
    containers_dir(store).join(name)
}

/// The bundle of container `name` (`rootfs/`, and its writable layer in
/// `.berth/upper`), e.g. for `build` to commit what a RUN step changed.
pub fn container_bundle(store: &Store, name: &str) -> PathBuf {
    container_dir(store, name).join("bundle")
}

/// Container names: what runc accepts as an id, minus the dot-files used here.
pub fn validate_container_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok {
        bail!("invalid container name {name:?}: use letters, digits, '_', '.', '-', starting with a letter or digit");
    }
    Ok(())
}

fn random_name() -> String {
    let mut b = [0u8; 6];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64
            ^ std::process::id() as u64;
        b.copy_from_slice(&t.to_le_bytes()[..6]);
    }
    hex::encode(b)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn runtime_cmd(store: &Store, runtime: &Path) -> Command {
    let mut c = Command::new(runtime);
    c.arg("--root").arg(runtime_root(store));
    c
}

/// Load a container's record.
pub fn load(store: &Store, name: &str) -> Result<ContainerRecord> {
    validate_container_name(name)?;
    let p = container_dir(store, name).join("container.json");
    let data = fs::read(&p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!("no such container: {name}"),
        _ => anyhow!("read {}: {e}", p.display()),
    })?;
    serde_json::from_slice(&data).with_context(|| format!("{}: invalid JSON", p.display()))
}

/// Make the container: directory, bundle (with its own R/W layer), config
/// edits for the options, record. On error nothing is left.
fn make(store: &Store, image: &ImageRecord, opts: &RunOptions) -> Result<ContainerRecord> {
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => random_name(),
    };
    validate_container_name(&name)?;
    if opts.detach && opts.tty {
        bail!("-t with -d is not supported: a detached container's output goes to its log (berth-image logs)");
    }
    let cdir = container_dir(store, &name);
    fs::create_dir_all(containers_dir(store))
        .with_context(|| format!("create {}", containers_dir(store).display()))?;
    match fs::create_dir(&cdir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("a container named {name} already exists (berth-image rm {name})")
        }
        Err(e) => return Err(e).with_context(|| format!("create {}", cdir.display())),
    }
    let made = (|| -> Result<ContainerRecord> {
        let bdir = cdir.join("bundle");
        let bopts = BundleOptions {
            copy: false,
            args: (!opts.args.is_empty()).then(|| opts.args.clone()),
        };
        bundle::create(store, image, &bdir, &bopts)?;
        let cfg_path = bdir.join("config.json");
        let mut cfg: serde_json::Value = serde_json::from_slice(
            &fs::read(&cfg_path).with_context(|| format!("read {}", cfg_path.display()))?,
        )?;
        cfg["process"]["terminal"] = serde_json::json!(opts.tty);
        cfg["hostname"] = serde_json::json!(name.chars().take(63).collect::<String>());
        if opts.net == Net::Host {
            if let Some(ns) = cfg["linux"]["namespaces"].as_array_mut() {
                ns.retain(|n| n["type"] != "network");
            }
        }
        let command: Vec<String> = cfg["process"]["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let stop_signal = cfg["annotations"]["org.opencontainers.image.stopSignal"]
            .as_str()
            .unwrap_or("SIGTERM")
            .to_string();
        fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)
            .with_context(|| format!("write {}", cfg_path.display()))?;
        let rec = ContainerRecord {
            name: name.clone(),
            image: image.name.clone(),
            command,
            created: now(),
            rm: opts.rm,
            detach: opts.detach,
            tty: opts.tty,
            net: opts.net,
            runtime: opts.runtime.clone(),
            stop_signal,
        };
        save(store, &rec)?;
        Ok(rec)
    })();
    if made.is_err() {
        let _ = remove_files(store, &name);
    }
    made
}

fn save(store: &Store, rec: &ContainerRecord) -> Result<()> {
    let dir = container_dir(store, &rec.name);
    let tmp = dir.join("container.json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(rec)?)
        .with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, dir.join("container.json"))
        .with_context(|| format!("rename {}", tmp.display()))
}

/// Unmount and remove the bundle, then the container directory.
fn remove_files(store: &Store, name: &str) -> Result<()> {
    let cdir = container_dir(store, name);
    let bdir = cdir.join("bundle");
    if bdir.join(bundle::STATE_DIR).join("bundle.json").exists() {
        bundle::remove(&bdir)?;
    } else {
        // A bundle that failed half-way removed itself; an unmounted rootfs
        // is all that can be there.
        if crate::overlay::is_mountpoint(&bdir.join("rootfs")) {
            crate::overlay::unmount(&bdir.join("rootfs"))?;
        }
    }
    match fs::remove_dir_all(&cdir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", cdir.display())),
    }
}

fn exit_code(s: ExitStatus) -> i32 {
    s.code()
        .unwrap_or_else(|| 128 + s.signal().unwrap_or(libc::SIGKILL))
}

fn record_exit(store: &Store, name: &str, code: i32) {
    let p = container_dir(store, name).join("exit");
    let _ = fs::write(p, format!("{code}\n"));
}

/// `berth-image run`: returns the exit status to exit with (the container's
/// in the foreground, 0 after a detached start).
pub fn run(store: &Store, image: &ImageRecord, opts: &RunOptions) -> Result<i32> {
    let rec = make(store, image, opts)?;
    let name = rec.name.clone();
    if opts.detach {
        let mut report = match spawn_monitor(store, &rec) {
            Ok(r) => r,
            Err(e) => {
                let _ = remove_files(store, &name);
                return Err(e);
            }
        };
        // Wait until the runtime knows the container, or the monitor reports its
        // end (a short-lived `--rm` container may be gone before it is seen).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = match status(store, &rec)? {
                Status::Unknown => match monitor_report(&mut report)? {
                    Some(code) => Status::Exited(code),
                    None => Status::Unknown,
                },
                s => s,
            };
            match now {
                Status::Running | Status::Created | Status::Paused => break,
                Status::Exited(code) => {
                    eprintln!("berth-image: container {name} exited at once with status {code}");
                    break;
                }
                Status::Unknown if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Status::Unknown => bail!("container {name} did not start within 30 s"),
            }
        }
        println!("{name}");
        return Ok(0);
    }
    let code = if opts.tty {
        tty::run_with_terminal(store, &rec)
    } else {
        run_foreground(
            store,
            &rec,
            Stdio::inherit(),
            Stdio::inherit(),
            Stdio::inherit(),
        )
    };
    let code = match code {
        Ok(c) => c,
        Err(e) => {
            if rec.rm {
                let _ = manage::force_delete(store, &rec);
                let _ = remove_files(store, &name);
            }
            return Err(e);
        }
    };
    record_exit(store, &name, code);
    if rec.rm {
        remove_files(store, &name)?;
    }
    Ok(code)
}

/// `berth run` in the foreground (it forwards signals, deletes the container
/// when it stops and exits with the container's status).
fn run_foreground(
    store: &Store,
    rec: &ContainerRecord,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
) -> Result<i32> {
    let bundle = container_dir(store, &rec.name).join("bundle");
    let mut cmd = runtime_cmd(store, &rec.runtime);
    cmd.args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&rec.name)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr);
    let status = cmd
        .status()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    Ok(exit_code(status))
}

/// The fd number on which the monitor finds the write end of its report pipe.
const REPORT_FD: i32 = 3;
/// Tells the monitor that [`REPORT_FD`] is its report pipe.
const REPORT_ENV: &str = "BERTH_IMAGE_MONITOR_REPORT_FD";

/// Start the monitor of a detached container: this program again, as the
/// hidden `monitor` verb, in its own session with no terminal. Returns the
/// read end of a pipe on which the monitor writes the container's exit status
/// when it ends (before `--rm` removes the record).
fn spawn_monitor(store: &Store, rec: &ContainerRecord) -> Result<fs::File> {
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .context("create the monitor's report pipe")?;
    rustix::io::ioctl_fionbio(&read_end, true).context("report pipe: non-blocking")?;
    let exe = std::env::current_exe().context("find this program")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--store")
        .arg(store.root())
        .arg("monitor")
        .arg(&rec.name)
        .env(REPORT_ENV, REPORT_FD.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let w = std::os::fd::AsRawFd::as_raw_fd(&write_end);
    // SAFETY: setsid and dup2 are async-signal-safe; dup2 leaves the copy
    // without FD_CLOEXEC, so the monitor inherits it.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if libc::dup2(w, REPORT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Double fork through a short-lived child so the monitor is not our child.
    let mut child = cmd.spawn().context("start the container's monitor")?;
    drop(write_end);
    // The monitor detaches itself (see `monitor`); reap its first stage.
    let _ = child.wait();
    Ok(fs::File::from(read_end))
}

/// What the monitor reported so far: `Some(status)` once the container ended,
/// `None` while it runs. A monitor gone without a report is an error.
fn monitor_report(pipe: &mut fs::File) -> Result<Option<i32>> {
    let mut text = String::new();
    match pipe.read_to_string(&mut text) {
        Ok(_) if text.trim().is_empty() => bail!("the container's monitor ended without a report"),
        Ok(_) => Ok(Some(text.trim().parse().context("monitor report")?)),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(text.trim().parse().ok()),
        Err(e) => Err(e).context("read the monitor's report"),
    }
}

/// The hidden `monitor` verb: fork once more (so the caller can reap this
/// process at once), then run the container with its stdio on the log file,
/// record the exit status and honour `--rm`.
pub fn monitor(store: &Store, name: &str) -> Result<()> {
    let rec = load(store, name)?;
    // SAFETY: fork in a single-threaded process; the child only continues
    // with plain Rust code and exits.
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => {}
        _ => return Ok(()),
    }
    // The report pipe, when started by `run -d`: kept from the runtime.
    let report: Option<fs::File> = std::env::var(REPORT_ENV).ok().and_then(|v| {
        let fd: i32 = v.parse().ok()?;
        // SAFETY: the fd was set up for this process by `spawn_monitor`.
        let f = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        rustix::io::fcntl_setfd(&f, rustix::io::FdFlags::CLOEXEC).ok()?;
        Some(f)
    });
    std::env::remove_var(REPORT_ENV);
    let cdir = container_dir(store, name);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cdir.join("log"))
        .with_context(|| format!("open {}", cdir.join("log").display()))?;
    let code = run_foreground(
        store,
        &rec,
        Stdio::null(),
        Stdio::from(log.try_clone()?),
        Stdio::from(log),
    )
    .unwrap_or(125);
    record_exit(store, name, code);
    if let Some(mut f) = report {
        let _ = std::io::Write::write_all(&mut f, format!("{code}\n").as_bytes());
    }
    if rec.rm {
        let _ = remove_files(store, name);
    }
    // SAFETY: leave without running anything else of the parent's state.
    unsafe { libc::_exit(0) }
}
