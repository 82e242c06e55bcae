//! Stats: the container init's cgroup read into the metrics types containerd
//! decodes (`io.containerd.cgroups.v1.Metrics` on cgroup v1 hosts,
//! `io.containerd.cgroups.v2.Metrics` on cgroup v2 ones).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use containerd_shim::protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, MemoryEntry, MemoryOomControl, MemoryStat, Metrics,
    PidsStat, Throttle,
};
use containerd_shim::protos::cgroups_v2::metrics::{
    CPUStat as CpuV2, MemoryEvents, MemoryStat as MemoryV2, Metrics as MetricsV2,
    PidsStat as PidsV2,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::util::convert_to_any;

use crate::error::{Context, Error, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

pub fn is_cgroup_v2() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// The metrics of the cgroup(s) process `pid` is in, packed for StatsResponse.
pub fn collect(pid: u32) -> Result<Any> {
    if is_cgroup_v2() {
        return Ok(convert_to_any(Box::new(collect_v2(&v2_dir(pid)?)))?);
    }
    Ok(convert_to_any(Box::new(collect_v1(pid)?))?)
}

/// `controller` → its directory for `pid`, from /proc/<pid>/cgroup and the
/// cgroup v1 mounts in /proc/self/mountinfo.
pub fn v1_dirs(pid: u32) -> Result<HashMap<String, PathBuf>> {
    let membership =
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).context("read process cgroups")?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
    let mut mounts: HashMap<&str, (&str, &str)> = HashMap::new(); // controller -> (root, mountpoint)
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 || r[0] != "cgroup" {
            continue;
        }
        for opt in r[2].split(',') {
            mounts.entry(opt).or_insert((l[3], l[4]));
        }
    }
    let mut dirs = HashMap::new();
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        for c in controllers.split(',').filter(|c| !c.is_empty()) {
            if let Some((root, mountpoint)) = mounts.get(c) {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(path)
                    .trim_start_matches('/');
                dirs.insert(c.to_string(), Path::new(mountpoint).join(rel));
            }
        }
    }
    Ok(dirs)
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn read_u64(dir: &Path, file: &str) -> u64 {
    read(dir, file)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `key value` lines.
fn flat_keyed(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k, v.trim().parse().ok()?))
        })
        .collect()
}

fn collect_v1(pid: u32) -> Result<Metrics> {
    let dirs = v1_dirs(pid)?;
    if dirs.is_empty() {
        return Err(Error::not_found(format!(
            "no cgroup v1 controllers for pid {pid}"
        )));
    }
    Ok(metrics_v1(&dirs))
}

fn metrics_v1(dirs: &HashMap<String, PathBuf>) -> Metrics {
    let mut m = Metrics::new();
    if let Some(d) = dirs.get("pids") {
        let limit = read(d, "pids.max")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        m.pids = Some(PidsStat {
            current: read_u64(d, "pids.current"),
            limit,
            ..Default::default()
        })
        .into();
    }
    m.cpu = Some(cpu_v1(dirs.get("cpuacct"), dirs.get("cpu"))).into();
    if let Some(d) = dirs.get("memory") {
        m.memory = Some(memory_v1(d)).into();
        let oom = read(d, "memory.oom_control").unwrap_or_default();
        let oom = flat_keyed(&oom);
        let get = |k: &str| oom.get(k).copied().unwrap_or(0);
        m.memory_oom_control = Some(MemoryOomControl {
            oom_kill_disable: get("oom_kill_disable"),
            under_oom: get("under_oom"),
            oom_kill: get("oom_kill"),
            ..Default::default()
        })
        .into();
    }
    if let Some(d) = dirs.get("blkio") {
        m.blkio = Some(blkio_v1(d)).into();
    }
    m
}

