//! The standalone run flow: `berth-image run/ps/logs/stop/rm` with the real
//! `berth` runtime (built by the workspace next to this test's binaries), on a
//! busybox image built locally. Needs root.

mod common;

use common::{berth_image, busybox_layout, mounts_below, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace's `berth` binary: `target/<profile>/berth`, next to the
/// `berth-image` binary these tests run.
fn berth() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_berth-image"))
        .parent()
        .unwrap()
        .join("berth");
    assert!(
        p.is_file(),
        "{} is missing: build the runtime first (cargo build -p berth)",
        p.display()
    );
    p
}

struct World {
    scratch: Scratch,
    store: PathBuf,
    image: String,
}

impl World {
    fn new() -> World {
        assert!(
            rustix::process::geteuid().is_root(),
            "these tests run real containers and need root"
        );
        let scratch = Scratch::new();
        let store = scratch.join("store");
        let layout = scratch.join("layout");
        busybox_layout(&layout, "1");
        let image = format!("oci:{}:1", layout.display());
        World {
            scratch,
            store,
            image,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = berth_image();
        c.arg("--store").arg(&self.store).args(args);
        c.stdin(Stdio::null());
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        if args.first() == Some(&"run") {
            // `run` takes --runtime after the verb.
            c = berth_image();
            c.arg("--store")
                .arg(&self.store)
                .arg("run")
                .arg("--runtime")
                .arg(berth())
                .args(&args[1..])
                .stdin(Stdio::null());
        }
        c.output().expect("spawn berth-image")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "berth-image {args:?}: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn runtime_root(&self) -> PathBuf {
        self.store.join("containers/.runtime")
    }

    fn containers(&self) -> Vec<String> {
        std::fs::read_dir(self.store.join("containers"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Nothing of any container is left: no container directory, no runtime
    /// state, no mount below the store.
    fn assert_empty(&self) {
        assert_eq!(self.containers(), Vec::<String>::new());
        let states: Vec<_> = std::fs::read_dir(self.runtime_root())
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        let states: Vec<_> = states
            .into_iter()
            .filter(|n| !n.to_string_lossy().starts_with('@'))
            .collect();
        assert!(states.is_empty(), "runtime state left: {states:?}");
        assert_eq!(mounts_below(&self.store), Vec::<PathBuf>::new());
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Kill and remove whatever a failed test left, before Scratch unmounts.
        for name in self.containers() {
            let _ = self.cmd(&["rm", "-f", &name]).output();
            let _ = Command::new(berth())
                .arg("--root")
                .arg(self.runtime_root())
                .args(["delete", "--force", &name])
                .output();
        }
        let _ = &self.scratch;
    }
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn foreground_run_prints_and_returns_the_exit_status() {
    let w = World::new();
    // Pulled on first use from the source reference.
    let out = w.out(&[
        "run",
        "--rm",
        &w.image,
        "sh",
        "-c",
        "echo hello from run; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from run\n");
    w.assert_empty();
    // Now from the store by name; the image's own Cmd (sh) with no stdin exits 0.
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
        &w.image,
        "sh",
        "-c",
        "echo mine > /etc/marker",
    ]);
    let upper = w.store.join("containers/a/bundle/.berth/upper/etc/marker");
    assert_eq!(std::fs::read_to_string(&upper).unwrap(), "mine\n");
    // A second container from the same image does not see it.
    let out = w.ok(&[
        "run",
        "--rm",
        &w.image,
        "sh",
        "-c",
        "cat /etc/marker 2>&1 || echo absent",
    ]);
    assert!(out.contains("absent"), "{out}");
    // Stopped containers show with -a only; rm removes them and their layer.
    assert!(!w.ok(&["ps"]).contains("\na "));
    let ps = w.ok(&["ps", "-a"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with("a ") && l.contains("exited (0)")),
        "{ps}"
    );
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
        &w.image,
        "sh",
        "-c",
        "echo started; trap 'echo got-term; exit 3' TERM; while true; do sleep 0.1; done",
    ]);
    assert_eq!(out.trim(), "web");
    assert!(wait_for(Duration::from_secs(10), || w
        .ok(&["logs", "web"])
        .contains("started")));
    let ps = w.ok(&["ps"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with("web ") && l.ends_with("running")),
        "{ps}"
    );
    // A running container is not removed without -f.
    let o = w.out(&["rm", "web"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("running"),
        "{o:?}"
    );
    // A second container with the same name is refused.
    let o = w.out(&["run", "-d", "--name", "web", &w.image, "true"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already exists"),
        "{o:?}"
    );
    let st = w.ok(&["stop", "web"]);
    assert_eq!(st.trim(), "web exited (3)");
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
        &w.image,
        "sh",
        "-c",
        "trap '' TERM; echo up; while true; do sleep 0.1; done",
    ]);
    assert!(wait_for(Duration::from_secs(10), || w
        .ok(&["logs", "stubborn"])
        .contains("up")));
    let st = w.ok(&["stop", "-t", "1", "stubborn"]);
    assert_eq!(st.trim(), "stubborn exited (137)");
    w.ok(&["rm", "stubborn"]);
    w.ok(&[
        "run", "-d", "--rm", "--name", "gone", &w.image, "sleep", "1000",
    ]);
    w.ok(&["rm", "-f", "gone"]);
    w.assert_empty();
}

#[test]
fn detached_rm_container_removes_itself_when_it_exits() {
    let w = World::new();
    w.ok(&[
        "run", "-d", "--rm", "--name", "brief", &w.image, "sh", "-c", "exit 0",
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
    let none = w.ok(&["run", "--rm", &w.image, "sh", "-c", count]);
    assert_eq!(
        none.trim(),
        "1",
        "only lo in a fresh network namespace: {none}"
    );
    let host = w.ok(&["run", "--rm", "--net", "host", &w.image, "sh", "-c", count]);
    let on_host = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .filter(|l| l.contains(':'))
        .count();
    assert_eq!(host.trim(), on_host.to_string());
    w.assert_empty();
}

#[test]
fn tty_run_through_a_pty() {
    let w = World::new();
    // script(1) gives berth-image a terminal of its own.
    let line = format!(
        "{} --store {} run --runtime {} --rm -t {} sh -c 'tty; [ -t 0 ] && echo on-a-tty'",
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
        (&["run", "--net", "bridge", "IMG", "true"], "--net"),
        (&["run", "-d", "-t", "IMG", "true"], "-t with -d"),
        (&["run", "no-such-image", "true"], "no-such-image"),
        (&["logs", "nothing"], "no such container"),
        (&["stop", "nothing"], "no such container"),
        (&["rm", "nothing"], "no such container"),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "IMG" { w.image.as_str() } else { a })
            .collect();
        let o = w.out(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // A command that does not exist in the image: the runtime's error, and no
    // container left behind by --rm.
    let o = w.out(&["run", "--rm", &w.image, "/no/such/program"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/no/such/program"),
        "{o:?}"
    );
    w.assert_empty();
}
