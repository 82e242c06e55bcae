//! The Kubernetes path: containerd's CRI plugin with a `berth` runtime handler
//! (io.containerd.berth.v2), driven through CRI v1 the way the kubelet does
//! (berth-cri-client). Root only; each test starts a private containerd with
//! the CRI plugin enabled (see common/mod.rs). Pods use the host network: no
//! CNI network is configured.
//!
//! Prerequisites: Debian's containerd and umoci (scripts/install-deps.sh) and
//! berth + berth-image built into the same target dir:
//! `cargo build -p berth -p berth-image && cargo test -p containerd-shim-berth-v2 --test cri`.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_cri_client::{api, Code, Cri};
use common::{Containerd, BERTH_RUNTIME, IMAGE, PAUSE_IMAGE};

const HANDLER: &str = "berth";
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A CRI connection that stops and removes the pods it ran when dropped
/// (declared after the [`Containerd`], so it goes first), also when a test
/// failed half-way.
struct Session {
    cri: Cri,
    pods: Vec<String>,
}

impl Session {
    /// Connects and waits until the CRI plugin answers Version and sees the
    /// images imported with ctr (image events reach it asynchronously).
    fn open(c: &Containerd) -> Session {
        let mut cri = Cri::connect(&c.address, CALL_TIMEOUT).expect("connect to CRI");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = cri.version().is_ok()
                && [IMAGE, PAUSE_IMAGE]
                    .iter()
                    .all(|i| matches!(cri.image_status(i), Ok(Some(_))));
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "CRI not ready (version: {:?}; images: {:?}); containerd log:\n{}",
                cri.version(),
                cri.list_images()
                    .map(|l| l.into_iter().map(|i| i.repo_tags).collect::<Vec<_>>()),
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Session {
            cri,
            pods: Vec::new(),
        }
    }

    fn run_pod(&mut self, config: &api::PodSandboxConfig, handler: &str) -> String {
        let id = self
            .cri
            .run_pod_sandbox(config.clone(), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
        self.pods.push(id.clone());
        id
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for pod in std::mem::take(&mut self.pods) {
            let _ = self.cri.stop_pod_sandbox(&pod);
            let _ = self.cri.remove_pod_sandbox(&pod);
        }
    }
}

fn pod_config(c: &Containerd, name: &str) -> api::PodSandboxConfig {
    let logs = c.dir.join("logs").join(name);
    fs::create_dir_all(&logs).unwrap();
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: format!("{name}-{}", std::process::id()),
            namespace: "default".into(),
            attempt: 0,
        }),
        // Empty, as the kubelet sends for host-network pods: they share the
        // host's UTS namespace, where runc and berth refuse to set one.
        hostname: String::new(),
        log_directory: logs.display().to_string(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: format!("/{}", c.cgroup_parent),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: api::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str, command: &[&str]) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        ..Default::default()
    }
}

/// `key` of the JSON in a verbose status's `info` map.
fn info_field(info: &std::collections::HashMap<String, String>, key: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(info.get("info").expect("verbose info")).expect("info is JSON");
    v[key].clone()
}

fn ppid(pid: u64) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the ")" closing the command name: state, then ppid.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(1).unwrap().parse().unwrap()
}

