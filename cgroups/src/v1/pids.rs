//! v1 pids controller (same files as v2).

use oci_spec::runtime::LinuxPids;

use crate::fs::CgDir;
use crate::stats::Pids;
use crate::Result;

/// `limit` > 0 is a limit, < 0 means unlimited and 0 leaves the value unset (runc).
pub(crate) fn set(d: CgDir, p: &LinuxPids) -> Result<()> {
    match p.limit() {
        0 => Ok(()),
        l if l < 0 => d.write("pids.max", "max", "pids.limit"),
        l => d.write("pids.max", l, "pids.limit"),
    }
}

pub(crate) fn stats(d: CgDir, p: &mut Pids) -> Result<()> {
    p.current = d.read_u64_or_zero("pids.current")?;
    p.limit = d.read_u64_or_zero("pids.max")?;
    Ok(())
}
