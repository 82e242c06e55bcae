//! The standalone run flow: `berth-image run/ps/logs/stop/rm` with the real
//! `berth` runtime (built by the workspace next to this test's binaries), on a
//! busybox image built locally. Needs root.

mod common;

use common::world::{berth, wait_for, World};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The `ps -a` line of container `name` (NAMES is the last column).
fn ps_line(w: &World, name: &str) -> Option<String> {
    w.ok(&["ps", "-a"])
        .lines()
        .find(|l| l.split_whitespace().last() == Some(name))
        .map(String::from)
}

#[test]
fn foreground_run_prints_and_returns_the_exit_status() {
    let w = World::new();
    // Pulled on first use from the source reference.
    let out = w.out(&[
        "run",
        "--rm",
        "IMG",
        "sh",
        "-c",
        "echo hello from run; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from run\n");
    w.assert_empty();
    // Now from the store by name.
    let out = w.out(&["run", "--rm", "layout:1", "true"]);
    assert!(out.status.success(), "{out:?}");
    w.assert_empty();
}

#[test]
fn writes_go_to_the_containers_own_layer() {
    let w = World::new();
    w.ok(&[
        "run",
        "--name",
        "a",
        "IMG",
        "sh",
        "-c",
        "echo mine > /etc/marker",
    ]);
    let id = w.inspect("a")["Id"].as_str().unwrap().to_string();
    let upper = w
        .store
        .join(format!("containers/{id}/bundle/.berth/upper/etc/marker"));
    assert_eq!(std::fs::read_to_string(&upper).unwrap(), "mine\n");
    // A second container from the same image does not see it.
    let out = w.ok(&[
        "run",
        "--rm",
        "IMG",
        "sh",
        "-c",
        "cat /etc/marker 2>&1 || echo absent",
    ]);
    assert!(out.contains("absent"), "{out}");
    // Stopped containers show with -a only; rm removes them and their layer.
    assert!(!w.ok(&["ps"]).lines().any(|l| l.ends_with(" a")));
    let line = ps_line(&w, "a").expect("a in ps -a");
    assert!(line.contains("Exited (0)"), "{line}");
    w.ok(&["rm", "a"]);
    assert!(!upper.exists());
    w.assert_empty();
}

#[test]
fn detached_container_ps_logs_stop_rm() {
    let w = World::new();
    let out = w.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "IMG",
        "sh",
        "-c",
        "echo started; trap 'echo got-term; exit 3' TERM; while true; do sleep 0.1; done",
    ]);
    // docker prints the new container's full id.
    let id = out.trim();
    assert_eq!(id.len(), 64, "{out}");
    assert_eq!(w.inspect("web")["Id"], id);
    assert!(wait_for(Duration::from_secs(10), || w
        .ok(&["logs", "web"])
        .contains("started")));
    let line = ps_line(&w, "web").unwrap();
    assert!(line.starts_with(&id[..12]), "{line}");
    assert!(line.contains(" Up "), "{line}");
    assert!(w.ok(&["ps"]).contains(&line));
    // A running container is not removed without -f.
    let o = w.out(&["rm", "web"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("running"),
        "{o:?}"
    );
    // A second container with the same name is refused.
    let o = w.out(&["run", "-d", "--name", "web", "IMG", "true"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already exists"),
        "{o:?}"
    );
    assert_eq!(w.ok(&["stop", "web"]).trim(), "web");
    assert_eq!(w.inspect("web")["State"]["ExitCode"], 3);
    assert!(w.ok(&["logs", "web"]).contains("got-term"));
    w.ok(&["rm", "web"]);
    w.assert_empty();
}

#[test]
fn stop_kills_a_container_that_ignores_its_stop_signal_and_rm_f_kills() {
    let w = World::new();
    w.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "IMG",
        "sh",
        "-c",
        "trap '' TERM; echo up; while true; do sleep 0.1; done",
    ]);
    assert!(wait_for(Duration::from_secs(10), || w
        .ok(&["logs", "stubborn"])
        .contains("up")));
    w.ok(&["stop", "-t", "1", "stubborn"]);
    assert_eq!(w.inspect("stubborn")["State"]["ExitCode"], 137);
    w.ok(&["rm", "stubborn"]);
    w.ok(&[
        "run", "-d", "--rm", "--name", "gone", "IMG", "sleep", "1000",
    ]);
    w.ok(&["rm", "-f", "gone"]);
    w.assert_empty();
}

