//! The management verbs through the berth command line, with real containers
//! (needs root): pause, resume, ps, events, update, and delete --force of what
//! they leave behind.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Counts in /host/tick every 20 ms; a child sleep keeps a second process around.
const TICKER: &str =
    "sleep 1000 & i=0; while :; do i=$((i+1)); echo $i > /host/tick; sleep 0.02; done";

/// An init with one child (`sleep 1000`), waiting forever.
const WITH_CHILD: &str = "sleep 1000 & echo ready > /host/ready; wait";

/// Is the host on the pure cgroup v2 layout?
fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The container's cgroup directory for a v1 `controller` (the one v2
/// directory on a unified host).
fn cg(id: &str, controller: &str) -> PathBuf {
    if unified() {
        PathBuf::from(format!("/sys/fs/cgroup/berth/{id}"))
    } else {
        PathBuf::from(format!("/sys/fs/cgroup/{controller}/berth/{id}"))
    }
}

#[track_caller]
fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The freezer's view of the container's cgroup: true when frozen.
fn frozen(id: &str) -> bool {
    if unified() {
        read(&cg(id, "").join("cgroup.freeze")) == "1"
    } else {
        read(&cg(id, "freezer").join("freezer.state")) == "FROZEN"
    }
}

fn tick(sb: &Sandbox) -> String {
    std::fs::read_to_string(sb.host.join("tick")).unwrap_or_default()
}

/// `berth ps --format json ID` as pids.
#[track_caller]
fn ps_json(sb: &Sandbox, id: &str) -> Vec<i32> {
    let o = sb.berth(&["ps", "--format", "json", id]);
    o.expect_ok();
    serde_json::from_str(o.stdout.trim())
        .unwrap_or_else(|e| panic!("ps --format json printed {:?}: {e}", o.stdout))
}

