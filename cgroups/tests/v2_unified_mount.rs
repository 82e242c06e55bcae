//! The v2 backend driven for real against the cgroup2 mount of a hybrid host
//! (/sys/fs/cgroup/unified): directories, cgroup.procs, the v2 freezer,
//! cgroup.kill and the eBPF device filter are core cgroup2 features that work
//! without any controller enabled there.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_cgroups::{bpf, detect, new_manager_with, FreezerState, ManagerOptions, Mode};
use common::*;

fn unified_mount() -> Option<PathBuf> {
    if !is_root() || detect().ok()? != Mode::Hybrid {
        berth_testsupport::skip("hybrid-host", "needs root on a hybrid host");
        return None;
    }
    let m = PathBuf::from("/sys/fs/cgroup/unified");
    m.join("cgroup.procs").exists().then_some(m)
}

fn manager(root: &Path, path: &str) -> CgGuard {
    let mut o = ManagerOptions::new(Some(path), "c", Mode::Unified);
    o.root = Some(root.to_path_buf());
    CgGuard::new(new_manager_with(&o).unwrap())
}

#[test]
fn lifecycle_freeze_kill_on_a_real_cgroup2_mount() {
    let Some(root) = unified_mount() else { return };
    // Apply enables the mount's controllers (hugetlb here) in its root.
    let _restore = RestoreSubtreeControl::new(&root, "hugetlb");
    let cg = manager(&root, &format!("/{}/c", unique("v2life")));
    let mut child = Sleeper::spawn();
    cg.apply(child.pid()).unwrap();
    let dir = cg.paths()[""].clone();
    assert_eq!(read(&dir, "cgroup.procs").trim(), child.pid().to_string());
    assert_eq!(cg.pids().unwrap(), vec![child.pid()]);
    cg.freeze().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
    assert!(read(&dir, "cgroup.events").contains("frozen 1"));
    cg.thaw().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);
    assert!(cg.stats().unwrap().cpu.usage.total > 0 || dir.join("cpu.stat").exists());
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(child.0.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(wait_until(Duration::from_secs(5), || cg
        .pids()
        .unwrap()
        .is_empty()));
    let top = dir.parent().unwrap().to_path_buf();
    cg.destroy().unwrap();
    assert!(!top.exists());
}

/// Runs a shell inside the cgroup that reads /dev/zero and writes /dev/null.
fn probe_devices(dir: &Path) -> String {
    let script = format!(
        "echo $$ > {}/cgroup.procs; head -c1 /dev/zero >/dev/null 2>&1; echo zero=$?; \
         (echo x > /dev/null) 2>/dev/null; echo null=$?",
        dir.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ebpf_device_filter_is_enforced_and_replaced_on_update() {
    let Some(root) = unified_mount() else { return };
    // Apply enables the mount's controllers (hugetlb here) in its root.
    let _restore = RestoreSubtreeControl::new(&root, "hugetlb");
    let cg = manager(&root, &format!("/{}", unique("v2dev")));
    cg.apply(0).unwrap();
    let dir = cg.paths()[""].clone();
    cg.set(&resources(
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
    ))
    .unwrap();
    assert_eq!(bpf::attached_count(&dir).unwrap(), 1);
    let out = probe_devices(&dir);
    assert!(out.contains("zero=1") && out.contains("null=0"), "{out}");

    // Update: allow /dev/zero for reading too; the old program is replaced.
    cg.set(&resources(
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
            {"allow":true,"type":"c","major":1,"minor":5,"access":"r"}]}"#,
    ))
    .unwrap();
    assert_eq!(bpf::attached_count(&dir).unwrap(), 1);
    let out = probe_devices(&dir);
    assert!(out.contains("zero=0") && out.contains("null=0"), "{out}");
}