fn exe(pid: u64) -> String {
    fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// berth's own view of a container (`berth --root R state ID`).
fn berth_state(c: &Containerd, id: &str) -> serde_json::Value {
    common::berth_state(&c.bin_dir.join("berth"), &c.berth_root(), id)
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_clean(c: &Containerd, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = c.leftovers_of(ids);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = c.leftovers_of(ids);
    }
    assert!(left.is_empty(), "leftovers: {left:?}");
}

#[test]
fn pod_lifecycle_through_cri_runs_on_berth() {
    let Some(c) = Containerd::start_cri_if_possible() else {
        return;
    };
    let mut s = Session::open(&c);

    let v = s.cri.version().expect("Version");
    assert_eq!(v.runtime_name, "containerd", "{v:?}");
    assert_eq!(v.runtime_api_version, "v1", "{v:?}");

    // The pod sandbox, on berth.
    let pod_cfg = pod_config(&c, "web");
    let pod = s.run_pod(&pod_cfg, HANDLER);
    let ps = s.cri.pod_sandbox_status(&pod).expect("PodSandboxStatus");
    let status = ps.status.clone().unwrap();
    assert_eq!(status.state, api::PodSandboxState::SandboxReady as i32);
    assert_eq!(info_field(&ps.info, "runtimeHandler"), HANDLER);
    assert_eq!(info_field(&ps.info, "runtimeType"), BERTH_RUNTIME);
    let pause_pid = info_field(&ps.info, "pid").as_u64().expect("sandbox pid");

    // Two containers in it.
    let app = s
        .cri
        .create_container(
            &pod,
            container_config(
                "app",
                &[
                    "sh",
                    "-c",
                    "echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 1; done",
                ],
            ),
            pod_cfg.clone(),
        )
        .expect("CreateContainer app");
    let side = s
        .cri
        .create_container(
            &pod,
            container_config("side", &["sleep", "100000"]),
            pod_cfg.clone(),
        )
        .expect("CreateContainer side");
    let created = s.cri.container_status(&app).unwrap().status.unwrap();
    assert_eq!(created.state, api::ContainerState::ContainerCreated as i32);
    s.cri.start_container(&app).expect("StartContainer app");
    s.cri.start_container(&side).expect("StartContainer side");

    let st = s.cri.container_status(&app).expect("ContainerStatus");
    let status = st.status.clone().unwrap();
    assert_eq!(status.state, api::ContainerState::ContainerRunning as i32);
    assert!(status.started_at > 0, "{status:?}");
    assert_eq!(status.image.as_ref().unwrap().image, IMAGE);
    let app_pid = info_field(&st.info, "pid").as_u64().expect("app pid");
    let side_st = s.cri.container_status(&side).unwrap();
    let side_pid = info_field(&side_st.info, "pid").as_u64().expect("side pid");

    // Who runs them: one berth shim for the pod (grouped by sandbox id),
    // parent of the pause process and of both containers; berth's state
    // has all three, running, with those pids.
    let shims = c.shim_pids();
    assert_eq!(shims.len(), 1, "one shim per pod: {shims:?}");
    let shim = shims[0] as u64;
    assert!(
        exe(shim).ends_with("containerd-shim-berth-v2"),
        "shim exe {}",
        exe(shim)
    );
    for (id, pid) in [(&pod, pause_pid), (&app, app_pid), (&side, side_pid)] {
        assert_eq!(ppid(pid), shim, "parent of {id}'s process {pid}");
        let state = berth_state(&c, id);
        assert_eq!(state["status"], "running", "{state}");
        assert_eq!(state["pid"].as_u64(), Some(pid), "{state}");
    }
    assert!(
        fs::read_to_string(format!("/proc/{pause_pid}/cmdline"))
            .unwrap()
            .starts_with("/bin/sleep\0"),
        "the pause process runs the sandbox image's entrypoint"
    );

    // ExecSync: output and exit code.
    let r = s
        .cri
        .exec_sync(&app, &["sh", "-c", "echo out; echo err >&2; exit 3"], 30)
        .expect("ExecSync");
    assert_eq!(String::from_utf8_lossy(&r.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&r.stderr), "err\n");
    assert_eq!(r.exit_code, 3);
    let r = s
        .cri
        .exec_sync(&app, &["cat", "/proc/1/cmdline"], 30)
        .expect("ExecSync cat");
    assert_eq!(r.exit_code, 0);
    // The pod's pid namespace (CRI's default): pid 1 is the pause process.
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        "/bin/sleep\x002147483647\0"
    );
    // Host network: the container sees the host's interfaces.
    let names = |dev: &str| -> Vec<String> {
        let mut n: Vec<String> = dev
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
            .collect();
        n.sort();
        n
    };
    let r = s
        .cri
        .exec_sync(&side, &["cat", "/proc/net/dev"], 30)
        .unwrap();
    assert_eq!(
        names(&String::from_utf8_lossy(&r.stdout)),
        names(&fs::read_to_string("/proc/net/dev").unwrap())
    );

    // ContainerStats: from the shim's cgroup metrics.
    let stats = wait_for("non-zero cpu and memory stats", || {
        let st = s.cri.container_stats(&app).expect("ContainerStats");
        let cpu = st.cpu.as_ref()?.usage_core_nano_seconds.as_ref()?.value;
        let mem = st.memory.as_ref()?.working_set_bytes.as_ref()?.value;
        (cpu > 0 && mem > 0).then_some(st)
    });
    assert_eq!(stats.attributes.as_ref().unwrap().id, app);

    // UpdateContainerResources: through the shim's Update into `berth update`;
    // the new limits are in the container's cgroup files on the host.
    let cgroup_file = |controller: &str, file: &str| -> String {
        let cg = fs::read_to_string(format!("/proc/{app_pid}/cgroup")).unwrap();
        let rel = cg
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
                let v2 = ctl.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
                (v2 || ctl.split(',').any(|c| c == controller)).then(|| path.to_string())
            })
            .unwrap_or_else(|| panic!("no {controller} cgroup in {cg}"));
        let dir = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            format!("/sys/fs/cgroup{rel}")
        } else {
            format!("/sys/fs/cgroup/{controller}{rel}")
        };
        fs::read_to_string(format!("{dir}/{file}"))
            .unwrap_or_else(|e| panic!("read {dir}/{file}: {e}"))
            .trim()
            .to_string()
    };
    s.cri
        .update_container_resources(
            &app,
            api::LinuxContainerResources {
                memory_limit_in_bytes: 96 << 20,
                cpu_shares: 512,
                cpu_period: 100_000,
                cpu_quota: 50_000,
                ..Default::default()
            },
        )
        .expect("UpdateContainerResources");
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(cgroup_file("memory", "memory.max"), (96u64 << 20).to_string());
        assert_eq!(cgroup_file("cpu", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(
            cgroup_file("memory", "memory.limit_in_bytes"),
            (96u64 << 20).to_string()
        );
        assert_eq!(cgroup_file("cpu", "cpu.shares"), "512");
        assert_eq!(cgroup_file("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cgroup_file("cpu", "cpu.cfs_period_us"), "100000");
    }
    // ...and in what CRI reports back.
    let st = s.cri.container_status(&app).unwrap().status.unwrap();
    let res = st.resources.and_then(|r| r.linux);
    if let Some(r) = res {
        assert_eq!(r.memory_limit_in_bytes, 96 << 20, "{r:?}");
    }

    // The container's log, written by containerd from the shim's stdio.
    let log = c.dir.join("logs/web/app.log");
    wait_for("the app's log line", || {
        fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains(" stdout F started"))
    });

    // StopContainer: SIGTERM, which the app traps and exits 0.
    s.cri.stop_container(&app, 20).expect("StopContainer");
    let status = s.cri.container_status(&app).unwrap().status.unwrap();
    assert_eq!(status.state, api::ContainerState::ContainerExited as i32);
    assert_eq!(status.exit_code, 0, "{status:?}");
    assert!(status.finished_at >= status.started_at);
    assert!(fs::read_to_string(&log).unwrap().contains(" stdout F bye"));
    let err = s.cri.exec_sync(&app, &["true"], 10).unwrap_err();
    assert!(err.to_string().contains("CONTAINER_EXITED"), "{err}");

    // RemoveContainer: gone from CRI and from berth.
    s.cri.remove_container(&app).expect("RemoveContainer");
    let err = s.cri.container_status(&app).unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    assert!(!c.berth_root().join(&app).exists());

    // StopPodSandbox stops the rest; RemovePodSandbox removes it all.
    s.cri.stop_pod_sandbox(&pod).expect("StopPodSandbox");
    let status = s.cri.pod_sandbox_status(&pod).unwrap().status.unwrap();
    assert_eq!(status.state, api::PodSandboxState::SandboxNotready as i32);
    let side_status = s.cri.container_status(&side).unwrap().status.unwrap();
    assert_eq!(
        side_status.state,
        api::ContainerState::ContainerExited as i32
    );
    assert!(!Path::new(&format!("/proc/{side_pid}")).exists() || ppid(side_pid) != shim);
    s.cri.remove_pod_sandbox(&pod).expect("RemovePodSandbox");
    s.pods.clear();
    assert!(s.cri.list_pod_sandbox().unwrap().is_empty());
    assert!(s.cri.list_containers().unwrap().is_empty());
    assert_clean(&c, &[pod, app, side]);
}

#[test]
fn unknown_runtime_handler_is_refused() {
    let Some(c) = Containerd::start_cri_if_possible() else {
        return;
    };
    let mut s = Session::open(&c);
    let err = s
        .cri
        .run_pod_sandbox(pod_config(&c, "nohandler"), "no-such-handler")
        .unwrap_err();
    assert!(err.to_string().contains("no-such-handler"), "{err}");
    assert!(s.cri.list_pod_sandbox().unwrap().is_empty());
    assert!(c.shim_pids().is_empty());
}
