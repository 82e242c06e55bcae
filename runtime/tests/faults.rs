//! Fault injection: berth SIGKILLed at many points of `create`, `run -d`,
//! `exec -d` and `delete` (a sweep of delays covering the whole command, kills
//! triggered by what the command has made so far, and kills while a sleeping
//! hook holds a window open). After each kill, `berth delete --force ID` and
//! `berth list` must leave nothing behind: no tagged process, no new mount, no
//! cgroup directory, no state directory, no fd or zombie in the test process.
//!
//! The tests in this file take a file-wide lock, so the fd and zombie counts
//! of the test process are exact even with `--test-threads=2`.
//! `BERTH_FAULT_POINTS` sets the number of delays per sweep (default 40).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use berth_testsupport::faults::{End, Sweep};
use common::*;
use serde_json::{json, Value};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The test process's fds and zombie children before a sweep.
struct ProcSnapshot {
    fds: BTreeMap<i32, String>,
}

impl ProcSnapshot {
    fn take() -> ProcSnapshot {
        ProcSnapshot { fds: open_fds() }
    }

    #[track_caller]
    fn check(&self, ctx: &str) {
        let now = open_fds();
        assert_eq!(
            now, self.fds,
            "{ctx}: the test process's fds changed (before: {:?})",
            self.fds
        );
        let z = zombie_children();
        assert!(z.is_empty(), "{ctx}: zombie children of the test: {z:?}");
    }
}

/// Spawn `cmd` (output to files), wait until `trigger` holds (polled without
/// sleeping) and then `delay` more, and SIGKILL it. Returns how it ended, its
/// stderr, and how long after the spawn the kill was sent.
fn kill_when(
    sb: &Sandbox,
    cmd: Command,
    mut trigger: impl FnMut() -> bool,
    delay: Duration,
) -> (End, String, Duration) {
    let (mut child, _out, err) = spawn_to_files(sb, cmd, "victim");
    let t0 = Instant::now();
    let deadline = t0 + COMMAND_TIMEOUT;
    let mut exited = false;
    while !trigger() {
        if matches!(child.try_wait(), Ok(Some(_))) {
            exited = true;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the trigger never fired within {COMMAND_TIMEOUT:?}"
        );
        std::thread::yield_now();
    }
    if !exited && !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let at = t0.elapsed();
    let _ = child.kill();
    let status = child.wait().expect("wait for the killed berth");
    use std::os::unix::process::ExitStatusExt;
    let end = match (status.code(), status.signal()) {
        (_, Some(9)) => End::Killed,
        (Some(c), _) => End::Finished(c),
        (None, s) => End::Finished(128 + s.unwrap_or(0)),
    };
    (end, std::fs::read_to_string(err).unwrap_or_default(), at)
}

fn kill_after(sb: &Sandbox, cmd: Command, delay: Duration) -> (End, String, Duration) {
    kill_when(sb, cmd, || true, delay)
}

/// Run `cmd` to completion, polling every 100 µs (the harness's backoff would
/// round the time up); returns its duration, exit code and stderr.
fn time_cmd(sb: &Sandbox, cmd: Command) -> (Duration, i32, String) {
    let (mut child, _out, err) = spawn_to_files(sb, cmd, "timed");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if t0.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the command did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_micros(100));
    };
    (
        t0.elapsed(),
        status.code().unwrap_or(-1),
        std::fs::read_to_string(err).unwrap_or_default(),
    )
}

/// How long `make()` takes to run to completion: the median of five runs,
/// each followed by `cleanup(id)`.
fn measure(
    sb: &Sandbox,
    name: &str,
    mut setup: impl FnMut(&str),
    mut make: impl FnMut(&str) -> Command,
    mut cleanup: impl FnMut(&str),
) -> Duration {
    let mut v = Vec::new();
    for i in 0..5 {
        let id = sb.id(&format!("m{i}"));
        setup(&id);
        let (took, code, err) = time_cmd(sb, make(&id));
        assert_eq!(code, 0, "{name} failed: {err}");
        v.push(took);
        cleanup(&id);
    }
    v.sort();
    v[2]
}

