//! Checkpoint and restore through containerd: `ctr containers checkpoint
//! --task` (the shim's Checkpoint call, with containerd's checkpoint options)
//! and `ctr containers restore --live` (a Create carrying the checkpoint,
//! restored at Start). Root only; CRIU from BERTH_CRIU (scripts/criu.sh).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Containerd, BERTH_RUNTIME, IMAGE};

fn numbers(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_numbers(path: &Path, at_least: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = numbers(path);
        if v.len() >= at_least {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} numbers, wanted {at_least}",
            path.display(),
            v.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn checkpointed_task_is_restored_into_a_new_container() {
    assert!(
        std::env::var("BERTH_CRIU").is_ok(),
        "BERTH_CRIU must name the CRIU binary (bash scripts/criu.sh prints it)"
    );
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    let host = c.dir.join("host");
    std::fs::create_dir(&host).unwrap();
    let count = host.join("count");
    let mount = format!(
        "type=bind,src={},dst=/host,options=rbind:rw",
        host.display()
    );
    let counter = "i=0; while :; do i=$((i+1)); echo $i >> /host/count; sleep 0.05; done";
    c.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        BERTH_RUNTIME,
        "--mount",
        &mount,
        IMAGE,
        "c1",
        "sh",
        "-c",
        counter,
    ]);
    wait_numbers(&count, 5);
    // containerd pauses the task, the shim runs `berth checkpoint
    // --leave-running`, containerd resumes it and stores the images.
    c.ctr_ok(&[
        "containers",
        "checkpoint",
        "--task",
        "c1",
        "berth-checkpoint:1",
    ]);
    c.remove("c1");
    let before = numbers(&count);
    assert!(!before.is_empty());

    c.ctr_ok(&[
        "containers",
        "restore",
        "--live",
        "c2",
        "berth-checkpoint:1",
    ]);
    let after = wait_numbers(&count, before.len() + 5);
    let resumed = &after[before.len()..];
    eprintln!(
        "c1 wrote {} numbers; restored counter resumed at {}",
        before.len(),
        resumed[0]
    );
    // The restored shell goes on from its value at the checkpoint (at most
    // the last one c1 wrote), not from 1.
    assert!(
        resumed[0] > 1 && resumed[0] <= before[before.len() - 1] + 1,
        "restored counter starts at {} (c1 reached {})",
        resumed[0],
        before[before.len() - 1]
    );
    for w in resumed.windows(2) {
        assert_eq!(w[1], w[0] + 1, "restored counter skips: {resumed:?}");
    }
    let (pid, status) = c.task("c2").expect("task c2");
    assert_eq!(status, "RUNNING");
    assert!(pid > 0);
    c.remove("c2");
    let _ = c.ctr(&["images", "rm", "berth-checkpoint:1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = c.leftovers();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = c.leftovers();
    }
    assert!(left.is_empty(), "leftovers: {left:?}");
}
