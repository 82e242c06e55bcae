//! v2 freezer: `cgroup.freeze`, completion reported in `cgroup.events`.

use std::time::Duration;

use crate::fs::{keyed, poll_until, CgDir};
use crate::{CgroupError, FreezerState, Result};

fn frozen_event(d: CgDir) -> Result<bool> {
    Ok(keyed(&d.read_keyed("cgroup.events")?, "frozen") == 1)
}

pub(crate) fn set(d: CgDir, freeze: bool) -> Result<()> {
    if !d.has("cgroup.freeze") && !d.create {
        return Err(CgroupError::Unsupported(format!(
            "{} has no cgroup.freeze: the kernel's cgroup v2 freezer is missing (Linux >= 5.2)",
            d.path.display()
        )));
    }
    d.write("cgroup.freeze", u8::from(freeze), "cgroup.freeze")?;
    if poll_until(Duration::from_secs(2), || Ok(frozen_event(d)? == freeze))? {
        Ok(())
    } else {
        let what = if freeze { "freeze" } else { "thaw" };
        Err(CgroupError::Invalid(format!(
            "unable to {what} {}: cgroup.events does not confirm",
            d.path.display()
        )))
    }
}

pub(crate) fn state(d: CgDir) -> Result<FreezerState> {
    if !d.has("cgroup.freeze") {
        return Ok(FreezerState::Thawed);
    }
    // The last line: a fake tree (tests) appends each write.
    Ok(
        if d.read("cgroup.freeze")?.lines().last() == Some("1") && frozen_event(d)? {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        },
    )
}
