//! config-linux.md#control-groups: one case per `linux.resources` group. runtime.md's
//! `create` applies every property of config.json except `process`, so each case
//! runs `create` with a known linux.cgroupsPath and reads the values back from the
//! container's cgroup on the host, on cgroup v1 (one directory per hierarchy) or v2
//! (one directory, v1 values converted) alike. The device rules are checked
//! from inside the container, since a v2 device filter is an eBPF program.

use crate::bundle::Bundle;
use crate::cases::create_ok;
use crate::suite::{ensure, skip, Case, CaseResult, Ctx, NotPassed};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            section: "config-linux.md#memory",
            desc: "limit, reservation, swap, swappiness",
            run: memory,
        },
        Case {
            section: "config-linux.md#cpu",
            desc: "shares, quota, period, cpus, mems",
            run: cpu,
        },
        Case {
            section: "config-linux.md#pids",
            desc: "pids limit",
            run: pids,
        },
        Case {
            section: "config-linux.md#block-io",
            desc: "throttling of a real block device",
            run: block_io,
        },
        Case {
            section: "config-linux.md#huge-page-limits",
            desc: "2MB page limit",
            run: hugepages,
        },
        Case {
            section: "config-linux.md#network",
            desc: "classID and interface priorities",
            run: network,
        },
        Case {
            section: "config-linux.md#rdma",
            desc: "rdma limits apply, or create fails and leaves nothing",
            run: rdma,
        },
        Case {
            section: "config-linux.md#unified",
            desc: "unified keys on v2; on v1 an error that leaves nothing",
            run: unified,
        },
        Case {
            section: "config-linux.md#allowed-device-list",
            desc: "a denied device cannot be opened, an allowed one can",
            run: devices,
        },
    ]
}

/// Is the host on the unified (pure v2) layout?
fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The mount point of the v1 hierarchy that has `controller`.
fn v1_mount(controller: &str) -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        let mut post = post.split_whitespace();
        if post.next()? != "cgroup" {
            return None;
        }
        let opts = post.nth(1)?;
        if !opts.split(',').any(|o| o == controller) {
            return None;
        }
        pre.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// Does the v2 root offer `controller`?
fn v2_offers(controller: &str) -> bool {
    fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .map(|c| c.split_whitespace().any(|x| x == controller))
        .unwrap_or(false)
}

/// A container made with `create` under a cgroupsPath of this case's own; the
/// parent cgroup is removed (in every hierarchy) when the case ends.
struct Created<'a> {
    path: String,
    _guard: crate::runtime::ContainerGuard<'a>,
}

impl Created<'_> {
    /// The container's directory for `controller` (the only one on v2).
    fn dir(&self, controller: &str) -> Result<PathBuf, NotPassed> {
        let base = if is_v2() {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            v1_mount(controller)
                .ok_or_else(|| NotPassed::Fail(format!("no v1 {controller} hierarchy")))?
        };
        Ok(base.join(self.path.trim_start_matches('/')))
    }

    fn read(&self, controller: &str, file: &str) -> Result<String, NotPassed> {
        let p = self.dir(controller)?.join(file);
        fs::read_to_string(&p)
            .map(|s| s.trim_end().to_string())
            .map_err(|e| NotPassed::Fail(format!("read {}: {e}", p.display())))
    }

    /// `file` of `controller` must read `want`.
    fn expect(&self, controller: &str, file: &str, want: &str) -> CaseResult {
        let got = self.read(controller, file)?;
        ensure(got == want, format!("{file} is {got:?}, want {want:?}"))
    }
}

/// Removes the parent cgroup a case made the runtime create, in every hierarchy.
struct Parent(String);

impl Drop for Parent {
    fn drop(&mut self) {
        let mut dirs = vec![PathBuf::from("/sys/fs/cgroup").join(&self.0)];
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            dirs.extend(rd.flatten().map(|h| h.path().join(&self.0)));
        }
        for d in dirs {
            // A runtime may leave a failed container's cgroup (the cases report
            // that); remove it too so the host stays clean.
            if let Ok(rd) = fs::read_dir(&d) {
                for leaf in rd.flatten().filter(|e| e.path().is_dir()) {
                    let _ = fs::remove_dir(leaf.path());
                }
            }
            let _ = fs::remove_dir(d);
        }
    }
}

/// A bundle whose `linux.resources` is `resources` (device rules kept), under
/// a cgroupsPath of its own.
fn bundle_with(ctx: &Ctx, resources: Value) -> Result<(Bundle, String, String), NotPassed> {
    let (mut b, id) = ctx.bundle()?;
    let parent = format!("berth-conformance-res-{}", ctx.tag);
    let mut res = resources;
    if let Some(devices) = b.config["linux"]["resources"].get("devices").cloned() {
        if res.get("devices").is_none() {
            res["devices"] = devices;
        }
    }
    b.config["linux"]["resources"] = res;
    b.config["linux"]["cgroupsPath"] = json!(format!("/{parent}/{id}"));
    b.set_args(&["/bin/sh", "-c", "true"]);
    b.write()?;
    Ok((b, id, parent))
}