/// Parent pid of a host process.
fn ppid(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
    rest.split(' ')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn cmdline(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .replace('\0', " ")
        .trim()
        .to_string()
}

/// Wait until the container's cgroup holds at least `n` processes; returns them.
#[track_caller]
fn wait_pids(sb: &Sandbox, id: &str, n: usize) -> Vec<i32> {
    let mut pids = Vec::new();
    let ok = wait_until(POLL_TIMEOUT, || {
        pids = ps_json(sb, id);
        pids.len() >= n
    });
    assert!(
        ok,
        "container {id} never had {n} processes (last: {pids:?})"
    );
    pids
}

/// The saved config's linux.resources (what update persists).
fn saved_resources(sb: &Sandbox, id: &str) -> Value {
    let text = std::fs::read_to_string(sb.root.join(id).join("config.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["linux"]["resources"].clone()
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let mut sb = Sandbox::new("mg-pause");
    sb.bundle.sh(TICKER);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.started(&id);
        // The long-lived processes: the init and its `sleep 1000` (the ticker's
        // own `sleep 0.02` children come and go).
        let mut pids = Vec::new();
        assert!(wait_until(POLL_TIMEOUT, || {
            let init = sb.state(&id).and_then(|s| s["pid"].as_i64()).unwrap_or(0) as i32;
            pids = ps_json(&sb, &id)
                .into_iter()
                .filter(|p| *p == init || cmdline(*p) == "sleep 1000")
                .collect();
            pids.len() == 2
        }));
        assert!(wait_until(POLL_TIMEOUT, || !tick(&sb).is_empty()));

        sb.berth(&["pause", &id]).expect_ok();
        // pause returns only once the kernel reports the cgroup frozen.
        assert!(frozen(&id), "the cgroup is not frozen after pause returned");
        assert_eq!(sb.status(&id), "paused");
        let init = sb.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
        assert!(
            pids.contains(&init),
            "paused state pid {init} not in {pids:?}"
        );
        let t0 = tick(&sb);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(tick(&sb), t0, "the ticker advanced while paused");
        for p in &pids {
            assert!(alive(*p), "pid {p} died from pause");
        }
        // The processes are still listed while frozen, and nothing comes or goes.
        let listed = ps_json(&sb, &id);
        assert!(
            pids.iter().all(|p| listed.contains(p)),
            "{pids:?} not in {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(ps_json(&sb, &id), listed);

        sb.berth(&["resume", &id]).expect_ok();
        assert!(!frozen(&id), "the cgroup is still frozen after resume");
        assert_eq!(sb.status(&id), "running");
        assert!(
            wait_until(POLL_TIMEOUT, || tick(&sb) != t0),
            "the ticker does not advance after resume"
        );
    }
    base.assert_clean(&sb);
}

#[test]
fn pause_and_resume_refuse_wrong_states() {
    let mut sb = Sandbox::new("mg-pstate");
    sb.bundle.sh(WITH_CHILD);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.started(&id);
        sb.berth(&["resume", &id]).expect_fail(&[&id, "not paused"]);
        sb.berth(&["pause", &id]).expect_ok();
        sb.berth(&["pause", &id])
            .expect_fail(&[&id, "already paused"]);
        assert_eq!(sb.status(&id), "paused");
        sb.berth(&["resume", &id]).expect_ok();
        sb.berth(&["kill", &id, "KILL"]).expect_ok();
        sb.wait_status(&id, "stopped");
        sb.berth(&["pause", &id]).expect_fail(&[&id, "not running"]);
        sb.berth(&["resume", &id]).expect_fail(&[&id, "not paused"]);
        sb.berth(&["events", "--stats", &id])
            .expect_fail(&[&id, "not running"]);
        assert_eq!(sb.status(&id), "stopped");
    }
    base.assert_clean(&sb);
    sb.berth(&["pause", "nosuch"])
        .expect_fail(&["nosuch", "does not exist"]);
    sb.berth(&["resume", "nosuch"])
        .expect_fail(&["nosuch", "does not exist"]);
    sb.berth(&["ps", "nosuch"])
        .expect_fail(&["nosuch", "does not exist"]);
}

#[test]
fn paused_created_container_reports_paused_and_starts_after_resume() {
    let mut sb = Sandbox::new("mg-pcreated");
    sb.bundle.sh("echo ran > /host/marker; sleep 1000");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.created(&id);
        sb.berth(&["pause", &id]).expect_ok();
        assert_eq!(sb.status(&id), "paused");
        sb.berth(&["start", &id]).expect_fail(&[&id]);
        sb.berth(&["resume", &id]).expect_ok();
        assert_eq!(sb.status(&id), "created");
        assert!(!sb.host.join("marker").exists());
        sb.berth(&["start", &id]).expect_ok();
        sb.wait_file(&sb.host.join("marker"), "ran");
        assert_eq!(sb.status(&id), "running");
    }
    base.assert_clean(&sb);
}

#[test]
fn ps_json_lists_the_init_and_its_child() {
    let mut sb = Sandbox::new("mg-psjson");
    sb.bundle.sh(WITH_CHILD);
    let id = sb.id("c");
    let c = sb.started(&id);
    sb.wait_file(&sb.host.join("ready"), "ready");
    let init = c.pid();
    let pids = wait_pids(&sb, &id, 2);
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.contains(&init), "init {init} not in {pids:?}");
    let child = *pids.iter().find(|&&p| p != init).unwrap();
    assert_eq!(ppid(child), init, "the other pid is not the init's child");
    assert_eq!(cmdline(child), "sleep 1000");
}

#[test]
fn ps_table_shows_header_and_only_container_lines() {
    let mut sb = Sandbox::new("mg-pstable");
    sb.bundle.sh(WITH_CHILD);
    let id = sb.id("c");
    let _c = sb.started(&id);
    sb.wait_file(&sb.host.join("ready"), "ready");
    let pids = wait_pids(&sb, &id, 2);

    // Default: ps -ef, filtered.
    let o = sb.berth(&["ps", &id]);
    o.expect_ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "header + 2 processes expected:\n{}",
        o.stdout
    );
    let cols: Vec<&str> = lines[0].split_whitespace().collect();
    assert!(
        cols.contains(&"UID") && cols.contains(&"CMD"),
        "{}",
        lines[0]
    );
    let pid_col = cols.iter().position(|c| *c == "PID").expect("PID column");
    let mut shown: Vec<i32> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(pid_col).unwrap().parse().unwrap())
        .collect();
    shown.sort();
    assert_eq!(shown, pids);
    assert!(o.stdout.contains("sleep 1000"), "{}", o.stdout);

    // Extra ps arguments after the id (with and without --).
    for args in [
        vec!["ps", id.as_str(), "--", "-eo", "pid,comm"],
        vec!["ps", id.as_str(), "-eo", "pid,comm"],
    ] {
        let o = sb.berth(&args);
        o.expect_ok();
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{}", o.stdout);
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["PID", "COMMAND"]
        );
        assert!(lines.iter().any(|l| l.ends_with("sleep")), "{}", o.stdout);
    }
    // No PID column: a clear error.
    sb.berth(&["ps", &id, "--", "-eo", "comm"])
        .expect_fail(&["PID"]);
    sb.berth(&["ps", "--format", "yaml", &id])
        .expect_fail(&["yaml"]);
}

