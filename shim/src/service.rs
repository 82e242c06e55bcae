//! The shim binary's lifecycle (`containerd-shim` calls these): `delete`
//! cleans up after a dead shim, and the daemon builds the task service
//! (`start` is served by start.rs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim::api::DeleteResponse;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::util::timestamp;
use containerd_shim::{Config, ExitSignal, Flags, Shim, StartOpts};

use crate::container::Container;
use crate::events::Publisher;
use crate::reaper::Reaper;
use crate::task::TaskService;

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

    /// Not reached: `main` serves the `start` action itself (see start.rs).
    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        crate::start::shim_address(opts)
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
