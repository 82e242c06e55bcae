//! v1 cpuset controller.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::fs::CgDir;
use crate::stats::{parse_cpu_list, CpuSet};
use crate::Result;

pub(super) fn set(d: CgDir, c: &LinuxCpu) -> Result<()> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        d.write("cpuset.cpus", cpus, "cpu.cpus")?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        d.write("cpuset.mems", mems, "cpu.mems")?;
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with empty `cpuset.cpus`/`cpuset.mems`, and no
/// task can join it until they are set: copy them down from the nearest
/// ancestor that has them.
pub(super) fn inherit(dir: &Path, mount: &Path) -> Result<(String, String)> {
    let d = CgDir::new(dir, false);
    let cpus = d.read("cpuset.cpus")?.trim().to_string();
    let mems = d.read("cpuset.mems")?.trim().to_string();
    if (!cpus.is_empty() && !mems.is_empty()) || dir == mount {
        return Ok((cpus, mems));
    }
    let Some(parent) = dir.parent() else {
        return Ok((cpus, mems));
    };
    let (pcpus, pmems) = inherit(parent, mount)?;
    if cpus.is_empty() {
        d.write(
            "cpuset.cpus",
            &pcpus,
            "cpuset.cpus (copied from the parent)",
        )?;
    }
    if mems.is_empty() {
        d.write(
            "cpuset.mems",
            &pmems,
            "cpuset.mems (copied from the parent)",
        )?;
    }
    Ok((
        if cpus.is_empty() { pcpus } else { cpus },
        if mems.is_empty() { pmems } else { mems },
    ))
}

pub(super) fn stats(d: CgDir, s: &mut CpuSet) -> Result<()> {
    s.cpus = parse_cpu_list(&d.read("cpuset.cpus")?);
    s.mems = parse_cpu_list(&d.read("cpuset.mems")?);
    let num = |name: &str| d.read_u64_or_zero(name);
    s.cpu_exclusive = num("cpuset.cpu_exclusive")?;
    s.mem_hardwall = num("cpuset.mem_hardwall")?;
    s.mem_exclusive = num("cpuset.mem_exclusive")?;
    s.memory_migrate = num("cpuset.memory_migrate")?;
    s.memory_spread_page = num("cpuset.memory_spread_page")?;
    s.memory_spread_slab = num("cpuset.memory_spread_slab")?;
    s.memory_pressure = num("cpuset.memory_pressure")?;
    s.sched_load_balance = num("cpuset.sched_load_balance")?;
    s.sched_relax_domain_level = d
        .read("cpuset.sched_relax_domain_level")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(())
}