#[test]
fn events_stats_prints_one_runc_shaped_event() {
    let mut sb = Sandbox::new("mg-stats");
    sb.bundle.sh(WITH_CHILD);
    sb.bundle.set("/linux/resources/pids", json!({"limit": 77}));
    let id = sb.id("c");
    let _c = sb.started(&id);
    sb.wait_file(&sb.host.join("ready"), "ready");
    let o = sb.berth(&["events", "--stats", &id]);
    o.expect_ok();
    assert_eq!(o.stdout.lines().count(), 1, "{}", o.stdout);
    let e: Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(e["type"], "stats");
    assert_eq!(e["id"], id.as_str());
    let d = &e["data"];
    assert!(
        d["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{d}"
    );
    assert!(d["memory"]["usage"].get("limit").is_some(), "{d}");
    assert!(d["pids"]["current"].as_u64().unwrap_or(0) >= 2, "{d}");
    assert_eq!(d["pids"]["limit"], 77, "{d}");
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0, "{d}");
    for key in [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
    ] {
        assert!(d.get(key).is_some(), "data has no {key}: {d}");
    }
}

#[test]
fn events_stream_stats_and_oom_until_the_container_stops() {
    let mut sb = Sandbox::new("mg-events");
    // Waits for /host/go, then touches 64 MiB under a 32 MiB limit (no swap),
    // then exits.
    sb.bundle
        .sh("while [ ! -e /host/go ]; do sleep 0.05; done; \
         dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 0.3; exit 0");
    sb.bundle.set(
        "/linux/resources/memory",
        json!({"limit": 33554432, "swap": 33554432}),
    );
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.started(&id);
        let (mut ev, out, err) = spawn_to_files(
            &sb,
            sb.cmd(&["events", "--interval", "100ms", &id]),
            "events",
        );
        let stats_lines = |p: &Path| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("\"type\":\"stats\""))
                .count()
        };
        assert!(
            wait_until(POLL_TIMEOUT, || stats_lines(&out) >= 2),
            "no periodic stats events; stderr: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        std::fs::write(sb.host.join("go"), "").unwrap();
        let code = wait_child(&mut ev, Duration::from_secs(30), "berth events");
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            code,
            0,
            "events failed; stderr: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect();
        assert!(
            events.contains(&json!({"type": "oom", "id": id})),
            "no oom event in:\n{text}"
        );
        for e in &events {
            assert_eq!(e["id"], id.as_str());
            if e["type"] == "stats" {
                assert!(
                    e["data"]["memory"]["usage"]["limit"].as_u64() == Some(33554432),
                    "{e}"
                );
            }
        }
        // events ended because the container stopped.
        assert_eq!(sb.status(&id), "stopped");
    }
    base.assert_clean(&sb);
}

#[test]
fn events_refuses_a_zero_or_bad_interval() {
    let mut sb = Sandbox::new("mg-evbad");
    sb.bundle.sh(WITH_CHILD);
    let id = sb.id("c");
    let _c = sb.started(&id);
    sb.berth(&["events", "--interval", "0", &id])
        .expect_fail(&["interval", "greater than 0"]);
    sb.berth(&["events", "--interval", "soon", &id])
        .expect_fail(&["interval", "soon"]);
}

/// Resource values as read from the cgroup files (v1 names; v2 where they differ).
struct Limits {
    memory: String,
    reservation: String,
    quota_period: String,
    shares: String,
    pids: String,
    cpus: String,
}

fn limits(id: &str) -> Limits {
    if unified() {
        let d = cg(id, "");
        let max = read(&d.join("cpu.max"));
        Limits {
            memory: read(&d.join("memory.max")),
            reservation: read(&d.join("memory.low")),
            quota_period: max,
            shares: read(&d.join("cpu.weight")),
            pids: read(&d.join("pids.max")),
            cpus: read(&d.join("cpuset.cpus")),
        }
    } else {
        let cpu = cg(id, "cpu");
        Limits {
            memory: read(&cg(id, "memory").join("memory.limit_in_bytes")),
            reservation: read(&cg(id, "memory").join("memory.soft_limit_in_bytes")),
            quota_period: format!(
                "{} {}",
                read(&cpu.join("cpu.cfs_quota_us")),
                read(&cpu.join("cpu.cfs_period_us"))
            ),
            shares: read(&cpu.join("cpu.shares")),
            pids: read(&cg(id, "pids").join("pids.max")),
            cpus: read(&cg(id, "cpuset").join("cpuset.cpus")),
        }
    }
}

