//! `linux.resources` end to end on a cgroup v1 (or hybrid) host: every field is set
//! through `berth create` of a bundle, read back from the kernel's cgroup files,
//! changed with `berth update --resources` and read back again. Values the kernel
//! refuses must fail with an error naming the resource and leave nothing behind.
//!
//! net_cls/net_prio are usually not mounted: that test mounts a v1 hierarchy
//! `net_cls,net_prio` in a private mount namespace held by a `sleep` process, and
//! runs berth inside it through `nsenter`. The cgroup v2 side of the same checks
//! runs in the pure-v2 guest (tests/v2vm).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::{json, Value};

/// True on a v1 or hybrid host; prints why and returns false otherwise.
fn v1_host() -> bool {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        berth_testsupport::skip(
            "pure-cgroup2-host",
            "pure cgroup v2 host (the v2 side runs in tests/v2vm)",
        );
        return false;
    }
    true
}

/// The container's directory in a v1 hierarchy mounted at /sys/fs/cgroup/<hierarchy>.
fn cg(hierarchy: &str, id: &str) -> PathBuf {
    PathBuf::from(format!("/sys/fs/cgroup/{hierarchy}/berth/{id}"))
}

#[track_caller]
fn read(dir: &Path, file: &str) -> String {
    let p = dir.join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// A sandbox whose bundle runs `sleep 1000` with `resources` as linux.resources.
fn sandbox(prefix: &str, resources: Value) -> Sandbox {
    let mut sb = Sandbox::new(prefix);
    sb.bundle.args(&["sleep", "1000"]);
    sb.bundle.set("/linux/resources", resources);
    sb
}

/// `berth update --resources FILE ID` with `changes` written to FILE.
fn update(sb: &Sandbox, id: &str, changes: &Value) -> Out {
    let file = sb.dir.join(format!("{}.json", unique("update")));
    std::fs::write(&file, serde_json::to_vec(changes).unwrap()).unwrap();
    sb.berth(&["update", "--resources", file.to_str().unwrap(), id])
}

/// `major:minor` of a real block device (the first disk that is not a loop/zram).
fn disk() -> (u64, u64) {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("zram") && !n.starts_with("ram"))
        .collect();
    names.sort();
    let name = names.first().expect("a block device in /sys/block");
    dev_numbers(&format!("/sys/block/{name}/dev"))
}

fn dev_numbers(path: &str) -> (u64, u64) {
    let dev = std::fs::read_to_string(path).unwrap();
    let (a, b) = dev.trim().split_once(':').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

/// A loop device of our own whose I/O scheduler is BFQ (per-device weights need a
/// proportional scheduler); detached on drop.
struct BfqLoop {
    dev: String,
    numbers: (u64, u64),
}

impl BfqLoop {
    fn new(sb: &Sandbox) -> Option<BfqLoop> {
        let img = sb.dir.join("loop.img");
        std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&img)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "no loop device: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let name = dev.trim_start_matches("/dev/").to_string();
        let guard = BfqLoop {
            numbers: dev_numbers(&format!("/sys/block/{name}/dev")),
            dev,
        };
        let sched = format!("/sys/block/{name}/queue/scheduler");
        if std::fs::write(&sched, "bfq").is_err() {
            eprintln!("the bfq I/O scheduler is not available for {name}");
            return None;
        }
        Some(guard)
    }
}

