//! The container lifecycle through the berth command line: create, start,
//! state, kill, delete, run, list, with real containers (needs root).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// A program that appends "ran" to /host/marker once, then waits forever.
const RUN_ONCE: &str = "echo ran >> /host/marker; while :; do sleep 1000 & wait $!; done";

/// Records each trapped signal in /host/signals; exits 0 on TERM.
const SIGNAL_RECORDER: &str =
    "trap 'echo USR1 >> /host/signals' USR1; trap 'echo HUP >> /host/signals' HUP; \
     trap 'echo TERM >> /host/signals; exit 0' TERM; echo ready > /host/ready; \
     while :; do sleep 1000 & wait $!; done";

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn create_waits_for_start_then_start_runs_the_program() {
    let mut sb = Sandbox::new("lc-create");
    sb.bundle.sh(RUN_ONCE);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let c = sb.created(&id);
        let st = c.state();
        assert_eq!(st["status"], "created", "{st}");
        assert_eq!(st["id"], id.as_str());
        let pid = st["pid"].as_i64().unwrap() as i32;
        assert!(
            pid > 0 && alive(pid),
            "created container must have a live init, state: {st}"
        );
        assert_eq!(
            st["bundle"],
            sb.bundle.dir.canonicalize().unwrap().display().to_string()
        );
        // The cgroup exists while the container does.
        assert!(
            !cgroup_dirs(&id).is_empty(),
            "no cgroup directory for {id} while it exists"
        );
        // The user program has not run: no marker, and the init is not yet the program.
        let marker = sb.host.join("marker");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.contains("create") && !cmdline.contains("sleep"),
            "the init already exec'd the program: {cmdline}"
        );
        std::thread::sleep(Duration::from_millis(200));
        assert!(!marker.exists(), "the program ran before start");

        sb.berth(&["start", &id]).expect_ok();
        sb.wait_file(&marker, "ran");
        assert_eq!(sb.status(&id), "running");
        assert_eq!(c.pid(), pid, "start must not change the init pid");
    }
    base.assert_clean(&sb);
}

#[test]
fn start_twice_fails_and_changes_nothing() {
    let mut sb = Sandbox::new("lc-start2");
    sb.bundle.sh(RUN_ONCE);
    let id = sb.id("c");
    let c = sb.started(&id);
    let marker = sb.host.join("marker");
    sb.wait_file(&marker, "ran");
    let pid = c.pid();
    let second = sb.berth(&["start", &id]);
    second.expect_fail(&[&id]);
    assert_eq!(sb.status(&id), "running");
    assert_eq!(c.pid(), pid);
    // Give a wrongly started second program the same chance the first had.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lines(&marker),
        vec!["ran"],
        "the program ran more than once"
    );
}

#[test]
fn delete_of_running_container_needs_force() {
    let mut sb = Sandbox::new("lc-del");
    sb.bundle.sh(RUN_ONCE);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let c = sb.started(&id);
        let pid = c.pid();
        sb.berth(&["delete", &id]).expect_fail(&["running"]);
        assert_eq!(sb.status(&id), "running");
        assert!(alive(pid), "delete without --force killed the container");
        assert!(sb.root.join(&id).exists());
        sb.berth(&["delete", "--force", &id]).expect_ok();
        assert!(!alive(pid), "delete --force left the init alive");
        assert!(sb.state(&id).is_none(), "state still answers after delete");
    }
    base.assert_clean(&sb);
}

#[test]
fn kill_by_name_number_and_default() {
    let mut sb = Sandbox::new("lc-kill");
    sb.bundle.sh(SIGNAL_RECORDER);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.started(&id);
        sb.wait_file(&sb.host.join("ready"), "ready");
        let signals = sb.host.join("signals");
        sb.berth(&["kill", &id, "SIGUSR1"]).expect_ok();
        sb.wait_file(&signals, "USR1");
        sb.berth(&["kill", &id, "HUP"]).expect_ok();
        sb.wait_file(&signals, "HUP");
        sb.berth(&["kill", &id, "10"]).expect_ok();
        let mut got = Vec::new();
        assert!(wait_until(POLL_TIMEOUT, || {
            got = lines(&signals);
            got.len() >= 3
        }));
        assert_eq!(got, vec!["USR1", "HUP", "USR1"]);
        assert_eq!(sb.status(&id), "running");
        // No signal: SIGTERM, which the program answers by exiting.
        sb.berth(&["kill", &id]).expect_ok();
        sb.wait_status(&id, "stopped");
        assert_eq!(lines(&signals).last().map(String::as_str), Some("TERM"));
        sb.berth(&["kill", &id, "KILL"])
            .expect_fail(&["not running"]);
        // A stopped container is deleted without --force.
        sb.berth(&["delete", &id]).expect_ok();
    }
    base.assert_clean(&sb);
}

