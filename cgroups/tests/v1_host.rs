//! cgroup v1 integration tests on the host's real hierarchies (root, v1 or hybrid host).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_cgroups::{detect, new_manager, new_manager_with, FreezerState, ManagerOptions, Mode};
use common::*;

/// The host mode, or `None` (test skipped) when not root or not a v1 host.
fn v1_host() -> Option<Mode> {
    if !is_root() {
        berth_testsupport::skip("root", "needs root");
        return None;
    }
    match detect().expect("detect") {
        Mode::Unified => {
            berth_testsupport::skip(
                "pure-cgroup2-host",
                "pure cgroup v2 host (see examples/v2check.rs)",
            );
            None
        }
        m => Some(m),
    }
}

fn dir_of(g: &CgGuard, controller: &str) -> PathBuf {
    g.paths()
        .into_iter()
        .find(|(k, _)| k.split(',').any(|c| c == controller))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {controller} path"))
}

fn procs(dir: &Path) -> Vec<i32> {
    read(dir, "cgroup.procs")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

#[test]
fn lifecycle_nested_path() {
    let Some(mode) = v1_host() else { return };
    let top = unique("life");
    let path = format!("/{top}/nested/c1");
    let cg = CgGuard::new(new_manager(Some(&path), "c1", mode).unwrap());
    let child = Sleeper::spawn();
    cg.apply(child.pid()).unwrap();
    assert_eq!(cg.owned_depth(), 3);
    assert!(cg.exists());
    for (ctrl, dir) in cg.paths() {
        assert!(
            dir.ends_with(format!("{top}/nested/c1")),
            "{ctrl}: {}",
            dir.display()
        );
        assert_eq!(procs(&dir), vec![child.pid()], "{ctrl}");
    }
    if mode == Mode::Hybrid {
        assert!(
            cg.paths().contains_key(""),
            "hybrid mode joins the unified hierarchy"
        );
    }
    // cpuset.cpus/mems were copied down so the task could join.
    let cpuset = dir_of(&cg, "cpuset");
    assert!(!read(&cpuset, "cpuset.cpus").trim().is_empty());
    assert!(!read(&cpuset, "cpuset.mems").trim().is_empty());
    assert_eq!(cg.pids().unwrap(), vec![child.pid()]);

    cg.freeze().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
    assert_eq!(
        read(&dir_of(&cg, "freezer"), "freezer.state").trim(),
        "FROZEN"
    );
    cg.thaw().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);

    let mut child = child;
    cg.kill_all(libc::SIGKILL).unwrap();
    let status = child.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(wait_until(Duration::from_secs(5), || cg
        .pids()
        .unwrap()
        .is_empty()));

    let dirs: Vec<PathBuf> = cg.paths().into_values().collect();
    cg.destroy().unwrap();
    assert!(!cg.exists());
    for d in dirs {
        // All three levels were created by the manager, so all are gone.
        let top_dir = d.ancestors().nth(2).unwrap();
        assert!(!top_dir.exists(), "{} left behind", top_dir.display());
    }
}

#[test]
fn destroy_keeps_parents_that_existed() {
    let Some(mode) = v1_host() else { return };
    let top = unique("keep");
    let probe = new_manager(Some(&format!("/{top}")), "p", mode).unwrap();
    let parents: Vec<PathBuf> = probe.paths().into_values().collect();
    for p in &parents {
        std::fs::create_dir(p).unwrap();
    }
    let mut cg = CgGuard::new(new_manager(Some(&format!("/{top}/c")), "c", mode).unwrap());
    cg.extra = parents.clone();
    cg.apply(0).unwrap();
    assert_eq!(cg.owned_depth(), 1);
    cg.destroy().unwrap();
    assert!(!cg.exists());
    for p in &parents {
        assert!(
            p.exists(),
            "pre-existing parent {} was removed",
            p.display()
        );
    }
}

