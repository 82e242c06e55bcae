//! Stats: the container init's cgroup, read by berth-cgroups, in the metrics
//! types containerd decodes (`io.containerd.cgroups.v1.Metrics` on cgroup v1
//! hosts, `io.containerd.cgroups.v2.Metrics` on cgroup v2 ones).

use std::collections::{BTreeMap, HashSet};

use berth_cgroups::stats::{BlkioEntry, MemoryEntry as CgMemoryEntry};
use berth_cgroups::{CgroupManager, Mode, Stats};
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

use crate::error::Result;

/// The metrics of the cgroup(s) process `pid` is in, packed for StatsResponse.
pub fn collect(pid: u32) -> Result<Any> {
    let cg = berth_cgroups::manager_of_pid(pid)?;
    if cg.mode() == Mode::Unified {
        return Ok(convert_to_any(Box::new(v2_metrics_of(&*cg)?))?);
    }
    Ok(convert_to_any(Box::new(v1_metrics_of(&*cg)?))?)
}

/// pids.max `max` reads as u64::MAX; containerd reports no limit as 0.
fn pids_limit(limit: u64) -> u64 {
    if limit == u64::MAX {
        0
    } else {
        limit
    }
}

fn get(map: &BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

fn v1_metrics_of(cg: &dyn CgroupManager) -> Result<Metrics> {
    let controllers: HashSet<String> = cg
        .paths()
        .keys()
        .flat_map(|k| k.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let has = |c: &str| controllers.contains(c);
    let s = cg.stats()?;
    let mut m = Metrics::new();
    if has("pids") {
        m.pids = Some(PidsStat {
            current: s.pids.current,
            limit: pids_limit(s.pids.limit),
            ..Default::default()
        })
        .into();
    }
    m.cpu = Some(cpu_v1(&s)).into();
    if has("memory") {
        m.memory = Some(memory_v1(&s)).into();
        let oom = &s.memory.oom_control;
        m.memory_oom_control = Some(MemoryOomControl {
            oom_kill_disable: get(oom, "oom_kill_disable"),
            under_oom: get(oom, "under_oom"),
            oom_kill: get(oom, "oom_kill"),
            ..Default::default()
        })
        .into();
    }
    if has("blkio") {
        m.blkio = Some(BlkIOStat {
            io_service_bytes_recursive: blkio_entries(&s.blkio.io_service_bytes_recursive),
            io_serviced_recursive: blkio_entries(&s.blkio.io_serviced_recursive),
            ..Default::default()
        })
        .into();
    }
    Ok(m)
}

fn cpu_v1(s: &Stats) -> CPUStat {
    let u = &s.cpu.usage;
    let t = &s.cpu.throttling;
    CPUStat {
        usage: Some(CPUUsage {
            total: u.total,
            per_cpu: u.percpu.clone(),
            user: u.user,
            kernel: u.kernel,
            ..Default::default()
        })
        .into(),
        throttling: Some(Throttle {
            periods: t.periods,
            throttled_periods: t.throttled_periods,
            throttled_time: t.throttled_time,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

fn memory_entry(e: &CgMemoryEntry) -> MemoryEntry {
    MemoryEntry {
        usage: e.usage,
        max: e.max,
        limit: e.limit,
        failcnt: e.failcnt,
        ..Default::default()
    }
}

type Setter = fn(&mut MemoryStat, u64);

/// memory.stat keys and the v1 metrics fields they fill.
const MEMORY_V1_FIELDS: [(&str, Setter); 32] = [
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

fn memory_v1(s: &Stats) -> MemoryStat {
    let mem = &s.memory;
    let mut out = MemoryStat::new();
    for (key, set) in MEMORY_V1_FIELDS {
        if let Some(v) = mem.raw.get(key) {
            set(&mut out, *v);
        }
    }
    out.usage = Some(memory_entry(&mem.usage)).into();
    out.swap = Some(memory_entry(&mem.swap)).into();
    out.kernel = Some(memory_entry(&mem.kernel)).into();
    out.kernel_tcp = Some(memory_entry(&mem.kernel_tcp)).into();
    out
}

/// The per-device entries; lines without an operation are left out as
/// containerd does.
fn blkio_entries(entries: &[BlkioEntry]) -> Vec<BlkIOEntry> {
    entries
        .iter()
        .filter(|e| !e.op.is_empty())
        .map(|e| BlkIOEntry {
            op: e.op.clone(),
            major: e.major,
            minor: e.minor,
            value: e.value,
            ..Default::default()
        })
        .collect()
}

type SetterV2 = fn(&mut MemoryV2, u64);

/// memory.stat keys and the v2 metrics fields they fill.
const MEMORY_V2_FIELDS: [(&str, SetterV2); 19] = [
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

fn v2_metrics_of(cg: &dyn CgroupManager) -> Result<MetricsV2> {
    let s = cg.stats()?;
    let mut m = MetricsV2::new();
    m.pids = Some(PidsV2 {
        current: s.pids.current,
        limit: pids_limit(s.pids.limit),
        ..Default::default()
    })
    .into();
    // berth-cgroups reports runc's nanoseconds; cpu.stat counts microseconds.
    let (u, t) = (&s.cpu.usage, &s.cpu.throttling);
    m.cpu = Some(CpuV2 {
        usage_usec: u.total / 1000,
        user_usec: u.user / 1000,
        system_usec: u.kernel / 1000,
        nr_periods: t.periods,
        nr_throttled: t.throttled_periods,
        throttled_usec: t.throttled_time / 1000,
        ..Default::default()
    })
    .into();
    let mem = &s.memory;
    let mut out = MemoryV2::new();
    for (key, set) in MEMORY_V2_FIELDS {
        if let Some(v) = mem.raw.get(key) {
            set(&mut out, *v);
        }
    }
    out.usage = mem.usage.usage;
    out.usage_limit = mem.usage.limit;
    out.max_usage = mem.usage.max;
    out.swap_usage = mem.swap_only.usage;
    out.swap_limit = mem.swap_only.limit;
    m.memory = Some(out).into();
    let events = &mem.events;
    m.memory_events = Some(MemoryEvents {
        low: get(events, "low"),
        high: get(events, "high"),
        max: get(events, "max"),
        oom: get(events, "oom"),
        oom_kill: get(events, "oom_kill"),
        ..Default::default()
    })
    .into();
    Ok(m)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use berth_cgroups::{V1Manager, V2Manager};
    use berth_testsupport::ScratchDir as Scratch;

    use super::*;

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
        let cg = V1Manager::existing(
            hierarchies
                .into_iter()
                .map(|(c, d)| (c.split(',').map(str::to_string).collect(), d)),
        );
        v1_metrics_of(&cg).unwrap()
    }

    #[test]
    fn v1_metrics_are_read_as_containerd_reports_them() {
        let s = Scratch::new("shim-metrics-v1");
        assert_eq!(v1_metrics(v1_fixture(&s)), v1_expected());
    }

    #[test]
    fn v1_metrics_leave_out_unmounted_controllers() {
        let s = Scratch::new("shim-metrics-v1-cpu-only");
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
        v2_metrics_of(&V2Manager::existing(dir)).unwrap()
    }

    #[test]
    fn v2_metrics_are_read_as_containerd_reports_them() {
        let s = Scratch::new("shim-metrics-v2");
        let d = v2_fixture(&s, "1000\n", "20\n");
        assert_eq!(v2_metrics(&d), v2_expected(1000, 20));
    }

    #[test]
    fn v2_unlimited_memory_keeps_its_own_swap_limit() {
        let s = Scratch::new("shim-metrics-v2-max");
        let d = v2_fixture(&s, "max\n", "20\n");
        assert_eq!(v2_metrics(&d), v2_expected(u64::MAX, 20));
        let s = Scratch::new("shim-metrics-v2-max-max");
        let d = v2_fixture(&s, "max\n", "max\n");
        assert_eq!(v2_metrics(&d), v2_expected(u64::MAX, u64::MAX));
    }

    #[test]
    fn v2_pids_max_is_reported_as_no_limit() {
        let s = Scratch::new("shim-metrics-v2-pids");
        let d = v2_fixture(&s, "1000\n", "20\n");
        std::fs::write(d.join("pids.max"), "max\n").unwrap();
        assert_eq!(v2_metrics(&d).pids.limit, 0);
    }

    #[test]
    fn own_cgroups_are_found() {
        let cg = berth_cgroups::manager_of_pid(std::process::id()).unwrap();
        if cg.mode() == Mode::Unified {
            let m = v2_metrics_of(&*cg).unwrap();
            assert!(m.memory.usage > 0);
            return;
        }
        let m = v1_metrics_of(&*cg).unwrap();
        assert!(m.memory.usage.usage > 0);
    }
}