/// After a kill: `delete --force` (must succeed, or say the container does not
/// exist), `list` (must succeed and not show it), then everything must be as
/// in the baseline.
#[track_caller]
fn force_delete_and_check(
    sb: &Sandbox,
    id: &str,
    base: &Baseline,
    snap: &ProcSnapshot,
    end: End,
    ctx: &str,
) {
    let d = sb.berth(&["delete", "--force", id]);
    assert!(
        d.ok(),
        "{ctx}: `delete --force {id}` failed ({}): {}",
        d.code,
        d.stderr
    );
    let l = sb.berth(&["list", "--format", "json"]);
    assert!(l.ok(), "{ctx}: `list` failed: {}", l.stderr);
    let listed: Value = serde_json::from_str(l.stdout.trim()).unwrap_or(Value::Null);
    let ids: Vec<&str> = listed
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        !ids.contains(&id),
        "{ctx}: `list` still shows {id} after delete --force: {}",
        l.stdout
    );
    let mut problems = Vec::new();
    let clean = wait_until(Duration::from_secs(5), || {
        problems = leftovers(base, sb);
        problems.is_empty()
    });
    assert!(
        clean,
        "{ctx} (berth ended: {end:?}): leftovers after delete --force {id}:\n{}\nstate dir holds: {:?}",
        problems.join("\n"),
        dir_entries(&sb.root.join(id))
    );
    snap.check(ctx);
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn tally(what: &str, ends: &[End], times: &[Duration]) {
    let killed = ends.iter().filter(|e| **e == End::Killed).count();
    let max = times.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{what}: {} kills, {killed} hit the command, {} came after it finished; last kill at {max:?}",
        ends.len(),
        ends.len() - killed
    );
}

fn create_cmd(sb: &Sandbox, id: &str) -> Command {
    sb.cmd(&["create", "--bundle", &sb.bundle_arg(), id])
}

/// A hook that leaves `started` behind and then sleeps `secs`.
fn sleeping_hook(sb: &Sandbox, started: &Path, secs: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo x > {}; sleep {secs}", started.display())],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", format!("{TAG_VAR}={}", sb.tag)],
    })
}

// ---------------------------------------------------------------- create

#[test]
fn create_killed_at_a_sweep_of_delays() {
    let _s = serial();
    let mut sb = Sandbox::new("flt-create");
    sb.bundle.args(&["sleep", "1000"]);
    sb.bundle.save();
    let snap = ProcSnapshot::take();
    let d = measure(
        &sb,
        "berth create",
        |_| {},
        |id| create_cmd(&sb, id),
        |id| {
            sb.berth(&["delete", "--force", id]).expect_ok();
        },
    );
    eprintln!("berth create takes {d:?}");
    let (mut ends, mut times) = (Vec::new(), Vec::new());
    let mut sweep = Sweep::new(d);
    while let Some((i, delay)) = sweep.next_delay() {
        let id = sb.id(&format!("c{i}"));
        let base = sb.baseline(&id);
        let (end, err, at) = kill_after(&sb, create_cmd(&sb, &id), delay);
        let ctx = format!("create killed after {delay:?} (sent at {at:?}; stderr {err:?})");
        if let End::Finished(c) = end {
            assert_eq!(c, 0, "{ctx}: create failed on its own");
        }
        force_delete_and_check(&sb, &id, &base, &snap, end, &ctx);
        sweep.record(end);
        ends.push(end);
        times.push(at);
    }
    tally("create sweep", &ends, &times);
    assert!(
        ends.iter().filter(|e| **e == End::Killed).count() >= ends.len() / 4,
        "too few kills landed inside create: {ends:?}"
    );
}