impl Drop for BfqLoop {
    fn drop(&mut self) {
        let name = self.dev.trim_start_matches("/dev/");
        let _ = std::fs::write(format!("/sys/block/{name}/queue/scheduler"), "none");
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

#[test]
fn memory_is_applied_and_updated() {
    if !v1_host() {
        return;
    }
    let memsw = Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    let mut mem = json!({"limit": 268435456, "reservation": 134217728, "kernel": 268435456,
        "kernelTCP": 67108864, "swappiness": 30, "disableOOMKiller": true, "useHierarchy": true});
    if memsw {
        mem["swap"] = json!(536870912);
    }
    let sb = sandbox("rs-mem", json!({ "memory": mem }));
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.created(&id);
        let d = cg("memory", &id);
        assert_eq!(read(&d, "memory.limit_in_bytes"), "268435456");
        assert_eq!(read(&d, "memory.soft_limit_in_bytes"), "134217728");
        // OCI swap is memory+swap, which is what memsw limits.
        if memsw {
            assert_eq!(read(&d, "memory.memsw.limit_in_bytes"), "536870912");
        } else {
            eprintln!("memory.memsw.* missing (swap accounting off): swap not checked");
        }
        // Kernels since 5.16 accept memory.kmem.limit_in_bytes and ignore it.
        let kmem = read(&d, "memory.kmem.limit_in_bytes");
        let unlimited = read(
            Path::new("/sys/fs/cgroup/memory"),
            "memory.kmem.limit_in_bytes",
        );
        assert!(
            kmem == "268435456" || kmem == unlimited,
            "memory.kmem.limit_in_bytes = {kmem}"
        );
        assert_eq!(read(&d, "memory.kmem.tcp.limit_in_bytes"), "67108864");
        assert_eq!(read(&d, "memory.swappiness"), "30");
        assert!(read(&d, "memory.oom_control").contains("oom_kill_disable 1"));
        assert_eq!(read(&d, "memory.use_hierarchy"), "1");

        // Lower memory and swap together (the limit must be written first), and
        // turn the OOM killer back on.
        let mut changes = json!({"memory": {"limit": 134217728, "reservation": 67108864,
            "kernelTCP": 33554432, "swappiness": 60, "disableOOMKiller": false}});
        if memsw {
            changes["memory"]["swap"] = json!(201326592);
        }
        let out = update(&sb, &id, &changes);
        out.expect_ok();
        assert_eq!(read(&d, "memory.limit_in_bytes"), "134217728");
        assert_eq!(read(&d, "memory.soft_limit_in_bytes"), "67108864");
        // Kernel memory limits are fixed at create (runc 1.1 ignores them too):
        // update warns and leaves the value.
        assert!(out.stderr.contains("kernelTCP"), "{}", out.stderr);
        assert_eq!(read(&d, "memory.kmem.tcp.limit_in_bytes"), "67108864");
        assert_eq!(read(&d, "memory.swappiness"), "60");
        assert!(read(&d, "memory.oom_control").contains("oom_kill_disable 0"));
        if memsw {
            assert_eq!(read(&d, "memory.memsw.limit_in_bytes"), "201326592");
            // Raise both above the old memsw: memsw must go first.
            update(
                &sb,
                &id,
                &json!({"memory": {"limit": 1073741824, "swap": 2147483648u64}}),
            )
            .expect_ok();
            assert_eq!(read(&d, "memory.limit_in_bytes"), "1073741824");
            assert_eq!(read(&d, "memory.memsw.limit_in_bytes"), "2147483648");
        }
        // The kernel refuses swappiness > 100: the error names it, the value stays.
        update(&sb, &id, &json!({"memory": {"swappiness": 101}})).expect_fail(&["swappiness"]);
        assert_eq!(read(&d, "memory.swappiness"), "60");
    }
    base.assert_clean(&sb);
}

#[test]
fn cpu_and_cpuset_are_applied_and_updated() {
    if !v1_host() {
        return;
    }
    let cpu_root = Path::new("/sys/fs/cgroup/cpu");
    let burst = cpu_root.join("cpu.cfs_burst_us").exists();
    let idle = cpu_root.join("cpu.idle").exists();
    let rt = cpu_root.join("cpu.rt_runtime_us").exists();
    let mut cpu =
        json!({"shares": 512, "quota": 50000, "period": 200000, "cpus": "0", "mems": "0"});
    if burst {
        cpu["burst"] = json!(10000);
    }
    if idle {
        cpu["idle"] = json!(0);
    }
    if rt {
        cpu["realtimePeriod"] = json!(1000000);
        cpu["realtimeRuntime"] = json!(1000);
    }
    let sb = sandbox("rs-cpu", json!({ "cpu": cpu }));
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.created(&id);
        let d = cg("cpu", &id);
        let set = cg("cpuset", &id);
        assert_eq!(read(&d, "cpu.shares"), "512");
        assert_eq!(read(&d, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(&d, "cpu.cfs_period_us"), "200000");
        if burst {
            assert_eq!(read(&d, "cpu.cfs_burst_us"), "10000");
        } else {
            eprintln!("no cpu.cfs_burst_us on this kernel: burst not checked");
        }
        if idle {
            assert_eq!(read(&d, "cpu.idle"), "0");
        } else {
            eprintln!("no cpu.idle on this kernel: idle not checked");
        }
        if rt {
            assert_eq!(read(&d, "cpu.rt_period_us"), "1000000");
            assert_eq!(read(&d, "cpu.rt_runtime_us"), "1000");
        } else {
            eprintln!("no cpu.rt_* (CONFIG_RT_GROUP_SCHED off): realtime not checked");
        }
        assert_eq!(read(&set, "cpuset.cpus"), "0");
        assert_eq!(read(&set, "cpuset.mems"), "0");

        let all_cpus = read(Path::new("/sys/fs/cgroup/cpuset"), "cpuset.cpus");
        let mut changes = json!({"cpu": {"shares": 2048, "quota": 20000, "period": 100000,
            "cpus": all_cpus}});
        if burst {
            changes["cpu"]["burst"] = json!(5000);
        }
        if rt {
            changes["cpu"]["realtimeRuntime"] = json!(500);
        }
        update(&sb, &id, &changes).expect_ok();
        assert_eq!(read(&d, "cpu.shares"), "2048");
        assert_eq!(read(&d, "cpu.cfs_quota_us"), "20000");
        assert_eq!(read(&d, "cpu.cfs_period_us"), "100000");
        if burst {
            assert_eq!(read(&d, "cpu.cfs_burst_us"), "5000");
        }
        if rt {
            assert_eq!(read(&d, "cpu.rt_runtime_us"), "500");
        }
        if idle {
            // An idle cgroup runs at the kernel's minimum weight and refuses shares;
            // turning idle off resets the weight, so idle must be written first.
            update(&sb, &id, &json!({"cpu": {"idle": 1}})).expect_ok();
            assert_eq!(read(&d, "cpu.idle"), "1");
            update(&sb, &id, &json!({"cpu": {"shares": 1024}})).expect_fail(&["cpu.shares"]);
            update(&sb, &id, &json!({"cpu": {"idle": 0, "shares": 768}})).expect_ok();
            assert_eq!(read(&d, "cpu.idle"), "0");
            assert_eq!(read(&d, "cpu.shares"), "768");
            update(&sb, &id, &json!({"cpu": {"idle": 1, "shares": 512}}))
                .expect_fail(&["shares", "idle"]);
            assert_eq!(read(&d, "cpu.idle"), "0");
            assert_eq!(read(&d, "cpu.shares"), "768");
        }
        assert_eq!(read(&set, "cpuset.cpus"), all_cpus);
        // No quota at all.
        update(&sb, &id, &json!({"cpu": {"quota": -1}})).expect_ok();
        assert_eq!(read(&d, "cpu.cfs_quota_us"), "-1");
        // A CPU that does not exist: refused by the kernel, named, value kept.
        update(&sb, &id, &json!({"cpu": {"cpus": "4096"}})).expect_fail(&["cpu.cpus"]);
        assert_eq!(read(&set, "cpuset.cpus"), all_cpus);
    }
    base.assert_clean(&sb);
}

#[test]
fn pids_limit_is_applied_and_updated() {
    if !v1_host() {
        return;
    }
    let sb = sandbox("rs-pids", json!({"pids": {"limit": 77}}));
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.created(&id);
        let d = cg("pids", &id);
        assert_eq!(read(&d, "pids.max"), "77");
        update(&sb, &id, &json!({"pids": {"limit": 33}})).expect_ok();
        assert_eq!(read(&d, "pids.max"), "33");
        update(&sb, &id, &json!({"pids": {"limit": -1}})).expect_ok();
        assert_eq!(read(&d, "pids.max"), "max");
    }
    base.assert_clean(&sb);
}