#[test]
fn detached_rm_container_removes_itself_when_it_exits() {
    let w = World::new();
    w.ok(&[
        "run", "-d", "--rm", "--name", "brief", "IMG", "sh", "-c", "exit 0",
    ]);
    assert!(wait_for(Duration::from_secs(20), || w
        .containers()
        .is_empty()));
    w.assert_empty();
}

#[test]
fn network_none_and_host() {
    let w = World::new();
    let count = "grep -c : /proc/net/dev";
    let none = w.ok(&["run", "--rm", "--net", "none", "IMG", "sh", "-c", count]);
    assert_eq!(
        none.trim(),
        "1",
        "only lo in a fresh network namespace: {none}"
    );
    let host = w.ok(&["run", "--rm", "--net", "host", "IMG", "sh", "-c", count]);
    let on_host = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .filter(|l| l.contains(':'))
        .count();
    // Other people's interfaces come and go: about the host's count.
    let seen: usize = host.trim().parse().unwrap();
    assert!(
        seen > 1 && seen.abs_diff(on_host) < 10,
        "{seen} vs {on_host}"
    );
    w.assert_empty();
}

#[test]
fn tty_run_through_a_pty() {
    let w = World::new();
    // script(1) gives berth-image a terminal of its own.
    let line = format!(
        "{} --store {} run --runtime {} --net none --rm -t {} sh -c 'tty; [ -t 0 ] && echo on-a-tty'",
        env!("CARGO_BIN_EXE_berth-image"),
        w.store.display(),
        berth().display(),
        w.image
    );
    let out = Command::new("timeout")
        .args(["-k", "10", "120", "script", "-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script(1) (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("on-a-tty"), "{text:?}");
    w.assert_empty();
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing() {
    let w = World::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--name", "../x", "IMG", "true"],
            "invalid container name",
        ),
        (&["run", "--net", "bogus", "IMG", "true"], "--net"),
        (&["run", "-d", "-t", "IMG", "true"], "-t with -d"),
        (&["run", "no-such-image", "true"], "no-such-image"),
        (&["run", "-p", "80:99999", "IMG", "true"], "99999"),
        (&["run", "-p", "8080:80/sctp", "IMG", "true"], "sctp"),
        (
            &["run", "--net", "none", "-p", "8080:80", "IMG", "true"],
            "-p",
        ),
        (&["run", "--memory", "lots", "IMG", "true"], "--memory"),
        (&["run", "--memory", "1m", "IMG", "true"], "minimum"),
        (&["run", "--cpus", "1000", "IMG", "true"], "--cpus"),
        (&["run", "--cap-add", "BOGUS", "IMG", "true"], "BOGUS"),
        (&["run", "-v", "rel/path:/x", "IMG", "true"], "rel/path"),
        (&["run", "-v", "/tmp:relative", "IMG", "true"], "relative"),
        (&["run", "-w", "relative", "IMG", "true"], "-w"),
        (&["run", "-u", "nosuchuser", "IMG", "true"], "nosuchuser"),
        (
            &["run", "--stop-signal", "SIGBOGUS", "IMG", "true"],
            "SIGBOGUS",
        ),
        (
            &["run", "--device", "/etc/passwd", "IMG", "true"],
            "not a device",
        ),
        (
            &["run", "--net", "container:nothing", "IMG", "true"],
            "nothing",
        ),
        (&["logs", "nothing"], "no such container"),
        (&["stop", "nothing"], "no such container"),
        (&["rm", "nothing"], "no such container"),
        (&["start", "nothing"], "no such container"),
        (&["inspect", "nothing"], "nothing"),
    ];
    for (args, needle) in cases {
        let o = w.out(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // A command that does not exist in the image: the runtime's error, and no
    // container left behind by --rm.
    let o = w.out(&["run", "--rm", "IMG", "/no/such/program"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/no/such/program"),
        "{o:?}"
    );
    w.assert_empty();
}
