//! systemd unit properties (systemd.resource-control(5)) for a container's
//! scope: the fixed ones a scope starts with and those converted from
//! `linux.resources`, following runc's systemd driver. What systemd cannot
//! express is written to the scope's cgroup files afterwards, as runc does.

use std::collections::HashMap;

use oci_spec::runtime::{LinuxCpu, LinuxResources};

use crate::convert::{blkio_weight_to_io_weight, cpu_shares_to_weight, memory_swap_to_v2};
use crate::{CgroupError, Result};

/// systemd's "infinity" for limits (USEC_INFINITY, CGROUP_LIMIT_MAX).
pub const INFINITY: u64 = u64::MAX;
/// The kernel's default CFS period (µs), v1 and v2.
const DEFAULT_CPU_PERIOD: u64 = 100_000;
/// First systemd versions knowing a property.
const CPU_QUOTA_PERIOD_SINCE: u32 = 242;
const ALLOWED_CPUS_SINCE: u32 = 244;
const CPU_WEIGHT_IDLE_SINCE: u32 = 252;

/// A D-Bus value of the types these properties use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `s`
    Str(String),
    /// `b`
    Bool(bool),
    /// `t`
    U64(u64),
    /// `au`
    U32s(Vec<u32>),
    /// `ay` (a CPU or memory-node bitmask, lowest CPU in bit 0 of byte 0)
    Bytes(Vec<u8>),
    /// `a(ss)`: device path or group, access
    DeviceAllow(Vec<(String, String)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub name: &'static str,
    pub value: Value,
}

impl Property {
    pub fn new(name: &'static str, value: Value) -> Self {
        Property { name, value }
    }
}

fn prop(name: &'static str, value: Value) -> Property {
    Property::new(name, value)
}

/// Which cgroup version's property names to use (v1 hosts know MemoryLimit,
/// CPUShares, BlockIOWeight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    V1,
    V2,
}

/// The properties a container scope starts with: its slice, the process,
/// delegation (the runtime manages the cgroup below), accounting on for every
/// controller, no default dependencies (a container must not be stopped at
/// shutdown ordering time by unrelated units).
pub fn scope_start(description: &str, slice: &str, pid: u32, flavor: Flavor) -> Vec<Property> {
    let io_accounting = match flavor {
        Flavor::V1 => "BlockIOAccounting",
        Flavor::V2 => "IOAccounting",
    };
    vec![
        prop("Description", Value::Str(description.into())),
        prop("Slice", Value::Str(slice.into())),
        prop("Delegate", Value::Bool(true)),
        prop("PIDs", Value::U32s(vec![pid])),
        prop("MemoryAccounting", Value::Bool(true)),
        prop("CPUAccounting", Value::Bool(true)),
        prop(io_accounting, Value::Bool(true)),
        prop("TasksAccounting", Value::Bool(true)),
        prop("DefaultDependencies", Value::Bool(false)),
    ]
}

/// `OOMPolicy` from `unified["memory.oom.group"]` (only meaningful at start).
pub fn oom_policy(r: &LinuxResources) -> Result<Option<Property>> {
    let Some(v) = r.unified().as_ref().and_then(|u| u.get("memory.oom.group")) else {
        return Ok(None);
    };
    match v.trim() {
        "0" => Ok(Some(prop("OOMPolicy", Value::Str("continue".into())))),
        "1" => Ok(Some(prop("OOMPolicy", Value::Str("kill".into())))),
        other => Err(CgroupError::Invalid(format!(
            "linux.resources.unified[\"memory.oom.group\"]: {other:?} is not 0 or 1"
        ))),
    }
}

/// The resource properties of `r` (devices excluded, see `devices.rs`), and the
/// resources to write to the cgroup files afterwards: the same, except that a
/// CPU quota is rounded up as systemd rounds it (to whole percents of a CPU),
/// so that the files and the unit agree. `version` gives systemd's version
/// (asked only when a property depends on it).
pub fn resources(
    r: &LinuxResources,
    flavor: Flavor,
    version: &dyn Fn() -> u32,
) -> Result<(Vec<Property>, LinuxResources)> {
    let mut out = Vec::new();
    let mut files = r.clone();
    if let Some(m) = r.memory() {
        let limit = m.limit().filter(|&v| v != 0);
        match flavor {
            Flavor::V2 => {
                if let Some(l) = limit {
                    out.push(prop("MemoryMax", Value::U64(limit_value(l))));
                }
                if let Some(v) = m.reservation().filter(|&v| v != 0) {
                    out.push(prop("MemoryLow", Value::U64(limit_value(v))));
                }
                if let Some(s) = memory_swap_to_v2(m.swap(), m.limit())? {
                    out.push(prop("MemorySwapMax", Value::U64(limit_value(s))));
                }
            }
            Flavor::V1 => {
                if let Some(l) = limit {
                    out.push(prop("MemoryLimit", Value::U64(limit_value(l))));
                }
            }
        }
    }
    if let Some(c) = r.cpu() {
        cpu(c, flavor, version, &mut out, &mut files)?;
    }
    if let Some(p) = r.pids() {
        let l = p.limit();
        if l != 0 {
            out.push(prop("TasksMax", Value::U64(limit_value(l))));
        }
    }
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|&w| w != 0)
    {
        out.push(match flavor {
            Flavor::V2 => prop("IOWeight", Value::U64(blkio_weight_to_io_weight(w))),
            Flavor::V1 => prop("BlockIOWeight", Value::U64(u64::from(w))),
        });
    }
    if let (Some(u), Flavor::V2) = (r.unified(), flavor) {
        unified(u, version, &mut out)?;
    }
    Ok((out, files))
}