#[test]
fn owned_depth_carries_to_a_later_manager() {
    let Some(mode) = v1_host() else { return };
    let top = unique("depth");
    let path = format!("/{top}/a/b");
    let first = CgGuard::new(new_manager(Some(&path), "b", mode).unwrap());
    first.apply(0).unwrap();
    let depth = first.owned_depth();
    assert_eq!(depth, 3);
    let mut opts = ManagerOptions::new(Some(&path), "b", mode);
    opts.owned_depth = Some(depth);
    let later = new_manager_with(&opts).unwrap();
    let tops: Vec<PathBuf> = later
        .paths()
        .values()
        .map(|d| d.ancestors().nth(2).unwrap().to_path_buf())
        .collect();
    later.destroy().unwrap();
    for t in tops {
        assert!(!t.exists(), "{} left behind", t.display());
    }
}

#[test]
fn default_path_is_berth_id_and_keeps_shared_parent() {
    let Some(mode) = v1_host() else { return };
    let id = unique("default");
    let cg = CgGuard::new(new_manager(None, &id, mode).unwrap());
    cg.apply(0).unwrap();
    for dir in cg.paths().values() {
        assert!(dir.ends_with(format!("berth/{id}")), "{}", dir.display());
    }
    assert!(cg.owned_depth() <= 1);
    cg.destroy().unwrap();
    assert!(!cg.exists());
}

#[test]
fn relative_path_is_below_own_cgroup() {
    let Some(mode) = v1_host() else { return };
    let rel = format!("{}/c", unique("rel"));
    let cg = CgGuard::new(new_manager(Some(&rel), "c", mode).unwrap());
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own_mem = own
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .unwrap();
    let mem = dir_of(&cg, "memory");
    let expect = Path::new("/sys/fs/cgroup/memory")
        .join(own_mem.trim_start_matches('/'))
        .join(&rel);
    assert_eq!(mem, expect);
    let child = Sleeper::spawn();
    cg.apply(child.pid()).unwrap();
    assert_eq!(procs(&mem), vec![child.pid()]);
}

#[test]
fn existing_busy_or_frozen_cgroup_is_refused() {
    let Some(mode) = v1_host() else { return };
    let path = format!("/{}", unique("busy"));
    let cg = CgGuard::new(new_manager(Some(&path), "x", mode).unwrap());
    let child = Sleeper::spawn();
    cg.apply(child.pid()).unwrap();
    let second = new_manager(Some(&path), "y", mode).unwrap();
    let err = second.apply(0).unwrap_err().to_string();
    assert!(err.contains("has processes"), "{err}");

    let path2 = format!("/{}", unique("frozen"));
    let frozen = CgGuard::new(new_manager(Some(&path2), "z", mode).unwrap());
    frozen.apply(0).unwrap();
    frozen.freeze().unwrap();
    let err = new_manager(Some(&path2), "w", mode)
        .unwrap()
        .apply(0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("frozen"), "{err}");
    frozen.thaw().unwrap();
}

#[test]
fn bad_paths_are_refused_and_leave_nothing() {
    let Some(mode) = v1_host() else { return };
    for bad in ["/", "/a/../../etc", "system.slice:berth:x"] {
        assert!(new_manager(Some(bad), "x", mode).is_err(), "{bad} accepted");
    }
    assert!(new_manager(None, "a/b", mode).is_err());
}

