//! Managers opened on cgroup directories that already exist (a running
//! container's, found from its init's pid), read against fake trees with known
//! file contents: the statistics runc and containerd report from them, and the
//! OOM notifier's end when the cgroup goes away.

use std::path::PathBuf;
use std::time::Duration;

use berth_cgroups::oom::{OomNotifier, OomWakeup};
use berth_cgroups::{CgroupManager, V1Manager, V2Manager};
use berth_testsupport::ScratchDir as Scratch;

fn v1(hierarchies: &[(&str, &PathBuf)]) -> V1Manager {
    V1Manager::existing(
        hierarchies
            .iter()
            .map(|(c, d)| (c.split(',').map(str::to_string).collect(), (*d).clone())),
    )
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64
}

#[test]
fn v1_cpu_times_come_from_cpuacct_stat_ticks_as_runc_reads_them() {
    let s = Scratch::new("existing-ticks");
    let d = s.dir(
        "cpu,cpuacct",
        &[
            ("cpuacct.usage", "123456\n"),
            ("cpuacct.usage_percpu", "100 200\n"),
            ("cpuacct.stat", "user 10\nsystem 5\n"),
            ("cpuacct.usage_user", "999\n"),
            ("cpuacct.usage_sys", "888\n"),
        ],
    );
    let st = v1(&[("cpu,cpuacct", &d)]).stats().unwrap();
    assert_eq!(st.cpu.usage.total, 123456);
    assert_eq!(st.cpu.usage.percpu, vec![100, 200]);
    assert_eq!(st.cpu.usage.user, 10 * 1_000_000_000 / clock_ticks());
    assert_eq!(st.cpu.usage.kernel, 5 * 1_000_000_000 / clock_ticks());
}

#[test]
fn v1_empty_scheduler_blkio_files_fall_back_to_throttle_stats() {
    let s = Scratch::new("existing-blkio");
    let d = s.dir(
        "blkio",
        &[
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
    let st = v1(&[("blkio", &d)]).stats().unwrap();
    let ops: Vec<_> = st
        .blkio
        .io_service_bytes_recursive
        .iter()
        .map(|e| (e.major, e.minor, e.op.as_str(), e.value))
        .collect();
    assert_eq!(ops, vec![(8, 0, "Read", 4096), (8, 0, "Write", 512)]);
    assert_eq!(st.blkio.io_serviced_recursive.len(), 1);
}

#[test]
fn v1_memory_oom_control_is_read() {
    let s = Scratch::new("existing-oomctl");
    let d = s.dir(
        "memory",
        &[
            ("memory.stat", "cache 11\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 1\noom_kill 2\n",
            ),
        ],
    );
    let st = v1(&[("memory", &d)]).stats().unwrap();
    let got: Vec<_> = st
        .memory
        .oom_control
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        got,
        vec![("oom_kill", 2), ("oom_kill_disable", 0), ("under_oom", 1)]
    );
    // Not part of runc's `events --stats` JSON.
    let v = serde_json::to_value(&st).unwrap();
    assert!(v["memory"].get("oom_control").is_none(), "{v}");
}

#[test]
fn v1_existing_manager_knows_only_the_given_hierarchies() {
    let s = Scratch::new("existing-paths");
    let cpu = s.dir("cpu,cpuacct", &[]);
    let mem = s.dir("memory", &[]);
    let m = v1(&[("cpu,cpuacct", &cpu), ("memory", &mem)]);
    let paths: Vec<_> = m.paths().into_iter().collect();
    assert_eq!(
        paths,
        vec![
            ("cpu,cpuacct".to_string(), cpu),
            ("memory".to_string(), mem)
        ]
    );
    assert_eq!(m.owned_depth(), 0);
}

fn v2_dir(s: &Scratch, memory_max: &str, swap_max: &str) -> PathBuf {
    s.dir(
        "unified",
        &[
            ("memory.stat", "anon 1\nfile 2\n"),
            ("memory.current", "500\n"),
            ("memory.max", memory_max),
            ("memory.swap.current", "10\n"),
            ("memory.swap.max", swap_max),
            ("memory.events", "low 0\nhigh 1\nmax 2\noom 3\noom_kill 4\n"),
        ],
    )
}

#[test]
fn v2_swap_alone_and_memory_events_are_read() {
    let s = Scratch::new("existing-v2swap");
    let d = v2_dir(&s, "max\n", "20\n");
    let st = V2Manager::existing(&d).stats().unwrap();
    // runc's v1-shaped swap: memory + swap.
    assert_eq!(st.memory.swap.usage, 510);
    assert_eq!(st.memory.swap.limit, u64::MAX);
    // Swap alone, as containerd's v2 metrics report it.
    assert_eq!(st.memory.swap_only.usage, 10);
    assert_eq!(st.memory.swap_only.limit, 20);
    assert_eq!(st.memory.events.get("oom_kill"), Some(&4));
    assert_eq!(st.memory.events.get("low"), Some(&0));
    let v = serde_json::to_value(&st).unwrap();
    assert!(v["memory"].get("swap_only").is_none(), "{v}");
    assert!(v["memory"].get("events").is_none(), "{v}");
}

#[test]
fn v2_notifier_reports_a_rising_oom_kill_count_and_ends_with_the_cgroup() {
    let s = Scratch::new("existing-v2oom");
    let d = v2_dir(&s, "max\n", "max\n");
    let mut n = OomNotifier::v2(&d).unwrap();
    assert_eq!(
        n.wait_event(Some(Duration::from_millis(1))).unwrap(),
        OomWakeup::TimedOut
    );
    std::fs::write(d.join("memory.events"), "oom 4\noom_kill 5\n").unwrap();
    assert_eq!(
        n.wait_event(Some(Duration::from_secs(10))).unwrap(),
        OomWakeup::Oom
    );
    std::fs::remove_file(d.join("memory.events")).unwrap();
    assert_eq!(
        n.wait_event(Some(Duration::from_secs(10))).unwrap(),
        OomWakeup::CgroupRemoved
    );
}
