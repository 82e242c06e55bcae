//! Policy -> cBPF program.
//!
//! Shape of the program:
//!
//! ```text
//!   A = arch
//!   jeq AUDIT_ARCH_A -> section A ; jeq AUDIT_ARCH_B -> section B ; ...
//!   ret DEFAULT                               (architecture not in the filter)
//! section (one per audit arch):
//!   A = nr
//!   [x86_64 token: jset 0x40000000 -> x32 part | x86_64 part]
//!   ABI part: binary search over number ranges; each range ends in
//!     ret ACTION | the syscall's argument checks | ret -ENOSYS (above the
//!     profile's highest syscall, when the stub applies) | ret DEFAULT
//! ```
//!
//! Consecutive syscall numbers with the same unconditional action form one
//! range, so an allow-list of ~350 syscalls becomes a few dozen ranges.

use super::arch::{Abi, X32_SYSCALL_BIT};
use super::bpf::{Builder, Cond as J, Label};
use super::profile::{AbiRules, Cond, Op, Policy, Rule, RET_ERRNO};

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// What decides the syscalls of one number range.
#[derive(Debug, Clone, PartialEq)]
enum Leaf<'a> {
    Ret(u32),
    Rules(&'a [Rule]),
}

pub(crate) fn generate(p: &Policy) -> Result<Vec<super::bpf::SockFilter>, super::SeccompError> {
    let mut b = Builder::default();
    // Group the ABIs by the audit token the kernel reports.
    let mut sections: Vec<(u32, Vec<(Abi, &AbiRules)>)> = Vec::new();
    for (abi, rules) in &p.abis {
        match sections.iter_mut().find(|(t, _)| *t == abi.audit_arch()) {
            Some((_, v)) => v.push((*abi, rules)),
            None => sections.push((abi.audit_arch(), vec![(*abi, rules)])),
        }
    }
    b.load(OFF_ARCH);
    let labels: Vec<Label> = sections.iter().map(|_| b.label()).collect();
    for ((token, _), l) in sections.iter().zip(&labels) {
        let next = b.label();
        b.jump(J::Eq, *token, *l, next);
        b.bind(next);
    }
    b.ret(p.default_action);
    for ((_, abis), l) in sections.iter().zip(&labels) {
        b.bind(*l);
        b.load(OFF_NR);
        section(&mut b, p, abis);
    }
    let prog = b
        .assemble()
        .map_err(|e| super::SeccompError::Internal(e.0))?;
    if prog.len() > super::bpf::MAX_INSNS {
        return Err(super::SeccompError::TooLarge(prog.len()));
    }
    Ok(prog)
}

/// One audit token; the accumulator holds the syscall number.
fn section(b: &mut Builder, p: &Policy, abis: &[(Abi, &AbiRules)]) {
    let find = |a: Abi| abis.iter().find(|(x, _)| *x == a).map(|(_, r)| *r);
    let (x86_64, x32) = (find(Abi::X86_64), find(Abi::X32));
    if abis[0].0.audit_arch() != Abi::X86_64.audit_arch() {
        return abi_part(b, p, abis[0].0, abis[0].1);
    }
    // x86_64 and x32 share the token; x32 numbers carry bit 30. A mode that
    // is not in the filter gets the default action.
    let (l64, l32) = (b.label(), b.label());
    b.jump(J::Set, X32_SYSCALL_BIT, l32, l64);
    for (l, abi, rules) in [(l64, Abi::X86_64, x86_64), (l32, Abi::X32, x32)] {
        b.bind(l);
        match rules {
            Some(r) => abi_part(b, p, abi, r),
            None => b.ret(p.default_action),
        }
    }
}

