//! `berth-image checkpoint` / `restore` of a `run -d` container on its
//! bridge network, with the real runtime and CRIU (BERTH_CRIU, from
//! scripts/criu.sh, is put on PATH: berth runs `criu`). Needs root.

mod common;

use common::world::{wait_for, World};
use std::path::Path;
use std::time::Duration;

/// CRIU's directory ahead of PATH, for the berth the tool runs.
fn criu_on_path() {
    let criu = std::env::var("BERTH_CRIU")
        .expect("BERTH_CRIU must name the CRIU binary (bash scripts/criu.sh prints it)");
    let dir = Path::new(&criu).parent().unwrap().display().to_string();
    let path = std::env::var("PATH").unwrap_or_default();
    if !path.split(':').any(|d| d == dir) {
        std::env::set_var("PATH", format!("{dir}:{path}"));
    }
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
    let ok = wait_for(Duration::from_secs(20), || {
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

fn fails_with(w: &World, args: &[&str], needle: &str) {
    let o = w.out(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "berth-image {args:?} should fail");
    assert!(
        err.contains(needle),
        "berth-image {args:?}: {err:?} lacks {needle:?}"
    );
}

#[test]
fn checkpointed_container_is_restored_and_counts_on() {
    criu_on_path();
    let w = World::new();
    let host = w.scratch.join("host");
    std::fs::create_dir(&host).unwrap();
    let count = host.join("count");
    let volume = format!("{}:/host", host.display());
    let counter =
        "i=0; while :; do i=$((i+1)); echo $i >> /host/count; echo tick $i; sleep 0.05; done";
    w.ok(&[
        "run", "-d", "--name", "ctr", "-v", &volume, "IMG", "sh", "-c", counter,
    ]);
    wait_numbers(&count, 5);

    fails_with(&w, &["restore", "ctr"], "is running");
    assert_eq!(w.ok(&["checkpoint", "ctr"]).trim(), "ctr");
    assert_eq!(w.inspect("ctr")["State"]["Status"], "exited");
    let at_dump = numbers(&count);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        numbers(&count),
        at_dump,
        "the counter ran on after the checkpoint"
    );
    w.assert_no_network_left();

    assert_eq!(w.ok(&["restore", "ctr"]).trim(), "ctr");
    assert_eq!(w.inspect("ctr")["State"]["Status"], "running");
    let after = wait_numbers(&count, at_dump.len() + 5);
    for (i, n) in after.iter().enumerate() {
        assert_eq!(
            *n,
            i as u64 + 1,
            "sequence broken after the restore: {after:?}"
        );
    }
    // Its output goes on into its log through the new pipes.
    let last = after[after.len() - 1];
    let ok = wait_for(Duration::from_secs(10), || {
        w.ok(&["logs", "ctr"]).contains(&format!("tick {last}\n"))
    });
    assert!(ok, "the restored container's output is not in its log");
    // The checkpoint was consumed.
    fails_with(&w, &["rm", "ctr"], "running");
    w.ok(&["stop", "-t", "0", "ctr"]);
    fails_with(&w, &["restore", "ctr"], "has no checkpoint");
    fails_with(&w, &["checkpoint", "ctr"], "is not running");
    fails_with(&w, &["checkpoint", "no-such"], "no such container");
    w.ok(&["rm", "ctr"]);
    w.assert_empty();
}
