//! containerd + ctr against the berth shim (io.containerd.berth.v2), and
//! containerd's own runc shim running berth as its runc binary.
//! Root only; each test starts a private containerd (see common/mod.rs).
//!
//! Prerequisites: Debian's containerd (scripts/install-deps.sh) and berth +
//! berth-image built into the same target dir:
//! `cargo build -p berth -p berth-image && cargo test -p containerd-shim-berth-v2`.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{Containerd, BERTH_RUNTIME, IMAGE};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Waits for a spawned ctr (bounded by its own timeout) and returns its output.
fn finish(child: Child) -> std::process::Output {
    child.wait_with_output().expect("wait for ctr")
}

/// `ctr events` output has each of `expected` (topics), in that order.
fn assert_in_order(events: &str, expected: &[&str]) {
    let topics: Vec<&str> = events
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/tasks/")))
        .collect();
    let mut at = 0;
    for t in &topics {
        if at < expected.len() && *t == expected[at] {
            at += 1;
        }
    }
    assert_eq!(
        at,
        expected.len(),
        "expected {expected:?} in order, got {topics:?}"
    );
}

fn assert_clean(c: &Containerd) {
    // The shim exits asynchronously after Shutdown.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = c.leftovers();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = c.leftovers();
    }
    assert!(left.is_empty(), "leftovers: {left:?}");
}

#[test]
fn run_to_completion_reports_output_and_exit_status() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    let script = "echo to-stdout; echo to-stderr >&2; exit 3";
    let out = c.run_rm("c1", &[], &["sh", "-c", script]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout: {} stderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("to-stdout"), "{}", stdout(&out));
    assert!(stderr(&out).contains("to-stderr"), "{}", stderr(&out));
    assert!(c.ctr_ok(&["containers", "ls", "-q"]).trim().is_empty());
    assert_clean(&c);
}

#[test]
fn stdin_reaches_the_container_and_eof_ends_it() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    let mut cmd = c.ctr_cmd(&[
        "run",
        "--rm",
        "--runtime",
        BERTH_RUNTIME,
        IMAGE,
        "c1",
        "sh",
        "-c",
        "read line; echo got:$line; cat >/dev/null; echo eof",
    ]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\nmore\n").unwrap();
    } // closing stdin: ctr sends CloseIO
    let out = finish(child);
    assert!(out.status.success(), "{} {}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).trim(), "got:hello\neof");
    assert_clean(&c);
}

#[test]
fn a_failing_create_returns_berths_error() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    let out = c.run_rm("c1", &[], &["/no/such/program"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("/no/such/program"),
        "error does not name the program: {err}"
    );
    let _ = c.ctr(&["containers", "rm", "c1"]);
    assert_clean(&c);
}

#[test]
fn detached_run_kill_and_wait() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    // SIGTERM is trapped and turned into exit status 7; the ticks show when
    // an attach is connected.
    c.run_detached(
        "c1",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 7' TERM; while true; do echo tick; sleep 0.1; done",
        ],
    );
    let (pid, status) = c.task("c1").expect("task listed");
    assert!(pid > 0);
    assert_eq!(status, "RUNNING");
    // `ctr task attach` waits for the exit (Wait) and exits with its status.
    let waiter = c.stream_ctr(&["task", "attach", "c1"]);
    waiter.wait_until("the attach's first output", |o| o.contains("tick"));
    c.ctr_ok(&["task", "kill", "c1"]);
    let (status, _, err) = waiter.finish();
    assert_eq!(status.code(), Some(7), "{err}");
    c.ctr_ok(&["containers", "rm", "c1"]);

    // SIGKILL, then Delete reports 137.
    c.run_detached("c2", &[], &["sleep", "1000"]);
    c.ctr_ok(&["task", "kill", "-s", "SIGKILL", "c2"]);
    c.wait_status("c2", "STOPPED");
    let out = c.ctr(&["task", "delete", "c2"]);
    assert!(stderr(&out).contains("137"), "{}", stderr(&out));
    c.ctr_ok(&["containers", "rm", "c2"]);
    assert_clean(&c);
}

#[test]
fn kill_all_reaches_every_process() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    c.run_detached("c1", &[], &["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    c.ctr_ok(&["task", "kill", "--all", "-s", "SIGKILL", "c1"]);
    c.wait_status("c1", "STOPPED");
    c.remove("c1");
    assert_clean(&c);
}

#[test]
fn task_ps_lists_the_processes() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    c.run_detached("c1", &[], &["sh", "-c", "sleep 1000 & wait"]);
    let (pid, _) = c.task("c1").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let ps = loop {
        let ps = c.ctr_ok(&["task", "ps", "c1"]);
        if ps.lines().count() >= 3 || Instant::now() > deadline {
            break ps;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
        "{ps}"
    );
    assert_eq!(ps.lines().count(), 3, "header + sh + sleep: {ps}");
    c.remove("c1");
    assert_clean(&c);
}

#[test]
fn task_exec_runs_in_the_container() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    c.run_detached("c1", &[], &["sleep", "1000"]);
    let events = c.subscribe_events();
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "c1",
        "sh",
        "-c",
        "echo in-exec; cat /proc/1/cmdline; exit 5",
    ]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "stdout: {} stderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("in-exec"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("sleep"),
        "pid 1 should be the container's init: {}",
        stdout(&out)
    );
    // The init runs on: the only exit is the exec's.
    events.wait_until("the exec's exit", |o| o.contains("/tasks/exit"));
    assert_in_order(
        &events.stop(),
        &["/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"],
    );
    c.remove("c1");
    assert_clean(&c);
}

