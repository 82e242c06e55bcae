//! The shim binary's lifecycle (`containerd-shim` calls these): `start` spawns
//! (or reuses) the daemon serving the pod, `delete` cleans up after a dead
//! shim, and the daemon builds the task service.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim::api::DeleteResponse;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::util::{timestamp, write_address};
use containerd_shim::{spawn, Config, ExitSignal, Flags, Shim, StartOpts};

use crate::container::Container;
use crate::events::Publisher;
use crate::reaper::Reaper;
use crate::task::TaskService;

/// Containers with the same value of one of these annotations share a shim.
const GROUP_ANNOTATIONS: &[&str] = &[
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri-o.SandboxID",
];
/// How long a leaving shim waits for its last events to reach containerd.
const EVENT_FLUSH: Duration = Duration::from_secs(5);

pub struct Service {
    namespace: String,
    id: String,
    socket: String,
    exit: Arc<ExitSignal>,
    publisher: Mutex<Option<Publisher>>,
}

impl Shim for Service {
    type T = TaskService;

    fn new(_runtime_id: &str, args: &Flags, config: &mut Config) -> Self {
        // Warnings and errors only (containerd's debug level, which starts the
        // shim with -debug, still gives everything): the log is a FIFO that
        // containerd reads, one write per log field.
        config.default_log_level = "warn".to_string();
        Service {
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            socket: args.socket.clone(),
            exit: Arc::new(ExitSignal::default()),
            publisher: Mutex::new(None),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let grouping = group_of(Path::new("config.json")).unwrap_or_else(|| opts.id.clone());
        let (pid, address) = spawn(opts, &grouping, Vec::new())?;
        if let Err(e) = containerd_shim::cgroup::adjust_oom_score(pid) {
            log::warn!("adjust the shim's oom score: {e}");
        }
        write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let bundle =
            std::env::current_dir().map_err(|e| containerd_shim::Error::Other(e.to_string()))?;
        Reaper::get();
        if let Err(e) = Container::cleanup_bundle(&self.id, &bundle, &self.namespace) {
            log::warn!("delete {}: {e}", self.id);
        }
        Ok(DeleteResponse {
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: Some(timestamp()?).into(),
            ..Default::default()
        })
    }

    /// Returns only by exiting: Shutdown already removed the socket, and the
    /// library's own teardown would join request threads and read the address
    /// file from a bundle containerd may have removed by then.
    fn wait(&mut self) {
        self.exit.wait();
        if let Some(p) = self.publisher.lock().unwrap().as_ref() {
            p.flush(EVENT_FLUSH);
        }
        std::process::exit(0);
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        Reaper::get();
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let publisher = Publisher::start(publisher, address, self.namespace.clone());
        *self.publisher.lock().unwrap() = Some(publisher.clone());
        TaskService::new(&self.namespace, publisher, self.exit.clone(), &self.socket)
    }
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
}