#[test]
fn kill_with_bad_signal_fails() {
    let mut sb = Sandbox::new("lc-badsig");
    sb.bundle.sh(RUN_ONCE);
    let id = sb.id("c");
    let c = sb.started(&id);
    let pid = c.pid();
    sb.berth(&["kill", &id, "SIGNOPE"])
        .expect_fail(&["SIGNOPE"]);
    sb.berth(&["kill", &id, "999"]).expect_fail(&[]);
    assert!(alive(pid));
    assert_eq!(sb.status(&id), "running");
}

#[test]
fn stopped_state_and_delete_cleans_everything() {
    let mut sb = Sandbox::new("lc-stop");
    sb.bundle.sh("echo done > /host/marker");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.started(&id);
        sb.wait_status(&id, "stopped");
        let st = sb.state(&id).unwrap();
        assert_eq!(st["pid"], 0, "a stopped container reports pid 0: {st}");
        assert_eq!(
            std::fs::read_to_string(sb.host.join("marker")).unwrap(),
            "done\n"
        );
        assert!(
            sb.root.join(&id).exists(),
            "state must survive the program's exit"
        );
        assert!(
            !cgroup_dirs(&id).is_empty(),
            "the cgroup is removed by delete, not before"
        );
        sb.berth(&["delete", &id]).expect_ok();
        assert!(!sb.root.join(&id).exists());
        assert!(
            cgroup_dirs(&id).is_empty(),
            "delete left cgroups: {:?}",
            cgroup_dirs(&id)
        );
        sb.berth(&["state", &id]).expect_fail(&["does not exist"]);
    }
    base.assert_clean(&sb);
}

#[test]
fn duplicate_id_fails_and_keeps_the_first() {
    let mut sb = Sandbox::new("lc-dup");
    sb.bundle.sh(RUN_ONCE);
    let id = sb.id("c");
    let c = sb.created(&id);
    let pid = c.pid();
    let state_before = std::fs::read(sb.root.join(&id).join("state.json")).unwrap();
    let mut other = sb.new_bundle("bundle2");
    other.sh("echo second >> /host/marker");
    other.save();
    sb.berth(&["create", "--bundle", &other.dir.display().to_string(), &id])
        .expect_fail(&["already exists"]);
    assert_eq!(
        std::fs::read(sb.root.join(&id).join("state.json")).unwrap(),
        state_before,
        "the failed create touched the first container's state"
    );
    assert_eq!(sb.status(&id), "created");
    assert_eq!(c.pid(), pid);
    assert!(alive(pid));
    sb.berth(&["start", &id]).expect_ok();
    let m = sb.wait_file(&sb.host.join("marker"), "ran");
    assert!(
        !m.contains("second"),
        "the second bundle's program ran: {m:?}"
    );
}

#[test]
fn run_exits_with_the_program_status() {
    let mut sb = Sandbox::new("lc-run");
    sb.bundle.sh("echo out; exit 3");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    sb.bundle.save();
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(
        o.code, 3,
        "berth run should exit with the program's status: {o:?}"
    );
    assert_eq!(o.stdout, "out\n");
    assert!(
        sb.state(&id).is_none(),
        "run without --keep must delete the container"
    );
    base.assert_clean(&sb);
}

#[test]
fn run_reports_death_by_signal() {
    let mut sb = Sandbox::new("lc-runsig");
    // Not a pid namespace init: such an init ignores SIGKILL sent from inside.
    sb.bundle.sh("kill -KILL $$");
    drop_namespace(&mut sb, "pid");
    let id = sb.id("c");
    sb.bundle.save();
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(o.code, 128 + 9, "{o:?}");
}

fn drop_namespace(sb: &mut Sandbox, typ: &str) {
    let ns: Vec<_> = sb.bundle.config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != typ)
        .cloned()
        .collect();
    sb.bundle.set("/linux/namespaces", json!(ns));
}

