//! The process fields beyond user, capabilities and rlimits: LSM labels
//! (AppArmor, SELinux), personality, I/O priority, scheduler, CPU affinity at
//! exec, and the NUMA memory policy.
//!
//! [`check`] runs in `create`/`exec` before anything is made, so a field this
//! host cannot honour fails cleanly; the `apply_*` functions run in the
//! container's process.

use oci_spec::runtime::{
    IOPriorityClass, Linux, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, Process,
};

use crate::error::{Error, Result};

/// AppArmor is usable: the module is loaded and enabled.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim() == "Y")
        .unwrap_or(false)
}

/// SELinux is usable: selinuxfs is mounted.
pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Refuse what this host cannot do, naming the field.
pub fn check(process: &Process, linux: Option<&Linux>) -> Result<()> {
    if process
        .apparmor_profile()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
        && !apparmor_enabled()
    {
        return Err(Error::Config("field process.apparmorProfile: a profile is set but AppArmor is not enabled on this host".into()));
    }
    if process
        .selinux_label()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
        && !selinux_enabled()
    {
        return Err(Error::Config(
            "field process.selinuxLabel: a label is set but SELinux is not enabled on this host"
                .into(),
        ));
    }
    if let Some(io) = process.io_priority() {
        if !(0..=7).contains(&io.priority()) {
            return Err(Error::Config(format!(
                "field process.ioPriority.priority: {} is outside 0..7",
                io.priority()
            )));
        }
    }
    if let Some(a) = process.exec_cpu_affinity() {
        if let Some(s) = a.initial() {
            parse_cpu_list(s).map_err(|e| {
                Error::Config(format!("field process.execCPUAffinity.initial: {e}"))
            })?;
        }
        if let Some(s) = a.cpu_affinity_final() {
            parse_cpu_list(s)
                .map_err(|e| Error::Config(format!("field process.execCPUAffinity.final: {e}")))?;
        }
    }
    if let Some(l) = linux {
        if l.mount_label().as_deref().is_some_and(|p| !p.is_empty()) && !selinux_enabled() {
            return Err(Error::Config(
                "field linux.mountLabel: a label is set but SELinux is not enabled on this host"
                    .into(),
            ));
        }
        if l.intel_rdt().is_some() {
            return Err(Error::Config(
                "field linux.intelRdt: Intel RDT (resctrl) is not supported by berth".into(),
            ));
        }
        if let Some(p) = l.personality() {
            if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
                return Err(Error::Config(
                    "field linux.personality.flags: no personality flags are supported".into(),
                ));
            }
        }
        if let Some(m) = l.memory_policy() {
            let nodes = match m.nodes().as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                Some(n) => parse_cpu_list(n)
                    .map_err(|e| {
                        Error::Config(format!(
                            "invalid memory policy nodes: field linux.memoryPolicy.nodes \"{n}\": {e}"
                        ))
                    })?
                    .iter()
                    .map(|w| w.count_ones())
                    .sum(),
                None => 0,
            };
            if matches!(
                m.mode(),
                MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal
            ) && nodes != 0
            {
                return Err(Error::Config(format!(
                    "field linux.memoryPolicy: {:?}: mode requires 0 nodes but got {nodes}",
                    m.mode()
                )));
            }
        }
    }
    Ok(())
}

/// Parse a Linux list like `0-3,7` into a bitmap of u64 words.
pub fn parse_cpu_list(s: &str) -> std::result::Result<Vec<u64>, String> {
    let mut words: Vec<u64> = Vec::new();
    let s = s.trim();
    if s.is_empty() {
        return Err("empty list".into());
    }
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: usize = a
            .trim()
            .parse()
            .map_err(|_| format!("\"{part}\" is not a number or range"))?;
        let b: usize = b
            .trim()
            .parse()
            .map_err(|_| format!("\"{part}\" is not a number or range"))?;
        if a > b || b >= 8192 {
            return Err(format!("bad range \"{part}\""));
        }
        for i in a..=b {
            if words.len() <= i / 64 {
                words.resize(i / 64 + 1, 0);
            }
            words[i / 64] |= 1 << (i % 64);
        }
    }
    Ok(words)
}

