//! berth-crictl's pod verbs: a host-network pod and busybox containers in it,
//! with the configs built here from a few arguments (the kubelet's shape:
//! cgroup parent, log directory, metadata), for driving a CRI server by hand
//! or from a shell test.

use berth_cri_client::{api, Cri};

/// The pod config for `name` under `cgroup_parent` (a cgroupfs path, or a
/// systemd slice such as `kubepods-besteffort-pod1.slice`).
pub fn pod_config(name: &str, cgroup_parent: &str) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: format!("{name}-uid"),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: format!("/tmp/berth-crictl-logs/{name}"),
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

fn container_config(name: &str, image: &str, command: &[String]) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: command.to_vec(),
        log_path: format!("{name}.log"),
        ..Default::default()
    }
}

/// `runp NAME CGROUP_PARENT [HANDLER]`: prints the pod id.
pub fn run_pod(cri: &mut Cri, args: &[String]) -> Result<String, String> {
    let [name, parent, rest @ ..] = args else {
        return Err("runp needs NAME CGROUP_PARENT [HANDLER]".into());
    };
    let handler = rest.first().map_or("", String::as_str);
    std::fs::create_dir_all(format!("/tmp/berth-crictl-logs/{name}")).map_err(|e| e.to_string())?;
    cri.run_pod_sandbox(pod_config(name, parent), handler)
        .map_err(|e| e.to_string())
}

/// `create POD_ID POD_NAME CGROUP_PARENT NAME IMAGE CMD...`: prints the
/// container id (the pod's config is rebuilt from its name and parent).
pub fn create_container(cri: &mut Cri, args: &[String]) -> Result<String, String> {
    let [pod, pod_name, parent, name, image, cmd @ ..] = args else {
        return Err("create needs POD_ID POD_NAME CGROUP_PARENT NAME IMAGE CMD...".into());
    };
    if cmd.is_empty() {
        return Err("create needs a command".into());
    }
    cri.create_container(
        pod,
        container_config(name, image, cmd),
        pod_config(pod_name, parent),
    )
    .map_err(|e| e.to_string())
}
