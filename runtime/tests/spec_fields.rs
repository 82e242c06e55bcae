//! Fields of runtime-spec 1.3 as runc's head reads them: memoryPolicy (also
//! for exec), scheduler flags under the spec's names, pids.limit 0, time
//! namespace offsets (also in a user namespace). Real containers (root).

mod common;

use common::*;
use serde_json::json;

/// The first memory policy field of /proc/self/numa_maps.
const NUMA: &str = "head -n 1 /proc/self/numa_maps | cut -d ' ' -f 2";

#[test]
fn memory_policy_for_run_and_exec() {
    let mut sb = Sandbox::new("sf-mpol");
    sb.bundle.set(
        "/linux/memoryPolicy",
        json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]}),
    );
    sb.bundle.sh(&format!("{NUMA}; exec sleep 1000"));
    let id = sb.id("c");
    let _c = sb.guard(&id);
    sb.bundle.save();
    sb.berth(&["run", "-d", "--bundle", &sb.bundle_arg(), &id])
        .expect_ok();
    let o = sb.berth(&["exec", &id, "sh", "-c", NUMA]);
    o.expect_ok();
    assert!(
        o.stdout.starts_with("prefer")
            && o.stdout.contains("relative")
            && o.stdout.trim_end().ends_with('0'),
        "exec'd process: {o:?}"
    );
}

/// Bad memory policies fail `create` with runc's words.
#[test]
fn bad_memory_policies_are_refused_with_runcs_words() {
    let mut sb = Sandbox::new("sf-mpolbad");
    let cases = [
        (json!({}), "invalid memory policy"),
        (
            json!({"mode": "INTERLEAVE", "nodes": "0"}),
            "invalid memory policy",
        ),
        (
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES", "badflag"]}),
            "invalid memory policy flag",
        ),
        (json!({"nodes": "0-7"}), "invalid memory policy mode"),
        (
            json!({"mode": "MPOL_DEFAULT", "nodes": "0-7"}),
            "mode requires 0 nodes but got 8",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-9876543210", "flags": []}),
            "invalid memory policy node",
        ),
    ];
    for (policy, words) in cases {
        sb.bundle.set("/linux/memoryPolicy", policy.clone());
        let id = sb.id("c");
        let base = sb.baseline(&id);
        let o = sb.create(&id);
        o.expect_fail(&[words]);
        base.assert_clean(&sb);
    }
    // MPOL_DEFAULT without nodes is fine.
    sb.bundle
        .set("/linux/memoryPolicy", json!({"mode": "MPOL_DEFAULT"}));
    sb.bundle.sh(NUMA);
    let id = sb.id("c");
    let _c = sb.guard(&id);
    sb.bundle.save();
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    o.expect_ok();
    assert!(o.stdout.starts_with("default"), "{o:?}");
}

/// Scheduler flags under the names the runtime spec (and runc) use.
#[test]
fn scheduler_flags_under_the_specs_names() {
    let mut sb = Sandbox::new("sf-sched");
    sb.bundle.set(
        "/process/scheduler",
        json!({"policy": "SCHED_BATCH", "nice": 3, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}),
    );
    sb.bundle.sh("exec sleep 1000");
    let id = sb.id("c");
    let c = sb.started(&id);
    // SAFETY: sched_getscheduler on a pid; no memory involved.
    let policy = unsafe { libc::sched_getscheduler(c.pid()) };
    assert_eq!(
        policy,
        libc::SCHED_BATCH | 0x4000_0000,
        "SCHED_BATCH | SCHED_RESET_ON_FORK"
    );
}

/// `linux.resources.pids.limit: 0` leaves one task allowed (runc writes "1",
/// as systemd cannot write 0); a missing limit leaves pids.max alone.
#[test]
fn pids_limit_zero_is_one() {
    let mut sb = Sandbox::new("sf-pids0");
    sb.bundle.set("/linux/resources/pids", json!({"limit": 0}));
    sb.bundle.sh("exec sleep 1000");
    let id = sb.id("c");
    let _c = sb.started(&id);
    let dir = cgroup_dirs(&id)
        .into_iter()
        .find(|d| d.join("pids.max").exists())
        .expect("a pids cgroup");
    assert_eq!(
        std::fs::read_to_string(dir.join("pids.max"))
            .unwrap()
            .trim(),
        "1"
    );
}

/// Time namespace offsets, also with a user namespace, and for exec.
#[test]
fn time_namespace_offsets_with_a_user_namespace() {
    let mut sb = Sandbox::new("sf-timens");
    std::fs::create_dir_all(sb.bundle.rootfs().join("host")).unwrap();
    let mut ns = sb.bundle.config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .clone();
    ns.push(json!({"type": "time"}));
    ns.push(json!({"type": "user"}));
    sb.bundle.set("/linux/namespaces", json!(ns));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    sb.bundle.set("/linux/uidMappings", map.clone());
    sb.bundle.set("/linux/gidMappings", map);
    sb.bundle.set(
        "/linux/timeOffsets",
        json!({"monotonic": {"secs": 7881, "nanosecs": 2718281}, "boottime": {"secs": 1337, "nanosecs": 3141519}}),
    );
    sb.bundle.sh("exec sleep 1000");
    let id = sb.id("c");
    let _c = sb.started(&id);
    let o = sb.berth(&["exec", &id, "cat", "/proc/self/timens_offsets"]);
    o.expect_ok();
    let words: Vec<Vec<&str>> = o
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        words.contains(&vec!["monotonic", "7881", "2718281"]),
        "{o:?}"
    );
    assert!(
        words.contains(&vec!["boottime", "1337", "3141519"]),
        "{o:?}"
    );
}