/// -1 (and any negative value) is "no limit".
fn limit_value(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(INFINITY)
}

fn cpu(
    c: &LinuxCpu,
    flavor: Flavor,
    version: &dyn Fn() -> u32,
    out: &mut Vec<Property>,
    files: &mut LinuxResources,
) -> Result<()> {
    let idle = c.idle() == Some(1) && flavor == Flavor::V2 && version() >= CPU_WEIGHT_IDLE_SINCE;
    if idle {
        // CPUWeight=0 is systemd's way to set cpu.idle=1.
        out.push(prop("CPUWeight", Value::U64(0)));
    } else if let Some(s) = c.shares().filter(|&s| s != 0) {
        out.push(match flavor {
            Flavor::V2 => prop("CPUWeight", Value::U64(cpu_shares_to_weight(s))),
            Flavor::V1 => prop("CPUShares", Value::U64(s)),
        });
    }
    let quota = c.quota().unwrap_or(0);
    let period = c.period().unwrap_or(0);
    let (quota_props, rounded) = cpu_quota(quota, period, version);
    out.extend(quota_props);
    if rounded != quota {
        let mut cpu = c.clone();
        cpu.set_quota(Some(rounded));
        files.set_cpu(Some(cpu));
    }
    if version_allows_cpuset(c, version) {
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.trim().is_empty()) {
            out.push(prop(
                "AllowedCPUs",
                Value::Bytes(range_to_bits(cpus, "cpu.cpus")?),
            ));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.trim().is_empty()) {
            out.push(prop(
                "AllowedMemoryNodes",
                Value::Bytes(range_to_bits(mems, "cpu.mems")?),
            ));
        }
    }
    Ok(())
}

fn version_allows_cpuset(c: &LinuxCpu, version: &dyn Fn() -> u32) -> bool {
    let wanted = [c.cpus(), c.mems()]
        .iter()
        .any(|v| v.as_deref().is_some_and(|s| !s.trim().is_empty()));
    wanted && version() >= ALLOWED_CPUS_SINCE
}

/// `CPUQuotaPeriodUSec` and `CPUQuotaPerSecUSec` for a CFS quota and period
/// (0 = unset), and the quota as systemd will apply it: systemd keeps the
/// quota as a whole percentage of a CPU, so a fractional percent is rounded
/// up (runc does the same, and writes the rounded quota to the files too).
pub fn cpu_quota(quota: i64, period: u64, version: &dyn Fn() -> u32) -> (Vec<Property>, i64) {
    let mut out = Vec::new();
    if period != 0 && version() >= CPU_QUOTA_PERIOD_SINCE {
        out.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
    }
    let mut rounded = quota;
    if quota != 0 || period != 0 {
        let mut per_sec = INFINITY;
        if quota > 0 {
            let period = if period == 0 {
                DEFAULT_CPU_PERIOD
            } else {
                period
            };
            per_sec = (quota as u64).saturating_mul(1_000_000) / period;
            if !per_sec.is_multiple_of(10_000) {
                per_sec = (per_sec / 10_000 + 1) * 10_000;
                rounded = (per_sec.saturating_mul(period) / 1_000_000) as i64;
            }
        }
        out.push(prop("CPUQuotaPerSecUSec", Value::U64(per_sec)));
    }
    (out, rounded)
}