#[test]
fn update_flags_reach_the_cgroup_files_and_the_saved_config() {
    let mut sb = Sandbox::new("mg-update");
    sb.bundle.sh(WITH_CHILD);
    sb.bundle
        .set("/linux/resources/memory", json!({"limit": 268435456}))
        .set("/linux/resources/pids", json!({"limit": 100}));
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.started(&id);
        sb.berth(&[
            "update",
            "--memory",
            "100m",
            "--memory-reservation",
            "50M",
            "--cpu-quota",
            "20000",
            "--cpu-period",
            "50000",
            "--cpu-share",
            "512",
            "--pids-limit",
            "30",
            "--cpuset-cpus",
            "0",
            &id,
        ])
        .expect_ok();
        let l = limits(&id);
        assert_eq!(l.memory, "104857600");
        assert_eq!(l.reservation, "52428800");
        assert_eq!(l.quota_period, "20000 50000");
        assert_eq!(l.shares, if unified() { "59" } else { "512" });
        assert_eq!(l.pids, "30");
        assert_eq!(l.cpus, "0");
        let r = saved_resources(&sb, &id);
        assert_eq!(r["memory"]["limit"], 104857600, "{r}");
        assert_eq!(r["memory"]["reservation"], 52428800, "{r}");
        assert_eq!(
            r["cpu"],
            json!({"quota": 20000, "period": 50000, "shares": 512, "cpus": "0"})
        );
        assert_eq!(r["pids"]["limit"], 30, "{r}");
        // The device rules of create are still recorded.
        assert!(r["devices"].is_array(), "{r}");

        // Quota alone keeps the period; the saved config keeps the other fields.
        sb.berth(&["update", "--cpu-quota", "30000", &id])
            .expect_ok();
        assert_eq!(limits(&id).quota_period, "30000 50000");
        let r = saved_resources(&sb, &id);
        assert_eq!(r["cpu"]["quota"], 30000);
        assert_eq!(r["cpu"]["period"], 50000);
        assert_eq!(r["memory"]["limit"], 104857600);

        // -1: unlimited.
        sb.berth(&["update", "--memory", "-1", "--pids-limit", "-1", &id])
            .expect_ok();
        let l = limits(&id);
        if unified() {
            assert_eq!(l.memory, "max");
        } else {
            assert!(l.memory.parse::<u64>().unwrap() > 1 << 60, "{}", l.memory);
        }
        assert_eq!(l.pids, "max");
        // The container kept running throughout.
        assert_eq!(sb.status(&id), "running");
        assert_eq!(wait_pids(&sb, &id, 2).len(), 2);
    }
    base.assert_clean(&sb);
}

#[test]
fn update_resources_from_a_file_and_stdin() {
    let mut sb = Sandbox::new("mg-upres");
    sb.bundle.sh(WITH_CHILD);
    let id = sb.id("c");
    let _c = sb.started(&id);
    let file = sb.dir.join("res.json");
    // 0 and "" mean "unchanged", as in runc's template.
    std::fs::write(
        &file,
        r#"{"memory": {"limit": 209715200, "reservation": 0}, "cpu": {"shares": 0, "quota": 40000, "period": 100000, "cpus": ""}, "pids": {"limit": 12}}"#,
    )
    .unwrap();
    sb.berth(&["update", "--resources", file.to_str().unwrap(), &id])
        .expect_ok();
    let l = limits(&id);
    assert_eq!(l.memory, "209715200");
    assert_eq!(l.quota_period, "40000 100000");
    assert_eq!(l.pids, "12");
    let r = saved_resources(&sb, &id);
    assert_eq!(r["cpu"], json!({"quota": 40000, "period": 100000}), "{r}");

    std::fs::write(&file, r#"{"pids": {"limit": 13}}"#).unwrap();
    let mut c = sb.cmd(&["update", "-r", "-", &id]);
    c.stdin(std::fs::File::open(&file).unwrap());
    sb.run_cmd(c, "berth update -r - (stdin)").expect_ok();
    assert_eq!(limits(&id).pids, "13");
    assert_eq!(saved_resources(&sb, &id)["pids"]["limit"], 13);
}

#[test]
fn update_of_a_paused_container_works_and_of_a_stopped_one_fails() {
    let mut sb = Sandbox::new("mg-upstate");
    sb.bundle.sh(WITH_CHILD);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.started(&id);
        sb.berth(&["pause", &id]).expect_ok();
        sb.berth(&["update", "--pids-limit", "9", &id]).expect_ok();
        assert_eq!(limits(&id).pids, "9");
        assert_eq!(sb.status(&id), "paused");
        sb.berth(&["resume", &id]).expect_ok();
        sb.berth(&["kill", &id, "KILL"]).expect_ok();
        sb.wait_status(&id, "stopped");
        sb.berth(&["update", "--pids-limit", "10", &id])
            .expect_fail(&[&id, "not running"]);
        assert_eq!(saved_resources(&sb, &id)["pids"]["limit"], 9);
    }
    base.assert_clean(&sb);
    sb.berth(&["update", "--pids-limit", "10", "nosuch"])
        .expect_fail(&["nosuch", "does not exist"]);
}

