//! Which versions of containerd's Task API the shim serves, and which one it
//! announces to the containerd that starts it.
//!
//! containerd 1.6 and 1.7 speak `containerd.task.v2.Task`; containerd 2.x
//! speaks `containerd.task.v3.Task` to a shim whose `start` action answers
//! with bootstrap parameters of version 3 (JSON), and falls back to v2 for a
//! shim that answers with a bare address. The two versions have the same
//! methods and the same messages field for field (v3 only adds an optional
//! event stream that containerd uses only when the shim announces it), so one
//! set of handlers, generated from the v2 protos, serves both names on the
//! same socket, as containerd's own shims did across the change.
//!
//! Why not the newer `containerd-shim` crate: 0.12 generates and registers v3
//! only and always answers `start` with version 3, which containerd 1.6 cannot
//! parse and 1.7 refuses; 0.11 registers v2 only. Neither lets a shim add a
//! second service name, so the daemon builds its ttrpc server itself
//! (daemon.rs) from 0.11's generated handlers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use containerd_shim::protos::create_task;
use containerd_shim::protos::ttrpc::{MethodHandler, Request, Result as TtrpcResult, TtrpcContext};
use containerd_shim::Task;

use crate::containerd_version;

pub const TASK_V2: &str = "containerd.task.v2.Task";
pub const TASK_V3: &str = "containerd.task.v3.Task";

/// The handlers of `task` under both service names (`/SERVICE/METHOD`).
pub fn methods(
    task: Arc<dyn Task + Send + Sync>,
) -> HashMap<String, Box<dyn MethodHandler + Send + Sync>> {
    let mut all = HashMap::new();
    for (service, version) in [(TASK_V2, "v2"), (TASK_V3, "v3")] {
        let first_use = Arc::new(AtomicBool::new(true));
        for (path, handler) in create_task(task.clone()) {
            let path = path.replacen(TASK_V2, service, 1);
            let handler = Box::new(Versioned {
                inner: handler,
                version,
                first_use: first_use.clone(),
            }) as Box<dyn MethodHandler + Send + Sync>;
            all.insert(path, handler);
        }
    }
    all
}

/// A handler that logs (debug level) the first call made through its API
/// version, so containerd's debug log shows which version it speaks.
struct Versioned {
    inner: Box<dyn MethodHandler + Send + Sync>,
    version: &'static str,
    first_use: Arc<AtomicBool>,
}

impl MethodHandler for Versioned {
    fn handler(&self, ctx: TtrpcContext, req: Request) -> TtrpcResult<()> {
        if self.first_use.swap(false, Ordering::Relaxed) {
            log::debug!("containerd speaks task API {}", self.version);
        }
        self.inner.handler(ctx, req)
    }
}

/// What the `start` action prints for the shim at `address`: bootstrap
/// parameters of version 3 for containerd 2.x (`containerd`: its executable),
/// the bare address, which every containerd reads as a v2 shim, otherwise.
pub fn start_reply(address: &str, containerd: Option<&std::path::Path>) -> String {
    match containerd.and_then(containerd_version::major) {
        Some(major) if major >= 2 => serde_json::json!({
            "version": 3,
            "address": address,
            "protocol": "ttrpc",
        })
        .to_string(),
        _ => address.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_v2_method_is_served_as_v3_too() {
        struct NoTask;
        impl Task for NoTask {}
        let m = methods(Arc::new(NoTask));
        let v2: Vec<String> = m
            .keys()
            .filter_map(|k| k.strip_prefix(&format!("/{TASK_V2}/")))
            .map(str::to_string)
            .collect();
        assert_eq!(v2.len(), 17, "{v2:?}");
        for method in &v2 {
            assert!(m.contains_key(&format!("/{TASK_V3}/{method}")), "{method}");
        }
        assert_eq!(m.len(), 2 * v2.len());
    }

    #[test]
    fn unknown_containerd_gets_a_bare_address() {
        assert_eq!(start_reply("unix:///s", None), "unix:///s");
        assert_eq!(
            start_reply("unix:///s", Some(std::path::Path::new("/nonexistent"))),
            "unix:///s"
        );
    }
}