/// The value of the `MAJ:MIN` line of a blkio `*_device` file (or the whole
/// file for a plain weight file that also lists `default N`).
fn device_line(content: &str, dev: (u64, u64)) -> Option<String> {
    let key = format!("{}:{}", dev.0, dev.1);
    content.lines().find_map(|l| {
        l.strip_prefix(&format!("{key} "))
            .map(|v| v.trim().to_string())
    })
}

/// blkio.weight (CFQ) or blkio.bfq.weight (BFQ): the number on the file's
/// `default N` line, or the file itself.
fn weight_value(d: &Path) -> String {
    let file = if d.join("blkio.weight").exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    let text = read(d, file);
    text.lines()
        .find_map(|l| l.strip_prefix("default "))
        .unwrap_or(&text)
        .trim()
        .to_string()
}

#[test]
fn block_io_is_applied_and_updated() {
    if !v1_host() {
        return;
    }
    let disk = disk();
    let (maj, min) = disk;
    let throttle = |rate: u64| json!([{"major": maj, "minor": min, "rate": rate}]);
    let mut sb = sandbox("rs-blkio", json!({}));
    let bfq = BfqLoop::new(&sb);
    let weights = Path::new("/sys/fs/cgroup/blkio/berth").exists()
        && ["blkio.weight", "blkio.bfq.weight"]
            .iter()
            .any(|f| Path::new("/sys/fs/cgroup/blkio/berth").join(f).exists());
    let mut blkio = json!({
        "throttleReadBpsDevice": throttle(1048576),
        "throttleWriteBpsDevice": throttle(2097152),
        "throttleReadIOPSDevice": throttle(100),
        "throttleWriteIOPSDevice": throttle(200),
    });
    if weights {
        blkio["weight"] = json!(500);
    } else {
        eprintln!("no proportional I/O weight files (blkio.weight / blkio.bfq.weight): weight not checked");
    }
    if let Some(l) = &bfq {
        blkio["weightDevice"] =
            json!([{"major": l.numbers.0, "minor": l.numbers.1, "weight": 600}]);
    } else {
        eprintln!("no BFQ loop device: weightDevice not checked");
    }
    sb.bundle.set("/linux/resources/blockIO", blkio);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.created(&id);
        let d = cg("blkio", &id);
        let line = |f: &str, dev| device_line(&read(&d, f), dev);
        assert_eq!(
            line("blkio.throttle.read_bps_device", disk).as_deref(),
            Some("1048576")
        );
        assert_eq!(
            line("blkio.throttle.write_bps_device", disk).as_deref(),
            Some("2097152")
        );
        assert_eq!(
            line("blkio.throttle.read_iops_device", disk).as_deref(),
            Some("100")
        );
        assert_eq!(
            line("blkio.throttle.write_iops_device", disk).as_deref(),
            Some("200")
        );
        if weights {
            assert_eq!(weight_value(&d), "500");
        }
        let wd_file = if d.join("blkio.weight_device").exists() {
            "blkio.weight_device"
        } else {
            "blkio.bfq.weight_device"
        };
        if let Some(l) = &bfq {
            assert_eq!(line(wd_file, l.numbers).as_deref(), Some("600"));
        }

        let mut changes = json!({"blockIO": {
            "throttleReadBpsDevice": throttle(4194304),
            "throttleWriteBpsDevice": throttle(8388608),
            "throttleReadIOPSDevice": throttle(300),
            "throttleWriteIOPSDevice": throttle(400)}});
        if weights {
            changes["blockIO"]["weight"] = json!(700);
        }
        if let Some(l) = &bfq {
            changes["blockIO"]["weightDevice"] =
                json!([{"major": l.numbers.0, "minor": l.numbers.1, "weight": 300}]);
        }
        update(&sb, &id, &changes).expect_ok();
        assert_eq!(
            line("blkio.throttle.read_bps_device", disk).as_deref(),
            Some("4194304")
        );
        assert_eq!(
            line("blkio.throttle.write_bps_device", disk).as_deref(),
            Some("8388608")
        );
        assert_eq!(
            line("blkio.throttle.read_iops_device", disk).as_deref(),
            Some("300")
        );
        assert_eq!(
            line("blkio.throttle.write_iops_device", disk).as_deref(),
            Some("400")
        );
        if weights {
            assert_eq!(weight_value(&d), "700");
        }
        if let Some(l) = &bfq {
            assert_eq!(line(wd_file, l.numbers).as_deref(), Some("300"));
        }
        // A rate of 0 removes the throttle.
        update(
            &sb,
            &id,
            &json!({"blockIO": {"throttleReadBpsDevice": throttle(0)}}),
        )
        .expect_ok();
        assert_eq!(line("blkio.throttle.read_bps_device", disk), None);
    }
    base.assert_clean(&sb);
}

