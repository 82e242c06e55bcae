//! v2 cpu and cpuset controllers.

use oci_spec::runtime::LinuxCpu;

use crate::convert::cpu_shares_to_weight;
use crate::fs::{keyed, CgDir};
use crate::stats::{parse_cpu_list, Stats};
use crate::{CgroupError, Result};

pub(crate) fn set(d: CgDir, c: &LinuxCpu) -> Result<()> {
    if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
        return Err(CgroupError::Unsupported(
            "linux.resources.cpu.realtimeRuntime/realtimePeriod: real-time group scheduling limits do not exist on cgroup v2"
                .into(),
        ));
    }
    crate::shared::set_idle_before_weight(d, c)?;
    if let Some(shares) = c.shares().filter(|&v| v != 0) {
        d.write(
            "cpu.weight",
            cpu_shares_to_weight(shares),
            "cpu.shares (as cpu.weight)",
        )?;
    }
    set_max_and_burst(d, c)?;
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        d.write("cpuset.cpus", cpus, "cpu.cpus")?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        d.write("cpuset.mems", mems, "cpu.mems")?;
    }
    Ok(())
}

/// The `cpu.max` line for `quota`/`period`; an absent quota keeps the current one.
pub(crate) fn cpu_max_value(
    d: CgDir,
    quota: Option<i64>,
    period: Option<u64>,
) -> Result<Option<String>> {
    let quota = quota.filter(|&q| q != 0);
    let period = period.filter(|&p| p != 0);
    if quota.is_none() && period.is_none() {
        return Ok(None);
    }
    let quota = match quota {
        Some(q) if q > 0 => q.to_string(),
        Some(_) => "max".to_string(),
        None => d
            .read("cpu.max")
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "max".to_string()),
    };
    Ok(Some(match period {
        Some(p) => format!("{quota} {p}"),
        None => quota,
    }))
}

/// `cpu.max.burst` must not exceed the quota: try it first, and if the kernel
/// refuses, write `cpu.max` and retry.
fn set_max_and_burst(d: CgDir, c: &LinuxCpu) -> Result<()> {
    let max = cpu_max_value(d, c.quota(), c.period())?;
    let mut burst_pending = None;
    if let Some(b) = c.burst() {
        if let Err(e) = d.write("cpu.max.burst", b, "cpu.burst") {
            match (&e, &max) {
                (CgroupError::Write { source, .. }, Some(_))
                    if source.raw_os_error() == Some(libc::EINVAL) =>
                {
                    burst_pending = Some(b)
                }
                _ => return Err(e),
            }
        }
    }
    if let Some(m) = max {
        d.write("cpu.max", m, "cpu.quota/cpu.period (as cpu.max)")?;
    }
    if let Some(b) = burst_pending {
        d.write("cpu.max.burst", b, "cpu.burst")?;
    }
    Ok(())
}

pub(crate) fn stats(d: CgDir, s: &mut Stats) -> Result<()> {
    let st = d.read_keyed("cpu.stat")?;
    s.cpu.usage.total = keyed(&st, "usage_usec") * 1000;
    s.cpu.usage.user = keyed(&st, "user_usec") * 1000;
    s.cpu.usage.kernel = keyed(&st, "system_usec") * 1000;
    s.cpu.throttling.periods = keyed(&st, "nr_periods");
    s.cpu.throttling.throttled_periods = keyed(&st, "nr_throttled");
    s.cpu.throttling.throttled_time = keyed(&st, "throttled_usec") * 1000;
    if d.has("cpuset.cpus.effective") {
        s.cpuset.cpus = parse_cpu_list(&d.read("cpuset.cpus.effective")?);
        s.cpuset.mems = parse_cpu_list(&d.read("cpuset.mems.effective")?);
    }
    Ok(())
}