/// Kill create the moment each of its steps becomes visible: the state
/// directory, state.json, the exec FIFO, the cgroup, state.json with the
/// init's pid. These are the points between which a half-made container
/// exists.
#[test]
fn create_killed_right_after_each_visible_step() {
    let _s = serial();
    let mut sb = Sandbox::new("flt-step");
    sb.bundle.args(&["sleep", "1000"]);
    sb.bundle.save();
    let snap = ProcSnapshot::take();
    type Trigger = fn(&Sandbox, &str) -> bool;
    let steps: [(&str, Trigger); 5] = [
        ("state dir", |sb, id| sb.root.join(id).exists()),
        ("state.json", |sb, id| {
            sb.root.join(id).join("state.json").exists()
        }),
        ("exec.fifo", |sb, id| {
            sb.root.join(id).join("exec.fifo").exists()
        }),
        ("cgroup dir", |_, id| !cgroup_dirs(id).is_empty()),
        ("pid saved", |sb, id| {
            std::fs::read(sb.root.join(id).join("state.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| v["pid"].as_i64().unwrap_or(0) > 0)
        }),
    ];
    let mut hit = BTreeMap::new();
    for (name, trig) in steps {
        for (k, extra_us) in [0u64, 0, 0, 100, 300, 1000].into_iter().enumerate() {
            let id = sb.id(&format!("s{}-{k}", name.replace([' ', '.'], "")));
            let base = sb.baseline(&id);
            let (end, err, at) = kill_when(
                &sb,
                create_cmd(&sb, &id),
                || trig(&sb, &id),
                Duration::from_micros(extra_us),
            );
            let ctx = format!(
                "create killed {extra_us}us after `{name}` appeared (at {at:?}; stderr {err:?})"
            );
            force_delete_and_check(&sb, &id, &base, &snap, end, &ctx);
            if end == End::Killed {
                *hit.entry(name).or_insert(0) += 1;
            }
        }
    }
    eprintln!("kills that landed inside create, per step: {hit:?}");
}

/// createRuntime hooks run in berth create itself; kill create while a hook
/// sleeps (the hook is orphaned and finishes on its own).
#[test]
fn create_killed_during_a_sleeping_create_runtime_hook() {
    hook_window("createRuntime", "flt-hk-cr");
}

/// createContainer hooks run from the container's init; kill create while it waits.
#[test]
fn create_killed_during_a_sleeping_create_container_hook() {
    hook_window("createContainer", "flt-hk-cc");
}

fn hook_window(kind: &str, prefix: &str) {
    let _s = serial();
    let mut sb = Sandbox::new(prefix);
    let started = sb.host.join("hook-started");
    sb.bundle.args(&["sleep", "1000"]);
    let h = sleeping_hook(&sb, &started, "0.2");
    sb.bundle.set(&format!("/hooks/{kind}"), json!([h]));
    sb.bundle.save();
    let snap = ProcSnapshot::take();
    for (k, ms) in [0u64, 0, 10, 50, 100, 150, 190].into_iter().enumerate() {
        let _ = std::fs::remove_file(&started);
        let id = sb.id(&format!("h{k}"));
        let base = sb.baseline(&id);
        let (end, err, at) = kill_when(
            &sb,
            create_cmd(&sb, &id),
            || started.exists(),
            Duration::from_millis(ms),
        );
        let ctx = format!("create killed {ms}ms into the {kind} hook (at {at:?}; stderr {err:?})");
        assert_eq!(end, End::Killed, "{ctx}: create finished before the kill");
        force_delete_and_check(&sb, &id, &base, &snap, end, &ctx);
    }
}

// ---------------------------------------------------------------- run -d

fn run_cmd_detached(sb: &Sandbox, id: &str) -> Command {
    sb.cmd(&["run", "-d", "--bundle", &sb.bundle_arg(), id])
}

#[test]
fn run_detached_killed_at_a_sweep_of_delays() {
    let _s = serial();
    let mut sb = Sandbox::new("flt-run");
    sb.bundle.args(&["sleep", "1000"]);
    sb.bundle.save();
    let snap = ProcSnapshot::take();
    let d = measure(
        &sb,
        "berth run -d",
        |_| {},
        |id| run_cmd_detached(&sb, id),
        |id| {
            sb.berth(&["delete", "--force", id]).expect_ok();
        },
    );
    eprintln!("berth run -d takes {d:?}");
    let (mut ends, mut times) = (Vec::new(), Vec::new());
    let mut sweep = Sweep::new(d);
    while let Some((i, delay)) = sweep.next_delay() {
        let id = sb.id(&format!("r{i}"));
        let base = sb.baseline(&id);
        let (end, err, at) = kill_after(&sb, run_cmd_detached(&sb, &id), delay);
        let ctx = format!("run -d killed after {delay:?} (sent at {at:?}; stderr {err:?})");
        if let End::Finished(c) = end {
            assert_eq!(c, 0, "{ctx}: run -d failed on its own");
            assert_eq!(sb.status(&id), "running", "{ctx}");
        }
        force_delete_and_check(&sb, &id, &base, &snap, end, &ctx);
        sweep.record(end);
        ends.push(end);
        times.push(at);
    }
    tally("run -d sweep", &ends, &times);
}

/// startContainer hooks run in the init after `start` released it; kill
/// `run -d` while the hook sleeps (start is waiting for the exec).
#[test]
fn run_detached_killed_during_a_sleeping_start_container_hook() {
    let _s = serial();
    let mut sb = Sandbox::new("flt-hk-sc");
    let started = sb.host.join("hook-started");
    sb.bundle.args(&["sleep", "1000"]);
    // startContainer runs inside the container: /host is the host dir.
    let h = sleeping_hook(&sb, Path::new("/host/hook-started"), "0.2");
    sb.bundle.set("/hooks/startContainer", json!([h]));
    sb.bundle.save();
    let snap = ProcSnapshot::take();
    for (k, ms) in [0u64, 20, 100, 180].into_iter().enumerate() {
        let _ = std::fs::remove_file(&started);
        let id = sb.id(&format!("h{k}"));
        let base = sb.baseline(&id);
        let (end, err, at) = kill_when(
            &sb,
            run_cmd_detached(&sb, &id),
            || started.exists(),
            Duration::from_millis(ms),
        );
        let ctx = format!("run -d killed {ms}ms into startContainer (at {at:?}; stderr {err:?})");
        assert_eq!(end, End::Killed, "{ctx}: run -d finished before the kill");
        force_delete_and_check(&sb, &id, &base, &snap, end, &ctx);
    }
}

// ---------------------------------------------------------------- exec -d

/// Tagged processes that are outside the container's cgroup (strays a killed
/// `exec` could leave: they would escape `kill --all` and the limits).
fn strays(sb: &Sandbox, id: &str) -> Vec<i32> {
    let inside = cgroup_pids(id);
    sb.tagged_processes()
        .into_iter()
        .filter(|p| !inside.contains(p))
        .collect()
}

#[test]
fn exec_detached_killed_at_a_sweep_of_delays() {
    let _s = serial();
    let mut sb = Sandbox::new("flt-exec");
    sb.bundle.args(&["sleep", "1000"]);
    sb.bundle.save();
    let snap = ProcSnapshot::take();
    let id = sb.id("x");
    let base = sb.baseline(&id);
    let c = sb.started(&id);
    let init = c.pid();
    let exec_cmd = || sb.cmd(&["exec", "-d", &id, "sleep", "1000"]);
    let mut d = Vec::new();
    for _ in 0..3 {
        let (took, code, err) = time_cmd(&sb, exec_cmd());
        assert_eq!(code, 0, "exec -d failed: {err}");
        d.push(took);
    }
    d.sort();
    eprintln!("berth exec -d takes {:?}", d[1]);
    let (mut ends, mut times) = (Vec::new(), Vec::new());
    let mut sweep = Sweep::new(d[1]);
    while let Some((_, delay)) = sweep.next_delay() {
        let before = cgroup_pids(&id).len();
        let (end, err, at) = kill_after(&sb, exec_cmd(), delay);
        let ctx = format!("exec -d killed after {delay:?} (sent at {at:?}; stderr {err:?})");
        if let End::Finished(c) = end {
            assert_eq!(c, 0, "{ctx}: exec -d failed on its own");
        }
        let mut left = Vec::new();
        let gone = wait_until(Duration::from_secs(5), || {
            left = strays(&sb, &id);
            left.is_empty()
        });
        assert!(
            gone,
            "{ctx}: processes outside the container's cgroup: {left:?}"
        );
        let after = cgroup_pids(&id).len();
        assert!(
            after <= before + 1,
            "{ctx}: the cgroup went from {before} to {after} processes"
        );
        assert_eq!(sb.status(&id), "running", "{ctx}");
        assert!(alive(init), "{ctx}: the init died");
        snap.check(&ctx);
        sweep.record(end);
        ends.push(end);
        times.push(at);
    }
    tally("exec -d sweep", &ends, &times);
    drop(c);
    let l = sb.berth(&["list", "-q"]);
    l.expect_ok();
    assert!(!l.stdout.lines().any(|x| x == id), "{}", l.stdout);
    base.assert_clean(&sb);
    snap.check("after the exec sweep");
}

// ---------------------------------------------------------------- delete

fn delete_sweep(sb: &Sandbox, start: bool, force: bool, name: &str) {
    let snap = ProcSnapshot::take();
    let setup = |id: &str| {
        sb.create(id).expect_ok();
        if start {
            sb.berth(&["start", id]).expect_ok();
        }
    };
    let del = |id: &str| {
        if force {
            sb.cmd(&["delete", "--force", id])
        } else {
            sb.cmd(&["delete", id])
        }
    };
    let d = measure(sb, name, setup, del, |_| {});
    eprintln!("{name} takes {d:?}");
    let (mut ends, mut times) = (Vec::new(), Vec::new());
    let mut sweep = Sweep::new(d);
    while let Some((i, delay)) = sweep.next_delay() {
        let id = sb.id(&format!("d{i}"));
        let base = sb.baseline(&id);
        setup(&id);
        let (end, err, at) = kill_after(sb, del(&id), delay);
        let ctx = format!("{name} killed after {delay:?} (sent at {at:?}; stderr {err:?})");
        if let End::Finished(c) = end {
            assert_eq!(c, 0, "{ctx}: delete failed on its own");
        }
        force_delete_and_check(sb, &id, &base, &snap, end, &ctx);
        sweep.record(end);
        ends.push(end);
        times.push(at);
    }
    tally(name, &ends, &times);
}

#[test]
fn delete_force_of_a_running_container_killed_at_a_sweep_of_delays() {
    let _s = serial();
    let mut sb = Sandbox::new("flt-del-run");
    sb.bundle.args(&["sleep", "1000"]);
    sb.bundle.save();
    delete_sweep(&sb, true, true, "berth delete --force (running)");
}

#[test]
fn delete_of_a_created_container_killed_at_a_sweep_of_delays() {
    let _s = serial();
    let mut sb = Sandbox::new("flt-del-crt");
    sb.bundle.args(&["sleep", "1000"]);
    sb.bundle.save();
    delete_sweep(&sb, false, false, "berth delete (created)");
}

/// poststop hooks run after the state is gone; kill delete while one sleeps.
#[test]
fn delete_killed_during_a_sleeping_poststop_hook() {
    let _s = serial();
    let mut sb = Sandbox::new("flt-hk-ps");
    let started = sb.host.join("hook-started");
    sb.bundle.args(&["sleep", "1000"]);
    let h = sleeping_hook(&sb, &started, "0.2");
    sb.bundle.set("/hooks/poststop", json!([h]));
    sb.bundle.save();
    let snap = ProcSnapshot::take();
    for (k, ms) in [0u64, 50, 150].into_iter().enumerate() {
        let _ = std::fs::remove_file(&started);
        let id = sb.id(&format!("h{k}"));
        let base = sb.baseline(&id);
        sb.create(&id).expect_ok();
        sb.berth(&["start", &id]).expect_ok();
        let (end, err, at) = kill_when(
            &sb,
            sb.cmd(&["delete", "--force", &id]),
            || started.exists(),
            Duration::from_millis(ms),
        );
        let ctx = format!("delete killed {ms}ms into poststop (at {at:?}; stderr {err:?})");
        assert_eq!(end, End::Killed, "{ctx}: delete finished before the kill");
        force_delete_and_check(&sb, &id, &base, &snap, end, &ctx);
    }
}

// ---------------------------------------------------------------- debris

/// The state directory a create killed between `mkdir` and the first
/// state.json leaves: `delete --force` must remove it, so the id can be used
/// again (made by hand here so the window is hit every time).
#[test]
fn delete_force_removes_a_state_dir_without_state_json() {
    let _s = serial();
    let sb = Sandbox::new("flt-debris");
    let snap = ProcSnapshot::take();
    for (k, files) in [
        vec![],
        vec!["config.json"],
        vec!["config.json", ".state.json.tmp1"],
    ]
    .into_iter()
    .enumerate()
    {
        let id = sb.id(&format!("d{k}"));
        let base = sb.baseline(&id);
        let dir: PathBuf = sb.root.join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        for f in &files {
            std::fs::write(dir.join(f), "{").unwrap();
        }
        let ctx = format!("state dir holding only {files:?}");
        force_delete_and_check(&sb, &id, &base, &snap, End::Killed, &ctx);
        sb.create(&id).expect_ok();
        sb.berth(&["delete", "--force", &id]).expect_ok();
        base.assert_clean(&sb);
    }
}
