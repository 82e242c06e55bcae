//! v1 memory controller.

use oci_spec::runtime::LinuxMemory;

use crate::fs::{keyed, CgDir};
use crate::shared::check_limit_above_usage;
use crate::stats::{Memory, MemoryEntry};
use crate::{CgroupError, Result};

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

pub(super) fn set(d: CgDir, m: &LinuxMemory) -> Result<()> {
    let limit = m.limit().filter(|&v| v != 0);
    let mut swap = m.swap().filter(|&v| v != 0);
    // Unlimited memory with swap unset means unlimited memory+swap too.
    if limit == Some(-1) && swap.is_none() && d.has(MEMSW) {
        swap = Some(-1);
    }
    if m.check_before_update() == Some(true) {
        check_limit_above_usage(d, limit, "memory.usage_in_bytes")?;
    }
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // memory.limit must stay <= memsw.limit at every step: raise memsw
            // first when growing, lower the memory limit first when shrinking.
            let current = d.read_u64(LIMIT)?;
            if s == -1 || current < s as u64 {
                set_swap(d, s)?;
                set_limit(d, l)?;
            } else {
                set_limit(d, l)?;
                set_swap(d, s)?;
            }
        }
        _ => {
            if let Some(l) = limit {
                set_limit(d, l)?;
            }
            if let Some(s) = swap {
                set_swap(d, s)?;
            }
        }
    }
    if let Some(r) = m.reservation().filter(|&v| v != 0) {
        d.write("memory.soft_limit_in_bytes", r, "memory.reservation")?;
    }
    if let Some(k) = m.kernel().filter(|&v| v != 0) {
        // Deprecated by the kernel (5.16+ accepts and ignores it); written for older kernels.
        d.write("memory.kmem.limit_in_bytes", k, "memory.kernel")?;
    }
    if let Some(k) = m.kernel_tcp().filter(|&v| v != 0) {
        d.write("memory.kmem.tcp.limit_in_bytes", k, "memory.kernelTCP")?;
    }
    if let Some(s) = m.swappiness() {
        // u64::MAX is -1 in JSON producers that use a signed type: leave the default.
        if s != u64::MAX {
            if s > 100 {
                return Err(CgroupError::Invalid(format!(
                    "memory.swappiness: invalid value {s}, the valid range is 0-100"
                )));
            }
            d.write("memory.swappiness", s, "memory.swappiness")?;
        }
    }
    if let Some(disable) = m.disable_oom_killer() {
        d.write(
            "memory.oom_control",
            u8::from(disable),
            "memory.disableOOMKiller",
        )?;
    }
    if let Some(h) = m.use_hierarchy() {
        d.write("memory.use_hierarchy", u8::from(h), "memory.useHierarchy")?;
    }
    Ok(())
}

fn set_limit(d: CgDir, v: i64) -> Result<()> {
    d.write(LIMIT, v, "memory.limit")
        .map_err(|e| busy_hint(d, e))
}

fn set_swap(d: CgDir, v: i64) -> Result<()> {
    d.write(MEMSW, v, "memory.swap")
}

/// EBUSY from a limit write means the usage is above the new limit: say so.
fn busy_hint(d: CgDir, e: CgroupError) -> CgroupError {
    match &e {
        CgroupError::Write { source, value, .. } if source.raw_os_error() == Some(libc::EBUSY) => {
            let usage = d.read_u64("memory.usage_in_bytes").unwrap_or(0);
            let peak = d.read_u64("memory.max_usage_in_bytes").unwrap_or(0);
            CgroupError::Invalid(format!(
                "memory.limit: cannot set the limit to {value}: current usage {usage}, peak usage {peak}"
            ))
        }
        _ => e,
    }
}

fn entry(d: CgDir, prefix: &str) -> Result<MemoryEntry> {
    Ok(MemoryEntry {
        limit: d.read_u64_or_zero(&format!("{prefix}.limit_in_bytes"))?,
        usage: d.read_u64_or_zero(&format!("{prefix}.usage_in_bytes"))?,
        max: d.read_u64_or_zero(&format!("{prefix}.max_usage_in_bytes"))?,
        failcnt: d.read_u64_or_zero(&format!("{prefix}.failcnt"))?,
    })
}

pub(super) fn stats(d: CgDir, m: &mut Memory) -> Result<()> {
    let raw = d.read_keyed("memory.stat")?;
    m.cache = keyed(&raw, "cache");
    m.raw = raw.into_iter().collect();
    m.usage = entry(d, "memory")?;
    m.swap = entry(d, "memory.memsw")?;
    m.kernel = entry(d, "memory.kmem")?;
    m.kernel_tcp = entry(d, "memory.kmem.tcp")?;
    m.oom_control = d.read_keyed("memory.oom_control")?.into_iter().collect();
    Ok(())
}