#[test]
fn update_bad_values_name_the_resource() {
    let mut sb = Sandbox::new("mg-upbad");
    sb.bundle.sh(WITH_CHILD);
    let id = sb.id("c");
    let _c = sb.started(&id);
    let before = limits(&id);
    for (args, needles) in [
        (vec!["--memory", "lots"], vec!["--memory", "lots"]),
        (vec!["--memory", "12x"], vec!["--memory", "12x"]),
        (vec!["--memory-swap", "-5"], vec!["--memory-swap"]),
        (vec!["--cpu-share", "-5"], vec!["--cpu-share"]),
        (vec!["--cpu-quota", "1.5"], vec!["--cpu-quota"]),
        (vec!["--pids-limit", "many"], vec!["--pids-limit", "many"]),
        (vec!["--blkio-weight", "70000"], vec!["--blkio-weight"]),
        // Refused by the kernel: the message names the OCI field.
        (vec!["--cpuset-cpus", "999"], vec!["cpu.cpus", "999"]),
        (vec!["--memory", "4k"], vec!["memory.limit"]),
        (vec!["--l3-cache-schema", "L3:0=f"], vec!["l3-cache-schema"]),
    ] {
        let mut all = vec!["update"];
        all.extend(args.iter().copied());
        all.push(&id);
        sb.berth(&all).expect_fail(&needles);
    }
    let file = sb.dir.join("bad.json");
    std::fs::write(&file, r#"{"memory": {"limit": "big"}}"#).unwrap();
    sb.berth(&["update", "-r", file.to_str().unwrap(), &id])
        .expect_fail(&["memory.limit"]);
    std::fs::write(&file, "{not json").unwrap();
    sb.berth(&["update", "-r", file.to_str().unwrap(), &id])
        .expect_fail(&["--resources", "JSON"]);
    sb.berth(&["update", "-r", "/nonexistent/res.json", &id])
        .expect_fail(&["/nonexistent/res.json"]);
    // Nothing changed, and the container still runs.
    let after = limits(&id);
    assert_eq!(after.memory, before.memory);
    assert_eq!(after.cpus, before.cpus);
    assert_eq!(after.pids, before.pids);
    assert_eq!(sb.status(&id), "running");
}

#[test]
fn delete_force_kills_every_process_of_a_paused_container() {
    let mut sb = Sandbox::new("mg-delpaused");
    sb.bundle
        .sh("sleep 1000 & sleep 1000 & sh -c 'sleep 1000' & echo ready > /host/ready; wait");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.started(&id);
        sb.wait_file(&sb.host.join("ready"), "ready");
        let pids = wait_pids(&sb, &id, 4);
        sb.berth(&["pause", &id]).expect_ok();
        sb.berth(&["delete", &id]).expect_fail(&["paused"]);
        sb.berth(&["delete", "--force", &id]).expect_ok();
        for p in &pids {
            assert!(
                wait_until(POLL_TIMEOUT, || !alive(*p)),
                "pid {p} ({}) survived delete --force",
                cmdline(*p)
            );
        }
        assert!(cgroup_dirs(&id).is_empty(), "{:?}", cgroup_dirs(&id));
    }
    base.assert_clean(&sb);
}

