//! `berth checkpoint` / `berth restore` with CRIU, on real containers.
//!
//! CRIU comes from `scripts/criu.sh` (BERTH_CRIU names the binary; otherwise
//! `criu` on PATH). Without it these tests fail: CI must have it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

fn criu() -> String {
    if let Ok(p) = std::env::var("BERTH_CRIU") {
        assert!(
            Path::new(&p).is_file(),
            "BERTH_CRIU={p} is not a file (bash scripts/criu.sh prints the path)"
        );
        return p;
    }
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("criu"))
        .find(|p| p.is_file());
    match found {
        Some(p) => p.display().to_string(),
        None => panic!("no CRIU: set BERTH_CRIU to the binary scripts/criu.sh builds"),
    }
}

/// `berth --criu CRIU ARGS`.
fn cr(sb: &Sandbox, args: &[&str]) -> Out {
    let criu = criu();
    let mut all = vec!["--criu", criu.as_str()];
    all.extend_from_slice(args);
    sb.berth(&all)
}

/// `berth run -d` with /dev/null as stdin, stdout and stderr (a file of the
/// test as stdio would be a host file CRIU cannot dump).
fn run_detached(sb: &Sandbox, id: &str) {
    sb.bundle.save();
    let mut c = sb.cmd(&["run", "-d", "--bundle", &sb.bundle_arg(), id]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().expect("spawn berth run");
    let code = wait_child(&mut child, COMMAND_TIMEOUT, "berth run -d");
    assert_eq!(code, 0, "berth run -d {id} failed");
}

/// The numbers in a file written one per line.
/// Whether a /proc/PID/cgroup line names a hierarchy mounted under
/// /sys/fs/cgroup here, one berth places containers in. Another program may
/// have a v1 hierarchy (net_cls,net_prio) mounted in a private mount
/// namespace for a moment; the container sits in its root.
fn host_mounts_hierarchy(line: &str) -> bool {
    let controllers = line.split(':').nth(1).unwrap_or("");
    if controllers.is_empty() {
        return true;
    }
    controllers.split(',').all(|c| {
        Path::new("/sys/fs/cgroup")
            .join(c.trim_start_matches("name="))
            .exists()
    })
}

fn numbers(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[track_caller]
fn wait_numbers(path: &Path, at_least: usize) -> Vec<u64> {
    let mut v = Vec::new();
    let ok = wait_until(POLL_TIMEOUT, || {
        v = numbers(path);
        v.len() >= at_least
    });
    assert!(
        ok,
        "{} has {} numbers, wanted {at_least}",
        path.display(),
        v.len()
    );
    v
}

/// 1, 2, 3, ... without a gap or a restart.
#[track_caller]
fn assert_consecutive(v: &[u64]) {
    for (i, n) in v.iter().enumerate() {
        assert_eq!(*n, i as u64 + 1, "sequence broken at line {}: {v:?}", i + 1);
    }
}

/// A counter kept in the shell's memory, appended to /host/count.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i >> /host/count; sleep 0.05; done";

/// Checkpoint a running counter, then restore it as `restore_id`: the
/// numbers go on from where they stopped (the shell's memory came back).
fn counter_round_trip(prefix: &str, same_id: bool) {
    let mut sb = Sandbox::new(prefix);
    sb.bundle.sh(COUNTER);
    let id = sb.id("c");
    let new_id = if same_id { id.clone() } else { sb.id("r") };
    let base = sb.baseline(&id);
    let base_new = sb.baseline(&new_id);
    let images = sb.dir.join("images");
    let count = sb.host.join("count");
    {
        let _c = sb.guard(&id);
        let _r = sb.guard(&new_id);
        run_detached(&sb, &id);
        wait_numbers(&count, 5);
        cr(
            &sb,
            &["checkpoint", "--image-path", images.to_str().unwrap(), &id],
        )
        .expect_ok();
        // Without --leave-running the container is gone, as with runc.
        assert!(
            sb.state(&id).is_none(),
            "checkpointed container still exists"
        );
        assert!(
            cgroup_dirs(&id).is_empty(),
            "cgroup left: {:?}",
            cgroup_dirs(&id)
        );
        let at_dump = numbers(&count);
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            numbers(&count),
            at_dump,
            "the counter ran on after the dump"
        );

        cr(
            &sb,
            &[
                "restore",
                "-d",
                "--bundle",
                &sb.bundle_arg(),
                "--image-path",
                images.to_str().unwrap(),
                &new_id,
            ],
        )
        .expect_ok();
        assert_eq!(sb.status(&new_id), "running");
        let after = wait_numbers(&count, at_dump.len() + 5);
        assert_consecutive(&after);
        let pid = sb.state(&new_id).unwrap()["pid"].as_i64().unwrap();
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(
            cg.lines()
                .filter(|l| host_mounts_hierarchy(l))
                .all(|l| l.ends_with(&format!("/berth/{new_id}"))),
            "the restored init is not in the cgroups of {new_id}:\n{cg}"
        );
        if !same_id {
            assert!(sb.state(&id).is_none(), "the old id came back");
        }
        sb.berth(&["delete", "--force", &new_id]).expect_ok();
    }
    base.assert_clean(&sb);
    base_new.assert_clean(&sb);
}

#[test]
fn counter_continues_after_restore() {
    counter_round_trip("cr-counter", true);
}

#[test]
fn restore_under_a_new_id() {
    counter_round_trip("cr-newid", false);
}

/// A v1 `net_cls,net_prio` hierarchy that another program mounts and
/// unmounts over and over in private mount namespaces while it lives: the
/// busy host where such a hierarchy appears in every task's /proc/PID/cgroup
/// and vanishes again a moment later.
struct ForeignHierarchy {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: PathBuf,
}

impl ForeignHierarchy {
    fn start() -> ForeignHierarchy {
        let dir = std::env::temp_dir().join(unique("foreign-cg"));
        std::fs::create_dir_all(&dir).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, d) = (stop.clone(), dir.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0u32;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let script = format!(
                    "mount -t cgroup -o net_cls,net_prio cgroup '{}' 2>/dev/null; sleep 0.0{}",
                    d.display(),
                    1 + i % 9
                );
                let _ = Command::new("unshare")
                    .args(["-m", "--propagation", "private", "sh", "-c", &script])
                    .status();
            }
        });
        ForeignHierarchy {
            stop,
            thread: Some(thread),
            dir,
        }
    }
}

