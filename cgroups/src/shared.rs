//! Interface formats that are the same on v1 and v2.

use std::collections::HashMap;

use oci_spec::runtime::{LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxRdma};

use crate::fs::CgDir;
use crate::{CgroupError, Result};

/// `cpu.idle` first: the kernel resets an idle cgroup's weight when idle is turned
/// off, and refuses a weight while the cgroup is idle. Shares (a weight) together
/// with idle=1 cannot both hold, so that combination is refused before any write.
pub(crate) fn set_idle_before_weight(d: CgDir, c: &LinuxCpu) -> Result<()> {
    if c.idle() == Some(1) && c.shares().is_some_and(|v| v != 0) {
        return Err(CgroupError::Invalid(
            "linux.resources.cpu: shares cannot be combined with idle=1 (an idle cgroup runs at the minimum weight)"
                .into(),
        ));
    }
    if let Some(idle) = c.idle() {
        d.write("cpu.idle", idle, "cpu.idle")?;
    }
    Ok(())
}

/// `rdma.max` lines: `<device> hca_handle=N hca_object=M`, one write per device.
pub(crate) fn set_rdma(d: CgDir, rdma: &HashMap<String, LinuxRdma>) -> Result<()> {
    let mut devices: Vec<_> = rdma.iter().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, limits) in devices {
        if dev.is_empty() || dev.contains(char::is_whitespace) {
            return Err(CgroupError::Invalid(format!(
                "rdma: invalid device name {dev:?}"
            )));
        }
        let mut line = dev.clone();
        if let Some(h) = limits.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = limits.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        d.write("rdma.max", line, &format!("rdma[{dev}]"))?;
    }
    Ok(())
}

/// A device rule in the `devices.allow` / `devices.deny` syntax: `c 1:3 rwm`.
/// FIFO rules (`p`) have no cgroup meaning and give `None`.
pub(crate) fn device_rule(rule: &LinuxDeviceCgroup) -> Result<Option<String>> {
    let typ = match rule.typ().unwrap_or_default() {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => return Ok(None),
    };
    let num = |n: Option<i64>| {
        n.filter(|&v| v >= 0)
            .map_or("*".to_string(), |v| v.to_string())
    };
    let access = rule.access().clone().unwrap_or_else(|| "rwm".to_string());
    let access = if access.is_empty() {
        "rwm".to_string()
    } else {
        access
    };
    if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(CgroupError::Invalid(format!(
            "linux.resources.devices: invalid access {access:?} (only r, w and m are allowed)"
        )));
    }
    Ok(Some(format!(
        "{typ} {}:{} {access}",
        num(rule.major()),
        num(rule.minor())
    )))
}

/// memory.checkBeforeUpdate: refuse a limit below the current usage (read from
/// `usage_file`) instead of letting the kernel reclaim or OOM-kill.
pub(crate) fn check_limit_above_usage(
    d: CgDir,
    limit: Option<i64>,
    usage_file: &str,
) -> Result<()> {
    let Some(l) = limit.filter(|&l| l > 0) else {
        return Ok(());
    };
    let usage = d.read_u64(usage_file)?;
    if (l as u64) < usage {
        return Err(CgroupError::Invalid(format!(
            "memory.limit: rejecting limit {l} below the current usage {usage} (checkBeforeUpdate)"
        )));
    }
    Ok(())
}