fn run_and_terminate(sb: &Sandbox, id: &str) -> i32 {
    sb.bundle.save();
    let cmd = sb.cmd(&["run", "--bundle", &sb.bundle_arg(), id]);
    let (mut child, _, err) = spawn_to_files(sb, cmd, "run");
    let ready = sb.host.join("ready");
    let up = wait_until(POLL_TIMEOUT, || ready.exists());
    if !up {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "container never became ready: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_child(&mut child, POLL_TIMEOUT, "berth run after SIGTERM")
}

#[test]
fn run_forwards_sigterm_to_a_trapping_program() {
    let mut sb = Sandbox::new("lc-fwd");
    sb.bundle.sh(
        "trap 'exit 42' TERM; echo ready > /host/ready; while :; do sleep 1000 & wait $!; done",
    );
    let id = sb.id("c");
    let base = sb.baseline(&id);
    let code = run_and_terminate(&sb, &id);
    assert_eq!(
        code, 42,
        "the program's TERM trap should decide the exit status"
    );
    base.assert_clean(&sb);
}

#[test]
fn run_forwards_sigterm_to_a_plain_program() {
    // Without a pid namespace the program is not a namespace init, so an
    // untrapped SIGTERM kills it: 128 + 15.
    let mut sb = Sandbox::new("lc-fwd2");
    sb.bundle.sh("echo ready > /host/ready; exec sleep 1000");
    drop_namespace(&mut sb, "pid");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    let code = run_and_terminate(&sb, &id);
    assert_eq!(code, 143);
    base.assert_clean(&sb);
}

#[test]
fn run_detach_returns_with_the_container_running() {
    let mut sb = Sandbox::new("lc-detach");
    sb.bundle.sh(RUN_ONCE);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        sb.bundle.save();
        let _c = sb.guard(&id);
        sb.berth(&["run", "--detach", "--bundle", &sb.bundle_arg(), &id])
            .expect_ok();
        assert_eq!(sb.status(&id), "running");
        sb.wait_file(&sb.host.join("marker"), "ran");
        sb.berth(&["delete", "--force", &id]).expect_ok();
    }
    base.assert_clean(&sb);
}

#[test]
fn run_keep_keeps_the_state() {
    let mut sb = Sandbox::new("lc-keep");
    sb.bundle.sh("exit 0");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        sb.bundle.save();
        let _c = sb.guard(&id);
        let o = sb.berth(&["run", "--keep", "--bundle", &sb.bundle_arg(), &id]);
        assert_eq!(o.code, 0, "{o:?}");
        let st = sb
            .state(&id)
            .expect("run --keep must keep the container's state");
        assert_eq!(st["status"], "stopped");
        assert_eq!(st["pid"], 0);
        sb.berth(&["delete", &id]).expect_ok();
    }
    base.assert_clean(&sb);
}

#[test]
fn list_quiet_and_json() {
    let mut sb = Sandbox::new("lc-list");
    sb.bundle.sh(RUN_ONCE);
    let a = sb.id("a");
    let b = sb.id("b");
    let ca = sb.created(&a);
    let _cb = sb.started(&b);
    let q = sb.berth(&["list", "-q"]);
    q.expect_ok();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(q.stdout.lines().collect::<Vec<_>>(), want);
    let j = sb.berth(&["list", "--format", "json"]);
    j.expect_ok();
    let v: serde_json::Value = serde_json::from_str(&j.stdout)
        .unwrap_or_else(|e| panic!("list --format json: {e}: {}", j.stdout));
    let arr = v.as_array().expect("a JSON array");
    assert_eq!(arr.len(), 2, "{v}");
    let find = |id: &str| {
        arr.iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing from {v}"))
            .clone()
    };
    assert_eq!(find(&a)["status"], "created");
    assert_eq!(find(&a)["pid"], ca.pid());
    assert_eq!(find(&b)["status"], "running");
    assert!(find(&b)["bundle"].as_str().unwrap().ends_with("/bundle"));
    let t = sb.berth(&["list"]);
    t.expect_ok();
    assert!(
        t.stdout.contains(&a) && t.stdout.contains("created") && t.stdout.contains("running"),
        "{}",
        t.stdout
    );
    // An empty root lists nothing.
    sb.berth(&["delete", "--force", &a]).expect_ok();
    sb.berth(&["delete", "--force", &b]).expect_ok();
    assert_eq!(sb.berth(&["list", "-q"]).stdout, "");
}

#[test]
fn pid_file_holds_the_init_pid() {
    let mut sb = Sandbox::new("lc-pidfile");
    sb.bundle.sh(RUN_ONCE);
    let id = sb.id("c");
    let pid_file = sb.dir.join("init.pid");
    sb.bundle.save();
    sb.berth(&[
        "create",
        "--bundle",
        &sb.bundle_arg(),
        "--pid-file",
        &pid_file.display().to_string(),
        &id,
    ])
    .expect_ok();
    let c = sb.guard(&id);
    let text = std::fs::read_to_string(&pid_file).expect("pid file written");
    assert_eq!(text.trim().parse::<i32>().expect("a number"), c.pid());
    assert!(!text.contains('\n') || text.ends_with('\n'));
}

