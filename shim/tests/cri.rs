//! The Kubernetes path: containerd's CRI plugin with a `berth` runtime handler
//! (io.containerd.berth.v2), driven through CRI v1 the way the kubelet does
//! (berth-cri-client). Root only; each test starts a private containerd with
//! the CRI plugin enabled (see common/mod.rs). Pods use the host network,
//! except in the CNI test, which configures a bridge network from Debian's
//! containernetworking-plugins.
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
    // containerd 1.6 tells the handler in the verbose info, 2.x in the status.
    let handler = info_field(&ps.info, "runtimeHandler");
    let handler = handler.as_str().unwrap_or(&status.runtime_handler);
    assert_eq!(handler, HANDLER);
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
    let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let cgroup_file = |controller: &str, file: &str| -> String {
        let cg = fs::read_to_string(format!("/proc/{app_pid}/cgroup")).unwrap();
        let rel = cg
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
                ((pure_v2 && ctl.is_empty()) || ctl.split(',').any(|c| c == controller))
                    .then(|| path.to_string())
            })
            .unwrap_or_else(|| panic!("no {controller} cgroup in {cg}"));
        let dir = if pure_v2 {
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
    if pure_v2 {
        assert_eq!(
            cgroup_file("memory", "memory.max"),
            (96u64 << 20).to_string()
        );
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

/// The CNI network of [`pod_on_a_cni_bridge_network`]: its own bridge and
/// subnet, address allocations kept under the test's dir.
const CNI_BRIDGE: &str = "berthcni0";
const CNI_SUBNET_PREFIX: &str = "10.89.232.";

/// Undoes what a CNI bridge network leaves on the host, also after a failure:
/// network namespaces containerd pinned under /run/netns since the guard was
/// made, the bridge, and the ip_forward sysctl the bridge plugin switches on.
struct CniGuard {
    netns_before: Vec<String>,
    ip_forward: Option<String>,
}

impl CniGuard {
    fn new() -> CniGuard {
        CniGuard {
            netns_before: netns_names(),
            ip_forward: fs::read_to_string("/proc/sys/net/ipv4/ip_forward").ok(),
        }
    }
}

fn netns_names() -> Vec<String> {
    fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for CniGuard {
    fn drop(&mut self) {
        for n in netns_names() {
            if !self.netns_before.contains(&n) {
                let p = format!("/run/netns/{n}");
                let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
                let _ = fs::remove_file(&p);
            }
        }
        if Path::new(&format!("/sys/class/net/{CNI_BRIDGE}")).exists() {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", CNI_BRIDGE])
                .status();
        }
        if let Some(v) = &self.ip_forward {
            let _ = fs::write("/proc/sys/net/ipv4/ip_forward", v);
        }
    }
}

#[test]
fn pod_on_a_cni_bridge_network() {
    let Some(c) = Containerd::start_cri_if_possible() else {
        return;
    };
    if !Path::new("/usr/lib/cni/bridge").exists() {
        berth_testsupport::skip("cni-plugins", "containernetworking-plugins not installed");
        return;
    }
    let _net = CniGuard::new();
    fs::write(
        c.dir.join("cni/10-berth-test.conflist"),
        serde_json::json!({
            "cniVersion": "0.4.0",
            "name": "berth-test",
            "plugins": [{
                "type": "bridge",
                "bridge": CNI_BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": format!("{CNI_SUBNET_PREFIX}0/24")}]],
                    "dataDir": c.dir.join("ipam").display().to_string(),
                },
            }],
        })
        .to_string(),
    )
    .unwrap();
    let mut s = Session::open(&c);
    // The CRI plugin picks the config up from its directory.
    wait_for("NetworkReady", || {
        let st = s.cri.status().ok()?;
        st.status?
            .conditions
            .iter()
            .any(|c| c.r#type == "NetworkReady" && c.status)
            .then_some(())
    });

    // A pod in its own network namespace (the kubelet's default).
    let mut pod_cfg = pod_config(&c, "net");
    pod_cfg.hostname = "net-pod".into();
    if let Some(l) = pod_cfg.linux.as_mut() {
        l.security_context = None;
    }
    let pod = s.run_pod(&pod_cfg, HANDLER);
    let ps = s.cri.pod_sandbox_status(&pod).expect("PodSandboxStatus");
    let ip = ps
        .status
        .as_ref()
        .unwrap()
        .network
        .as_ref()
        .unwrap()
        .ip
        .clone();
    assert!(ip.starts_with(CNI_SUBNET_PREFIX), "pod ip {ip:?}");
    let pause_pid = info_field(&ps.info, "pid").as_u64().expect("sandbox pid");

    let app = s
        .cri
        .create_container(
            &pod,
            container_config("app", &["httpd", "-f", "-p", "8080", "-h", "/etc"]),
            pod_cfg.clone(),
        )
        .expect("CreateContainer");
    s.cri.start_container(&app).expect("StartContainer");
    let st = s.cri.container_status(&app).unwrap();
    let app_pid = info_field(&st.info, "pid").as_u64().expect("app pid");
    // The container joined the sandbox's network namespace, which is not the host's.
    let netns = |pid: u64| fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(netns(app_pid), netns(pause_pid));
    assert_ne!(netns(app_pid), fs::read_link("/proc/self/ns/net").unwrap());

    // Inside: loopback and the veth end with the pod's address, and the hostname.
    let r = s
        .cri
        .exec_sync(&app, &["ls", "/sys/class/net"], 30)
        .unwrap();
    let mut ifs: Vec<String> = String::from_utf8_lossy(&r.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    ifs.sort();
    assert_eq!(ifs, ["eth0", "lo"]);
    let r = s
        .cri
        .exec_sync(&app, &["ip", "-4", "-o", "addr", "show", "eth0"], 30)
        .unwrap();
    assert!(
        String::from_utf8_lossy(&r.stdout).contains(&format!("inet {ip}/24")),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    let r = s.cri.exec_sync(&app, &["hostname"], 30).unwrap();
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "net-pod");
    // Traffic both ways over the bridge: the host fetches from the pod's
    // httpd, the pod fetches from a listener on the bridge's address.
    let body = wait_for("the pod's httpd", || {
        use std::io::{Read, Write};
        let addr = format!("{ip}:8080").parse().unwrap();
        let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        c.write_all(b"GET /hostname HTTP/1.0\r\n\r\n").ok()?;
        let mut out = String::new();
        c.read_to_string(&mut out).ok()?;
        Some(out)
    });
    assert!(body.contains("net-pod"), "{body}");
    let listener = std::net::TcpListener::bind(format!("{CNI_SUBNET_PREFIX}1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut c, peer) = listener.accept().unwrap();
        let mut req = [0u8; 1024];
        let _ = c.read(&mut req);
        let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nfrom-host");
        peer.ip().to_string()
    });
    let r = s
        .cri
        .exec_sync(
            &app,
            &[
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://{CNI_SUBNET_PREFIX}1:{port}/"),
            ],
            30,
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&r.stdout), "from-h", "{r:?}");
    assert_eq!(
        server.join().unwrap(),
        ip,
        "the request came from the pod's address"
    );

    // Stopping the pod tears its network down: no veth left on the bridge.
    s.cri.stop_pod_sandbox(&pod).expect("StopPodSandbox");
    s.cri.remove_pod_sandbox(&pod).expect("RemovePodSandbox");
    s.pods.clear();
    let ports = fs::read_dir(format!("/sys/class/net/{CNI_BRIDGE}/brif"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(ports, 0, "veths left on {CNI_BRIDGE}");
    assert_clean(&c, &[pod, app]);
}

/// The containers of a pod share the pod's shim: for each container after the
/// sandbox, the shim's short-lived `start` action finds the pod's daemon and
/// prints its address. That action must never hang (see tests/start_action.rs
/// for the signal race it once lost): 200 containers are created and started
/// back to back into 10 pods, each call bounded; afterwards one shim per pod
/// runs, no `start` action is left, and removing the pods leaves nothing.
#[test]
fn two_hundred_containers_start_into_grouped_pod_shims() {
    const PODS: usize = 10;
    const PER_POD: usize = 20;
    /// Far above a normal create or start here (well under a second).
    const START_LIMIT: Duration = Duration::from_secs(30);
    let Some(c) = Containerd::start_cri_if_possible() else {
        return;
    };
    let mut s = Session::open(&c);
    let mut bounded = Cri::connect(&c.address, START_LIMIT).expect("connect to CRI");
    let mut ids = Vec::new();
    for p in 0..PODS {
        let cfg = pod_config(&c, &format!("many{p}"));
        let pod = s.run_pod(&cfg, HANDLER);
        ids.push(pod.clone());
        for i in 0..PER_POD {
            let n = p * PER_POD + i;
            let id = bounded
                .create_container(
                    &pod,
                    container_config(&format!("c{i}"), &["sleep", "100000"]),
                    cfg.clone(),
                )
                .unwrap_or_else(|e| panic!("CreateContainer #{n}: {e}\n{}", c.log_tail(20)));
            bounded
                .start_container(&id)
                .unwrap_or_else(|e| panic!("StartContainer #{n}: {e}\n{}", c.log_tail(20)));
            ids.push(id);
        }
    }
    let running = s
        .cri
        .list_containers()
        .unwrap()
        .iter()
        .filter(|k| k.state == api::ContainerState::ContainerRunning as i32)
        .count();
    assert_eq!(running, PODS * PER_POD);
    // One daemon per pod, and every start action has exited.
    let shims = c.shim_pids();
    let starts: Vec<u32> = shims
        .iter()
        .copied()
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/cmdline"))
                .map(|l| l.split('\0').any(|a| a == "start"))
                .unwrap_or(false)
        })
        .collect();
    assert!(starts.is_empty(), "start actions still running: {starts:?}");
    assert_eq!(shims.len(), PODS, "one shim per pod: {shims:?}");

    for pod in std::mem::take(&mut s.pods) {
        s.cri
            .stop_pod_sandbox(&pod)
            .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", c.log_tail(40)));
        s.cri
            .remove_pod_sandbox(&pod)
            .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", c.log_tail(40)));
    }
    assert!(s.cri.list_containers().unwrap().is_empty());
    assert_clean(&c, &ids);
}

/// What the kubelet does through the streaming server and the log path, with
/// the berth shim under the pod: attach to a container's stdin/stdout,
/// port-forward into the pod, and reopen a rotated container log.
#[test]
fn attach_port_forward_and_log_reopen() {
    use berth_cri_client::stream::Stream;
    const STREAM: Duration = Duration::from_secs(20);
    let Some(c) = Containerd::start_cri_if_possible() else {
        return;
    };
    let mut s = Session::open(&c);
    let pod_cfg = pod_config(&c, "stream");
    let pod = s.run_pod(&pod_cfg, HANDLER);

    // Attach: a container reading its stdin.
    let mut echo = container_config(
        "echo",
        &[
            "sh",
            "-c",
            "echo ready; while read l; do echo \"got $l\"; done",
        ],
    );
    echo.stdin = true;
    let echo = s
        .cri
        .create_container(&pod, echo, pod_cfg.clone())
        .expect("CreateContainer echo");
    s.cri.start_container(&echo).expect("StartContainer echo");
    let url = s.cri.attach(&echo, true, true, false).expect("Attach");
    let mut a = Stream::open(&url, "", STREAM).expect("open the attach stream");
    a.send(0, b"hello\n").unwrap();
    let out = a
        .read_until(1, b"got hello\n", STREAM)
        .expect("attach output");
    assert!(String::from_utf8_lossy(&out).contains("got hello"));
    a.close();

    // Port-forward: busybox httpd on a free loopback port (host network).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let web = s
        .cri
        .create_container(
            &pod,
            container_config(
                "web",
                &[
                    "httpd",
                    "-f",
                    "-p",
                    &format!("127.0.0.1:{port}"),
                    "-h",
                    "/etc",
                ],
            ),
            pod_cfg.clone(),
        )
        .expect("CreateContainer web");
    s.cri.start_container(&web).expect("StartContainer web");
    let hostname = s
        .cri
        .exec_sync(&web, &["cat", "/etc/hostname"], 30)
        .unwrap();
    let hostname = String::from_utf8_lossy(&hostname.stdout).trim().to_string();
    let body = wait_for("a response through port-forward", || {
        let url = s.cri.port_forward(&pod, &[port as i32]).ok()?;
        let mut f = Stream::open(&url, &format!("port={port}"), STREAM).ok()?;
        f.send(0, b"GET /hostname HTTP/1.0\r\n\r\n").ok()?;
        let got = f.read_until(0, b"\r\n\r\n", STREAM).ok()?;
        // The rest of the response after the headers.
        let more = f
            .read_until(0, hostname.as_bytes(), STREAM)
            .unwrap_or_default();
        f.close();
        let text = String::from_utf8_lossy(&[got, more].concat()).into_owned();
        text.contains("200 OK").then_some(text)
    });
    assert!(body.contains(&hostname), "{body}");

    // Log reopen: rename the log as the kubelet's rotation does, reopen,
    // and the container's next lines go to a new file at the old path.
    let ticker = s
        .cri
        .create_container(
            &pod,
            container_config(
                "ticker",
                &[
                    "sh",
                    "-c",
                    "i=0; while :; do echo tick$i; i=$((i+1)); sleep 0.1; done",
                ],
            ),
            pod_cfg.clone(),
        )
        .expect("CreateContainer ticker");
    s.cri
        .start_container(&ticker)
        .expect("StartContainer ticker");
    let log = c.dir.join("logs/stream/ticker.log");
    wait_for("tick lines", || {
        fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("tick2"))
    });
    let rotated = log.with_extension("log.1");
    fs::rename(&log, &rotated).unwrap();
    s.cri
        .reopen_container_log(&ticker)
        .expect("ReopenContainerLog");
    let fresh = wait_for("lines in the reopened log", || {
        fs::read_to_string(&log).ok().filter(|l| l.contains("tick"))
    });
    assert!(fresh.contains(" stdout F tick"), "{fresh}");
    let before = fs::read_to_string(&rotated).unwrap().len();
    // Three more lines written since: had any gone to the rotated file, it
    // would have grown by now.
    let written = fresh.lines().count();
    wait_for("three more lines in the reopened log", || {
        fs::read_to_string(&log)
            .ok()
            .filter(|l| l.lines().count() >= written + 3)
    });
    assert_eq!(
        fs::read_to_string(&rotated).unwrap().len(),
        before,
        "the rotated file is no longer written"
    );

    s.cri.stop_pod_sandbox(&pod).expect("StopPodSandbox");
    s.cri.remove_pod_sandbox(&pod).expect("RemovePodSandbox");
    s.pods.clear();
    assert_clean(&c, &[pod, echo, web, ticker]);
}