#[test]
fn pause_and_resume() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    c.run_detached("c1", &[], &["sleep", "1000"]);
    c.ctr_ok(&["task", "pause", "c1"]);
    assert_eq!(c.task("c1").unwrap().1, "PAUSED");
    c.ctr_ok(&["task", "resume", "c1"]);
    assert_eq!(c.task("c1").unwrap().1, "RUNNING");
    c.remove("c1");
    assert_clean(&c);
}

#[test]
fn task_metrics_reports_cgroup_stats() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    c.run_detached("c1", &[], &["sleep", "1000"]);
    let m = c.ctr_ok(&["task", "metrics", "c1"]);
    let v1 = m.contains("memory.usage_in_bytes") && m.contains("pids.current");
    let v2 = m.contains("memory.usage") && m.contains("pids.current");
    assert!(v1 || v2, "{m}");
    let pids = m.lines().find(|l| l.starts_with("pids.current")).unwrap();
    assert_eq!(pids.split_whitespace().nth(1), Some("1"), "{m}");
    c.remove("c1");
    assert_clean(&c);
}

#[test]
fn events_are_published_in_order() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    let events = c.subscribe_events();
    c.run_detached("c1", &[], &["sleep", "1000"]);
    c.ctr_ok(&["task", "pause", "c1"]);
    c.ctr_ok(&["task", "resume", "c1"]);
    c.remove("c1");
    events.wait_until("the task's delete", |o| o.contains("/tasks/delete"));
    let out = events.stop();
    let expected = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ];
    assert_in_order(&out, &expected);
    assert_clean(&c);
}

#[test]
fn out_of_memory_is_reported() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    let events = c.subscribe_events();
    let limit = ["--memory-limit", "16777216"];
    let out = c.run_rm(
        "c1",
        &limit,
        &["sh", "-c", "head -c 268435456 /dev/zero | tail"],
    );
    assert_eq!(
        out.status.code(),
        Some(137),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    // The OOM watcher publishes on its own thread, so the event may come
    // after the task's delete; wait for both.
    events.wait_until("the OOM and the delete", |o| {
        o.contains("/tasks/oom") && o.contains("/tasks/delete")
    });
    events.stop();
    assert_clean(&c);
}

#[test]
fn terminal_gets_a_pty() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        berth_testsupport::skip("script", "script(1) not installed");
        return;
    }
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    // script(1) gives ctr the terminal `ctr run -t` needs.
    let ctr = format!(
        "{} --address {} -n {} run -t --rm --runtime {BERTH_RUNTIME} {IMAGE} c1 sh -c 'tty; exit 2' </dev/null",
        common::containerd_tool("ctr").display(),
        c.dir.join("containerd.sock").display(),
        c.ns
    );
    let out = std::process::Command::new("timeout")
        .args(["-k", "10", "60", "script", "-qec", &ctr, "/dev/null"])
        .env(
            "PATH",
            format!("{}:{}", c.bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("/dev/pts/"),
        "stdout: {} stderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {} stderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert_clean(&c);
}

#[test]
fn containers_of_a_pod_share_one_shim() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    let pod = ["--annotation", "io.kubernetes.cri.sandbox-id=pod1"];
    c.run_detached("pause", &pod, &["sleep", "1000"]);
    c.run_detached("app", &pod, &["sleep", "1000"]);
    c.run_detached("other", &[], &["sleep", "1000"]);
    assert_eq!(c.shim_pids().len(), 2, "pod1 + other");
    c.remove("app");
    assert_eq!(c.shim_pids().len(), 2, "the pod's shim serves pause still");
    c.ctr_ok(&["task", "pause", "pause"]);
    c.ctr_ok(&["task", "resume", "pause"]);
    c.remove("pause");
    c.remove("other");
    assert_clean(&c);
}

#[test]
fn runc_shim_runs_berth_as_its_runc_binary() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    let berth = c.bin_dir.join("berth");
    let berth = berth.to_str().unwrap();
    let out = c.ctr(&[
        "run",
        "--rm",
        "--runtime",
        "io.containerd.runc.v2",
        "--runc-binary",
        berth,
        IMAGE,
        "r1",
        "sh",
        "-c",
        "echo via-runc-shim; exit 4",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "stdout: {} stderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("via-runc-shim"));

    let run = [
        "run",
        "-d",
        "--runtime",
        "io.containerd.runc.v2",
        "--runc-binary",
        berth,
        IMAGE,
        "r2",
        "sleep",
        "1000",
    ];
    c.ctr_ok(&run);
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "r2",
        "sh",
        "-c",
        "echo exec-ok",
    ]);
    assert!(
        stdout(&out).contains("exec-ok"),
        "exec via runc shim: {} {}",
        stdout(&out),
        stderr(&out)
    );
    let ps = c.ctr(&["task", "ps", "r2"]);
    assert!(ps.status.success(), "ps via runc shim: {}", stderr(&ps));
    c.ctr_ok(&["task", "pause", "r2"]);
    assert_eq!(c.task("r2").unwrap().1, "PAUSED");
    c.ctr_ok(&["task", "resume", "r2"]);
    c.remove("r2");
    assert_clean(&c);
}
