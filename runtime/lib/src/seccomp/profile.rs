//! Validate a `linux.seccomp` section and lower it to a [`Policy`]: per ABI,
//! per syscall number, the ordered rules that decide a syscall.
//!
//! Semantics follow runc + libseccomp:
//! - the host's native ABI is always part of the filter; listed architectures
//!   that cannot execute on this host are skipped;
//! - syscall names unknown to an ABI are skipped (logged at debug level);
//! - a rule whose action equals the default action is redundant and dropped;
//! - several conditions on different arguments are ANDed in one rule; when two
//!   conditions name the same argument, each condition becomes its own rule
//!   (ORed), as runc does;
//! - an unconditional rule for a syscall overrides its conditional rules
//!   (libseccomp keeps the first unconditional rule); otherwise conditional
//!   rules are tried in profile order and the first match decides.
//!
//! Argument comparisons decide exactly like libseccomp 2.5 (checked by
//! running both programs over every syscall number and edge values). One
//! known difference: when two *conditional* rules for the same syscall both
//! match and carry different actions, libseccomp picks by its internal tree
//! order (higher argument index first, then EQ/NE before LT/LE before GT/GE,
//! larger values first) while here the earlier rule wins. Real profiles
//! (Docker, Podman, Kubernetes) contain no such overlaps.

use std::collections::BTreeMap;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};

use super::arch::{self, Abi, ArchSupport};
use super::SeccompError;

pub(crate) const RET_KILL_THREAD: u32 = 0x0000_0000;
pub(crate) const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(crate) const RET_TRAP: u32 = 0x0003_0000;
pub(crate) const RET_ERRNO: u32 = 0x0005_0000;
pub(crate) const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub(crate) const RET_TRACE: u32 = 0x7ff0_0000;
pub(crate) const RET_LOG: u32 = 0x7ffc_0000;
pub(crate) const RET_ALLOW: u32 = 0x7fff_0000;

/// Largest errno a syscall can return (MAX_ERRNO).
const MAX_ERRNO: u32 = 4095;
/// Linux syscalls take at most six arguments.
const MAX_ARGS: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

/// One argument comparison. For `MaskedEq`, `value` is the mask and
/// `value_two` the expected result (libseccomp's datum_a / datum_b).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cond {
    pub index: u8,
    pub op: Op,
    pub value: u64,
    pub value_two: u64,
}

/// Conditions are ANDed; no conditions means the rule always matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub action: u32,
    pub conds: Vec<Cond>,
}

impl Rule {
    pub(crate) fn is_unconditional(&self) -> bool {
        self.conds.is_empty()
    }
}

#[derive(Debug, Default)]
pub(crate) struct AbiRules {
    /// Syscall number -> rules in decision order.
    pub syscalls: BTreeMap<u32, Vec<Rule>>,
    /// Highest syscall number of this ABI named anywhere in the profile
    /// (the bound of the -ENOSYS stub).
    pub max_nr: Option<u32>,
}

impl AbiRules {
    fn add(&mut self, nr: u32, rule: Rule) {
        let rules = self.syscalls.entry(nr).or_default();
        if rules.iter().any(Rule::is_unconditional) {
            return;
        }
        if rule.is_unconditional() {
            rules.clear();
        }
        rules.push(rule);
    }
}

