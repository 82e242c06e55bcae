//! v1 cpu and cpuacct controllers.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::fs::{keyed, CgDir};
use crate::stats::Cpu;
use crate::{CgroupError, Result};

/// Whether `c` asks anything of the cpu controller (cpus/mems belong to cpuset).
pub(super) fn wants(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|v| v != 0)
        || c.quota().is_some_and(|v| v != 0)
        || c.period().is_some_and(|v| v != 0)
        || c.burst().is_some()
        || c.realtime_runtime().is_some_and(|v| v != 0)
        || c.realtime_period().is_some_and(|v| v != 0)
        || c.idle().is_some()
}

fn is_errno(e: &CgroupError, errno: i32) -> bool {
    matches!(e, CgroupError::Write { source, .. } if source.raw_os_error() == Some(errno))
}

pub(super) fn set(d: CgDir, mount: &Path, c: &LinuxCpu) -> Result<()> {
    crate::shared::set_idle_before_weight(d, c)?;
    if let Some(shares) = c.shares().filter(|&v| v != 0) {
        d.write("cpu.shares", shares, "cpu.shares")?;
        let got = d.read_u64("cpu.shares")?;
        if got != shares {
            return Err(CgroupError::Invalid(format!(
                "cpu.shares: the kernel clamped {shares} to {got}; the valid range is 2-262144"
            )));
        }
    }
    set_rt(d, mount, c)?;
    set_bandwidth(d, c)?;
    Ok(())
}

/// Period, burst and quota, in an order that the kernel's checks accept whether
/// the values grow or shrink (retrying the ones refused before the quota changed).
fn set_bandwidth(d: CgDir, c: &LinuxCpu) -> Result<()> {
    let quota = c.quota().filter(|&v| v != 0);
    let mut retry_period = None;
    if let Some(period) = c.period().filter(|&v| v != 0) {
        if let Err(e) = d.write("cpu.cfs_period_us", period, "cpu.period") {
            if !is_errno(&e, libc::EINVAL) || quota.is_none() {
                return Err(e);
            }
            retry_period = Some(period);
        }
    }
    let mut retry_burst = None;
    if let Some(burst) = c.burst() {
        match d.write("cpu.cfs_burst_us", burst, "cpu.burst") {
            Ok(()) => {}
            Err(e) if is_errno(&e, libc::ENOENT) && burst == 0 => {}
            Err(e) if is_errno(&e, libc::EINVAL) && quota.is_some() => retry_burst = Some(burst),
            Err(e) => return Err(e),
        }
    }
    if let Some(q) = quota {
        d.write("cpu.cfs_quota_us", q, "cpu.quota")?;
    }
    if let Some(p) = retry_period {
        d.write("cpu.cfs_period_us", p, "cpu.period")?;
    }
    if let Some(b) = retry_burst {
        d.write("cpu.cfs_burst_us", b, "cpu.burst")?;
    }
    Ok(())
}

/// Real-time period then runtime. A new cgroup's parents have no RT budget;
/// when the kernel refuses the runtime, give each parent we can see at least
/// the same share and retry (crun does the same).
fn set_rt(d: CgDir, mount: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(p) = c.realtime_period().filter(|&v| v != 0) {
        d.write("cpu.rt_period_us", p, "cpu.realtimePeriod")?;
    }
    let Some(runtime) = c.realtime_runtime().filter(|&v| v != 0) else {
        return Ok(());
    };
    match d.write("cpu.rt_runtime_us", runtime, "cpu.realtimeRuntime") {
        Err(e) if runtime > 0 && (is_errno(&e, libc::EINVAL) || is_errno(&e, libc::EBUSY)) => {
            let period = d.read_u64("cpu.rt_period_us")?.max(1);
            let mut ancestors: Vec<&Path> = d
                .path
                .ancestors()
                .skip(1)
                .take_while(|a| *a != mount && a.starts_with(mount))
                .collect();
            ancestors.reverse();
            for a in ancestors {
                let ad = CgDir::new(a, false);
                let a_period = ad.read_u64("cpu.rt_period_us")?;
                let need = (runtime as u128 * a_period as u128).div_ceil(period as u128) as u64;
                if ad.read_u64("cpu.rt_runtime_us")? < need {
                    ad.write(
                        "cpu.rt_runtime_us",
                        need,
                        "cpu.realtimeRuntime (parent cgroup)",
                    )?;
                }
            }
            d.write("cpu.rt_runtime_us", runtime, "cpu.realtimeRuntime")
        }
        other => other,
    }
}

fn per_cpu(d: CgDir, name: &str) -> Result<Vec<u64>> {
    if !d.has(name) {
        return Ok(Vec::new());
    }
    Ok(d.read(name)?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect())
}

pub(super) fn acct_stats(d: CgDir, cpu: &mut Cpu) -> Result<()> {
    let u = &mut cpu.usage;
    u.total = d.read_u64_or_zero("cpuacct.usage")?;
    u.percpu = per_cpu(d, "cpuacct.usage_percpu")?;
    u.percpu_kernel = per_cpu(d, "cpuacct.usage_percpu_sys")?;
    u.percpu_user = per_cpu(d, "cpuacct.usage_percpu_user")?;
    // The totals from cpuacct.stat's clock ticks, as runc and containerd read
    // them (not cpuacct.usage_user/usage_sys, which newer kernels also have).
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let st = d.read_keyed("cpuacct.stat")?;
    u.user = keyed(&st, "user") * 1_000_000_000 / hz;
    u.kernel = keyed(&st, "system") * 1_000_000_000 / hz;
    Ok(())
}

pub(super) fn throttle_stats(d: CgDir, cpu: &mut Cpu) -> Result<()> {
    let st = d.read_keyed("cpu.stat")?;
    cpu.throttling.periods = keyed(&st, "nr_periods");
    cpu.throttling.throttled_periods = keyed(&st, "nr_throttled");
    cpu.throttling.throttled_time = keyed(&st, "throttled_time");
    Ok(())
}
