//! The `start` action: containerd runs `containerd-shim-berth-v2 … start` in
//! the bundle of every new container and reads, from its stdout, the address
//! of the shim daemon that will serve the container. The containers of a pod
//! share one daemon (grouped by the sandbox-id annotation): for the second and
//! later containers the daemon already runs and its address is reused.
//!
//! This action runs outside `containerd_shim::run`. The crate's bootstrap
//! registers its SIGCHLD/SIGPIPE handlers (signal-hook: a handler that `send`s
//! a byte into a self-pipe) before it looks at the action, so the `start`
//! process had them too, with nothing reading the pipe. When a SIGCHLD (the
//! spawned child exiting) arrived after the pipe's read end was closed at exit
//! but before the handlers were unregistered, the handler's `send` failed with
//! EPIPE and raised SIGPIPE, whose handler did the same, forever: containerd
//! waited for the address until its deadline. Here the process registers no
//! handler at all (SIGCHLD keeps its default, ignored; SIGPIPE stays ignored as
//! Rust sets it up, so a write to a closed stdout is an error), and a running
//! daemon is found by connecting to its socket, without spawning a child that
//! would only find the socket taken and exit (what containerd's own runc shim
//! does too).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use containerd_shim::util::write_address;
use containerd_shim::{socket_address, spawn, Flags, StartOpts};

use crate::task_api;

/// Containers with the same value of one of these annotations share a shim.
const GROUP_ANNOTATIONS: &[&str] = &[
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri-o.SandboxID",
];
/// containerd's ttrpc address, passed to every shim action.
const TTRPC_ADDRESS: &str = "TTRPC_ADDRESS";

/// Runs the `start` action for `flags` and exits: the address on stdout and
/// status 0, or the error on stderr and status 1.
pub fn run(flags: &Flags, runtime_id: &str) -> ! {
    let result = start_opts(flags).and_then(|opts| {
        let address = shim_address(opts)?;
        let reply = task_api::start_reply(&address, Some(&containerd_executable(flags)));
        let mut out = std::io::stdout().lock();
        out.write_all(reply.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| containerd_shim::Error::Other(format!("write the address: {e}")))
    });
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{runtime_id}: {e}");
            std::process::exit(1)
        }
    }
}

/// The address of the daemon serving this bundle's container: the running
/// daemon of its group, else a newly spawned one. Written to the bundle's
/// `address` file as containerd expects.
fn shim_address(opts: StartOpts) -> containerd_shim::Result<String> {
    let grouping = group_of(Path::new("config.json")).unwrap_or_else(|| opts.id.clone());
    let address = socket_address(&opts.address, &opts.namespace, &grouping);
    if serving(&address) {
        write_address(&address)?;
        return Ok(address);
    }
    let (pid, address) = spawn(opts, &grouping, Vec::new())?;
    if let Err(e) = containerd_shim::cgroup::adjust_oom_score(pid) {
        eprintln!("adjust the shim's oom score: {e}");
    }
    write_address(&address)?;
    Ok(address)
}

/// The executable of the containerd that runs this action: containerd passes
/// its own path as `-publish-binary`; else its process is this one's parent.
fn containerd_executable(flags: &Flags) -> PathBuf {
    if Path::new(&flags.publish_binary).is_absolute() {
        return PathBuf::from(&flags.publish_binary);
    }
    PathBuf::from(format!("/proc/{}/exe", std::os::unix::process::parent_id()))
}

/// The options of a `Shim::start_shim` call of the crate.
fn start_opts(flags: &Flags) -> containerd_shim::Result<StartOpts> {
    if flags.namespace.is_empty() {
        return Err(containerd_shim::Error::InvalidArgument(
            "shim namespace cannot be empty".into(),
        ));
    }
    let ttrpc_address = std::env::var(TTRPC_ADDRESS).map_err(|_| {
        containerd_shim::Error::InvalidArgument(format!("{TTRPC_ADDRESS} is not set"))
    })?;
    Ok(StartOpts {
        id: flags.id.clone(),
        publish_binary: flags.publish_binary.clone(),
        address: flags.address.clone(),
        ttrpc_address,
        namespace: flags.namespace.clone(),
        debug: flags.debug,
    })
}

/// Whether a shim daemon accepts connections on `address` (`unix://PATH`).
/// A socket file left by a daemon that died refuses them.
fn serving(address: &str) -> bool {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    UnixStream::connect(path).is_ok()
}

/// The pod a bundle's container belongs to, from its config.json annotations.
fn group_of(config: &Path) -> Option<String> {
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(config).ok()?).ok()?;
    let annotations = spec.get("annotations")?;
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|k| annotations.get(*k)?.as_str().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_of_a_pod_are_grouped() {
        let dir = std::env::temp_dir().join(format!("berth-shim-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.json");
        std::fs::write(
            &config,
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#,
        )
        .unwrap();
        assert_eq!(group_of(&config).as_deref(), Some("pod1"));
        std::fs::write(&config, r#"{"annotations":{"other":"x"}}"#).unwrap();
        assert_eq!(group_of(&config), None);
        std::fs::write(&config, r#"{"ociVersion":"1.0.2"}"#).unwrap();
        assert_eq!(group_of(&config), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_socket_nobody_listens_on_is_not_a_running_shim() {
        let dir = std::env::temp_dir().join(format!("berth-shim-serving-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let address = format!("unix://{}", path.display());
        assert!(serving(&address));
        drop(listener);
        assert!(!serving(&address), "a stale socket file");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!serving(&address), "no socket file");
    }
}
