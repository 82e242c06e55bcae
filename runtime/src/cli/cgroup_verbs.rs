//! pause, resume, ps, events, update: verbs that act on a container's cgroup.
//! The work is in [`berth_runtime::cgroup_verbs`]; this file parses flags and prints.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use berth_runtime::cgroup_verbs;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum CgroupVerbCommand {
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List the processes of a container (`berth ps ID [-- PS_ARGS]`).
    Ps(PsArgs),
    /// Print container events: resource statistics and OOM notifications.
    Events(EventsArgs),
    /// Change a running container's resource limits.
    Update(Box<UpdateArgs>),
}

#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// Output format: table (the host's `ps` filtered to the container) or json (host pids).
    #[arg(short, long, default_value = "table")]
    format: String,
    /// Container id.
    id: String,
    /// Options for `ps` (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Time between stats events (Go duration syntax: 5s, 500ms, 1m).
    #[arg(long, default_value = "5s")]
    interval: String,
    /// Print the container's statistics once and exit.
    #[arg(long)]
    stats: bool,
    /// Container id.
    id: String,
}

#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// File with an OCI linux.resources JSON object, or - for stdin
    /// (the other flags are then ignored).
    #[arg(short, long)]
    resources: Option<PathBuf>,
    /// Block IO weight (10-1000).
    #[arg(long = "blkio-weight", allow_hyphen_values = true)]
    blkio_weight: Option<String>,
    /// CPU CFS period (µs).
    #[arg(long = "cpu-period", allow_hyphen_values = true)]
    cpu_period: Option<String>,
    /// CPU CFS quota (µs per period; -1 for none).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<String>,
    /// CPU CFS burst (µs).
    #[arg(long = "cpu-burst", allow_hyphen_values = true)]
    cpu_burst: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", allow_hyphen_values = true)]
    cpu_share: Option<String>,
    /// CPU real-time period (µs).
    #[arg(long = "cpu-rt-period", allow_hyphen_values = true)]
    cpu_rt_period: Option<String>,
    /// CPU real-time runtime (µs).
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    cpu_rt_runtime: Option<String>,
    /// CPUs the container may use (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// SCHED_IDLE for the cgroup (0 or 1).
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    cpu_idle: Option<String>,
    /// Obsolete; ignored with a warning.
    #[arg(long = "kernel-memory", hide = true)]
    kernel_memory: Option<String>,
    /// Obsolete; ignored with a warning.
    #[arg(long = "kernel-memory-tcp", hide = true)]
    kernel_memory_tcp: Option<String>,
    /// Memory limit (bytes, or with a unit: 512m, 1g; -1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit (same units as --memory).
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (same units; -1 for unlimited swap).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Maximum number of processes (-1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<String>,
    /// Intel RDT/CAT L3 cache schema.
    #[arg(long = "l3-cache-schema")]
    l3_cache_schema: Option<String>,
    /// Intel RDT/MBA memory bandwidth schema.
    #[arg(long = "mem-bw-schema")]
    mem_bw_schema: Option<String>,
    /// Container id.
    id: String,
}

impl UpdateArgs {
    /// The given flags as (runc flag name, value) pairs.
    fn flags(&self) -> Vec<(&'static str, &str)> {
        let all: [(&'static str, &Option<String>); 18] = [
            ("blkio-weight", &self.blkio_weight),
            ("cpu-period", &self.cpu_period),
            ("cpu-quota", &self.cpu_quota),
            ("cpu-burst", &self.cpu_burst),
            ("cpu-share", &self.cpu_share),
            ("cpu-rt-period", &self.cpu_rt_period),
            ("cpu-rt-runtime", &self.cpu_rt_runtime),
            ("cpuset-cpus", &self.cpuset_cpus),
            ("cpuset-mems", &self.cpuset_mems),
            ("cpu-idle", &self.cpu_idle),
            ("kernel-memory", &self.kernel_memory),
            ("kernel-memory-tcp", &self.kernel_memory_tcp),
            ("memory", &self.memory),
            ("memory-reservation", &self.memory_reservation),
            ("memory-swap", &self.memory_swap),
            ("pids-limit", &self.pids_limit),
            ("l3-cache-schema", &self.l3_cache_schema),
            ("mem-bw-schema", &self.mem_bw_schema),
        ];
        all.iter()
            .filter_map(|(name, v)| v.as_deref().map(|v| (*name, v)))
            .collect()
    }
}

pub fn dispatch(root: &Path, cmd: &CgroupVerbCommand) -> anyhow::Result<i32> {
    // The library's messages already include their causes: print each once.
    run(root, cmd).map_err(|e| anyhow::anyhow!("{e}"))
}

fn run(root: &Path, cmd: &CgroupVerbCommand) -> anyhow::Result<i32> {
    match cmd {
        CgroupVerbCommand::Pause { id } => cgroup_verbs::pause(root, id)?,
        CgroupVerbCommand::Resume { id } => cgroup_verbs::resume(root, id)?,
        CgroupVerbCommand::Ps(a) => ps(root, a)?,
        CgroupVerbCommand::Events(a) => events(root, a)?,
        CgroupVerbCommand::Update(a) => update(root, a)?,
    }
    Ok(0)
}

fn ps(root: &Path, a: &PsArgs) -> anyhow::Result<()> {
    let pids = cgroup_verbs::processes(root, &a.id)?;
    match a.format.as_str() {
        "json" => {
            outln!("{}", serde_json::to_string(&pids)?);
            return Ok(());
        }
        "table" => {}
        other => anyhow::bail!("ps: unknown --format \"{other}\" (table or json)"),
    }
    let args: Vec<&str> = if a.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        a.ps_args.iter().map(String::as_str).collect()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("ps: cannot run `ps`: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "ps {}: {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&[out.stdout.as_slice(), out.stderr.as_slice()].concat())
        );
    }
    let table = cgroup_verbs::filter_ps_table(&String::from_utf8_lossy(&out.stdout), &pids)?;
    std::io::stdout().write_all(table.as_bytes())?;
    Ok(())
}

fn events(root: &Path, a: &EventsArgs) -> anyhow::Result<()> {
    let interval = cgroup_verbs::parse_duration(&a.interval)
        .map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
    let mut out = std::io::stdout().lock();
    if a.stats {
        let e = cgroup_verbs::stats_event(root, &a.id)?;
        writeln!(out, "{}", serde_json::to_string(&e)?)?;
        return Ok(());
    }
    cgroup_verbs::stream_events(root, &a.id, interval, &mut out)?;
    Ok(())
}

fn update(root: &Path, a: &UpdateArgs) -> anyhow::Result<()> {
    let flags = a.flags();
    let changes = match &a.resources {
        Some(path) => {
            // Intel RDT flags are not resource fields: refuse them either way.
            let rdt: Vec<_> = flags
                .iter()
                .copied()
                .filter(|(f, _)| f.ends_with("-schema"))
                .collect();
            cgroup_verbs::resources_from_flags(&rdt)?;
            if flags.len() > rdt.len() {
                berth_runtime::logging::warn(
                    "update: --resources is given, so the other resource flags are ignored",
                );
            }
            let text = if path.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--resources {}: {e}", path.display()))?
            };
            cgroup_verbs::resources_from_json(&text)?
        }
        None => cgroup_verbs::resources_from_flags(&flags)?,
    };
    cgroup_verbs::update(root, &a.id, changes)?;
    Ok(())
}
