//! v2 memory controller.

use oci_spec::runtime::LinuxMemory;

use crate::convert::{max_or, memory_swap_to_v2};
use crate::fs::{keyed, CgDir};
use crate::shared::check_limit_above_usage;
use crate::stats::Memory;
use crate::{CgroupError, Result};

fn unsupported(what: &str) -> CgroupError {
    CgroupError::Unsupported(format!(
        "linux.resources.memory.{what} is not supported on cgroup v2"
    ))
}

pub(crate) fn set(d: CgDir, m: &LinuxMemory) -> Result<()> {
    if m.kernel().is_some_and(|v| v != 0) {
        return Err(unsupported("kernel"));
    }
    if m.kernel_tcp().is_some_and(|v| v != 0) {
        return Err(unsupported("kernelTCP"));
    }
    if m.swappiness().is_some_and(|v| v != u64::MAX) {
        return Err(unsupported("swappiness"));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(unsupported("disableOOMKiller"));
    }
    if m.use_hierarchy() == Some(false) {
        return Err(CgroupError::Unsupported(
            "linux.resources.memory.useHierarchy=false: cgroup v2 memory accounting is always hierarchical".into(),
        ));
    }
    let limit = m.limit().filter(|&v| v != 0);
    let swap = memory_swap_to_v2(m.swap(), m.limit())?;
    if m.check_before_update() == Some(true) {
        check_limit_above_usage(d, limit, "memory.current")?;
    }
    if let Some(s) = swap {
        // Without swap accounting the file is absent: "unlimited" is then already true.
        if s != -1 || d.has("memory.swap.max") || d.create {
            d.write(
                "memory.swap.max",
                max_or(s),
                "memory.swap (as memory.swap.max = swap - limit)",
            )?;
        }
    }
    if let Some(l) = limit {
        d.write("memory.max", max_or(l), "memory.limit")?;
    }
    if let Some(r) = m.reservation().filter(|&v| v != 0) {
        d.write(
            "memory.low",
            max_or(r),
            "memory.reservation (as memory.low)",
        )?;
    }
    Ok(())
}

pub(crate) fn stats(d: CgDir, m: &mut Memory) -> Result<()> {
    let raw = d.read_keyed("memory.stat")?;
    m.cache = keyed(&raw, "file");
    m.raw = raw.into_iter().collect();
    let events = d.read_keyed("memory.events")?;
    m.usage.usage = d.read_u64_or_zero("memory.current")?;
    m.usage.max = d.read_u64_or_zero("memory.peak")?;
    m.usage.limit = d.read_u64_or_zero("memory.max")?;
    m.usage.failcnt = keyed(&events, "max");
    // Like runc, report swap as memory+swap for v1 compatibility.
    let swap_limit = d.read_u64_or_zero("memory.swap.max")?;
    m.swap.usage = d.read_u64_or_zero("memory.swap.current")? + m.usage.usage;
    m.swap.limit = if swap_limit == u64::MAX {
        u64::MAX
    } else {
        swap_limit.saturating_add(m.usage.limit)
    };
    m.swap.failcnt = keyed(&d.read_keyed("memory.swap.events")?, "max");
    m.swap_only.usage = m.swap.usage - m.usage.usage;
    m.swap_only.limit = swap_limit;
    m.events = events.into_iter().collect();
    Ok(())
}