/// Rewrite the "pid" of a container's state.json, keeping everything else.
fn rewrite_pid(sb: &Sandbox, id: &str, pid: i32) -> Vec<u8> {
    let path = sb.root.join(id).join("state.json");
    let orig = std::fs::read(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&orig).unwrap();
    assert!(v.get("pid").is_some(), "state.json has no pid: {v}");
    v["pid"] = json!(pid);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    orig
}

#[test]
fn reused_pid_is_not_taken_for_the_container() {
    let mut sb = Sandbox::new("lc-reuse");
    sb.bundle.sh(RUN_ONCE);
    let id = sb.id("c");
    let _c = sb.started(&id);
    let path = sb.root.join(&id).join("state.json");

    // The test process's own pid: alive, but started at another time.
    let orig = rewrite_pid(&sb, &id, std::process::id() as i32);
    let st = sb.state(&id).unwrap();
    assert_eq!(
        st["status"], "stopped",
        "a live pid with another start time must not count: {st}"
    );
    assert_eq!(st["pid"], 0);

    // Another process of ours: kill must refuse rather than signal it.
    let mut decoy = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    rewrite_pid(&sb, &id, decoy.id() as i32);
    assert_eq!(sb.status(&id), "stopped");
    let k = sb.berth(&["kill", &id, "KILL"]);
    let decoy_alive = decoy.try_wait().unwrap().is_none();
    let _ = decoy.kill();
    let _ = decoy.wait();
    assert!(
        decoy_alive,
        "berth kill signalled an unrelated process that reused the pid"
    );
    assert!(
        !k.ok(),
        "kill of a container whose pid was reused should fail"
    );

    std::fs::write(&path, orig).unwrap();
    assert_eq!(sb.status(&id), "running");
}

#[test]
fn concurrent_start_runs_the_program_once() {
    let mut sb = Sandbox::new("lc-race");
    sb.bundle.sh(RUN_ONCE);
    let id = sb.id("c");
    let _c = sb.created(&id);
    let barrier = std::sync::Barrier::new(2);
    let results: Vec<Out> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let cmd = sb.cmd(&["start", &id]);
                    barrier.wait();
                    sb.run_cmd(cmd, "berth start (concurrent)")
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|o| o.ok()).count();
    assert_eq!(
        ok, 1,
        "exactly one concurrent start must succeed: {results:?}"
    );
    let marker = sb.host.join("marker");
    sb.wait_file(&marker, "ran");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines(&marker), vec!["ran"]);
    assert_eq!(sb.status(&id), "running");
}

#[test]
fn annotations_show_in_state() {
    let mut sb = Sandbox::new("lc-annot");
    sb.bundle.sh(RUN_ONCE);
    sb.bundle
        .set("/annotations", json!({"org.example.key": "value 1"}));
    let id = sb.id("c");
    let c = sb.created(&id);
    assert_eq!(c.state()["annotations"]["org.example.key"], "value 1");
}

#[test]
fn delete_of_a_created_container_never_runs_the_program() {
    let mut sb = Sandbox::new("lc-delcreated");
    sb.bundle.sh("echo ran > /host/marker");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let c = sb.created(&id);
        let pid = c.pid();
        sb.berth(&["delete", &id]).expect_ok();
        assert!(!alive(pid));
    }
    base.assert_clean(&sb);
    assert!(
        !sb.host.join("marker").exists(),
        "deleting a created container ran its program"
    );
}

#[test]
fn init_killed_from_outside_is_stopped_and_cannot_start() {
    let mut sb = Sandbox::new("lc-killed");
    sb.bundle.sh("echo ran > /host/marker");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let c = sb.created(&id);
        let pid = c.pid();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        sb.wait_status(&id, "stopped");
        sb.berth(&["start", &id]).expect_fail(&[&id]);
        assert!(!sb.host.join("marker").exists());
        sb.berth(&["delete", &id]).expect_ok();
    }
    base.assert_clean(&sb);
}