impl Drop for ForeignHierarchy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// CRIU dumps only the hierarchies berth placed the container in: a v1
/// hierarchy that comes and goes elsewhere on the host (CRIU would try to
/// mount it and fail with EBUSY or "controller not found") does not break
/// checkpoint or restore.
#[test]
fn a_foreign_hierarchy_coming_and_going_does_not_break_checkpoint() {
    let _foreign = ForeignHierarchy::start();
    for round in 0..2 {
        counter_round_trip(&format!("cr-foreign{round}"), round == 0);
    }
}

/// A network namespace made for one test (`ip netns`), loopback up,
/// deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new() -> NetNs {
        let name = unique("bcr");
        let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
        assert!(
            ok(Command::new("ip").args(["netns", "add", &name])),
            "ip netns add {name}"
        );
        let ns = NetNs(name);
        assert!(ok(
            Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"])
        ));
        ns
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn open_tcp_connection_survives_with_tcp_established() {
    let netns = NetNs::new();
    let mut sb = Sandbox::new("cr-tcp");
    // A server and a client in the container, one TCP connection between
    // them over loopback; the client sends a counter through it. (The
    // server's stdin must stay open: busybox nc stops at its EOF.)
    sb.bundle.sh(
        "sleep 100000 | nc -l -p 7777 > /host/received & \
         until cat /proc/net/tcp /proc/net/tcp6 | grep -q ':1E61 [0-9A-F]*:0000 0A'; do sleep 0.05; done; \
         i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done | nc 127.0.0.1 7777",
    );
    let ns: Vec<serde_json::Value> = sb.bundle.config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "network")
        .cloned()
        .chain([json!({"type": "network", "path": netns.path()})])
        .collect();
    sb.bundle.set("/linux/namespaces", json!(ns));
    let id = sb.id("c");
    let base = sb.baseline(&id);
    let images = sb.dir.join("images");
    let received = sb.host.join("received");
    {
        let _c = sb.guard(&id);
        run_detached(&sb, &id);
        wait_numbers(&received, 5);

        // An established connection is refused without the flag, and the
        // container goes on as it was.
        cr(
            &sb,
            &["checkpoint", "--image-path", images.to_str().unwrap(), &id],
        )
        .expect_fail(&["criu dump failed", "tcp-established"]);
        assert_eq!(sb.status(&id), "running");
        let n = numbers(&received).len();
        wait_numbers(&received, n + 3);

        cr(
            &sb,
            &[
                "checkpoint",
                "--tcp-established",
                "--image-path",
                images.to_str().unwrap(),
                &id,
            ],
        )
        .expect_ok();
        let at_dump = numbers(&received);
        cr(
            &sb,
            &[
                "restore",
                "-d",
                "--tcp-established",
                "--bundle",
                &sb.bundle_arg(),
                "--image-path",
                images.to_str().unwrap(),
                &id,
            ],
        )
        .expect_ok();
        // nc -l accepted one connection: numbers arriving now came over the
        // connection that was open at the dump.
        let after = wait_numbers(&received, at_dump.len() + 5);
        assert_consecutive(&after);
        sb.berth(&["delete", "--force", &id]).expect_ok();
    }
    base.assert_clean(&sb);
}

