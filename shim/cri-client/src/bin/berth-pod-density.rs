//! berth-pod-density: the pod-density benchmark's CRI driver (see
//! shim/bench/pods.sh, which measures the shims' memory in between).
//!
//! ```text
//! berth-pod-density --socket PATH up N HANDLER IMAGE CGROUP_PARENT LOG_DIR
//! berth-pod-density --socket PATH down
//! ```
//! `up` runs N host-network pods on runtime handler HANDLER, one container
//! (`IMAGE`, `sleep`) each, created and started one after the other the way
//! the kubelet's calls reach the runtime, and prints the seconds from the first
//! RunPodSandbox until every container is reported running. `down` stops and
//! removes every pod the server has.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use berth_cri_client::{api, Cri};

const USAGE: &str = "usage: berth-pod-density --socket PATH \
    up N HANDLER IMAGE CGROUP_PARENT LOG_DIR | down";
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
const RUNNING_WAIT: Duration = Duration::from_secs(300);

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-pod-density: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let [flag, socket, verb, rest @ ..] = args.as_slice() else {
        return Err(USAGE.into());
    };
    if flag != "--socket" {
        return Err(USAGE.into());
    }
    let mut cri = Cri::connect(&PathBuf::from(socket), CALL_TIMEOUT).map_err(|e| e.to_string())?;
    match (verb.as_str(), rest) {
        ("up", [n, handler, image, cgroup_parent, log_dir]) => {
            let n: usize = n.parse().map_err(|_| format!("N: not a number: {n}"))?;
            let secs = up(&mut cri, n, handler, image, cgroup_parent, log_dir)?;
            println!("{secs:.3}");
            Ok(())
        }
        ("down", []) => down(&mut cri),
        _ => Err(USAGE.into()),
    }
}

fn up(
    cri: &mut Cri,
    n: usize,
    handler: &str,
    image: &str,
    cgroup_parent: &str,
    log_dir: &str,
) -> Result<f64, String> {
    let e = |call: &str, i: usize, err: berth_cri_client::Error| format!("{call} #{i}: {err}");
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let pod = pod_config(i, cgroup_parent, log_dir);
        std::fs::create_dir_all(&pod.log_directory)
            .map_err(|x| format!("create {}: {x}", pod.log_directory))?;
        let pod_id = cri
            .run_pod_sandbox(pod.clone(), handler)
            .map_err(|x| e("RunPodSandbox", i, x))?;
        let id = cri
            .create_container(&pod_id, container_config(image), pod)
            .map_err(|x| e("CreateContainer", i, x))?;
        cri.start_container(&id)
            .map_err(|x| e("StartContainer", i, x))?;
        ids.push(id);
    }
    let deadline = Instant::now() + RUNNING_WAIT;
    loop {
        let running = cri
            .list_containers()
            .map_err(|x| x.to_string())?
            .iter()
            .filter(|c| {
                ids.contains(&c.id) && c.state == api::ContainerState::ContainerRunning as i32
            })
            .count();
        if running == n {
            return Ok(t0.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            return Err(format!("only {running} of {n} containers running"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn down(cri: &mut Cri) -> Result<(), String> {
    for pod in cri.list_pod_sandbox().map_err(|e| e.to_string())? {
        cri.stop_pod_sandbox(&pod.id)
            .map_err(|e| format!("StopPodSandbox {}: {e}", pod.id))?;
        cri.remove_pod_sandbox(&pod.id)
            .map_err(|e| format!("RemovePodSandbox {}: {e}", pod.id))?;
    }
    Ok(())
}

fn pod_config(i: usize, cgroup_parent: &str, log_dir: &str) -> api::PodSandboxConfig {
    let name = format!("density-{i}");
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.clone(),
            uid: format!("{name}-{}", std::process::id()),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: format!("{log_dir}/{name}"),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.into(),
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

fn container_config(image: &str) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "app".into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "1000000".into()],
        log_path: "app.log".into(),
        ..Default::default()
    }
}
