//! Real cgroup v2 checks, for a pure-v2 kernel (e.g. inside a qemu VM):
//! `v2check [--root /sys/fs/cgroup]` (root only). Creates a cgroup, moves a
//! `sleep` in, sets every v2 resource whose controller the host offers and reads
//! it back, freezes/thaws, kills and destroys. Prints one line per check and
//! exits non-zero if any failed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_cgroups::{
    new_manager_with, CgroupManager, FreezerState, LinuxResources, ManagerOptions, Mode,
};

struct Checks {
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            println!("PASS {name}");
        } else {
            self.failed += 1;
            println!("FAIL {name}: {detail}");
        }
    }

    /// Set `json`, then compare each (file, expected last line) pair.
    fn set_and_read(
        &mut self,
        m: &dyn CgroupManager,
        dir: &Path,
        name: &str,
        json: &str,
        expect: &[(&str, &str)],
    ) {
        let r: LinuxResources = serde_json::from_str(json).expect("resources json");
        if let Err(e) = m.set(&r) {
            return self.check(name, false, e);
        }
        for (file, want) in expect {
            let got = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| format!("<{e}>"));
            self.check(
                &format!("{name}: {file}"),
                got.trim() == *want,
                format!("got {:?}, want {want:?}", got.trim()),
            );
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let root = match (args.next().as_deref(), args.next()) {
        (Some("--root"), Some(r)) => PathBuf::from(r),
        _ => PathBuf::from("/sys/fs/cgroup"),
    };
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    let path = format!("/berth-v2check-{}/c", std::process::id());
    let mut opts = ManagerOptions::new(Some(&path), "c", Mode::Unified);
    opts.root = Some(root.clone());
    let m = new_manager_with(&opts).expect("manager");
    let mut child = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep");
    let mut c = Checks { failed: 0 };

    let applied = m.apply(child.id() as i32);
    c.check("apply", applied.is_ok(), format!("{applied:?}"));
    let dir = m.paths()[""].clone();
    c.check(
        "pids",
        m.pids()
            .map(|p| p == vec![child.id() as i32])
            .unwrap_or(false),
        format!("{:?}", m.pids()),
    );
    if has("cpu") {
        c.set_and_read(
            &*m,
            &dir,
            "cpu",
            r#"{"cpu":{"shares":1024,"quota":50000,"period":100000,"burst":1000}}"#,
            &[
                ("cpu.weight", "100"),
                ("cpu.max", "50000 100000"),
                ("cpu.max.burst", "1000"),
            ],
        );
        c.set_and_read(
            &*m,
            &dir,
            "cpu.idle",
            r#"{"cpu":{"idle":1}}"#,
            &[("cpu.idle", "1")],
        );
    }
    if has("cpuset") {
        c.set_and_read(
            &*m,
            &dir,
            "cpuset",
            r#"{"cpu":{"cpus":"0","mems":"0"}}"#,
            &[("cpuset.cpus", "0"), ("cpuset.mems", "0")],
        );
    }
    if has("memory") {
        let swap = dir.join("memory.swap.max").exists();
        let json = if swap {
            r#"{"memory":{"limit":268435456,"swap":536870912,"reservation":134217728}}"#
        } else {
            r#"{"memory":{"limit":268435456,"reservation":134217728}}"#
        };
        let mut want = vec![("memory.max", "268435456"), ("memory.low", "134217728")];
        if swap {
            want.push(("memory.swap.max", "268435456"));
        }
        c.set_and_read(&*m, &dir, "memory", json, &want);
    }
    if has("pids") {
        c.set_and_read(
            &*m,
            &dir,
            "pids",
            r#"{"pids":{"limit":100}}"#,
            &[("pids.max", "100")],
        );
    }
    if has("io") && dir.join("io.weight").exists() {
        c.set_and_read(
            &*m,
            &dir,
            "io.weight",
            r#"{"blockIO":{"weight":500}}"#,
            &[("io.weight", "default 4950")],
        );
    }
    if has("hugetlb") {
        c.set_and_read(
            &*m,
            &dir,
            "hugetlb",
            r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
            &[("hugetlb.2MB.max", "4194304")],
        );
    }
    let devices: LinuxResources = serde_json::from_str(
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
    )
    .expect("json");
    let d = m.set(&devices);
    c.check(
        "devices (eBPF)",
        d.is_ok() && berth_cgroups::bpf::attached_count(&dir).unwrap_or(0) == 1,
        format!("{d:?}"),
    );

    let f = m.freeze().and_then(|_| m.freezer_state());
    c.check(
        "freeze",
        matches!(f, Ok(FreezerState::Frozen)),
        format!("{f:?}"),
    );
    let t = m.thaw().and_then(|_| m.freezer_state());
    c.check(
        "thaw",
        matches!(t, Ok(FreezerState::Thawed)),
        format!("{t:?}"),
    );
    let s = m.stats();
    c.check(
        "stats",
        s.as_ref()
            .map(|s| s.cpu.usage.total > 0 || s.pids.current == 1)
            .unwrap_or(false),
        format!("{s:?}"),
    );
    let k = m.kill_all(libc::SIGKILL);
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.pids().map(|p| !p.is_empty()).unwrap_or(false) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    c.check("kill_all", k.is_ok(), format!("{k:?}"));
    let top = dir.parent().expect("parent").to_path_buf();
    let dstr = m.destroy();
    c.check(
        "destroy",
        dstr.is_ok() && !top.exists(),
        format!("{dstr:?}"),
    );
    println!("{} failed", c.failed);
    std::process::exit(i32::from(c.failed > 0));
}