#[test]
fn kill_all_reaches_every_process_of_the_container() {
    let mut sb = Sandbox::new("lc-killall");
    sb.bundle
        .sh("sleep 1000 & sleep 1000 & echo ready > /host/ready; wait");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.started(&id);
        sb.wait_file(&sb.host.join("ready"), "ready");
        // The init and its two sleeps carry the test's tag.
        assert!(
            wait_until(POLL_TIMEOUT, || sb.tagged_processes().len() >= 3),
            "{:?}",
            sb.tagged_processes()
        );
        sb.berth(&["kill", "--all", &id, "KILL"]).expect_ok();
        sb.wait_status(&id, "stopped");
        assert!(
            wait_until(POLL_TIMEOUT, || sb.tagged_processes().is_empty()),
            "kill --all left {:?}",
            sb.tagged_processes()
        );
        sb.berth(&["delete", &id]).expect_ok();
    }
    base.assert_clean(&sb);
}

#[test]
fn run_that_cannot_create_leaves_nothing() {
    let mut sb = Sandbox::new("lc-runfail");
    sb.bundle.args(&["/no/such/program"]);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    sb.bundle.save();
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    o.expect_fail(&["/no/such/program"]);
    base.assert_clean(&sb);
}

#[test]
fn concurrent_create_with_one_id_makes_one_container() {
    let mut sb = Sandbox::new("lc-race-create");
    sb.bundle.sh(RUN_ONCE);
    sb.bundle.save();
    let id = sb.id("c");
    let barrier = std::sync::Barrier::new(2);
    let results: Vec<Out> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let cmd = sb.cmd(&["create", "--bundle", &sb.bundle_arg(), &id]);
                    barrier.wait();
                    sb.run_cmd(cmd, "berth create (concurrent)")
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let _c = sb.guard(&id);
    assert_eq!(results.iter().filter(|o| o.ok()).count(), 1, "{results:?}");
    assert!(
        results.iter().any(|o| o.stderr.contains("already exists")),
        "{results:?}"
    );
    assert_eq!(sb.status(&id), "created");
    // Only one init: the container's cgroup holds exactly one process.
    let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/berth/{id}/cgroup.procs"))
        .unwrap_or_default();
    assert_eq!(procs.lines().count(), 1, "cgroup.procs: {procs:?}");
}

/// `kill ID 0` only checks that the container is alive (runc's "container
/// not running" once it is not); `kill -a` of a stopped container is no error.
#[test]
fn kill_zero_checks_alive_and_kill_all_of_a_stopped_container_is_fine() {
    let mut sb = Sandbox::new("lc-kill0");
    sb.bundle.sh("exec sleep 1000");
    let id = sb.id("c");
    let _c = sb.started(&id);
    sb.berth(&["kill", &id, "0"]).expect_ok();
    assert_eq!(sb.status(&id), "running");
    sb.berth(&["kill", &id, "KILL"]).expect_ok();
    sb.wait_status(&id, "stopped");
    sb.berth(&["kill", &id, "0"])
        .expect_fail(&["container not running"]);
    sb.berth(&["kill", "-a", &id, "0"]).expect_ok();
    sb.berth(&["kill", "--all", &id, "KILL"]).expect_ok();
    sb.berth(&["delete", &id]).expect_ok();
}

/// Without its own pid namespace, a container's init is not special: `kill
/// KILL` kills every process of its cgroup (also once the init is gone), and
/// `delete` works afterwards.
#[test]
fn kill_without_pid_namespace_reaches_every_process() {
    for kill_init_first in [false, true] {
        let mut sb = Sandbox::new("lc-killnopid");
        sb.bundle.without_namespace("pid").sh("exec sleep 1000");
        let id = sb.id("c");
        let base = sb.baseline(&id);
        {
            let c = sb.started(&id);
            let init = c.pid();
            let pidfile = sb.dir.join("exec.pid");
            let mut others = Vec::new();
            for _ in 0..3 {
                sb.berth(&[
                    "exec",
                    "-d",
                    "--pid-file",
                    pidfile.to_str().unwrap(),
                    &id,
                    "sleep",
                    "1000",
                ])
                .expect_ok();
                others.push(
                    std::fs::read_to_string(&pidfile)
                        .unwrap()
                        .trim()
                        .parse::<i32>()
                        .unwrap(),
                );
            }
            if kill_init_first {
                // SAFETY: plain kill(2) of the container's init.
                unsafe { libc::kill(init, libc::SIGKILL) };
                sb.wait_status(&id, "stopped");
                assert!(others.iter().all(|p| alive(*p)));
            }
            sb.berth(&["kill", &id, "KILL"]).expect_ok();
            assert!(
                wait_until(POLL_TIMEOUT, || others.iter().all(|p| !alive(*p))),
                "kill KILL left processes of the container (init killed first: {kill_init_first})"
            );
            sb.wait_status(&id, "stopped");
            sb.berth(&["delete", &id]).expect_ok();
        }
        base.assert_clean(&sb);
    }
}