/// The first block device's `major:minor` (for blkio throttling).
fn block_device() -> (u64, u64) {
    let dev = std::fs::read_to_string("/sys/block/vda/dev")
        .or_else(|_| {
            let first = std::fs::read_dir("/sys/block")?.flatten().find(|e| {
                !e.file_name().to_string_lossy().starts_with("loop")
                    && e.path().join("dev").exists()
            });
            std::fs::read_to_string(first.expect("a block device").path().join("dev"))
        })
        .unwrap();
    let (a, b) = dev.trim().split_once(':').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn set_every_resource_and_read_back() {
    let Some(mode) = v1_host() else { return };
    // Declared first so that it drops after the cgroup is gone.
    let _restore = RestoreSubtreeControl::new(Path::new("/sys/fs/cgroup/unified"), "hugetlb");
    let cg = CgGuard::new(new_manager(Some(&format!("/{}/c", unique("set"))), "c", mode).unwrap());
    let child = Sleeper::spawn();
    cg.apply(child.pid()).unwrap();
    let mem = dir_of(&cg, "memory");
    let cpu = dir_of(&cg, "cpu");
    let num = |d: &Path, f: &str| read(d, f).trim().to_string();

    // memory, and updates that lower and raise memory + swap together.
    let memsw = mem.join("memory.memsw.limit_in_bytes").exists();
    let swap = if memsw { r#","swap":536870912"# } else { "" };
    cg.set(&resources(&format!(
        r#"{{"memory":{{"limit":268435456,"reservation":134217728{swap},"kernel":268435456,"kernelTCP":67108864,
            "swappiness":30,"disableOOMKiller":true,"useHierarchy":true,"checkBeforeUpdate":true}}}}"#
    )))
    .unwrap();
    assert_eq!(num(&mem, "memory.limit_in_bytes"), "268435456");
    assert_eq!(num(&mem, "memory.soft_limit_in_bytes"), "134217728");
    assert_eq!(num(&mem, "memory.kmem.tcp.limit_in_bytes"), "67108864");
    assert_eq!(num(&mem, "memory.swappiness"), "30");
    assert!(read(&mem, "memory.oom_control").contains("oom_kill_disable 1"));
    assert_eq!(num(&mem, "memory.use_hierarchy"), "1");
    if memsw {
        assert_eq!(num(&mem, "memory.memsw.limit_in_bytes"), "536870912");
        // Lower both: the memory limit has to go first.
        cg.set(&resources(
            r#"{"memory":{"limit":134217728,"swap":201326592}}"#,
        ))
        .unwrap();
        assert_eq!(num(&mem, "memory.limit_in_bytes"), "134217728");
        assert_eq!(num(&mem, "memory.memsw.limit_in_bytes"), "201326592");
        // Raise both above the old memsw: memsw has to go first.
        cg.set(&resources(
            r#"{"memory":{"limit":1073741824,"swap":2147483648}}"#,
        ))
        .unwrap();
        assert_eq!(num(&mem, "memory.limit_in_bytes"), "1073741824");
        assert_eq!(num(&mem, "memory.memsw.limit_in_bytes"), "2147483648");
        // Unlimited memory also lifts memsw.
        cg.set(&resources(r#"{"memory":{"limit":-1}}"#)).unwrap();
        assert_eq!(
            num(&mem, "memory.memsw.limit_in_bytes"),
            num(
                Path::new("/sys/fs/cgroup/memory"),
                "memory.memsw.limit_in_bytes"
            )
        );
    }
    cg.set(&resources(r#"{"memory":{"disableOOMKiller":false}}"#))
        .unwrap();
    assert!(read(&mem, "memory.oom_control").contains("oom_kill_disable 0"));
    let err = cg
        .set(&resources(r#"{"memory":{"swappiness":101}}"#))
        .unwrap_err()
        .to_string();
    assert!(err.contains("swappiness"), "{err}");
    // checkBeforeUpdate: a process that touched memory inside the cgroup.
    let _inside = Sleeper::spawn_in(&mem);
    let charged = || num(&mem, "memory.usage_in_bytes").parse::<u64>().unwrap() > 8192;
    assert!(
        wait_until(Duration::from_secs(5), charged),
        "no memory charged to the cgroup"
    );
    let err = cg
        .set(&resources(
            r#"{"memory":{"limit":4096,"checkBeforeUpdate":true}}"#,
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("below the current usage"), "{err}");
    assert_eq!(
        num(&mem, "memory.limit_in_bytes"),
        num(Path::new("/sys/fs/cgroup/memory"), "memory.limit_in_bytes")
    );

    // cpu
    cg.set(&resources(
        r#"{"cpu":{"shares":512,"quota":50000,"period":200000,"burst":10000,"realtimePeriod":1000000,
            "realtimeRuntime":1000,"idle":0,"cpus":"0","mems":"0"}}"#,
    ))
    .unwrap();
    assert_eq!(num(&cpu, "cpu.shares"), "512");
    assert_eq!(num(&cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(num(&cpu, "cpu.cfs_period_us"), "200000");
    assert_eq!(num(&cpu, "cpu.cfs_burst_us"), "10000");
    assert_eq!(num(&cpu, "cpu.rt_period_us"), "1000000");
    assert_eq!(num(&cpu, "cpu.rt_runtime_us"), "1000");
    assert_eq!(num(&cpu, "cpu.idle"), "0");
    let cpuset = dir_of(&cg, "cpuset");
    assert_eq!(num(&cpuset, "cpuset.cpus"), "0");
    assert_eq!(num(&cpuset, "cpuset.mems"), "0");
    // Shrinking the period below quota/parent constraints and dropping the quota.
    cg.set(&resources(
        r#"{"cpu":{"quota":-1,"period":100000,"idle":1}}"#,
    ))
    .unwrap();
    assert_eq!(num(&cpu, "cpu.cfs_quota_us"), "-1");
    assert_eq!(num(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(num(&cpu, "cpu.idle"), "1");
    cg.set(&resources(r#"{"cpu":{"idle":0,"realtimeRuntime":0}}"#))
        .unwrap();
    let err = cg
        .set(&resources(r#"{"cpu":{"shares":1}}"#))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cpu.shares"), "{err}");

    // pids
    cg.set(&resources(r#"{"pids":{"limit":100}}"#)).unwrap();
    assert_eq!(num(&dir_of(&cg, "pids"), "pids.max"), "100");
    cg.set(&resources(r#"{"pids":{"limit":-1}}"#)).unwrap();
    assert_eq!(num(&dir_of(&cg, "pids"), "pids.max"), "max");

    // blockIO: throttling for real; weights where the I/O scheduler offers them.
    let (maj, min) = block_device();
    cg.set(&resources(&format!(
        r#"{{"blockIO":{{"throttleReadBpsDevice":[{{"major":{maj},"minor":{min},"rate":1048576}}],
            "throttleWriteBpsDevice":[{{"major":{maj},"minor":{min},"rate":2097152}}],
            "throttleReadIOPSDevice":[{{"major":{maj},"minor":{min},"rate":100}}],
            "throttleWriteIOPSDevice":[{{"major":{maj},"minor":{min},"rate":200}}]}}}}"#
    )))
    .unwrap();
    let blkio = dir_of(&cg, "blkio");
    assert_eq!(
        num(&blkio, "blkio.throttle.read_bps_device"),
        format!("{maj}:{min} 1048576")
    );
    assert_eq!(
        num(&blkio, "blkio.throttle.write_bps_device"),
        format!("{maj}:{min} 2097152")
    );
    assert_eq!(
        num(&blkio, "blkio.throttle.read_iops_device"),
        format!("{maj}:{min} 100")
    );
    assert_eq!(
        num(&blkio, "blkio.throttle.write_iops_device"),
        format!("{maj}:{min} 200")
    );
    let weight = cg.set(&resources(r#"{"blockIO":{"weight":500}}"#));
    if blkio.join("blkio.weight").exists() || blkio.join("blkio.bfq.weight").exists() {
        weight.unwrap();
        let file = if blkio.join("blkio.weight").exists() {
            "blkio.weight"
        } else {
            "blkio.bfq.weight"
        };
        assert!(
            read(&blkio, file).split_whitespace().any(|w| w == "500"),
            "{file}: {}",
            read(&blkio, file)
        );
    } else {
        let err = weight.unwrap_err().to_string();
        assert!(
            err.contains("blockIO.weight") && err.contains("blkio.weight"),
            "{err}"
        );
    }
    let leaf = cg.set(&resources(r#"{"blockIO":{"leafWeight":300}}"#));
    if blkio.join("blkio.leaf_weight").exists() {
        leaf.unwrap();
        assert_eq!(num(&blkio, "blkio.leaf_weight"), "300");
    } else {
        assert!(leaf.unwrap_err().to_string().contains("blkio.leaf_weight"));
    }

    // devices, in order: deny everything, then allow two.
    cg.set(&resources(
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
            {"allow":true,"type":"c","major":1,"minor":5,"access":"r"},{"allow":true,"type":"b","access":"m"}]}"#,
    ))
    .unwrap();
    let list = read(&dir_of(&cg, "devices"), "devices.list");
    let mut lines: Vec<&str> = list.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["b *:* m", "c 1:3 rwm", "c 1:5 r"]);
    let err = cg
        .set(&resources(
            r#"{"devices":[{"allow":true,"type":"c","access":"x"}]}"#,
        ))
        .unwrap_err();
    assert!(err.to_string().contains("access"), "{err}");

    // hugetlb: a v1 hierarchy, or the v2 mount on hybrid hosts that offer it there
    // (which enables hugetlb in the v2 root's subtree_control: undone by `_restore`).
    let hugetlb = cg.set(&resources(
        r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
    ));
    match cg
        .paths()
        .into_iter()
        .find(|(k, _)| k.split(',').any(|c| c == "hugetlb"))
    {
        Some((_, d)) => {
            hugetlb.unwrap();
            assert_eq!(num(&d, "hugetlb.2MB.limit_in_bytes"), "4194304");
        }
        None => match cg.paths().get("") {
            Some(u)
                if read(Path::new("/sys/fs/cgroup/unified"), "cgroup.controllers")
                    .contains("hugetlb") =>
            {
                hugetlb.unwrap();
                assert_eq!(num(u, "hugetlb.2MB.max"), "4194304");
            }
            _ => assert!(hugetlb.unwrap_err().to_string().contains("hugetlb")),
        },
    }

    // network and rdma: set for real where mounted, a clear error otherwise.
    let net = cg.set(&resources(
        r#"{"network":{"classID":1048577,"priorities":[{"name":"lo","priority":5}]}}"#,
    ));
    match cg
        .paths()
        .into_iter()
        .find(|(k, _)| k.split(',').any(|c| c == "net_cls"))
    {
        Some((_, d)) => {
            net.unwrap();
            assert_eq!(num(&d, "net_cls.classid"), "1048577");
        }
        None => assert!(
            net.unwrap_err().to_string().contains("net_cls"),
            "network error must name net_cls"
        ),
    }
    let rdma = cg.set(&resources(
        r#"{"rdma":{"mlx5_1":{"hcaHandles":3,"hcaObjects":10000}}}"#,
    ));
    if !cg.paths().keys().any(|k| k.split(',').any(|c| c == "rdma")) {
        assert!(rdma.unwrap_err().to_string().contains("rdma"));
    }

    // unified: only through the v2 mount of a hybrid host.
    let unified = cg.set(&resources(r#"{"unified":{"cgroup.max.descendants":"7"}}"#));
    match cg.paths().get("") {
        Some(u) => {
            unified.unwrap();
            assert_eq!(num(u, "cgroup.max.descendants"), "7");
        }
        None => assert!(unified.unwrap_err().to_string().contains("unified")),
    }
    let err = cg
        .set(&resources(r#"{"unified":{"../x":"1"}}"#))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unified"), "{err}");
}

#[test]
fn kernel_rejection_names_resource_and_file() {
    let Some(mode) = v1_host() else { return };
    let cg = CgGuard::new(new_manager(Some(&format!("/{}", unique("reject"))), "c", mode).unwrap());
    cg.apply(0).unwrap();
    let err = cg
        .set(&resources(r#"{"cpu":{"cpus":"4096"}}"#))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cpu.cpus") && err.contains("cpuset.cpus"),
        "{err}"
    );
}

#[test]
fn late_join_of_a_hierarchy_not_joined_at_apply() {
    let Some(mode) = v1_host() else { return };
    let none = resources("{}");
    let path = format!("/{}", unique("late"));
    let mut opts = ManagerOptions::new(Some(&path), "c", mode);
    opts.resources = Some(&none);
    let cg = CgGuard::new(new_manager_with(&opts).unwrap());
    let child = Sleeper::spawn();
    cg.apply(child.pid()).unwrap();
    let cpuset = dir_of(&cg, "cpuset");
    assert!(!cpuset.exists(), "cpuset was not asked for");
    cg.set(&resources(r#"{"cpu":{"cpus":"0"}}"#)).unwrap();
    assert_eq!(procs(&cpuset), vec![child.pid()]);
    assert_eq!(read(&cpuset, "cpuset.cpus").trim(), "0");
}

#[test]
fn stats_report_usage() {
    let Some(mode) = v1_host() else { return };
    let cg = CgGuard::new(new_manager(Some(&format!("/{}", unique("stats"))), "c", mode).unwrap());
    let child = Sleeper::spawn();
    cg.apply(child.pid()).unwrap();
    cg.set(&resources(
        r#"{"pids":{"limit":50},"memory":{"limit":104857600}}"#,
    ))
    .unwrap();
    let s = cg.stats().unwrap();
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.pids.limit, 50);
    assert_eq!(s.memory.usage.limit, 104857600);
    assert!(!s.memory.raw.is_empty());
    assert!(!s.cpuset.cpus.is_empty());
    let v = serde_json::to_value(berth_cgroups::Event::stats("c", s)).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["data"]["pids"]["current"], 1);
    assert_eq!(v["data"]["memory"]["usage"]["limit"], 104857600);
}

#[test]
fn kill_all_signals_every_process_and_keeps_a_paused_cgroup_paused() {
    let Some(mode) = v1_host() else { return };
    let cg = CgGuard::new(new_manager(Some(&format!("/{}", unique("kill"))), "c", mode).unwrap());
    let a = Sleeper::spawn();
    let b = Sleeper::spawn();
    cg.apply(a.pid()).unwrap();
    cg.add_task(b.pid()).unwrap();
    let mut pids = cg.pids().unwrap();
    pids.sort();
    let mut want = vec![a.pid(), b.pid()];
    want.sort();
    assert_eq!(pids, want);
    cg.freeze().unwrap();
    cg.kill_all(libc::SIGTERM).unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
    cg.thaw().unwrap();
    let (mut a, mut b) = (a, b);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(a.0.wait().unwrap().signal(), Some(libc::SIGTERM));
    assert_eq!(b.0.wait().unwrap().signal(), Some(libc::SIGTERM));
}

#[test]
fn oom_notifier_reports_an_oom_kill() {
    let Some(mode) = v1_host() else { return };
    let cg = CgGuard::new(new_manager(Some(&format!("/{}", unique("oom"))), "c", mode).unwrap());
    cg.apply(0).unwrap();
    let mem = dir_of(&cg, "memory");
    let swap = if mem.join("memory.memsw.limit_in_bytes").exists() {
        r#","swap":33554432"#
    } else {
        ""
    };
    cg.set(&resources(&format!(
        r#"{{"memory":{{"limit":33554432{swap}}}}}"#
    )))
    .unwrap();
    let mut oom = cg.oom_notifier().unwrap();
    assert!(
        !oom.wait(Some(Duration::from_millis(1))).unwrap(),
        "no OOM yet"
    );
    // A shell that joins the cgroup, then a tail that buffers 512 MiB of a pipe.
    let script = format!(
        "echo $$ > {}/cgroup.procs && cat /dev/zero | tail -c 512M",
        mem.display()
    );
    let mut hog = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let reported = oom.wait(Some(Duration::from_secs(30)));
    // The event fires when the cgroup hits OOM; the kill is counted right after.
    let killed = wait_until(Duration::from_secs(10), || {
        !read(&mem, "memory.oom_control").contains("oom_kill 0")
    });
    let _ = hog.kill();
    let _ = hog.wait();
    assert!(reported.unwrap(), "no OOM reported");
    assert!(killed, "{}", read(&mem, "memory.oom_control"));
}

#[test]
fn parents_shared_with_another_cgroup_stay_until_the_last_one_goes() {
    let Some(mode) = v1_host() else { return };
    let top = unique("shared");
    let a = CgGuard::new(new_manager(Some(&format!("/{top}/pod/a")), "a", mode).unwrap());
    let b = CgGuard::new(new_manager(Some(&format!("/{top}/pod/b")), "b", mode).unwrap());
    a.apply(0).unwrap();
    b.apply(0).unwrap();
    assert_eq!(a.owned_depth(), 3);
    let mem_a = dir_of(&a, "memory");
    let pod = mem_a.parent().unwrap().to_path_buf();
    // The first one goes: its leaf only; the parents still hold b.
    a.destroy().unwrap();
    assert!(!mem_a.exists());
    assert!(pod.exists() && dir_of(&b, "memory").exists());
    // A later manager for b that knows it created three levels removes them all.
    let path_b = format!("/{top}/pod/b");
    let mut o = ManagerOptions::new(Some(&path_b), "b", mode);
    o.owned_depth = Some(3);
    let b2 = new_manager_with(&o).unwrap();
    b2.destroy().unwrap();
    for (ctrl, dir) in b.paths() {
        let top_dir = dir.parent().unwrap().parent().unwrap();
        assert!(!top_dir.exists(), "{ctrl}: {} left", top_dir.display());
    }
}

#[test]
fn manager_of_pid_opens_the_cgroup_a_process_is_in() {
    let Some(mode) = v1_host() else { return };
    let cg = CgGuard::new(new_manager(Some(&format!("/{}", unique("ofpid"))), "c", mode).unwrap());
    let child = Sleeper::spawn();
    cg.apply(child.pid()).unwrap();
    let found = berth_cgroups::manager_of_pid(child.pid() as u32).unwrap();
    assert_eq!(found.mode(), mode);
    let mine = cg.paths();
    for (controllers, dir) in found.paths() {
        assert_eq!(mine.get(&controllers), Some(&dir), "{controllers}");
    }
    assert_eq!(found.stats().unwrap().pids.current, 1);
    assert_eq!(found.owned_depth(), 0);
}

#[test]
fn manager_of_a_gone_pid_is_an_error() {
    if v1_host().is_none() {
        return;
    }
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(berth_cgroups::manager_of_pid(pid).is_err());
}

#[test]
fn oom_notifier_ends_when_the_cgroup_is_removed() {
    let Some(mode) = v1_host() else { return };
    let cg = CgGuard::new(new_manager(Some(&format!("/{}", unique("oomrm"))), "c", mode).unwrap());
    cg.apply(0).unwrap();
    let mut oom = cg.oom_notifier().unwrap();
    assert_eq!(
        oom.wait_event(Some(Duration::from_millis(1))).unwrap(),
        berth_cgroups::oom::OomWakeup::TimedOut
    );
    cg.destroy().unwrap();
    assert_eq!(
        oom.wait_event(Some(Duration::from_secs(10))).unwrap(),
        berth_cgroups::oom::OomWakeup::CgroupRemoved
    );
}
