//! v1 freezer controller.

use std::time::Duration;

use crate::fs::{poll_until, CgDir};
use crate::{CgroupError, FreezerState, Result};

const STATE: &str = "freezer.state";

/// Write FROZEN and wait until the kernel reports FROZEN (not FREEZING).
/// Like runc, thaw briefly now and then so that a cgroup whose processes keep
/// forking gets another chance to freeze.
pub(super) fn freeze(d: CgDir) -> Result<()> {
    for round in 0..20 {
        if round > 0 {
            d.write(STATE, "THAWED", "freezer.state")?;
            std::thread::sleep(Duration::from_millis(1));
        }
        d.write(STATE, "FROZEN", "freezer.state")?;
        if poll_until(Duration::from_millis(100), || {
            Ok(d.read(STATE)?.trim() == "FROZEN")
        })? {
            return Ok(());
        }
    }
    let _ = d.write(STATE, "THAWED", "freezer.state");
    Err(CgroupError::Invalid(format!(
        "unable to freeze {}: it stays FREEZING",
        d.path.display()
    )))
}

pub(super) fn thaw(d: CgDir) -> Result<()> {
    d.write(STATE, "THAWED", "freezer.state")?;
    if poll_until(Duration::from_secs(2), || {
        Ok(d.read(STATE)?.trim() == "THAWED")
    })? {
        Ok(())
    } else {
        Err(CgroupError::Invalid(format!(
            "unable to thaw {}",
            d.path.display()
        )))
    }
}

pub(super) fn state(d: CgDir) -> Result<FreezerState> {
    if !d.path.exists() {
        return Ok(FreezerState::Thawed);
    }
    Ok(match d.read(STATE)?.trim() {
        "FROZEN" => FreezerState::Frozen,
        _ => FreezerState::Thawed,
    })
}