#[test]
fn bad_input_fails_clearly_and_leaves_nothing() {
    let mut sb = Sandbox::new("cr-bad");
    sb.bundle.sh(COUNTER);
    let id = sb.id("c");
    let base = sb.baseline(&id);
    let images = sb.dir.join("images");
    let img = images.to_str().unwrap().to_string();
    let bundle = sb.bundle_arg();
    sb.bundle.save();

    // Checkpoint of a container that does not exist: no image directory made.
    cr(&sb, &["checkpoint", "--image-path", &img, &id]).expect_fail(&[&id, "does not exist"]);
    assert!(!images.exists(), "an image directory was made for nothing");

    // Restore from a missing image directory, from one that is no
    // checkpoint, with a bad cgroups mode.
    let missing = sb.dir.join("no-such-images");
    cr(
        &sb,
        &[
            "restore",
            "-d",
            "-b",
            &bundle,
            "--image-path",
            missing.to_str().unwrap(),
            &id,
        ],
    )
    .expect_fail(&["no-such-images"]);
    std::fs::create_dir(sb.dir.join("empty")).unwrap();
    let empty = sb.dir.join("empty");
    cr(
        &sb,
        &[
            "restore",
            "-d",
            "-b",
            &bundle,
            "--image-path",
            empty.to_str().unwrap(),
            &id,
        ],
    )
    .expect_fail(&["not a CRIU checkpoint"]);
    cr(
        &sb,
        &[
            "restore",
            "-d",
            "-b",
            &bundle,
            "--image-path",
            &img,
            "--manage-cgroups-mode",
            "loose",
            &id,
        ],
    )
    .expect_fail(&["--manage-cgroups-mode", "loose"]);
    base.assert_clean(&sb);

    {
        let _c = sb.guard(&id);
        // A created container cannot be checkpointed.
        let _created = sb.created(&id);
        cr(&sb, &["checkpoint", "--image-path", &img, &id])
            .expect_fail(&["cannot be checkpointed in created state"]);
        assert_eq!(sb.status(&id), "created");
        sb.berth(&["delete", "--force", &id]).expect_ok();

        run_detached(&sb, &id);
        wait_numbers(&sb.host.join("count"), 3);
        cr(
            &sb,
            &["checkpoint", "--leave-running", "--image-path", &img, &id],
        )
        .expect_ok();
        assert_eq!(sb.status(&id), "running", "--leave-running stopped it");
        // The id is taken: the restore fails and the running one is untouched.
        let pid = sb.state(&id).unwrap()["pid"].clone();
        cr(
            &sb,
            &["restore", "-d", "-b", &bundle, "--image-path", &img, &id],
        )
        .expect_fail(&["already exists"]);
        assert_eq!(sb.state(&id).unwrap()["pid"], pid);
        sb.berth(&["delete", "--force", &id]).expect_ok();
    }
    base.assert_clean(&sb);

    // CRIU itself fails (an image file is missing): its log is quoted, and
    // the state, cgroup, mounts and processes made so far are gone.
    std::fs::remove_file(images.join("pstree.img")).unwrap();
    cr(
        &sb,
        &["restore", "-d", "-b", &bundle, "--image-path", &img, &id],
    )
    .expect_fail(&["criu restore failed", "restore.log"]);
    base.assert_clean(&sb);
}

#[test]
fn host_dev_null_stdio_becomes_the_containers() {
    // A caller's /dev/null on fd 0 is a file of the host's /dev mount: the
    // init replaces it with its own /dev/null (runc's reOpenDevNull), so
    // that nothing it holds lies outside its mounts.
    let mut sb = Sandbox::new("cr-null");
    sb.bundle
        .sh("cat /proc/self/fdinfo/0 > /host/fdinfo; cat /proc/self/mountinfo > /host/mounts");
    let id = sb.id("c");
    let base = sb.baseline(&id);
    {
        let _c = sb.guard(&id);
        run_detached(&sb, &id);
        let fdinfo = sb.wait_file(&sb.host.join("fdinfo"), "mnt_id");
        let mounts = sb.wait_file(&sb.host.join("mounts"), " / ");
        let mnt_id = field(&fdinfo, "mnt_id").to_string();
        let dev = mounts
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/dev"))
            .expect("a /dev mount");
        assert_eq!(
            dev.split(' ').next(),
            Some(mnt_id.as_str()),
            "fd 0 is not on the container's /dev (fdinfo {fdinfo:?})"
        );
        sb.berth(&["delete", "--force", &id]).expect_ok();
    }
    base.assert_clean(&sb);
}