fn cpu_v1(cpuacct: Option<&PathBuf>, cpu: Option<&PathBuf>) -> CPUStat {
    let mut usage = CPUUsage::new();
    if let Some(d) = cpuacct {
        usage.total = read_u64(d, "cpuacct.usage");
        usage.per_cpu = read(d, "cpuacct.usage_percpu")
            .map(|s| {
                s.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        // cpuacct.stat counts USER_HZ ticks; containerd reports nanoseconds.
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let stat = read(d, "cpuacct.stat").unwrap_or_default();
        let stat = flat_keyed(&stat);
        usage.user = stat.get("user").copied().unwrap_or(0) * 1_000_000_000 / hz;
        usage.kernel = stat.get("system").copied().unwrap_or(0) * 1_000_000_000 / hz;
    }
    let mut throttling = Throttle::new();
    if let Some(d) = cpu {
        let stat = read(d, "cpu.stat").unwrap_or_default();
        let stat = flat_keyed(&stat);
        throttling.periods = stat.get("nr_periods").copied().unwrap_or(0);
        throttling.throttled_periods = stat.get("nr_throttled").copied().unwrap_or(0);
        throttling.throttled_time = stat.get("throttled_time").copied().unwrap_or(0);
    }
    CPUStat {
        usage: Some(usage).into(),
        throttling: Some(throttling).into(),
        ..Default::default()
    }
}

fn memory_entry(d: &Path, prefix: &str) -> MemoryEntry {
    MemoryEntry {
        usage: read_u64(d, &format!("{prefix}.usage_in_bytes")),
        max: read_u64(d, &format!("{prefix}.max_usage_in_bytes")),
        limit: read_u64(d, &format!("{prefix}.limit_in_bytes")),
        failcnt: read_u64(d, &format!("{prefix}.failcnt")),
        ..Default::default()
    }
}

type Setter = fn(&mut MemoryStat, u64);

fn memory_v1(d: &Path) -> MemoryStat {
    let text = read(d, "memory.stat").unwrap_or_default();
    let stat = flat_keyed(&text);
    let mut s = MemoryStat::new();
    let fields: [(&str, Setter); 32] = [
        ("cache", |s, v| s.cache = v),
        ("rss", |s, v| s.rss = v),
        ("rss_huge", |s, v| s.rss_huge = v),
        ("mapped_file", |s, v| s.mapped_file = v),
        ("dirty", |s, v| s.dirty = v),
        ("writeback", |s, v| s.writeback = v),
        ("pgpgin", |s, v| s.pg_pg_in = v),
        ("pgpgout", |s, v| s.pg_pg_out = v),
        ("pgfault", |s, v| s.pg_fault = v),
        ("pgmajfault", |s, v| s.pg_maj_fault = v),
        ("inactive_anon", |s, v| s.inactive_anon = v),
        ("active_anon", |s, v| s.active_anon = v),
        ("inactive_file", |s, v| s.inactive_file = v),
        ("active_file", |s, v| s.active_file = v),
        ("unevictable", |s, v| s.unevictable = v),
        ("hierarchical_memory_limit", |s, v| {
            s.hierarchical_memory_limit = v
        }),
        ("hierarchical_memsw_limit", |s, v| {
            s.hierarchical_swap_limit = v
        }),
        ("total_cache", |s, v| s.total_cache = v),
        ("total_rss", |s, v| s.total_rss = v),
        ("total_rss_huge", |s, v| s.total_rss_huge = v),
        ("total_mapped_file", |s, v| s.total_mapped_file = v),
        ("total_dirty", |s, v| s.total_dirty = v),
        ("total_writeback", |s, v| s.total_writeback = v),
        ("total_pgpgin", |s, v| s.total_pg_pg_in = v),
        ("total_pgpgout", |s, v| s.total_pg_pg_out = v),
        ("total_pgfault", |s, v| s.total_pg_fault = v),
        ("total_pgmajfault", |s, v| s.total_pg_maj_fault = v),
        ("total_inactive_anon", |s, v| s.total_inactive_anon = v),
        ("total_active_anon", |s, v| s.total_active_anon = v),
        ("total_inactive_file", |s, v| s.total_inactive_file = v),
        ("total_active_file", |s, v| s.total_active_file = v),
        ("total_unevictable", |s, v| s.total_unevictable = v),
    ];
    for (key, set) in fields {
        if let Some(v) = stat.get(key) {
            set(&mut s, *v);
        }
    }
    s.usage = Some(memory_entry(d, "memory")).into();
    s.swap = Some(memory_entry(d, "memory.memsw")).into();
    s.kernel = Some(memory_entry(d, "memory.kmem")).into();
    s.kernel_tcp = Some(memory_entry(d, "memory.kmem.tcp")).into();
    s
}

/// `MAJ:MIN Op value` lines; the `Total` lines are left out as containerd does.
fn blkio_entries(text: &str) -> Vec<BlkIOEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f[..] else { return None };
            let (major, minor) = dev.split_once(':')?;
            Some(BlkIOEntry {
                op: op.to_string(),
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                value: value.parse().ok()?,
                ..Default::default()
            })
        })
        .collect()
}