#[derive(Debug)]
pub(crate) struct Policy {
    pub default_action: u32,
    /// Return -ENOSYS for syscall numbers above each ABI's `max_nr`.
    pub enosys_stub: bool,
    pub abis: BTreeMap<Abi, AbiRules>,
    /// SECCOMP_FILTER_FLAG_* requested by the profile (without NEW_LISTENER).
    pub filter_flags: u32,
    pub needs_notify: bool,
    /// Names no ABI of the filter knows.
    pub unknown_names: Vec<String>,
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> SeccompError {
    SeccompError::Invalid {
        field: field.into(),
        msg: msg.into(),
    }
}

/// The filter return value for `action`, with `errno_ret` checked.
pub(crate) fn action_value(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    errno_field: &str,
) -> Result<u32, SeccompError> {
    use LinuxSeccompAction as A;
    let data = match (action, errno_ret) {
        (A::ScmpActErrno, Some(e)) if e > MAX_ERRNO => {
            return Err(invalid(
                errno_field,
                format!("errno {e} is larger than {MAX_ERRNO}"),
            ));
        }
        (A::ScmpActTrace, Some(e)) if e > 0xffff => {
            return Err(invalid(
                errno_field,
                format!("trace value {e} does not fit in 16 bits"),
            ));
        }
        (A::ScmpActErrno | A::ScmpActTrace, e) => e.unwrap_or(libc::EPERM as u32),
        (_, Some(_)) => {
            return Err(invalid(
                errno_field,
                format!(
                    "errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {action}"
                ),
            ));
        }
        (_, None) => 0,
    };
    Ok(match action {
        A::ScmpActKill | A::ScmpActKillThread => RET_KILL_THREAD,
        A::ScmpActKillProcess => RET_KILL_PROCESS,
        A::ScmpActTrap => RET_TRAP,
        A::ScmpActErrno => RET_ERRNO | data,
        A::ScmpActTrace => RET_TRACE | data,
        A::ScmpActLog => RET_LOG,
        A::ScmpActAllow => RET_ALLOW,
        A::ScmpActNotify => RET_USER_NOTIF,
    })
}

fn op(o: LinuxSeccompOperator) -> Op {
    use LinuxSeccompOperator as O;
    match o {
        O::ScmpCmpNe => Op::Ne,
        O::ScmpCmpLt => Op::Lt,
        O::ScmpCmpLe => Op::Le,
        O::ScmpCmpEq => Op::Eq,
        O::ScmpCmpGe => Op::Ge,
        O::ScmpCmpGt => Op::Gt,
        O::ScmpCmpMaskedEq => Op::MaskedEq,
    }
}

pub(crate) fn filter_flag(f: LinuxSeccompFilterFlag) -> u32 {
    use LinuxSeccompFilterFlag as F;
    (match f {
        F::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
        F::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
        F::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        F::SeccompFilterFlagWaitKillableRecv => libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    }) as u32
}

/// The ABIs compiled into the filter, in a stable order.
fn filter_abis(s: &LinuxSeccomp) -> Result<Vec<Abi>, SeccompError> {
    let native = arch::native_abi().ok_or(SeccompError::UnsupportedHost)?;
    let mut abis = vec![native];
    for a in s.architectures().iter().flatten() {
        match arch::classify(*a) {
            ArchSupport::Abi(abi) if !abis.contains(&abi) => abis.push(abi),
            ArchSupport::Abi(_) => {}
            ArchSupport::NoTable => crate::logging::warn(&format!(
                "seccomp: no syscall table for {a}; its syscalls get the default action"
            )),
            ArchSupport::Foreign => {
                crate::logging::debug(&format!("seccomp: {a} cannot run on this host, skipped"))
            }
        }
    }
    abis.sort();
    Ok(abis)
}

/// The rules one syscall entry contributes (before name resolution).
fn entry_rules(i: usize, sc: &LinuxSyscall, action: u32) -> Result<Vec<Rule>, SeccompError> {
    let mut conds = Vec::new();
    let mut per_index = [0usize; MAX_ARGS];
    for (j, a) in sc.args().iter().flatten().enumerate() {
        if a.index() >= MAX_ARGS {
            return Err(invalid(
                format!("linux.seccomp.syscalls[{i}].args[{j}].index"),
                format!(
                    "{} is out of range: syscalls have {MAX_ARGS} arguments (0-5)",
                    a.index()
                ),
            ));
        }
        per_index[a.index()] += 1;
        conds.push(Cond {
            index: a.index() as u8,
            op: op(a.op()),
            value: a.value(),
            value_two: a.value_two().unwrap_or(0),
        });
    }
    if per_index.iter().any(|&n| n > 1) {
        Ok(conds
            .into_iter()
            .map(|c| Rule {
                action,
                conds: vec![c],
            })
            .collect())
    } else {
        Ok(vec![Rule { action, conds }])
    }
}

fn check_names(i: usize, sc: &LinuxSyscall) -> Result<(), SeccompError> {
    if sc.names().is_empty() {
        return Err(invalid(
            format!("linux.seccomp.syscalls[{i}].names"),
            "must contain at least one syscall name",
        ));
    }
    for (j, n) in sc.names().iter().enumerate() {
        if n.is_empty() {
            return Err(invalid(
                format!("linux.seccomp.syscalls[{i}].names[{j}]"),
                "empty syscall name",
            ));
        }
        // The runtime's init must still be able to write to its parent after
        // the filter is installed; runc refuses this for the same reason.
        if n == "write" && sc.action() == LinuxSeccompAction::ScmpActNotify {
            return Err(invalid(
                format!("linux.seccomp.syscalls[{i}].action"),
                "SCMP_ACT_NOTIFY cannot be used for the write syscall",
            ));
        }
    }
    Ok(())
}

fn check_listener(s: &LinuxSeccomp, needs_notify: bool) -> Result<(), SeccompError> {
    if s.listener_metadata().is_some() && s.listener_path().is_none() {
        return Err(invalid(
            "linux.seccomp.listenerMetadata",
            "must not be set without linux.seccomp.listenerPath",
        ));
    }
    if let Some(p) = s.listener_path() {
        if !p.is_absolute() {
            return Err(invalid(
                "linux.seccomp.listenerPath",
                format!("{} is not an absolute path", p.display()),
            ));
        }
    } else if needs_notify {
        return Err(invalid(
            "linux.seccomp.listenerPath",
            "required when a rule uses SCMP_ACT_NOTIFY",
        ));
    }
    Ok(())
}

pub(crate) fn lower(s: &LinuxSeccomp) -> Result<Policy, SeccompError> {
    let default_action = action_value(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    if default_action == RET_USER_NOTIF {
        return Err(invalid(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action",
        ));
    }
    let abi_list = filter_abis(s)?;
    let mut abis: BTreeMap<Abi, AbiRules> =
        abi_list.iter().map(|a| (*a, AbiRules::default())).collect();
    let mut needs_notify = false;
    let mut unknown_names = Vec::new();

    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        check_names(i, sc)?;
        let action = action_value(
            sc.action(),
            sc.errno_ret(),
            &format!("linux.seccomp.syscalls[{i}].errnoRet"),
        )?;
        needs_notify |= action == RET_USER_NOTIF;
        let rules = entry_rules(i, sc, action)?;
        let redundant = action == default_action;
        for name in sc.names() {
            let mut known = false;
            for (abi, abi_rules) in abis.iter_mut() {
                let Some(nr) = abi.syscall_nr(name) else {
                    continue;
                };
                known = true;
                abi_rules.max_nr = abi_rules.max_nr.max(Some(nr));
                if !redundant {
                    for r in &rules {
                        abi_rules.add(nr, r.clone());
                    }
                }
            }
            if !known && !unknown_names.contains(name) {
                unknown_names.push(name.clone());
            }
        }
    }
    check_listener(s, needs_notify)?;

    let filter_flags = s
        .flags()
        .iter()
        .flatten()
        .fold(0, |acc, f| acc | filter_flag(*f));
    let permissive = matches!(
        s.default_action(),
        LinuxSeccompAction::ScmpActAllow
            | LinuxSeccompAction::ScmpActLog
            | LinuxSeccompAction::ScmpActTrace
    );
    let enosys_stub = !permissive && default_action != (RET_ERRNO | libc::ENOSYS as u32);
    Ok(Policy {
        default_action,
        enosys_stub,
        abis,
        filter_flags,
        needs_notify,
        unknown_names,
    })
}
