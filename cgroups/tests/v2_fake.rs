//! cgroup v2 backend against a fake cgroup tree in a temporary directory: every
//! conversion and interface-file write, without a v2 kernel. Writes append
//! `value\n` to the fake files, so each file shows the writes in order.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_cgroups::{new_manager_with, CgroupManager, FreezerState, ManagerOptions, Mode};
use common::resources;

/// A temporary directory standing in for /sys/fs/cgroup, removed on drop.
struct FakeRoot(PathBuf);

impl FakeRoot {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("berth-cgv2-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        )
        .unwrap();
        FakeRoot(dir)
    }

    fn manager(&self, path: Option<&str>) -> Box<dyn CgroupManager> {
        let mut o = ManagerOptions::new(path, "c1", Mode::Unified);
        o.root = Some(self.0.clone());
        new_manager_with(&o).unwrap()
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lines(dir: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn last(dir: &Path, file: &str) -> String {
    lines(dir, file).pop().unwrap_or_default()
}

#[test]
fn apply_creates_path_enables_controllers_and_destroy_removes_what_it_made() {
    let root = FakeRoot::new("apply");
    std::fs::create_dir(root.0.join("pre")).unwrap();
    let m = root.manager(Some("/pre/a/b"));
    m.apply(4242).unwrap();
    let dir = root.0.join("pre/a/b");
    assert_eq!(m.paths()[""], dir);
    assert_eq!(m.owned_depth(), 2);
    assert_eq!(lines(&dir, "cgroup.procs"), vec!["4242"]);
    let all = "+cpuset +cpu +io +memory +hugetlb +pids +rdma +misc";
    for ancestor in ["", "pre", "pre/a"] {
        assert_eq!(
            last(&root.0.join(ancestor), "cgroup.subtree_control"),
            all,
            "{ancestor:?}"
        );
    }
    assert!(
        !dir.join("cgroup.subtree_control").exists(),
        "the leaf enables nothing"
    );
    m.destroy().unwrap();
    assert!(!root.0.join("pre/a").exists());
    assert!(
        root.0.join("pre").exists(),
        "a parent that existed before stays"
    );
}

#[test]
fn existing_cgroup_with_processes_or_frozen_is_refused() {
    let root = FakeRoot::new("busy");
    let dir = root.0.join("busy");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("cgroup.procs"), "77\n").unwrap();
    let err = root
        .manager(Some("/busy"))
        .apply(0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("has processes"), "{err}");
    let dir = root.0.join("frozen");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("cgroup.freeze"), "1\n").unwrap();
    let err = root
        .manager(Some("/frozen"))
        .apply(0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("frozen"), "{err}");
    assert!(
        dir.exists(),
        "an existing cgroup is never removed by a refused apply"
    );
}

/// The default path and the v1 -> v2 conversions of every resource.
#[test]
fn set_converts_and_writes_every_resource() {
    let root = FakeRoot::new("set");
    let m = root.manager(None);
    m.apply(0).unwrap();
    let d = root.0.join("berth/c1");
    assert_eq!(m.paths()[""], d);

    m.set(&resources(
        r#"{"cpu":{"shares":1024,"quota":50000,"period":100000,"burst":1000,"idle":0,"cpus":"0-1","mems":"0"}}"#,
    ))
    .unwrap();
    assert_eq!(last(&d, "cpu.weight"), "100");
    assert_eq!(last(&d, "cpu.max"), "50000 100000");
    assert_eq!(last(&d, "cpu.max.burst"), "1000");
    assert_eq!(last(&d, "cpu.idle"), "0");
    // idle is written before the weight (the kernel resets the weight when idle
    // goes off), and a weight with idle=1 is refused before any write.
    let idle_pos = lines(&d, "cpu.idle").len();
    m.set(&resources(r#"{"cpu":{"idle":1}}"#)).unwrap();
    assert_eq!(last(&d, "cpu.idle"), "1");
    let err = m
        .set(&resources(r#"{"cpu":{"idle":1,"shares":512}}"#))
        .unwrap_err()
        .to_string();
    assert!(err.contains("shares") && err.contains("idle"), "{err}");
    assert_eq!(lines(&d, "cpu.idle").len(), idle_pos + 1);
    assert_eq!(last(&d, "cpuset.cpus"), "0-1");
    assert_eq!(last(&d, "cpuset.mems"), "0");
    m.set(&resources(r#"{"cpu":{"shares":2}}"#)).unwrap();
    assert_eq!(last(&d, "cpu.weight"), "1");
    m.set(&resources(r#"{"cpu":{"shares":262144,"quota":-1}}"#))
        .unwrap();
    assert_eq!(last(&d, "cpu.weight"), "10000");
    assert_eq!(last(&d, "cpu.max"), "max");
    // Only a period: the current quota is kept.
    std::fs::write(d.join("cpu.max"), "20000 100000\n").unwrap();
    m.set(&resources(r#"{"cpu":{"period":50000}}"#)).unwrap();
    assert_eq!(last(&d, "cpu.max"), "20000 50000");
    let err = m
        .set(&resources(r#"{"cpu":{"realtimeRuntime":1000}}"#))
        .unwrap_err()
        .to_string();
    assert!(err.contains("realtime"), "{err}");

    m.set(&resources(r#"{"memory":{"limit":268435456,"swap":536870912,"reservation":134217728,"useHierarchy":true}}"#))
        .unwrap();
    assert_eq!(last(&d, "memory.max"), "268435456");
    assert_eq!(
        last(&d, "memory.swap.max"),
        "268435456",
        "swap.max = swap - limit"
    );
    assert_eq!(last(&d, "memory.low"), "134217728");
    m.set(&resources(r#"{"memory":{"limit":-1}}"#)).unwrap();
    assert_eq!(last(&d, "memory.max"), "max");
    assert_eq!(last(&d, "memory.swap.max"), "max");
    m.set(&resources(r#"{"memory":{"limit":1000,"swap":-1}}"#))
        .unwrap();
    assert_eq!(lines(&d, "memory.swap.max").len(), 3);
    assert_eq!(last(&d, "memory.swap.max"), "max");
    for (bad, word) in [
        (r#"{"memory":{"limit":100,"swap":50}}"#, "swap"),
        (r#"{"memory":{"swap":50}}"#, "swap"),
        (r#"{"memory":{"kernel":1000}}"#, "kernel"),
        (r#"{"memory":{"kernelTCP":1000}}"#, "kernelTCP"),
        (r#"{"memory":{"swappiness":10}}"#, "swappiness"),
        (
            r#"{"memory":{"disableOOMKiller":true}}"#,
            "disableOOMKiller",
        ),
        (r#"{"memory":{"useHierarchy":false}}"#, "useHierarchy"),
    ] {
        let err = m.set(&resources(bad)).unwrap_err().to_string();
        assert!(err.contains(word), "{bad}: {err}");
    }
    std::fs::write(d.join("memory.current"), "1000000\n").unwrap();
    let err = m
        .set(&resources(
            r#"{"memory":{"limit":4096,"checkBeforeUpdate":true}}"#,
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("below the current usage"), "{err}");
    assert_eq!(
        last(&d, "memory.max"),
        "1000",
        "a refused limit is not written"
    );

    m.set(&resources(r#"{"pids":{"limit":100}}"#)).unwrap();
    assert_eq!(last(&d, "pids.max"), "100");
    m.set(&resources(r#"{"pids":{"limit":-1}}"#)).unwrap();
    assert_eq!(last(&d, "pids.max"), "max");

    m.set(&resources(
        r#"{"blockIO":{"weight":500,"weightDevice":[{"major":8,"minor":0,"weight":100}],
            "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}],
            "throttleWriteBpsDevice":[{"major":8,"minor":0,"rate":0}],
            "throttleReadIOPSDevice":[{"major":8,"minor":16,"rate":100}],
            "throttleWriteIOPSDevice":[{"major":8,"minor":16,"rate":200}]}}"#,
    ))
    .unwrap();
    assert_eq!(lines(&d, "io.weight"), vec!["4950", "8:0 910"]);
    assert_eq!(
        lines(&d, "io.max"),
        vec![
            "8:0 rbps=1048576",
            "8:0 wbps=max",
            "8:16 riops=100",
            "8:16 wiops=200"
        ]
    );
    let err = m
        .set(&resources(r#"{"blockIO":{"leafWeight":10}}"#))
        .unwrap_err()
        .to_string();
    assert!(err.contains("leafWeight"), "{err}");
    // With BFQ, weights keep the v1 range.
    std::fs::write(d.join("io.bfq.weight"), "").unwrap();
    m.set(&resources(
        r#"{"blockIO":{"weight":500,"weightDevice":[{"major":8,"minor":0,"weight":100}]}}"#,
    ))
    .unwrap();
    assert_eq!(lines(&d, "io.bfq.weight"), vec!["500", "8:0 100"]);

    m.set(&resources(
        r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304},{"pageSize":"1GB","limit":-1}]}"#,
    ))
    .unwrap();
    assert_eq!(last(&d, "hugetlb.2MB.max"), "4194304");
    assert_eq!(last(&d, "hugetlb.1GB.max"), "max");

    m.set(&resources(
        r#"{"rdma":{"mlx5_1":{"hcaHandles":3,"hcaObjects":10000},"mlx4_0":{"hcaHandles":1}}}"#,
    ))
    .unwrap();
    assert_eq!(
        lines(&d, "rdma.max"),
        vec![
            "mlx4_0 hca_handle=1",
            "mlx5_1 hca_handle=3 hca_object=10000"
        ]
    );

    let err = m
        .set(&resources(r#"{"network":{"classID":1}}"#))
        .unwrap_err()
        .to_string();
    assert!(err.contains("network"), "{err}");

    m.set(&resources(
        r#"{"unified":{"memory.high":"1048576","pids.max":"9"}}"#,
    ))
    .unwrap();
    assert_eq!(last(&d, "memory.high"), "1048576");
    assert_eq!(last(&d, "pids.max"), "9");
    for bad in [
        r#"{"unified":{"../../x.y":"1"}}"#,
        r#"{"unified":{"nodot":"1"}}"#,
    ] {
        assert!(
            m.set(&resources(bad))
                .unwrap_err()
                .to_string()
                .contains("unified"),
            "{bad}"
        );
    }
    m.destroy().unwrap();
    assert!(!d.exists());
    assert!(
        root.0.join("berth").exists(),
        "the shared default parent stays"
    );
}

/// A stand-in for the kernel: mirrors cgroup.freeze into cgroup.events.
fn fake_freezer(dir: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.freeze")) {
                let frozen = s.lines().last().unwrap_or("0");
                let _ = std::fs::write(
                    dir.join("cgroup.events"),
                    format!("populated 1\nfrozen {frozen}\n"),
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

#[test]
fn freeze_thaw_wait_for_cgroup_events() {
    let root = FakeRoot::new("freeze");
    let m = root.manager(Some("/f"));
    m.apply(0).unwrap();
    let d = root.0.join("f");
    std::fs::write(d.join("cgroup.freeze"), "0\n").unwrap();
    std::fs::write(d.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let kernel = fake_freezer(d.clone(), stop.clone());
    let result = (|| {
        m.freeze()?;
        assert_eq!(m.freezer_state()?, FreezerState::Frozen);
        m.thaw()?;
        assert_eq!(m.freezer_state()?, FreezerState::Thawed);
        berth_cgroups::Result::Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    kernel.join().unwrap();
    result.unwrap();
    assert_eq!(lines(&d, "cgroup.freeze"), vec!["0", "1", "0"]);
}

#[test]
fn kill_all_uses_cgroup_kill_and_pids_are_recursive() {
    let root = FakeRoot::new("kill");
    let m = root.manager(Some("/k"));
    m.apply(0).unwrap();
    let d = root.0.join("k");
    std::fs::write(d.join("cgroup.procs"), "").unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    // Pids that cannot exist (above pid_max), so nothing real is signalled.
    std::fs::write(d.join("sub/cgroup.procs"), "99999999\n").unwrap();
    assert_eq!(m.pids().unwrap(), vec![99999999]);
    std::fs::write(d.join("cgroup.kill"), "").unwrap();
    m.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(lines(&d, "cgroup.kill"), vec!["1"]);
    m.destroy().unwrap();
    assert!(!d.exists(), "sub-cgroups are removed too");
}

#[test]
fn stats_map_v2_files_to_runc_fields() {
    let root = FakeRoot::new("stats");
    let m = root.manager(Some("/s"));
    m.apply(0).unwrap();
    let d = root.0.join("s");
    let files = [
        ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 30\n"),
        ("memory.stat", "anon 4096\nfile 8192\n"),
        ("memory.current", "12288\n"),
        ("memory.max", "max\n"),
        ("memory.peak", "20000\n"),
        ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
        ("memory.swap.current", "100\n"),
        ("memory.swap.max", "1000\n"),
        ("pids.current", "4\n"),
        ("pids.max", "64\n"),
        ("io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"),
    ];
    for (f, v) in files {
        std::fs::write(d.join(f), v).unwrap();
    }
    let s = m.stats().unwrap();
    assert_eq!(s.cpu.usage.total, 1_500_000);
    assert_eq!(s.cpu.usage.user, 1_000_000);
    assert_eq!(s.cpu.usage.kernel, 500_000);
    assert_eq!(s.cpu.throttling.periods, 10);
    assert_eq!(s.cpu.throttling.throttled_periods, 2);
    assert_eq!(s.cpu.throttling.throttled_time, 30_000);
    assert_eq!(s.memory.cache, 8192);
    assert_eq!(s.memory.raw["anon"], 4096);
    assert_eq!(s.memory.usage.usage, 12288);
    assert_eq!(s.memory.usage.limit, u64::MAX);
    assert_eq!(s.memory.usage.max, 20000);
    assert_eq!(s.memory.usage.failcnt, 3);
    assert_eq!(s.memory.swap.usage, 12388);
    assert_eq!(s.memory.swap.limit, u64::MAX);
    assert_eq!(s.pids.current, 4);
    assert_eq!(s.pids.limit, 64);
    let io = &s.blkio.io_service_bytes_recursive;
    assert_eq!(io.len(), 3);
    assert_eq!(
        (io[0].major, io[0].minor, io[0].op.as_str(), io[0].value),
        (8, 0, "Read", 10)
    );
    assert_eq!((io[1].op.as_str(), io[1].value), ("Write", 20));
    assert_eq!(s.blkio.io_serviced_recursive[1].value, 2);
    let json = serde_json::to_value(berth_cgroups::Event::stats("c1", s)).unwrap();
    assert_eq!(json["data"]["cpu"]["throttling"]["throttledPeriods"], 2);
    assert_eq!(
        json["data"]["blkio"]["ioServiceBytesRecursive"][0]["op"],
        "Read"
    );
}

#[test]
fn oom_notifier_watches_memory_events() {
    let root = FakeRoot::new("oom");
    let m = root.manager(Some("/o"));
    m.apply(0).unwrap();
    let events = root.0.join("o/memory.events");
    std::fs::write(&events, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n").unwrap();
    let mut n = m.oom_notifier().unwrap();
    assert!(!n.wait(Some(Duration::from_millis(1))).unwrap());
    std::fs::write(&events, "low 0\nhigh 0\nmax 5\noom 0\noom_kill 0\n").unwrap();
    assert!(
        !n.wait(Some(Duration::from_millis(50))).unwrap(),
        "max events alone are not an OOM kill"
    );
    std::fs::write(&events, "low 0\nhigh 0\nmax 6\noom 1\noom_kill 1\n").unwrap();
    assert!(n.wait(Some(Duration::from_secs(5))).unwrap());
}

#[test]
fn update_changes_resources_but_never_device_rules() {
    let root = FakeRoot::new("update");
    let m = root.manager(None);
    m.apply(0).unwrap();
    let d = root.0.join("berth/c1");
    // An invalid device rule shows whether device rules are looked at at all.
    let r = resources(
        r#"{"memory":{"limit":104857600},"pids":{"limit":30},
            "devices":[{"allow":true,"type":"c","major":1,"minor":3,"access":"rwx"}]}"#,
    );
    let err = m.set(&r).unwrap_err().to_string();
    assert!(err.contains("devices"), "{err}");
    m.update(&r).unwrap();
    assert_eq!(last(&d, "memory.max"), "104857600");
    assert_eq!(last(&d, "pids.max"), "30");
    // 0 means "unchanged": nothing is written (the two lines are the failed
    // set's and the update's).
    m.update(&resources(
        r#"{"memory":{"limit":0},"pids":{"limit":0},"cpu":{"shares":0}}"#,
    ))
    .unwrap();
    assert_eq!(lines(&d, "memory.max"), vec!["104857600"; 2]);
    assert_eq!(lines(&d, "pids.max"), vec!["30"; 2]);
    assert!(!d.join("cpu.weight").exists());
    m.destroy().unwrap();
}