fn blkio_v1(d: &Path) -> BlkIOStat {
    // The CFQ files are empty or absent on modern kernels: use the throttle ones then.
    let entries = |name: &str| {
        let e = blkio_entries(&read(d, &format!("blkio.{name}")).unwrap_or_default());
        if e.is_empty() {
            blkio_entries(&read(d, &format!("blkio.throttle.{name}")).unwrap_or_default())
        } else {
            e
        }
    };
    BlkIOStat {
        io_service_bytes_recursive: entries("io_service_bytes_recursive"),
        io_serviced_recursive: entries("io_serviced_recursive"),
        ..Default::default()
    }
}

/// The cgroup v2 directory of `pid` (`0::/path` in /proc/<pid>/cgroup).
pub fn v2_dir(pid: u32) -> Result<PathBuf> {
    let membership =
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).context("read process cgroups")?;
    let path = membership
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| Error::not_found(format!("pid {pid} has no cgroup v2 membership")))?;
    Ok(Path::new(CGROUP_ROOT).join(path.trim_start_matches('/')))
}

/// A limit file: a number, or `max` (reported as u64::MAX).
fn read_limit(dir: &Path, file: &str) -> u64 {
    match read(dir, file) {
        Some(s) if s.trim() == "max" => u64::MAX,
        Some(s) => s.trim().parse().unwrap_or(0),
        None => 0,
    }
}

type SetterV2 = fn(&mut MemoryV2, u64);

