//! The standalone container flow, docker's model on berth's pieces: `create`
//! makes a container (a bundle with a fresh writable layer over the shared
//! read-only layers, its config, its record); `start` runs it with the `berth`
//! runtime, attached or under a detached monitor; a container that exits is
//! stopped, not removed (unless `--rm`), and starts again on its kept R/W
//! layer; `run` is create + start. `ps`, `logs`, `stop`, `rm`, `inspect`,
//! `exec`, `cp`, ... manage what `create` made.
//!
//! Each container lives in `<store>/containers/<id>/`:
//!
//! * `bundle/`: the overlay bundle (its R/W layer is `bundle/.berth/upper`);
//! * `container.json`: what it was made from and how ([`ContainerRecord`]);
//! * `state.json`: its last start and exit ([`RunState`]);
//! * `hosts`, `hostname`, `resolv.conf`: bind-mounted into it;
//! * `log`: stdout and stderr while it runs detached;
//! * `lock`: held by the process supervising a run of it.
//!
//! `<store>/containers/.names/<name>` is a symlink to the id (names are
//! unique; `rename` moves the link). The runtime's state lives in
//! `<store>/containers/.runtime` (`berth --root`), under the container's id.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

pub mod checkpoint;
pub mod cli;
mod config;
mod control;
mod cp;
mod create;
mod exec;
mod inspect;
mod network;
mod signals;
mod start;
mod top;
mod tty;
pub mod volumes;

pub use control::{
    kill, list, logs, pause, port, ps, rename, restart, rm, status, stop, unpause, wait, Status,
};
pub use cp::cp;
pub use create::create;
pub use exec::{exec, ExecOptions};
pub use inspect::inspect;
pub use start::{monitor, start, StartOptions};
pub use top::{stats, top};

use crate::net::{NetworkConfig, PortMapping};
use crate::store::{ImageRecord, Store};

/// Network mode of a container (`--net`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    /// Its own network namespace on the tool's bridge network (the default).
    #[default]
    Bridge,
    /// Its own network namespace with only a loopback interface.
    None,
    /// The host's network namespace.
    Host,
    /// The network namespace of another (running) container.
    Container(String),
}

impl std::str::FromStr for Net {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Net> {
        match s {
            "bridge" | "default" => Ok(Net::Bridge),
            "none" => Ok(Net::None),
            "host" => Ok(Net::Host),
            _ => match s.strip_prefix("container:") {
                Some(c) if !c.is_empty() => Ok(Net::Container(c.to_string())),
                _ => bail!("--net {s:?}: expected bridge, none, host or container:NAME"),
            },
        }
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Net::Bridge => f.write_str("bridge"),
            Net::None => f.write_str("none"),
            Net::Host => f.write_str("host"),
            Net::Container(c) => write!(f, "container:{c}"),
        }
    }
}

/// Options of `create` and `run` (docker's flags of the same names).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub name: Option<String>,
    pub rm: bool,
    pub detach: bool,
    pub tty: bool,
    /// Keep stdin attached (`-i`).
    pub interactive: bool,
    pub net: Net,
    /// The bridge network (default: [`NetworkConfig::from_env`]).
    pub network: Option<NetworkConfig>,
    /// `-p` values.
    pub publish: Vec<String>,
    /// Replaces the image's Cmd when not empty.
    pub args: Vec<String>,
    /// The runtime binary (runc's command line); empty: [`default_runtime`].
    pub runtime: PathBuf,
    /// `-e KEY=VALUE` or `-e KEY` (taken from this environment).
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    /// `-v HOST:CTR[:ro]` or `-v NAME:CTR[:ro]`.
    pub volumes: Vec<String>,
    /// `--tmpfs CTR[:OPTIONS]`.
    pub tmpfs: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub entrypoint: Option<String>,
    pub hostname: Option<String>,
    /// `--memory` (bytes with an optional b, k, m, g suffix).
    pub memory: Option<String>,
    /// `--cpus` (a decimal number of CPUs).
    pub cpus: Option<String>,
    pub pids_limit: Option<i64>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub read_only: bool,
    pub privileged: bool,
    /// `--device HOST[:CTR[:PERMS]]`.
    pub devices: Vec<String>,
    pub init: bool,
    pub stop_signal: Option<String>,
    /// `--label KEY=VALUE`.
    pub labels: Vec<String>,
}

/// A mount made for the container (for `inspect`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountRecord {
    /// bind, volume or tmpfs.
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "Source")]
    pub source: String,
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
}

/// `containers/<id>/container.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub created: u64,
    pub rm: bool,
    pub tty: bool,
    #[serde(default)]
    pub interactive: bool,
    pub net: Net,
    #[serde(default)]
    pub network: Option<NetworkConfig>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    pub hostname: String,
    pub runtime: PathBuf,
    /// The stop signal (`--stop-signal`, else the image's, else SIGTERM).
    pub stop_signal: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub mounts: Vec<MountRecord>,
}