fn ranges<'a>(p: &Policy, rules: &'a AbiRules) -> Vec<(u32, Leaf<'a>)> {
    let default = Leaf::Ret(p.default_action);
    let mut out: Vec<(u32, Leaf)> = vec![(0, default.clone())];
    let push = |out: &mut Vec<(u32, Leaf<'a>)>, start: u32, leaf: Leaf<'a>| {
        let same =
            matches!((&out.last().unwrap().1, &leaf), (Leaf::Ret(a), Leaf::Ret(b)) if a == b);
        if !same {
            out.push((start, leaf));
        }
    };
    let mut next: u64 = 0;
    for (nr, r) in &rules.syscalls {
        if u64::from(*nr) > next {
            push(&mut out, next as u32, default.clone());
        }
        let leaf = match r.as_slice() {
            [only] if only.is_unconditional() => Leaf::Ret(only.action),
            _ => Leaf::Rules(r),
        };
        push(&mut out, *nr, leaf);
        next = u64::from(*nr) + 1;
    }
    let tail_start = match rules.max_nr {
        Some(max) if p.enosys_stub => u64::from(max) + 1,
        _ => u64::MAX,
    };
    if next <= u64::from(u32::MAX) && next < tail_start {
        push(&mut out, next as u32, default.clone());
    }
    if tail_start <= u64::from(u32::MAX) {
        push(
            &mut out,
            tail_start as u32,
            Leaf::Ret(RET_ERRNO | libc::ENOSYS as u32),
        );
    }
    out
}

fn abi_part(b: &mut Builder, p: &Policy, abi: Abi, rules: &AbiRules) {
    let r = ranges(p, rules);
    search(b, p, abi, &r);
}

/// Binary search over `r` (sorted by start); the accumulator holds nr.
fn search(b: &mut Builder, p: &Policy, abi: Abi, r: &[(u32, Leaf)]) {
    if let [(_, leaf)] = r {
        return match leaf {
            Leaf::Ret(k) => b.ret(*k),
            Leaf::Rules(rules) => rule_chain(b, p, abi, rules),
        };
    }
    let mid = r.len() / 2;
    let (lo, hi) = (b.label(), b.label());
    b.jump(J::Ge, r[mid].0, hi, lo);
    b.bind(lo);
    search(b, p, abi, &r[..mid]);
    b.bind(hi);
    search(b, p, abi, &r[mid..]);
}

/// Conditional rules of one syscall, first match wins.
fn rule_chain(b: &mut Builder, p: &Policy, abi: Abi, rules: &[Rule]) {
    for rule in rules {
        let next_rule = b.label();
        for c in &rule.conds {
            let ok = b.label();
            cond(b, abi, c, ok, next_rule);
            b.bind(ok);
        }
        b.ret(rule.action);
        b.bind(next_rule);
    }
    b.ret(p.default_action);
}

/// Offsets of the low and high 32-bit words of argument `i`.
fn arg_words(i: u8) -> (u32, u32) {
    let base = OFF_ARGS + 8 * u32::from(i);
    if cfg!(target_endian = "little") {
        (base, base + 4)
    } else {
        (base + 4, base)
    }
}

/// Jump to `ok` when the condition holds, else to `fail`. 64-bit ABIs compare
/// the high word first and the low word only when the high words are equal;
/// 32-bit ABIs compare the low word only (libseccomp's semantics).
fn cond(b: &mut Builder, abi: Abi, c: &Cond, ok: Label, fail: Label) {
    let (lo_off, hi_off) = arg_words(c.index);
    let (v_lo, v_hi) = (c.value as u32, (c.value >> 32) as u32);
    let (d_lo, d_hi) = (c.value_two as u32, (c.value_two >> 32) as u32);
    // LT/LE/NE are the negations of GE/GT/EQ.
    let (op, ok, fail) = match c.op {
        Op::Lt => (Op::Ge, fail, ok),
        Op::Le => (Op::Gt, fail, ok),
        Op::Ne => (Op::Eq, fail, ok),
        o => (o, ok, fail),
    };
    if abi.is_64bit() {
        match op {
            Op::Eq => {
                let l = b.label();
                b.load(hi_off);
                b.jump(J::Eq, v_hi, l, fail);
                b.bind(l);
            }
            Op::Gt | Op::Ge => {
                let (l1, l2) = (b.label(), b.label());
                b.load(hi_off);
                b.jump(J::Gt, v_hi, ok, l1);
                b.bind(l1);
                b.jump(J::Eq, v_hi, l2, fail);
                b.bind(l2);
            }
            Op::MaskedEq => {
                let l = b.label();
                b.load(hi_off);
                b.and(v_hi);
                b.jump(J::Eq, d_hi, l, fail);
                b.bind(l);
            }
            Op::Lt | Op::Le | Op::Ne => unreachable!("negated above"),
        }
    }
    b.load(lo_off);
    match op {
        Op::Eq => b.jump(J::Eq, v_lo, ok, fail),
        Op::Gt => b.jump(J::Gt, v_lo, ok, fail),
        Op::Ge => b.jump(J::Ge, v_lo, ok, fail),
        Op::MaskedEq => {
            b.and(v_lo);
            b.jump(J::Eq, d_lo, ok, fail);
        }
        Op::Lt | Op::Le | Op::Ne => unreachable!("negated above"),
    }
}
