//! Soak: many create/start/delete cycles one after another, and many
//! lifecycles at once, with what the test made counted before and after:
//! mountinfo lines naming its sandbox or containers, its cgroup directories
//! under /sys/fs/cgroup/*/berth (other mounts and cgroups on a busy machine
//! are not counted), the test process's
//! open fds and zombie children, state directories in the root, tagged
//! processes. Every count must come back to where it was.
//!
//! * `BERTH_SOAK_CYCLES` (default 100): sequential cycles.
//! * `BERTH_SOAK_CONCURRENT` (default 50): concurrent lifecycles (threads).
//!
//! The full run:
//!
//! ```text
//! BERTH_SOAK_CYCLES=1000 cargo test -p berth --test soak -- --nocapture
//! ```
//!
//! The before/after table goes to stderr (`--nocapture` shows it). The two
//! tests take a file-wide lock so the fd and zombie counts are exact.

mod common;

use std::sync::{Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts {
    mountinfo_lines: usize,
    our_cgroup_dirs: usize,
    open_fds: usize,
    zombie_children: usize,
    state_dirs: usize,
    tagged_processes: usize,
}

impl Counts {
    fn take(sb: &Sandbox) -> Counts {
        let ours = berth_cgroup_dirs()
            .iter()
            .filter(|d| d.to_string_lossy().contains(&sb.tag))
            .count();
        Counts {
            mountinfo_lines: test_mount_lines(&sb.dir, &[&sb.tag]).len(),
            our_cgroup_dirs: ours,
            open_fds: open_fds().len(),
            zombie_children: zombie_children().len(),
            // berth's own entries (`@seccomp-cache`, `@exe-layer`) are no containers.
            state_dirs: std::fs::read_dir(&sb.root)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| !e.file_name().to_string_lossy().starts_with('@'))
                        .count()
                })
                .unwrap_or(0),
            tagged_processes: sb.tagged_processes().len(),
        }
    }

    fn rows(&self) -> [(&'static str, usize); 6] {
        [
            ("mountinfo lines naming the test", self.mountinfo_lines),
            ("the test's cgroup dirs", self.our_cgroup_dirs),
            ("open fds of the test process", self.open_fds),
            ("zombie children of the test", self.zombie_children),
            ("state dirs in --root", self.state_dirs),
            ("processes with the test's tag", self.tagged_processes),
        ]
    }
}

fn table(title: &str, before: &Counts, after: &Counts, extra: &str) -> String {
    let mut s = format!("\n{title} ({extra})\n");
    s += &format!("  {:<40} {:>8} {:>8}\n", "", "before", "after");
    for ((name, b), (_, a)) in before.rows().iter().zip(after.rows().iter()) {
        let mark = if a == b { "" } else { "  <-- differs" };
        s += &format!("  {name:<40} {b:>8} {a:>8}{mark}\n");
    }
    s
}

/// Check that `list` is empty, take the after counts (polling up to 5 s for
/// stragglers to go), print the table and assert that nothing changed.
fn compare(sb: &Sandbox, title: &str, before: &Counts, extra: &str) {
    let l = sb.berth(&["list", "-q"]);
    l.expect_ok();
    assert!(
        l.stdout.trim().is_empty(),
        "list after the soak: {}",
        l.stdout
    );
    let mut after = Counts::take(sb);
    wait_until(Duration::from_secs(5), || {
        after = Counts::take(sb);
        after == *before
    });
    let t = table(title, before, &after, extra);
    eprintln!("{t}");
    if after != *before {
        let problems: Vec<String> = berth_cgroup_dirs()
            .into_iter()
            .filter(|d| d.to_string_lossy().contains(&sb.tag))
            .map(|d| d.display().to_string())
            .collect();
        panic!(
            "counts changed:{t}our cgroup dirs: {problems:?}\nfds: {:?}\nzombies: {:?}\ntagged: {:?}",
            open_fds(),
            zombie_children(),
            sb.tagged_processes()
        );
    }
}

/// One lifecycle, in one of three shapes: a running container removed with
/// `delete --force`; one killed with `kill KILL`, then deleted; one whose
/// program exits by itself, then deleted.
fn lifecycle(sb: &Sandbox, sleeper: &str, quick: &str, id: &str, shape: usize) {
    let bundle = if shape == 2 { quick } else { sleeper };
    sb.berth(&["create", "--bundle", bundle, id]).expect_ok();
    sb.berth(&["start", id]).expect_ok();
    match shape {
        0 => {
            assert_eq!(sb.status(id), "running", "{id}");
            sb.berth(&["delete", "--force", id]).expect_ok();
        }
        1 => {
            sb.berth(&["kill", id, "KILL"]).expect_ok();
            sb.wait_status(id, "stopped");
            sb.berth(&["delete", id]).expect_ok();
        }
        _ => {
            sb.wait_status(id, "stopped");
            sb.berth(&["delete", id]).expect_ok();
        }
    }
    assert!(
        !sb.root.join(id).exists(),
        "{id}: state dir left after delete"
    );
}

fn setup(prefix: &str) -> (Sandbox, String, String) {
    let mut sb = Sandbox::new(prefix);
    sb.bundle.args(&["sleep", "1000"]);
    sb.bundle.save();
    let mut quick = sb.new_bundle("quick");
    quick.args(&["true"]);
    quick.save();
    let sleeper = sb.bundle_arg();
    (sb, sleeper, quick.dir.display().to_string())
}

#[test]
fn sequential_create_start_delete_cycles() {
    let _s = serial();
    let cycles = env_usize("BERTH_SOAK_CYCLES", 100);
    let (sb, sleeper, quick) = setup("soak-seq");
    let before = Counts::take(&sb);
    let t0 = Instant::now();
    for i in 0..cycles {
        let id = sb.id(&format!("c{i}"));
        lifecycle(&sb, &sleeper, &quick, &id, i % 3);
    }
    let took = t0.elapsed();
    compare(
        &sb,
        "sequential soak",
        &before,
        &format!(
            "{cycles} cycles in {took:.1?}, {:.1?} per cycle",
            took / cycles.max(1) as u32
        ),
    );
}

#[test]
fn concurrent_lifecycles() {
    let _s = serial();
    let n = env_usize("BERTH_SOAK_CONCURRENT", 50);
    let (sb, sleeper, quick) = setup("soak-par");
    let ids: Vec<String> = (0..n).map(|i| sb.id(&format!("p{i}"))).collect();
    let before = Counts::take(&sb);
    let barrier = Barrier::new(n);
    let t0 = Instant::now();
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let (sb, sleeper, quick, barrier) = (&sb, &sleeper, &quick, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    lifecycle(sb, sleeper, quick, id, i % 3);
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(&ids)
            .filter_map(|(h, id)| {
                h.join().err().map(|e| {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    format!("{id}: {msg}")
                })
            })
            .collect()
    });
    let took = t0.elapsed();
    assert!(
        failures.is_empty(),
        "{} of {n} lifecycles failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    compare(
        &sb,
        "concurrent soak",
        &before,
        &format!("{n} lifecycles at once in {took:.1?}"),
    );
}