/// `containers/<id>/state.json`: the last start and its end.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunState {
    /// Unix seconds of the last start.
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// The exit status once the last run ended.
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub oom_killed: bool,
    /// Whether a start was detached (its output is in `log`).
    #[serde(default)]
    pub detached: bool,
    /// An error that ended the last start before the container ran.
    #[serde(default)]
    pub error: Option<String>,
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

fn names_dir(store: &Store) -> PathBuf {
    containers_dir(store).join(".names")
}

fn container_dir(store: &Store, id: &str) -> PathBuf {
    containers_dir(store).join(id)
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

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64
            ^ std::process::id() as u64;
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 8) * 8)) as u8 ^ i as u8;
        }
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

/// The id of the container called `name_or_id` (a name, a full id or a
/// unique id prefix, as docker accepts).
pub fn resolve(store: &Store, name_or_id: &str) -> Result<String> {
    if name_or_id.is_empty() || name_or_id.contains('/') || name_or_id.starts_with('.') {
        bail!("no such container: {name_or_id:?}");
    }
    if let Ok(target) = fs::read_link(names_dir(store).join(name_or_id)) {
        return Ok(target.to_string_lossy().into_owned());
    }
    if name_or_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let matches: Vec<String> = fs::read_dir(containers_dir(store))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(name_or_id))
                    .collect()
            })
            .unwrap_or_default();
        match matches.len() {
            1 => return Ok(matches[0].clone()),
            n if n > 1 => bail!("container id prefix {name_or_id} is ambiguous"),
            _ => {}
        }
    }
    bail!("no such container: {name_or_id}")
}

/// The bundle directory of a container (for `commit`).
pub fn bundle_dir(store: &Store, name_or_id: &str) -> Result<PathBuf> {
    let rec = load(store, name_or_id)?;
    Ok(container_dir(store, &rec.id).join("bundle"))
}

/// Load a container's record by name or id.
pub fn load(store: &Store, name_or_id: &str) -> Result<ContainerRecord> {
    let id = resolve(store, name_or_id)?;
    load_id(store, &id).map_err(|e| match fs::metadata(container_dir(store, &id)) {
        Err(_) => anyhow!("no such container: {name_or_id}"),
        Ok(_) => e,
    })
}

fn load_id(store: &Store, id: &str) -> Result<ContainerRecord> {
    let p = container_dir(store, id).join("container.json");
    let data = fs::read(&p).with_context(|| format!("read {}", p.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("{}: invalid JSON", p.display()))
}

fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("rename {}", tmp.display()))
}

fn save(store: &Store, rec: &ContainerRecord) -> Result<()> {
    write_json_atomic(&container_dir(store, &rec.id).join("container.json"), rec)
}

/// The container's last run (default: never started).
pub fn run_state(store: &Store, id: &str) -> RunState {
    fs::read(container_dir(store, id).join("state.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default()
}

fn save_run_state(store: &Store, id: &str, st: &RunState) -> Result<()> {
    write_json_atomic(&container_dir(store, id).join("state.json"), st)
}

/// Unmount and remove the bundle, the container directory and its name.
fn remove_files(store: &Store, rec: &ContainerRecord) -> Result<()> {
    let cdir = container_dir(store, &rec.id);
    let bdir = cdir.join("bundle");
    if bdir
        .join(crate::bundle::STATE_DIR)
        .join("bundle.json")
        .exists()
    {
        crate::bundle::remove(&bdir)?;
    } else if crate::overlay::is_mountpoint(&bdir.join("rootfs")) {
        // A bundle that failed half-way removed itself; an unmounted rootfs
        // is all that can be there.
        crate::overlay::unmount(&bdir.join("rootfs"))?;
    }
    match fs::remove_dir_all(&cdir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", cdir.display())),
    }
    let link = names_dir(store).join(&rec.name);
    if fs::read_link(&link).is_ok_and(|t| t == Path::new(&rec.id)) {
        let _ = fs::remove_file(link);
    }
    Ok(())
}

fn exit_code(s: ExitStatus) -> i32 {
    s.code()
        .unwrap_or_else(|| 128 + s.signal().unwrap_or(libc::SIGKILL))
}

/// `berth-image run`: create + start. Returns the exit status to exit with
/// (the container's when attached, 0 after a detached start).
pub fn run(store: &Store, image: &ImageRecord, opts: &RunOptions) -> Result<i32> {
    let rec = create(store, image, opts)?;
    let started = start::start_record(
        store,
        &rec,
        &start::StartOptions {
            attach: !opts.detach,
            interactive: opts.interactive,
        },
    );
    match started {
        Ok(code) => {
            if opts.detach {
                println!("{}", rec.id);
            }
            Ok(code)
        }
        Err(e) => {
            // docker leaves a created container whose start failed; with
            // --rm it goes.
            if rec.rm {
                let _ = control::force_delete(store, &rec);
                let _ = remove_files(store, &rec);
            }
            Err(e)
        }
    }
}