/// Restores the v2 mount's `cgroup.subtree_control` for `controller` (the berth
/// parent first, then the root) when the test enabled it there.
struct RestoreSubtree {
    dirs: Vec<PathBuf>,
    controller: &'static str,
}

impl RestoreSubtree {
    fn new(controller: &'static str) -> RestoreSubtree {
        let root = PathBuf::from("/sys/fs/cgroup/unified");
        let enabled = |d: &Path| {
            std::fs::read_to_string(d.join("cgroup.subtree_control"))
                .map(|s| s.split_whitespace().any(|c| c == controller))
                .unwrap_or(true)
        };
        let mut dirs = Vec::new();
        for d in [root.join("berth"), root] {
            if !enabled(&d) {
                dirs.push(d);
            }
        }
        RestoreSubtree { dirs, controller }
    }
}

impl Drop for RestoreSubtree {
    fn drop(&mut self) {
        for d in &self.dirs {
            let _ = std::fs::write(
                d.join("cgroup.subtree_control"),
                format!("-{}", self.controller),
            );
        }
    }
}

/// hugetlb and `unified` on a hybrid host: both go to the cgroup2 mount at
/// /sys/fs/cgroup/unified.
#[test]
fn hugetlb_and_unified_on_the_hybrid_v2_mount() {
    if !v1_host() {
        return;
    }
    let unified = Path::new("/sys/fs/cgroup/unified");
    let offers_hugetlb = std::fs::read_to_string(unified.join("cgroup.controllers"))
        .map(|c| c.split_whitespace().any(|c| c == "hugetlb"))
        .unwrap_or(false);
    if !offers_hugetlb || !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        berth_testsupport::skip(
            "hugetlb",
            "needs a hybrid host whose cgroup2 mount offers hugetlb, and 2MB pages",
        );
        return;
    }
    // Declared first so that it runs after the container's cgroup is gone.
    let _restore = RestoreSubtree::new("hugetlb");
    let sb = sandbox(
        "rs-huge",
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
               "unified": {"cgroup.max.descendants": "7", "cgroup.max.depth": "3"}}),
    );
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.created(&id);
        let d = cg("unified", &id);
        assert_eq!(read(&d, "hugetlb.2MB.max"), "4194304");
        assert_eq!(read(&d, "cgroup.max.descendants"), "7");
        assert_eq!(read(&d, "cgroup.max.depth"), "3");
        update(
            &sb,
            &id,
            &json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 8388608}],
                    "unified": {"cgroup.max.descendants": "9"}}),
        )
        .expect_ok();
        assert_eq!(read(&d, "hugetlb.2MB.max"), "8388608");
        assert_eq!(read(&d, "cgroup.max.descendants"), "9");
        // A page size the kernel does not have, and a key that is not a file.
        update(
            &sb,
            &id,
            &json!({"hugepageLimits": [{"pageSize": "3MB", "limit": 8388608}]}),
        )
        .expect_fail(&["hugepageLimits"]);
        update(&sb, &id, &json!({"unified": {"no.such.file": "1"}})).expect_fail(&["unified"]);
    }
    base.assert_clean(&sb);
}