/// The `unified` keys systemd has properties for (the files are written too).
fn unified(
    u: &HashMap<String, String>,
    version: &dyn Fn() -> u32,
    out: &mut Vec<Property>,
) -> Result<()> {
    let mut keys: Vec<&String> = u.keys().collect();
    keys.sort();
    for key in keys {
        let v = u[key].trim();
        let bad = || {
            CgroupError::Invalid(format!(
                "linux.resources.unified[{key:?}]: cannot convert {v:?} for systemd"
            ))
        };
        let number = |v: &str| -> Result<u64> {
            if v == "max" {
                Ok(INFINITY)
            } else {
                v.parse().map_err(|_| bad())
            }
        };
        match key.as_str() {
            "cpu.idle" if v == "1" && version() >= CPU_WEIGHT_IDLE_SINCE => {
                out.push(prop("CPUWeight", Value::U64(0)));
            }
            "cpu.weight" if u.get("cpu.idle").map(|s| s.trim()) != Some("1") => {
                out.push(prop("CPUWeight", Value::U64(v.parse().map_err(|_| bad())?)));
            }
            "cpu.max" => {
                let f: Vec<&str> = v.split_whitespace().collect();
                if f.is_empty() || f.len() > 2 {
                    return Err(bad());
                }
                let quota = if f[0] == "max" {
                    0
                } else {
                    f[0].parse().map_err(|_| bad())?
                };
                let period = match f.get(1) {
                    Some(p) => p.parse().map_err(|_| bad())?,
                    None => DEFAULT_CPU_PERIOD,
                };
                out.extend(cpu_quota(quota, period, version).0);
            }
            "cpuset.cpus" | "cpuset.mems" if version() >= ALLOWED_CPUS_SINCE => {
                let name = if key == "cpuset.cpus" {
                    "AllowedCPUs"
                } else {
                    "AllowedMemoryNodes"
                };
                out.push(prop(name, Value::Bytes(range_to_bits(v, key)?)));
            }
            "memory.high" | "memory.low" | "memory.min" | "memory.max" | "memory.swap.max" => {
                let name = match key.as_str() {
                    "memory.high" => "MemoryHigh",
                    "memory.low" => "MemoryLow",
                    "memory.min" => "MemoryMin",
                    "memory.max" => "MemoryMax",
                    _ => "MemorySwapMax",
                };
                out.push(prop(name, Value::U64(number(v)?)));
            }
            "pids.max" => out.push(prop("TasksMax", Value::U64(number(v)?))),
            // Everything else only goes to the files.
            _ => {}
        }
    }
    Ok(())
}

