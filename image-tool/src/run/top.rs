//! `top` (the container's processes, through `berth ps`) and `stats
//! --no-stream` (CPU, memory, network, block I/O and pids from the
//! container's cgroup and network namespace).

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::control::{list, runtime_state, status, Status};
use super::{load, runtime_cmd, ContainerRecord};
use crate::store::Store;

/// `top NAME [PS OPTIONS]`: the host's `ps` over the container's processes.
pub fn top(store: &Store, name: &str, ps_args: &[String]) -> Result<String> {
    let rec = load(store, name)?;
    let st = status(store, &rec)?;
    if !matches!(st, Status::Running | Status::Paused) {
        bail!("container {name} is not running ({st})");
    }
    let out = runtime_cmd(store, &rec.runtime)
        .args(["ps", &rec.id])
        .args(ps_args)
        .output()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    if !out.status.success() {
        bail!(
            "top {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One reading of a container's counters.
struct Sample {
    at: Instant,
    cpu_ns: u64,
    mem: u64,
    mem_limit: u64,
    pids: u64,
    blk_read: u64,
    blk_write: u64,
    net_rx: u64,
    net_tx: u64,
}

fn host_memory() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Bytes received and sent on the non-loopback interfaces of `pid`'s netns.
fn net_bytes(pid: i32) -> (u64, u64) {
    let text = fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    let mut rx = 0;
    let mut tx = 0;
    for l in text.lines().skip(2) {
        let Some((ifname, counters)) = l.split_once(':') else {
            continue;
        };
        if ifname.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

fn sample(rec: &ContainerRecord, pid: i32) -> Result<Sample> {
    let mode = berth_cgroups::detect()?;
    let mgr = berth_cgroups::new_manager(None, &rec.id, mode)?;
    let s = mgr.stats()?;
    let host = host_memory();
    let limit = s.memory.usage.limit;
    let (blk_read, blk_write) = s
        .blkio
        .io_service_bytes_recursive
        .iter()
        .fold((0, 0), |acc, e| match e.op.to_ascii_lowercase().as_str() {
            "read" => (acc.0 + e.value, acc.1),
            "write" => (acc.0, acc.1 + e.value),
            _ => acc,
        });
    let (net_rx, net_tx) = net_bytes(pid);
    Ok(Sample {
        at: Instant::now(),
        cpu_ns: s.cpu.usage.total,
        // docker subtracts the page cache it can drop.
        mem: s.memory.usage.usage.saturating_sub(
            s.memory
                .raw
                .get("total_inactive_file")
                .copied()
                .unwrap_or(0),
        ),
        mem_limit: if limit == 0 || limit > host {
            host
        } else {
            limit
        },
        pids: s.pids.current,
        blk_read,
        blk_write,
        net_rx,
        net_tx,
    })
}

/// Binary units, as docker prints memory (`1.5MiB`).
fn binary(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", units[i]).replace(".00", "")
    }
}

/// Decimal units, as docker prints I/O (`1.2kB`).
fn decimal(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", units[i]).replace(".00", "")
    }
}

/// `stats --no-stream [NAME...]`: one table of the running containers (all
/// of them when no name is given). CPU % is measured over one second, 100%
/// being one CPU, as docker does.
pub fn stats(store: &Store, names: &[String]) -> Result<String> {
    let recs: Vec<ContainerRecord> = if names.is_empty() {
        list(store)?
            .into_iter()
            .filter(|r| matches!(status(store, r), Ok(Status::Running | Status::Paused)))
            .collect()
    } else {
        names
            .iter()
            .map(|n| load(store, n))
            .collect::<Result<_>>()?
    };
    let mut first = Vec::new();
    for r in &recs {
        let pid = match runtime_state(store, r)? {
            Some((s, pid)) if s == "running" || s == "paused" => pid,
            _ => bail!("container {} is not running", r.name),
        };
        first.push((pid, sample(r, pid)?));
    }
    if !recs.is_empty() {
        std::thread::sleep(Duration::from_secs(1));
    }
    let mut rows = vec![[
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]
    .map(String::from)];
    for (r, (pid, a)) in recs.iter().zip(first) {
        let b = sample(r, pid)?;
        let wall = b.at.duration_since(a.at).as_nanos().max(1) as f64;
        let cpu = b.cpu_ns.saturating_sub(a.cpu_ns) as f64 / wall * 100.0;
        let mem_pct = if b.mem_limit > 0 {
            b.mem as f64 / b.mem_limit as f64 * 100.0
        } else {
            0.0
        };
        rows.push([
            r.id[..12].to_string(),
            r.name.clone(),
            format!("{cpu:.2}%"),
            format!("{} / {}", binary(b.mem), binary(b.mem_limit)),
            format!("{mem_pct:.2}%"),
            format!("{} / {}", decimal(b.net_rx), decimal(b.net_tx)),
            format!("{} / {}", decimal(b.blk_read), decimal(b.blk_write)),
            b.pids.to_string(),
        ]);
    }
    // docker's layout: left-aligned columns, three spaces apart.
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        s.push_str(line.join("   ").trim_end());
        s.push('\n');
    }
    Ok(s)
}