#[test]
fn devices_list_after_create_and_update_leaves_it() {
    if !v1_host() {
        return;
    }
    let sb = sandbox(
        "rs-dev",
        json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"},
            {"allow": true, "type": "b", "major": 7, "access": "r"}]}),
    );
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.created(&id);
        let d = cg("devices", &id);
        let list = read(&d, "devices.list");
        let lines: Vec<&str> = list.lines().collect();
        assert!(
            !lines.contains(&"a *:* rwm"),
            "deny-all not applied:\n{list}"
        );
        for want in ["c 10:200 rw", "b 7:* r", "c 1:3 rwm", "c 5:2 rwm"] {
            assert!(
                lines.contains(&want),
                "{want:?} missing from devices.list:\n{list}"
            );
        }
        assert!(
            !lines
                .iter()
                .any(|l| l.starts_with("b 254:") || l.starts_with("c 4:")),
            "{list}"
        );
        // Device rules are fixed at create (as with runc): update says so and keeps them.
        let out = update(
            &sb,
            &id,
            &json!({"devices": [{"allow": true, "type": "c", "major": 4, "minor": 1, "access": "rwm"}]}),
        );
        out.expect_ok();
        assert!(out.stderr.contains("devices"), "{}", out.stderr);
        assert_eq!(read(&d, "devices.list"), list);
    }
    base.assert_clean(&sb);
}