/// A cpuset list (`0-3,7`) as systemd's bitmask bytes: CPU n is bit n % 8 of
/// byte n / 8.
pub fn range_to_bits(list: &str, field: &str) -> Result<Vec<u8>> {
    let bad = || CgroupError::Invalid(format!("linux.resources.{field}: invalid list {list:?}"));
    let mut bits: Vec<u8> = Vec::new();
    for part in list.trim().split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: usize = lo.parse().map_err(|_| bad())?;
        let hi: usize = hi.parse().map_err(|_| bad())?;
        // The kernel's own limit on CPU numbers is far below this.
        if lo > hi || hi >= 1 << 16 {
            return Err(bad());
        }
        if bits.len() <= hi / 8 {
            bits.resize(hi / 8 + 1, 0);
        }
        for n in lo..=hi {
            bits[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn find<'a>(p: &'a [Property], name: &str) -> Option<&'a Value> {
        p.iter().find(|x| x.name == name).map(|x| &x.value)
    }

    const NEW: &dyn Fn() -> u32 = &|| 252;
    const OLD: &dyn Fn() -> u32 = &|| 241;

    #[test]
    fn v2_resources_become_properties() {
        let r = res(
            r#"{"memory":{"limit":67108864,"reservation":33554432,"swap":134217728},
                        "cpu":{"shares":2048,"quota":50000,"period":100000,"cpus":"0-1,3","mems":"0"},
                        "pids":{"limit":50},"blockIO":{"weight":500}}"#,
        );
        let (p, files) = resources(&r, Flavor::V2, NEW).unwrap();
        assert_eq!(find(&p, "MemoryMax"), Some(&Value::U64(67108864)));
        assert_eq!(find(&p, "MemoryLow"), Some(&Value::U64(33554432)));
        assert_eq!(find(&p, "MemorySwapMax"), Some(&Value::U64(67108864)));
        assert_eq!(find(&p, "CPUWeight"), Some(&Value::U64(174)));
        assert_eq!(find(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100000)));
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500000)));
        assert_eq!(find(&p, "AllowedCPUs"), Some(&Value::Bytes(vec![0b1011])));
        assert_eq!(find(&p, "AllowedMemoryNodes"), Some(&Value::Bytes(vec![1])));
        assert_eq!(find(&p, "TasksMax"), Some(&Value::U64(50)));
        assert_eq!(find(&p, "IOWeight"), Some(&Value::U64(4950)));
        assert_eq!(files, r, "nothing to round");
    }

    #[test]
    fn unlimited_values_are_infinity() {
        let r = res(r#"{"memory":{"limit":-1,"swap":-1},"cpu":{"quota":-1},"pids":{"limit":-1}}"#);
        let (p, _) = resources(&r, Flavor::V2, NEW).unwrap();
        assert_eq!(find(&p, "MemoryMax"), Some(&Value::U64(INFINITY)));
        assert_eq!(find(&p, "MemorySwapMax"), Some(&Value::U64(INFINITY)));
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(INFINITY)));
        assert_eq!(find(&p, "TasksMax"), Some(&Value::U64(INFINITY)));
        // 0 means "not set" for pids and memory.
        let (p, _) = resources(
            &res(r#"{"memory":{"limit":0},"pids":{"limit":0}}"#),
            Flavor::V2,
            NEW,
        )
        .unwrap();
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn fractional_cpu_percent_is_rounded_up_in_both() {
        // 12345 µs per 100 ms = 12.345 % of a CPU -> 13 %.
        let r = res(r#"{"cpu":{"quota":12345,"period":100000}}"#);
        let (p, files) = resources(&r, Flavor::V2, NEW).unwrap();
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(130000)));
        assert_eq!(files.cpu().as_ref().unwrap().quota(), Some(13000));
        // A quota without a period assumes the default period.
        let (p, _) = cpu_quota(25000, 0, NEW);
        assert_eq!(p, vec![prop("CPUQuotaPerSecUSec", Value::U64(250000))]);
    }

    #[test]
    fn old_systemd_gets_only_what_it_knows() {
        let r = res(r#"{"cpu":{"quota":50000,"period":50000,"cpus":"0","idle":1}}"#);
        let (p, _) = resources(&r, Flavor::V2, OLD).unwrap();
        assert_eq!(find(&p, "CPUQuotaPeriodUSec"), None);
        assert_eq!(find(&p, "AllowedCPUs"), None);
        assert_eq!(find(&p, "CPUWeight"), None);
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(1000000)));
        let (p, _) = resources(&r, Flavor::V2, NEW).unwrap();
        assert_eq!(find(&p, "CPUWeight"), Some(&Value::U64(0)), "idle");
    }

    #[test]
    fn v1_uses_the_v1_names() {
        let r = res(
            r#"{"memory":{"limit":1048576,"reservation":5},"cpu":{"shares":512},"blockIO":{"weight":300}}"#,
        );
        let (p, _) = resources(&r, Flavor::V1, NEW).unwrap();
        assert_eq!(find(&p, "MemoryLimit"), Some(&Value::U64(1048576)));
        assert_eq!(find(&p, "MemoryLow"), None);
        assert_eq!(find(&p, "CPUShares"), Some(&Value::U64(512)));
        assert_eq!(find(&p, "BlockIOWeight"), Some(&Value::U64(300)));
        let start = scope_start("d", "s.slice", 7, Flavor::V1);
        assert!(start.iter().any(|p| p.name == "BlockIOAccounting"));
    }

    #[test]
    fn unified_keys_systemd_knows() {
        let r = res(
            r#"{"unified":{"memory.high":"1000000","memory.min":"max","pids.max":"9",
                                    "cpu.max":"max 50000","cpu.weight":"77","cpuset.cpus":"8",
                                    "memory.oom.group":"1","io.max":"ignored"}}"#,
        );
        let (p, _) = resources(&r, Flavor::V2, NEW).unwrap();
        assert_eq!(find(&p, "MemoryHigh"), Some(&Value::U64(1000000)));
        assert_eq!(find(&p, "MemoryMin"), Some(&Value::U64(INFINITY)));
        assert_eq!(find(&p, "TasksMax"), Some(&Value::U64(9)));
        assert_eq!(find(&p, "CPUWeight"), Some(&Value::U64(77)));
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(INFINITY)));
        assert_eq!(find(&p, "AllowedCPUs"), Some(&Value::Bytes(vec![0, 1])));
        assert_eq!(
            oom_policy(&r).unwrap(),
            Some(prop("OOMPolicy", Value::Str("kill".into())))
        );
        let bad = res(r#"{"unified":{"memory.max":"lots"}}"#);
        let e = resources(&bad, Flavor::V2, NEW).unwrap_err();
        assert!(e.to_string().contains("memory.max"), "{e}");
    }

    #[test]
    fn cpu_lists_as_bits() {
        assert_eq!(range_to_bits("0", "f").unwrap(), vec![1]);
        assert_eq!(range_to_bits("0-7,9", "f").unwrap(), vec![0xff, 2]);
        assert_eq!(range_to_bits(" 1 , 3-4 ", "f").unwrap(), vec![0b11010]);
        for bad in ["", "a", "3-1", "1-", "-1", "70000"] {
            assert!(range_to_bits(bad, "f").is_err(), "{bad:?} accepted");
        }
    }
}
