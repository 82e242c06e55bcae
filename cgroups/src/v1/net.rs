//! v1 net_cls and net_prio controllers.

use oci_spec::runtime::LinuxNetwork;

use super::V1Manager;
use crate::Result;

pub(super) fn set(m: &V1Manager, n: &LinuxNetwork) -> Result<()> {
    if let Some(id) = n.class_id() {
        m.need("net_cls", "linux.resources.network.classID")?
            .write("net_cls.classid", id, "network.classID")?;
    }
    if let Some(prios) = n.priorities().as_ref().filter(|p| !p.is_empty()) {
        let d = m.need("net_prio", "linux.resources.network.priorities")?;
        for p in prios {
            d.write(
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
                "network.priorities",
            )?;
        }
    }
    Ok(())
}
