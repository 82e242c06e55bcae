//! The systemd driver against a recording stand-in for systemd and a fake
//! cgroup v2 tree: what it asks systemd for (unit name, start properties,
//! later property changes, stop) and what it still writes to the scope's
//! files. The driver against a real systemd runs in the systemd guest
//! (tests/systemdvm).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use berth_cgroups::systemd::properties::{Property, Value};
use berth_cgroups::systemd::{SystemdManager, UnitControl};
use berth_cgroups::{CgroupManager, LinuxResources, ManagerOptions, Mode};

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Start(String, Vec<Property>),
    Set(String, Vec<Property>),
    Stop(String),
}

#[derive(Clone, Default)]
struct Recorder(Rc<RefCell<Vec<Call>>>);

impl UnitControl for Recorder {
    fn start_transient_unit(&self, name: &str, props: &[Property]) -> berth_cgroups::Result<()> {
        self.0
            .borrow_mut()
            .push(Call::Start(name.into(), props.to_vec()));
        Ok(())
    }
    fn set_unit_properties(&self, name: &str, props: &[Property]) -> berth_cgroups::Result<()> {
        self.0
            .borrow_mut()
            .push(Call::Set(name.into(), props.to_vec()));
        Ok(())
    }
    fn stop_unit(&self, name: &str) -> berth_cgroups::Result<()> {
        self.0.borrow_mut().push(Call::Stop(name.into()));
        Ok(())
    }
    fn version(&self) -> u32 {
        252
    }
}

/// A temporary directory standing in for /sys/fs/cgroup, removed on drop.
struct FakeRoot(PathBuf);

impl FakeRoot {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("berth-cgsd-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        FakeRoot(dir)
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn manager(
    root: &FakeRoot,
    path: Option<&str>,
    resources: Option<&LinuxResources>,
    rec: &Recorder,
) -> SystemdManager {
    let mut o = ManagerOptions::new(path, "c1", Mode::Unified);
    o.root = Some(root.0.clone());
    o.systemd = true;
    o.resources = resources;
    let rec = rec.clone();
    SystemdManager::with_unit_control(&o, move || Box::new(rec.clone())).unwrap()
}

fn find<'a>(p: &'a [Property], name: &str) -> Option<&'a Value> {
    p.iter().find(|x| x.name == name).map(|x| &x.value)
}

fn last(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

const RESOURCES: &str = r#"{"memory":{"limit":67108864},"cpu":{"shares":512,"quota":50000,"period":100000},
    "pids":{"limit":50},
    "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#;

#[test]
fn apply_starts_a_delegated_scope_with_the_resources_and_set_sends_only_whats_new() {
    let root = FakeRoot::new("apply");
    let r: LinuxResources = serde_json::from_str(RESOURCES).unwrap();
    let rec = Recorder::default();
    let m = manager(
        &root,
        Some("kubepods-besteffort-pod1.slice:cri-containerd:abc"),
        Some(&r),
        &rec,
    );
    assert!(m.apply_needs_pid());
    let scope_dir = root
        .0
        .join("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope");
    assert_eq!(m.paths()[""], scope_dir);
    // systemd makes the directory; the fake stands in for it.
    std::fs::create_dir_all(&scope_dir).unwrap();
    m.apply(4242).unwrap();
    let calls = rec.0.borrow().clone();
    let Call::Start(name, props) = &calls[0] else {
        panic!("{calls:?}")
    };
    assert_eq!(name, "cri-containerd-abc.scope");
    assert_eq!(
        find(props, "Slice"),
        Some(&Value::Str("kubepods-besteffort-pod1.slice".into()))
    );
    assert_eq!(find(props, "Delegate"), Some(&Value::Bool(true)));
    assert_eq!(find(props, "PIDs"), Some(&Value::U32s(vec![4242])));
    assert_eq!(find(props, "MemoryMax"), Some(&Value::U64(67108864)));
    assert_eq!(find(props, "CPUWeight"), Some(&Value::U64(59)));
    assert_eq!(find(props, "CPUQuotaPerSecUSec"), Some(&Value::U64(500000)));
    assert_eq!(find(props, "TasksMax"), Some(&Value::U64(50)));
    assert_eq!(find(props, "DevicePolicy"), None, "devices wait for set");
    // Controllers are enabled down to the scope.
    assert!(last(&root.0, "cgroup.subtree_control").contains("+memory"));

    // The set after the init made its devices: only the device properties go to
    // systemd (the rest it has), and every file is written as by cgroupfs.
    m.set(&r).unwrap();
    let calls = rec.0.borrow().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let Call::Set(name, props) = &calls[1] else {
        panic!("{calls:?}")
    };
    assert_eq!(name, "cri-containerd-abc.scope");
    let names: Vec<&str> = props.iter().map(|p| p.name).collect();
    assert_eq!(names, ["DevicePolicy", "DeviceAllow", "DeviceAllow"]);
    assert_eq!(last(&scope_dir, "memory.max"), "67108864");
    assert_eq!(last(&scope_dir, "cpu.max"), "50000 100000");
    assert_eq!(last(&scope_dir, "cpu.weight"), "59");
    assert_eq!(last(&scope_dir, "pids.max"), "50");

    // update: new values go to systemd and the files, device rules do not.
    let u: LinuxResources = serde_json::from_str(
        r#"{"memory":{"limit":134217728},"devices":[{"allow":true,"access":"rwm"}]}"#,
    )
    .unwrap();
    m.update(&u).unwrap();
    let calls = rec.0.borrow().clone();
    assert_eq!(
        calls[2],
        Call::Set(
            "cri-containerd-abc.scope".into(),
            vec![Property::new("MemoryMax", Value::U64(134217728))]
        )
    );
    assert_eq!(last(&scope_dir, "memory.max"), "134217728");

    m.destroy().unwrap();
    assert_eq!(
        rec.0.borrow().last(),
        Some(&Call::Stop("cri-containerd-abc.scope".into()))
    );
    assert!(!scope_dir.exists());
    assert!(
        scope_dir.parent().unwrap().exists(),
        "the slices are systemd's"
    );
}

#[test]
fn defaults_and_refusals() {
    let root = FakeRoot::new("defaults");
    let rec = Recorder::default();
    let m = manager(&root, None, None, &rec);
    assert_eq!(m.unit().scope, "berth-c1.scope");
    assert_eq!(m.paths()[""], root.0.join("system.slice/berth-c1.scope"));
    // A scope cannot be started without a process.
    let e = m.apply(0).unwrap_err();
    assert!(e.to_string().contains("needs its pid"), "{e}");
    assert!(rec.0.borrow().is_empty());
    // Without resources, the start has only the scope's own properties.
    std::fs::create_dir_all(root.0.join("system.slice/berth-c1.scope")).unwrap();
    m.apply(7).unwrap();
    let Call::Start(_, props) = &rec.0.borrow()[0] else {
        panic!()
    };
    let names: Vec<&str> = props.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "Description",
            "Slice",
            "Delegate",
            "PIDs",
            "MemoryAccounting",
            "CPUAccounting",
            "IOAccounting",
            "TasksAccounting",
            "DefaultDependencies"
        ]
    );
    // A cgroupfs path is not a systemd one.
    let mut o = ManagerOptions::new(Some("/kubepods/pod1/abc"), "c1", Mode::Unified);
    o.root = Some(root.0.clone());
    o.systemd = true;
    let Err(e) = berth_cgroups::new_manager_with(&o) else {
        panic!("a cgroupfs path was accepted")
    };
    assert!(e.to_string().contains("slice:prefix:name"), "{e}");
}
