//! Microbenchmark: create + apply + destroy a container cgroup N times (root only).
//!
//! `cargo run --release -p berth-cgroups --example bench -- [ITERATIONS]`
//!
//! Prints the mean cost of (a) creating the directories and removing them, and
//! (b) the same plus moving a live process in (and back out, so that the cgroup
//! can be removed, which is timed separately and subtracted).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_cgroups::{
    detect, new_manager, new_manager_with, CgroupManager, LinuxResources, ManagerOptions, Mode,
};

/// A manager for `id`: every hierarchy (runc's behaviour) or, with `hint`, only
/// those a default container needs.
fn manager(id: &str, mode: Mode, hint: Option<&LinuxResources>) -> Box<dyn CgroupManager> {
    match hint {
        None => new_manager(None, id, mode).expect("manager"),
        Some(r) => {
            let mut o = ManagerOptions::new(None, id, mode);
            o.resources = Some(r);
            new_manager_with(&o).expect("manager")
        }
    }
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let mode = detect().expect("detect cgroup mode");
    let mut child = Command::new("sleep")
        .arg("600")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    let pid = child.id() as i32;

    // The resources of runc's default spec: only a device list.
    let default_spec: LinuxResources =
        serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).expect("resources");
    for (label, hint) in [
        ("all hierarchies", None),
        ("default-config hierarchies", Some(&default_spec)),
    ] {
        run(label, n, mode, pid, hint);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn run(label: &str, n: u32, mode: Mode, pid: i32, hint: Option<&LinuxResources>) {
    let mut empty = Duration::ZERO;
    let mut joined = Duration::ZERO;
    let mut leave = Duration::ZERO;
    for i in 0..n {
        let id = format!("bench-{}-{i}", std::process::id());
        let t = Instant::now();
        let m = manager(&id, mode, hint);
        m.apply(0).expect("apply");
        m.destroy().expect("destroy");
        empty += t.elapsed();

        let t = Instant::now();
        let m = manager(&id, mode, hint);
        m.apply(pid).expect("apply pid");
        let t_leave = Instant::now();
        for dir in m.paths().values() {
            // Move the process back to the hierarchy's root so the cgroup empties.
            let root = dir.ancestors().nth(2).expect("root");
            if !dir.exists() {
                continue;
            }
            std::fs::write(root.join("cgroup.procs"), pid.to_string()).expect("leave");
        }
        let left = t_leave.elapsed();
        m.destroy().expect("destroy");
        joined += t.elapsed() - left;
        leave += left;
    }
    // The kernel's floor: bare mkdir + rmdir of the same directories.
    let id = format!("bench-{}-raw", std::process::id());
    let dirs: Vec<_> = {
        let m = manager(&id, mode, hint);
        m.apply(0).expect("apply");
        let d: Vec<_> = m.paths().into_values().filter(|p| p.exists()).collect();
        m.destroy().expect("destroy");
        d
    };
    let t = Instant::now();
    for _ in 0..n {
        for d in &dirs {
            std::fs::create_dir(d).expect("mkdir");
        }
        for d in &dirs {
            std::fs::remove_dir(d).expect("rmdir");
        }
    }
    let raw = t.elapsed();
    let us = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
    println!("mode {mode:?}, {label}, {n} iterations (times include building the manager)");
    println!(
        "create + destroy (no process):           {:8.1} us",
        us(empty)
    );
    println!(
        "create + join pid + destroy (manager):   {:8.1} us",
        us(joined)
    );
    println!(
        "moving the pid back out (not included):  {:8.1} us",
        us(leave)
    );
    println!(
        "kernel floor, bare mkdir+rmdir of the same {} dirs: {:8.1} us",
        dirs.len(),
        us(raw)
    );
}