#[test]
fn delete_kills_what_a_stopped_container_without_pid_namespace_left() {
    let mut sb = Sandbox::new("mg-delleft");
    // Without a pid namespace the child outlives the init.
    sb.bundle
        .without_namespace("pid")
        .sh("sleep 1000 & while [ ! -e /host/go ]; do sleep 0.05; done; exit 0");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let c = sb.started(&id);
        let init = c.pid();
        let pids = wait_pids(&sb, &id, 2);
        let child = *pids.iter().find(|&&p| p != init).unwrap();
        std::fs::write(sb.host.join("go"), "").unwrap();
        sb.wait_status(&id, "stopped");
        assert!(alive(child), "the child should outlive the init");
        assert_eq!(ps_json(&sb, &id), vec![child]);
        sb.berth(&["delete", &id]).expect_ok();
        assert!(
            wait_until(POLL_TIMEOUT, || !alive(child)),
            "delete left the container's child {child} alive"
        );
    }
    base.assert_clean(&sb);
}

/// Makes `clone3` fail with ENOSYS in the process that runs `cmd` (as a seccomp
/// profile or an old kernel would), so berth takes its fork-and-migrate path.
fn without_clone3(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let filter: Vec<libc::sock_filter> = vec![
        stmt(ld, 4), // seccomp_data.arch
        jeq(AUDIT_ARCH_X86_64, 0, 3),
        stmt(ld, 0), // seccomp_data.nr
        jeq(libc::SYS_clone3 as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    // SAFETY: only async-signal-safe calls (prctl, seccomp) between fork and
    // exec; the filter lives in this closure.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut _,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The container's cgroup, as /proc/PID/cgroup lines of the hierarchies berth
/// puts it in (every line naming the container).
fn own_cgroup_lines(text: &str, id: &str) -> Vec<String> {
    let mut l: Vec<String> = text
        .lines()
        .filter(|l| l.ends_with(&format!("/berth/{id}")))
        .map(str::to_string)
        .collect();
    l.sort();
    l
}

#[test]
fn init_and_exec_start_in_every_hierarchy_with_or_without_clone3() {
    if !Path::new("/proc/self/cgroup").exists() {
        return;
    }
    let mut sb = Sandbox::new("mg-join");
    sb.bundle.args(&["sleep", "1000"]);
    sb.bundle.save();
    // Expected: every v1 hierarchy berth joins plus the cgroup2 directory where
    // there is one (pure v2, or the hybrid host's unified mount).
    let v2 = unified() || Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists();
    for (n, plain_fork) in [(0, false), (1, true)] {
        let id = sb.id(&format!("c{n}"));
        let base = sb.baseline(&id);
        {
            let mut create = sb.cmd(&["create", "--bundle", &sb.bundle_arg(), &id]);
            if plain_fork {
                without_clone3(&mut create);
            }
            sb.run_cmd(create, "berth create").expect_ok();
            let _c = sb.guard(&id);
            let pid = sb.state(&id).unwrap()["pid"].as_i64().unwrap();
            let init = own_cgroup_lines(&read(Path::new(&format!("/proc/{pid}/cgroup"))), &id);
            assert!(
                init.iter().any(|l| l.starts_with("0::")) == v2,
                "cgroup2 membership of the init: {init:?}"
            );
            if !unified() {
                for c in ["cpu", "memory", "pids", "devices", "freezer"] {
                    assert!(
                        init.iter().any(|l| l
                            .split(':')
                            .nth(1)
                            .unwrap()
                            .split(',')
                            .any(|x| x == c)),
                        "init not in the {c} hierarchy: {init:?}"
                    );
                }
            }
            sb.berth(&["start", &id]).expect_ok();
            let mut exec = sb.cmd(&["exec", &id, "cat", "/proc/self/cgroup"]);
            if plain_fork {
                without_clone3(&mut exec);
            }
            let out = sb.run_cmd(exec, "berth exec");
            out.expect_ok();
            // Inside the container's cgroup namespace the paths are relative;
            // compare the host's view of a long-lived exec'd process instead.
            let mut exec = sb.cmd(&["exec", "-d", &id, "sleep", "1000"]);
            if plain_fork {
                without_clone3(&mut exec);
            }
            sb.run_cmd(exec, "berth exec -d").expect_ok();
            let mut seen = Vec::new();
            assert!(wait_until(POLL_TIMEOUT, || {
                seen = ps_json(&sb, &id)
                    .into_iter()
                    .filter(|p| *p as i64 != pid && cmdline(*p) == "sleep 1000")
                    .map(|p| {
                        own_cgroup_lines(
                            &std::fs::read_to_string(format!("/proc/{p}/cgroup"))
                                .unwrap_or_default(),
                            &id,
                        )
                    })
                    .collect();
                !seen.is_empty()
            }));
            assert_eq!(seen[0], init, "exec'd process and init differ");
        }
        base.assert_clean(&sb);
    }
}