/// `create` with `resources`, then `check` against the container's cgroup.
fn with_created(
    ctx: &Ctx,
    resources: Value,
    check: impl FnOnce(&Created) -> CaseResult,
) -> CaseResult {
    let (b, id, parent) = bundle_with(ctx, resources)?;
    // Dropped last: the guard has deleted the container by then.
    let _parent = Parent(parent.clone());
    let created = Created {
        path: format!("/{parent}/{id}"),
        _guard: ctx.guard(&id),
    };
    create_ok(ctx, &b, &id)?;
    check(&created)
}

/// The container cgroup directories at `path` that exist (every hierarchy on v1).
fn cgroups_left(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup").join(rel)];
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        dirs.extend(rd.flatten().map(|h| h.path().join(rel)));
    }
    dirs.retain(|d| d.is_dir());
    dirs
}

/// `create` with `resources` must fail (its error naming `needle`, when given)
/// and leave no container and no cgroup.
fn create_fails(ctx: &Ctx, resources: Value, needle: Option<&str>) -> CaseResult {
    let (b, id, parent) = bundle_with(ctx, resources)?;
    let _parent = Parent(parent.clone());
    let _guard = ctx.guard(&id);
    let out = ctx.runtime.create(&b.dir, &id);
    ensure(!out.success(), "create succeeded")?;
    if let Some(needle) = needle {
        let text = out.describe();
        ensure(
            text.to_lowercase().contains(needle),
            format!("the error does not name {needle}: {text}"),
        )?;
    }
    ctx.runtime.assert_absent(&id).map_err(NotPassed::Fail)?;
    let left = cgroups_left(&format!("/{parent}/{id}"));
    ensure(
        left.is_empty(),
        format!("the failed create left cgroups behind: {left:?}"),
    )
}

fn memory(ctx: &Ctx) -> CaseResult {
    let v2 = is_v2();
    // v1 needs swap accounting (memory.memsw.*) for a swap limit.
    let swap =
        v2 || v1_mount("memory").is_some_and(|m| m.join("memory.memsw.limit_in_bytes").exists());
    let mut mem = json!({"limit": 268435456, "reservation": 134217728});
    if swap {
        mem["swap"] = json!(536870912);
    }
    if !v2 {
        mem["swappiness"] = json!(30);
    }
    with_created(ctx, json!({ "memory": mem }), |c| {
        if v2 {
            c.expect("memory", "memory.max", "268435456")?;
            c.expect("memory", "memory.low", "134217728")?;
            if c.dir("memory")?.join("memory.swap.max").exists() {
                // v1's swap counts memory+swap; memory.swap.max is swap alone.
                c.expect("memory", "memory.swap.max", "268435456")?;
            }
        } else {
            c.expect("memory", "memory.limit_in_bytes", "268435456")?;
            c.expect("memory", "memory.soft_limit_in_bytes", "134217728")?;
            if swap {
                c.expect("memory", "memory.memsw.limit_in_bytes", "536870912")?;
            }
            c.expect("memory", "memory.swappiness", "30")?;
        }
        Ok(())
    })
}

fn cpu(ctx: &Ctx) -> CaseResult {
    let res =
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}});
    with_created(ctx, res, |c| {
        if is_v2() {
            // 512 shares: 59 with the mapping of newer runc/crun, 20 with the older linear one.
            let w = c.read("cpu", "cpu.weight")?;
            ensure(
                w == "59" || w == "20",
                format!("cpu.weight is {w}, want 59 (or 20)"),
            )?;
            c.expect("cpu", "cpu.max", "50000 100000")?;
        } else {
            c.expect("cpu", "cpu.shares", "512")?;
            c.expect("cpu", "cpu.cfs_quota_us", "50000")?;
            c.expect("cpu", "cpu.cfs_period_us", "100000")?;
        }
        c.expect("cpuset", "cpuset.cpus", "0")?;
        c.expect("cpuset", "cpuset.mems", "0")
    })
}

fn pids(ctx: &Ctx) -> CaseResult {
    with_created(ctx, json!({"pids": {"limit": 42}}), |c| {
        c.expect("pids", "pids.max", "42")
    })
}