fn collect_v2(d: &Path) -> MetricsV2 {
    let mut m = MetricsV2::new();
    let pids_limit = match read_limit(d, "pids.max") {
        u64::MAX => 0,
        n => n,
    };
    m.pids = Some(PidsV2 {
        current: read_u64(d, "pids.current"),
        limit: pids_limit,
        ..Default::default()
    })
    .into();
    let cpu = read(d, "cpu.stat").unwrap_or_default();
    let cpu = flat_keyed(&cpu);
    let get = |k: &str| cpu.get(k).copied().unwrap_or(0);
    m.cpu = Some(CpuV2 {
        usage_usec: get("usage_usec"),
        user_usec: get("user_usec"),
        system_usec: get("system_usec"),
        nr_periods: get("nr_periods"),
        nr_throttled: get("nr_throttled"),
        throttled_usec: get("throttled_usec"),
        ..Default::default()
    })
    .into();
    let text = read(d, "memory.stat").unwrap_or_default();
    let stat = flat_keyed(&text);
    let mut mem = MemoryV2::new();
    let fields: [(&str, SetterV2); 19] = [
        ("anon", |s, v| s.anon = v),
        ("file", |s, v| s.file = v),
        ("kernel_stack", |s, v| s.kernel_stack = v),
        ("slab", |s, v| s.slab = v),
        ("sock", |s, v| s.sock = v),
        ("shmem", |s, v| s.shmem = v),
        ("file_mapped", |s, v| s.file_mapped = v),
        ("file_dirty", |s, v| s.file_dirty = v),
        ("file_writeback", |s, v| s.file_writeback = v),
        ("anon_thp", |s, v| s.anon_thp = v),
        ("inactive_anon", |s, v| s.inactive_anon = v),
        ("active_anon", |s, v| s.active_anon = v),
        ("inactive_file", |s, v| s.inactive_file = v),
        ("active_file", |s, v| s.active_file = v),
        ("unevictable", |s, v| s.unevictable = v),
        ("slab_reclaimable", |s, v| s.slab_reclaimable = v),
        ("slab_unreclaimable", |s, v| s.slab_unreclaimable = v),
        ("pgfault", |s, v| s.pgfault = v),
        ("pgmajfault", |s, v| s.pgmajfault = v),
    ];
    for (key, set) in fields {
        if let Some(v) = stat.get(key) {
            set(&mut mem, *v);
        }
    }
    mem.usage = read_u64(d, "memory.current");
    mem.usage_limit = read_limit(d, "memory.max");
    mem.max_usage = read_u64(d, "memory.peak");
    mem.swap_usage = read_u64(d, "memory.swap.current");
    mem.swap_limit = read_limit(d, "memory.swap.max");
    m.memory = Some(mem).into();
    let events = read(d, "memory.events").unwrap_or_default();
    let events = flat_keyed(&events);
    let get = |k: &str| events.get(k).copied().unwrap_or(0);
    m.memory_events = Some(MemoryEvents {
        low: get("low"),
        high: get("high"),
        max: get("max"),
        oom: get("oom"),
        oom_kill: get("oom_kill"),
        ..Default::default()
    })
    .into();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "berth-shim-metrics-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn dir(&self, sub: &str, files: &[(&str, &str)]) -> PathBuf {
            let d = self.0.join(sub);
            std::fs::create_dir_all(&d).unwrap();
            for (name, text) in files {
                std::fs::write(d.join(name), text).unwrap();
            }
            d
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const V1_UNLIMITED: u64 = 9223372036854771712;

    /// cgroup v1 hierarchies (controller list, directory) written with known values.
    fn v1_fixture(s: &Scratch) -> Vec<(&'static str, PathBuf)> {
        let cpu = s.dir(
            "cpu,cpuacct",
            &[
                ("cpuacct.usage", "123456\n"),
                ("cpuacct.usage_percpu", "100 200 \n"),
                // containerd reports cpuacct.stat's ticks in nanoseconds,
                // not the precise usage_user/usage_sys.
                ("cpuacct.stat", "user 10\nsystem 5\n"),
                ("cpuacct.usage_user", "999\n"),
                ("cpuacct.usage_sys", "888\n"),
                (
                    "cpu.stat",
                    "nr_periods 4\nnr_throttled 2\nthrottled_time 700\n",
                ),
            ],
        );
        let unlimited = format!("{V1_UNLIMITED}\n");
        let memory = s.dir(
            "memory",
            &[
                (
                    "memory.stat",
                    "cache 11\nrss 22\npgfault 44\nhierarchical_memory_limit 9223372036854771712\n\
                     total_rss 33\ntotal_unevictable 55\nunknown_key 66\n",
                ),
                ("memory.usage_in_bytes", "1000\n"),
                ("memory.max_usage_in_bytes", "2000\n"),
                ("memory.limit_in_bytes", &unlimited),
                ("memory.failcnt", "3\n"),
                ("memory.kmem.usage_in_bytes", "50\n"),
                ("memory.kmem.limit_in_bytes", &unlimited),
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 1\noom_kill 2\n",
                ),
            ],
        );
        let pids = s.dir("pids", &[("pids.current", "5\n"), ("pids.max", "max\n")]);
        let blkio = s.dir(
            "blkio",
            &[
                // Empty scheduler statistics (no CFQ): the throttle ones count.
                ("blkio.io_service_bytes_recursive", ""),
                ("blkio.io_serviced_recursive", "Total 0\n"),
                (
                    "blkio.throttle.io_service_bytes_recursive",
                    "8:0 Read 4096\n8:0 Write 512\nTotal 4608\n",
                ),
                (
                    "blkio.throttle.io_serviced_recursive",
                    "8:0 Read 2\nTotal 2\n",
                ),
            ],
        );
        vec![
            ("cpu,cpuacct", cpu),
            ("memory", memory),
            ("pids", pids),
            ("blkio", blkio),
        ]
    }

    fn v1_expected() -> Metrics {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let entry = |usage, max, limit, failcnt| MemoryEntry {
            usage,
            max,
            limit,
            failcnt,
            ..Default::default()
        };
        let blk = |op: &str, value| BlkIOEntry {
            op: op.into(),
            major: 8,
            minor: 0,
            value,
            ..Default::default()
        };
        Metrics {
            pids: Some(PidsStat {
                current: 5,
                limit: 0,
                ..Default::default()
            })
            .into(),
            cpu: Some(CPUStat {
                usage: Some(CPUUsage {
                    total: 123456,
                    per_cpu: vec![100, 200],
                    user: 10 * 1_000_000_000 / hz,
                    kernel: 5 * 1_000_000_000 / hz,
                    ..Default::default()
                })
                .into(),
                throttling: Some(Throttle {
                    periods: 4,
                    throttled_periods: 2,
                    throttled_time: 700,
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            })
            .into(),
            memory: Some(MemoryStat {
                cache: 11,
                rss: 22,
                pg_fault: 44,
                hierarchical_memory_limit: V1_UNLIMITED,
                total_rss: 33,
                total_unevictable: 55,
                usage: Some(entry(1000, 2000, V1_UNLIMITED, 3)).into(),
                swap: Some(entry(0, 0, 0, 0)).into(),
                kernel: Some(entry(50, 0, V1_UNLIMITED, 0)).into(),
                kernel_tcp: Some(entry(0, 0, 0, 0)).into(),
                ..Default::default()
            })
            .into(),
            memory_oom_control: Some(MemoryOomControl {
                oom_kill_disable: 0,
                under_oom: 1,
                oom_kill: 2,
                ..Default::default()
            })
            .into(),
            blkio: Some(BlkIOStat {
                io_service_bytes_recursive: vec![blk("Read", 4096), blk("Write", 512)],
                io_serviced_recursive: vec![blk("Read", 2)],
                ..Default::default()
            })
            .into(),
            ..Default::default()
        }
    }

    fn v1_metrics(hierarchies: Vec<(&'static str, PathBuf)>) -> Metrics {
        let mut dirs = HashMap::new();
        for (controllers, dir) in hierarchies {
            for c in controllers.split(',') {
                dirs.insert(c.to_string(), dir.clone());
            }
        }
        metrics_v1(&dirs)
    }

    #[test]
    fn v1_metrics_are_read_as_containerd_reports_them() {
        let s = Scratch::new("v1");
        assert_eq!(v1_metrics(v1_fixture(&s)), v1_expected());
    }

    #[test]
    fn v1_metrics_leave_out_unmounted_controllers() {
        let s = Scratch::new("v1-cpu-only");
        let only_cpu: Vec<_> = v1_fixture(&s).into_iter().take(1).collect();
        let m = v1_metrics(only_cpu);
        assert_eq!(m.cpu, v1_expected().cpu);
        assert!(m.memory.is_none() && m.memory_oom_control.is_none());
        assert!(m.pids.is_none() && m.blkio.is_none());
    }

    fn v2_fixture(s: &Scratch, memory_max: &str, swap_max: &str) -> PathBuf {
        s.dir(
            "unified",
            &[
                (
                    "cpu.stat",
                    "usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 3\n\
                     nr_throttled 1\nthrottled_usec 7\n",
                ),
                (
                    "memory.stat",
                    "anon 1\nfile 2\nslab 4\npgfault 3\npgmajfault 5\nunknown 9\n",
                ),
                ("memory.current", "500\n"),
                ("memory.max", memory_max),
                ("memory.peak", "600\n"),
                ("memory.swap.current", "10\n"),
                ("memory.swap.max", swap_max),
                ("memory.events", "low 0\nhigh 1\nmax 2\noom 3\noom_kill 4\n"),
                ("pids.current", "2\n"),
                ("pids.max", "10\n"),
            ],
        )
    }

    fn v2_expected(usage_limit: u64, swap_limit: u64) -> MetricsV2 {
        MetricsV2 {
            pids: Some(PidsV2 {
                current: 2,
                limit: 10,
                ..Default::default()
            })
            .into(),
            cpu: Some(CpuV2 {
                usage_usec: 100,
                user_usec: 60,
                system_usec: 40,
                nr_periods: 3,
                nr_throttled: 1,
                throttled_usec: 7,
                ..Default::default()
            })
            .into(),
            memory: Some(MemoryV2 {
                anon: 1,
                file: 2,
                slab: 4,
                pgfault: 3,
                pgmajfault: 5,
                usage: 500,
                usage_limit,
                max_usage: 600,
                swap_usage: 10,
                swap_limit,
                ..Default::default()
            })
            .into(),
            memory_events: Some(MemoryEvents {
                low: 0,
                high: 1,
                max: 2,
                oom: 3,
                oom_kill: 4,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        }
    }

    fn v2_metrics(dir: &Path) -> MetricsV2 {
        collect_v2(dir)
    }

    #[test]
    fn v2_metrics_are_read_as_containerd_reports_them() {
        let s = Scratch::new("v2");
        let d = v2_fixture(&s, "1000\n", "20\n");
        assert_eq!(v2_metrics(&d), v2_expected(1000, 20));
    }

    #[test]
    fn v2_unlimited_memory_keeps_its_own_swap_limit() {
        let s = Scratch::new("v2-max");
        let d = v2_fixture(&s, "max\n", "20\n");
        assert_eq!(v2_metrics(&d), v2_expected(u64::MAX, 20));
        let s = Scratch::new("v2-max-max");
        let d = v2_fixture(&s, "max\n", "max\n");
        assert_eq!(v2_metrics(&d), v2_expected(u64::MAX, u64::MAX));
    }

    #[test]
    fn v2_pids_max_is_reported_as_no_limit() {
        let s = Scratch::new("v2-pids");
        let d = v2_fixture(&s, "1000\n", "20\n");
        std::fs::write(d.join("pids.max"), "max\n").unwrap();
        assert_eq!(v2_metrics(&d).pids.limit, 0);
    }

    #[test]
    fn own_cgroups_are_found() {
        if is_cgroup_v2() {
            return;
        }
        let dirs = v1_dirs(std::process::id()).unwrap();
        assert!(dirs.contains_key("memory"), "{dirs:?}");
        let m = collect_v1(std::process::id()).unwrap();
        assert!(m.memory.usage.usage > 0);
    }
}