fn set_affinity(list: &str, field: &str) -> Result<()> {
    let words = parse_cpu_list(list).map_err(|e| Error::Config(format!("field {field}: {e}")))?;
    // SAFETY: the mask buffer is words.len() * 8 bytes long. Raw because the
    // safe wrappers (nix's and rustix's CpuSet) hold a 1024-CPU cpu_set_t,
    // while the kernel, and this list, take CPUs up to CONFIG_NR_CPUS (8192).
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            0,
            words.len() * 8,
            words.as_ptr(),
        )
    };
    if r != 0 {
        return Err(Error::Config(format!(
            "field {field} \"{list}\": sched_setaffinity: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// `execCPUAffinity.initial`: as the process enters the container.
pub fn apply_initial_affinity(process: &Process) -> Result<()> {
    match process
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.initial().as_deref())
    {
        Some(l) => set_affinity(l, "process.execCPUAffinity.initial"),
        None => Ok(()),
    }
}

/// Without `execCPUAffinity.initial`, a process joining the container does
/// not keep the affinity of the runtime that started it (`taskset -c 0 berth
/// exec ...`): it may run on every CPU, which the kernel narrows to the
/// cgroup's cpuset. Called once the process is in the container's cgroup.
pub fn reset_affinity_unless_initial(process: &Process) -> Result<()> {
    if process
        .exec_cpu_affinity()
        .as_ref()
        .is_some_and(|a| a.initial().is_some())
    {
        return Ok(());
    }
    // Every CPU number the kernel supports (CONFIG_NR_CPUS is at most 8192).
    let all = [u64::MAX; 8192 / 64];
    // SAFETY: the mask buffer is all.len() * 8 bytes long. Raw for the same
    // reason as in `set_affinity`: a 1024-CPU CpuSet could not name them all.
    let r = unsafe { libc::syscall(libc::SYS_sched_setaffinity, 0, all.len() * 8, all.as_ptr()) };
    if r != 0 {
        return Err(Error::Other(format!(
            "reset the CPU affinity: sched_setaffinity: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Everything but the initial affinity, in the container's namespaces, while
/// the process still has its privileges.
pub fn apply(process: &Process) -> Result<()> {
    if let Some(p) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        write_attr(
            &["self/attr/apparmor/exec", "self/attr/exec"],
            &format!("exec {p}"),
            "process.apparmorProfile",
        )?;
    }
    if let Some(l) = process.selinux_label().as_deref().filter(|p| !p.is_empty()) {
        write_attr(&["self/attr/exec"], l, "process.selinuxLabel")?;
    }
    if let Some(io) = process.io_priority() {
        let class: i64 = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        // ioprio_set(IOPRIO_WHO_PROCESS, 0 = self, class << 13 | data)
        // SAFETY: plain syscall with integer arguments.
        if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, (class << 13) | io.priority()) } != 0
        {
            return Err(Error::Config(format!(
                "field process.ioPriority: ioprio_set: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    if let Some(s) = process.scheduler() {
        set_scheduler(s)?;
    }
    if let Some(l) = process
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.cpu_affinity_final().as_deref())
    {
        set_affinity(l, "process.execCPUAffinity.final")?;
    }
    Ok(())
}

fn write_attr(paths: &[&str], value: &str, field: &str) -> Result<()> {
    let mut last = None;
    for p in paths {
        match crate::safe_proc::write(p, value.as_bytes()) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e.to_string()),
        }
    }
    Err(Error::Config(format!(
        "field {field} \"{value}\": {}",
        last.unwrap_or_default()
    )))
}

#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

fn set_scheduler(s: &oci_spec::runtime::Scheduler) -> Result<()> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().as_deref().unwrap_or(&[]) {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    };
    // SAFETY: sched_setattr(0 = self, attr, 0) with a correctly sized struct.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } != 0 {
        return Err(Error::Config(format!(
            "field process.scheduler: sched_setattr: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// `linux.personality`.
pub fn apply_personality(linux: &Linux) -> Result<()> {
    let Some(p) = linux.personality() else {
        return Ok(());
    };
    let persona: libc::c_int = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    // The execution domain is the low byte; nix's Persona names only the flags.
    let persona = nix::sys::personality::Persona::from_bits_retain(persona);
    if let Err(e) = nix::sys::personality::set(persona) {
        return Err(Error::Config(format!(
            "field linux.personality: {}",
            std::io::Error::from(e)
        )));
    }
    Ok(())
}

/// `linux.memoryPolicy`: set_mempolicy(2) for the container's process.
pub fn apply_memory_policy(linux: &Linux) -> Result<()> {
    let Some(m) = linux.memory_policy() else {
        return Ok(());
    };
    let mut mode: i64 = match m.mode() {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    };
    for f in m.flags().as_deref().unwrap_or(&[]) {
        mode |= match f {
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
        };
    }
    let words = match m.nodes() {
        Some(n) if !n.trim().is_empty() => parse_cpu_list(n)
            .map_err(|e| Error::Config(format!("field linux.memoryPolicy.nodes: {e}")))?,
        _ => Vec::new(),
    };
    let (ptr, maxnode) = if words.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (words.as_ptr(), words.len() * 64 + 1)
    };
    // SAFETY: the node mask covers maxnode - 1 bits.
    if unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) } != 0 {
        return Err(Error::Config(format!(
            "field linux.memoryPolicy: set_mempolicy: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_list;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0").unwrap(), vec![1]);
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0b100111]);
        assert_eq!(parse_cpu_list("64").unwrap(), vec![0, 1]);
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
    }
}