/// `major:minor` of the first disk in /sys/block that is not a loop, ram or zram device.
fn disk() -> Option<(u64, u64)> {
    let mut names: Vec<String> = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !["loop", "ram", "zram"].iter().any(|p| n.starts_with(p)))
        .collect();
    names.sort();
    let dev = fs::read_to_string(format!("/sys/block/{}/dev", names.first()?)).ok()?;
    let (a, b) = dev.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn block_io(ctx: &Ctx) -> CaseResult {
    let Some((maj, min)) = disk() else {
        return skip("no disk in /sys/block");
    };
    let t = |rate: u64| json!([{"major": maj, "minor": min, "rate": rate}]);
    let res = json!({"blockIO": {
        "throttleReadBpsDevice": t(1048576), "throttleWriteBpsDevice": t(2097152),
        "throttleReadIOPSDevice": t(100), "throttleWriteIOPSDevice": t(200)}});
    let dev = format!("{maj}:{min}");
    with_created(ctx, res, |c| {
        if is_v2() {
            let io = c.read("io", "io.max")?;
            let want = format!("{dev} rbps=1048576 wbps=2097152 riops=100 wiops=200");
            ensure(
                io.lines().any(|l| l == want),
                format!("io.max is {io:?}, want a line {want:?}"),
            )
        } else {
            for (file, rate) in [
                ("read_bps_device", 1048576),
                ("write_bps_device", 2097152),
                ("read_iops_device", 100),
                ("write_iops_device", 200),
            ] {
                c.expect(
                    "blkio",
                    &format!("blkio.throttle.{file}"),
                    &format!("{dev} {rate}"),
                )?;
            }
            Ok(())
        }
    })
}

fn hugepages(ctx: &Ctx) -> CaseResult {
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        return skip("the kernel has no 2MB huge pages");
    }
    let has = if is_v2() {
        v2_offers("hugetlb")
    } else {
        v1_mount("hugetlb").is_some()
    };
    if !has {
        return skip("no hugetlb controller mounted on this host");
    }
    let res = json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]});
    with_created(ctx, res, |c| {
        if is_v2() {
            c.expect("hugetlb", "hugetlb.2MB.max", "4194304")
        } else {
            c.expect("hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304")
        }
    })
}

fn network(ctx: &Ctx) -> CaseResult {
    if is_v2() {
        return skip("network has no cgroup v2 controller");
    }
    if v1_mount("net_cls").is_none() || v1_mount("net_prio").is_none() {
        return skip("net_cls/net_prio are not mounted on this host");
    }
    let res =
        json!({"network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 5}]}});
    with_created(ctx, res, |c| {
        c.expect("net_cls", "net_cls.classid", "1048577")?;
        let map = c.read("net_prio", "net_prio.ifpriomap")?;
        ensure(
            map.lines().any(|l| l == "lo 5"),
            format!("net_prio.ifpriomap is {map:?}"),
        )
    })
}

fn rdma(ctx: &Ctx) -> CaseResult {
    let res = json!({"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}});
    let has = if is_v2() {
        v2_offers("rdma")
    } else {
        v1_mount("rdma").is_some()
    };
    let has_device = fs::read_dir("/sys/class/infiniband")
        .map(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name() == "mlx5_1")))
        .unwrap_or(false);
    if has && has_device {
        return with_created(ctx, res, |c| {
            let max = c.read("rdma", "rdma.max")?;
            ensure(
                max.lines()
                    .any(|l| l.starts_with("mlx5_1 hca_handle=3 hca_object=10000")),
                format!("rdma.max is {max:?}"),
            )
        });
    }
    // Without the controller (or the device) the limit cannot hold: create must fail.
    create_fails(ctx, res, Some("rdma"))
}

fn unified(ctx: &Ctx) -> CaseResult {
    let res = json!({"unified": {"pids.max": "17"}});
    if is_v2() {
        with_created(ctx, res, |c| c.expect("pids", "pids.max", "17"))
    } else if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        skip("hybrid host: unified may go to the cgroup2 mount (run through compare.sh for a pure v1 view)")
    } else {
        // The spec: unified on a v1 host is an error.
        create_fails(ctx, res, None)
    }
}

/// /dev/loop0 and /dev/loop1 of the host bind-mounted in; the rules deny all,
/// then allow b 7:1 for reading. Opening loop1 must work, loop0 must not.
fn devices(ctx: &Ctx) -> CaseResult {
    for d in ["/dev/loop0", "/dev/loop1"] {
        if !Path::new(d).exists() {
            return skip(format!("no {d} on the host"));
        }
    }
    let (mut b, id) = ctx.bundle()?;
    b.push_mount(json!({"destination": "/dev/denied", "type": "bind", "source": "/dev/loop0", "options": ["bind"]}));
    b.push_mount(json!({"destination": "/dev/allowed", "type": "bind", "source": "/dev/loop1", "options": ["bind"]}));
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "b", "major": 7, "minor": 1, "access": "r"}
    ]);
    b.set_args(&[
        "/bin/sh",
        "-c",
        "(exec 3</dev/allowed) || exit 10; if (exec 3</dev/denied) 2>/dev/null; then exit 11; fi; exit 0",
    ]);
    b.write()?;
    let _guard = ctx.guard(&id);
    let out = ctx.runtime.run(&b.dir, &id);
    match out.code() {
        Some(0) => Ok(()),
        Some(10) => Err(NotPassed::Fail(format!(
            "the allowed device b 7:1 could not be opened: {}",
            b.stderr().trim()
        ))),
        Some(11) => Err("the denied device b 7:0 was opened".into()),
        _ => Err(NotPassed::Fail(format!("run failed: {}", out.describe()))),
    }
}