#[test]
fn rdma_without_the_controller_is_a_clear_error() {
    if !v1_host() {
        return;
    }
    let rdma_mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" - cgroup ") && l.split(',').any(|o| o.trim() == "rdma"));
    if rdma_mounted {
        berth_testsupport::skip(
            "rdma-v1",
            "this host has a v1 rdma hierarchy, and no RDMA device to set",
        );
        return;
    }
    let sb = sandbox(
        "rs-rdma",
        json!({"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}}),
    );
    let id = sb.id("c");
    let base = sb.baseline(&id);
    sb.create(&id).expect_fail(&["rdma"]);
    base.assert_clean(&sb);
}

/// Values the kernel refuses at create: the error names the resource, and no
/// cgroup, state or process is left.
#[test]
fn rejected_values_fail_create_and_leave_nothing() {
    if !v1_host() {
        return;
    }
    let blkio = Path::new("/sys/fs/cgroup/blkio/berth");
    let mut cases = vec![
        (json!({"cpu": {"cpus": "4096"}}), "cpu.cpus"),
        (json!({"cpu": {"mems": "64"}}), "cpu.mems"),
        (json!({"memory": {"swappiness": 200}}), "swappiness"),
        (
            json!({"pids": {"limit": 5}, "hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}),
            "hugepageLimits",
        ),
    ];
    if blkio.exists() && !blkio.join("blkio.leaf_weight").exists() {
        // BFQ has no leaf weights.
        cases.push((
            json!({"blockIO": {"leafWeight": 300}}),
            "blockIO.leafWeight",
        ));
    }
    for (i, (res, name)) in cases.into_iter().enumerate() {
        let sb = sandbox("rs-bad", res.clone());
        let id = sb.id(&format!("c{i}"));
        let base = sb.baseline(&id);
        sb.create(&id).expect_fail(&[name]);
        assert!(cg_dirs_gone(&id), "cgroups left after a refused {res}");
        base.assert_clean(&sb);
    }
}

fn cg_dirs_gone(id: &str) -> bool {
    wait_until(POLL_TIMEOUT, || cgroup_dirs(id).is_empty())
}

/// A private mount namespace held open by a `sleep` process: v1 `net_cls,net_prio`
/// is mounted at `mountpoint` and the hybrid cgroup2 mount is removed, so berth run
/// through [`NsHost::berth`] sees a pure v1 host with those controllers. Files
/// are read through /proc/PID/root. Drop deletes the containers in the namespace,
/// removes the berth parent from the hierarchy and ends the holder.
struct NsHost<'a> {
    sb: &'a Sandbox,
    holder: Child,
    mountpoint: PathBuf,
    ids: Vec<String>,
}

impl<'a> NsHost<'a> {
    fn new(sb: &'a Sandbox) -> Option<NsHost<'a>> {
        let mountpoint = sb.dir.join("net_cls,net_prio");
        std::fs::create_dir(&mountpoint).unwrap();
        let ready = sb.dir.join("ns-ready");
        let script = format!(
            "set -e; umount /sys/fs/cgroup/unified 2>/dev/null || true; \
             mount -t cgroup -o net_cls,net_prio cgroup '{}'; echo ok > '{}'; exec sleep 1000",
            mountpoint.display(),
            ready.display()
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c", &script])
            .env(TAG_VAR, &sb.tag)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(sb.dir.join("ns-holder.err")).unwrap());
        let holder = cmd.spawn().expect("spawn unshare");
        let mut ns = NsHost {
            sb,
            holder,
            mountpoint,
            ids: Vec::new(),
        };
        let ok = wait_until(POLL_TIMEOUT, || {
            ready.exists() || matches!(ns.holder.try_wait(), Ok(Some(_)))
        });
        if !ok || !ready.exists() {
            eprintln!(
                "cannot mount a net_cls,net_prio hierarchy: {}",
                std::fs::read_to_string(sb.dir.join("ns-holder.err")).unwrap_or_default()
            );
            ns.ids.clear();
            return None;
        }
        Some(ns)
    }

    /// A path as the namespace sees it.
    fn path(&self, p: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.holder.id())).join(p.strip_prefix("/").unwrap())
    }

    fn cg(&self, id: &str) -> PathBuf {
        self.path(&self.mountpoint.join("berth").join(id))
    }

    fn berth(&mut self, args: &[&str]) -> Out {
        if args.first() == Some(&"create") {
            self.ids.push(args.last().unwrap().to_string());
        }
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--mount=/proc/{}/ns/mnt", self.holder.id()))
            .arg("--")
            .arg(berth_bin())
            .arg("--root")
            .arg(&self.sb.root)
            .args(args)
            .env(TAG_VAR, &self.sb.tag)
            .stdin(Stdio::null());
        self.sb.run_cmd(
            cmd,
            &format!("(in the net_cls namespace) berth {}", args.join(" ")),
        )
    }
}

impl Drop for NsHost<'_> {
    fn drop(&mut self) {
        for id in self.ids.clone() {
            let _ = self.berth(&["delete", "--force", &id]);
        }
        let _ = std::fs::remove_dir(self.path(&self.mountpoint.join("berth")));
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// network.classID / priorities read back from a real net_cls,net_prio hierarchy,
/// and, in the same pure-v1 view, `unified` and hugetlb refused by name.
#[test]
fn network_in_a_private_net_cls_net_prio_mount() {
    if !v1_host() {
        return;
    }
    let sb = sandbox(
        "rs-net",
        json!({"network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 5}]}}),
    );
    let Some(mut ns) = NsHost::new(&sb) else {
        berth_testsupport::skip("net_cls", "no net_cls,net_prio hierarchy could be mounted");
        return;
    };
    let id = sb.id("c");
    let bundle = sb.bundle_arg();
    sb.bundle.save();
    ns.berth(&["create", "--bundle", &bundle, &id]).expect_ok();
    let d = ns.cg(&id);
    assert_eq!(read(&d, "net_cls.classid"), "1048577");
    let prio = |d: &Path| {
        read(d, "net_prio.ifpriomap")
            .lines()
            .find_map(|l| l.strip_prefix("lo ").map(str::to_string))
    };
    assert_eq!(prio(&d).as_deref(), Some("5"));
    let file = sb.dir.join("net-update.json");
    std::fs::write(
        &file,
        json!({"network": {"classID": 2097154, "priorities": [{"name": "lo", "priority": 9}]}})
            .to_string(),
    )
    .unwrap();
    ns.berth(&["update", "--resources", file.to_str().unwrap(), &id])
        .expect_ok();
    assert_eq!(read(&d, "net_cls.classid"), "2097154");
    assert_eq!(prio(&d).as_deref(), Some("9"));
    ns.berth(&["delete", "--force", &id]).expect_ok();
    assert!(!d.exists(), "{} left behind", d.display());
    assert!(cg_dirs_gone(&id));

    // Without a cgroup2 mount, `unified` and hugetlb have nowhere to go.
    for (i, (res, name)) in [
        (json!({"unified": {"pids.max": "10"}}), "unified"),
        (
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
            "hugetlb",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = sb.new_bundle(&format!("b{i}"));
        b.args(&["sleep", "1000"]);
        b.set("/linux/resources", res);
        b.save();
        let id = sb.id(&format!("v1only{i}"));
        ns.berth(&["create", "--bundle", &b.dir.display().to_string(), &id])
            .expect_fail(&[name]);
        assert!(!ns.cg(&id).exists());
        assert!(cg_dirs_gone(&id));
        assert!(!sb.root.join(&id).exists());
    }
}
