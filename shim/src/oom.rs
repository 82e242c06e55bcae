//! TaskOOM: berth-cgroups' OOM notifier on the container's cgroup (v1: the
//! `memory.oom_control` eventfd; v2: each rise of `memory.events`' `oom_kill`),
//! watched on a thread until the cgroup is removed.

use berth_cgroups::oom::{OomNotifier, OomWakeup};
use containerd_shim::protos::events::task::TaskOOM;

use crate::error::{Context, Result};
use crate::events::Publisher;

/// Starts watching the memory cgroup of `pid` for OOM kills.
pub fn watch(pid: u32, container_id: &str, publisher: &Publisher) -> Result<()> {
    let notifier = berth_cgroups::manager_of_pid(pid)?.oom_notifier()?;
    let oom = TaskOOM {
        container_id: container_id.to_string(),
        ..Default::default()
    };
    let publisher = publisher.clone();
    std::thread::Builder::new()
        .name("oom".into())
        .stack_size(64 * 1024)
        .spawn(move || watch_until_removed(notifier, || publisher.publish(oom.clone())))
        .context("spawn oom thread")?;
    Ok(())
}

fn watch_until_removed(mut notifier: OomNotifier, on_oom: impl Fn()) {
    while let Ok(wakeup) = notifier.wait_event(None) {
        match wakeup {
            OomWakeup::Oom => on_oom(),
            OomWakeup::TimedOut => {}
            OomWakeup::CgroupRemoved => return,
        }
    }
}
