//! A BPF_PROG_TYPE_CGROUP_DEVICE program generated from OCI device rules (the
//! same scheme as runc's devicefilter), loaded and attached with raw bpf(2).
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` with `access_type = access << 16 | type`. Rules are checked
//! last to first and the first match decides, so the last matching OCI rule
//! wins; when none matches, access is denied.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::{CgroupError, Result};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high nibble.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const LDX_MEM_W: u8 = 0x61;
const ALU_AND_K: u8 = 0x54;
const ALU_RSH_K: u8 = 0x74;
const ALU_MOV_K: u8 = 0xb4;
const ALU_MOV_X: u8 = 0xbc;
const JMP_JNE_K: u8 = 0x55;
const JMP_JNE_X: u8 = 0x5d;
const EXIT: u8 = 0x95;

pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;
pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// Generate the filter program for `rules`. FIFO rules do not apply to device
/// access and are skipped.
pub fn device_filter(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    // r2 = type, r3 = requested access, r4 = major, r5 = minor.
    let mut prog = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for (i, rule) in rules.iter().enumerate().rev() {
        let typ = match rule.typ().unwrap_or_default() {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
            LinuxDeviceType::P => continue,
        };
        let access = parse_access(rule.access().as_deref().unwrap_or("rwm"), i)?;
        let mut checks: Vec<Insn> = Vec::new();
        if let Some(t) = typ {
            checks.push(insn(JMP_JNE_K, 2, 0, 0, t as i32));
        }
        if access != ACC_MKNOD | ACC_READ | ACC_WRITE {
            // Match only if every requested access bit is granted by the rule.
            checks.push(insn(ALU_MOV_X, 1, 3, 0, 0));
            checks.push(insn(ALU_AND_K, 1, 0, 0, access as i32));
            checks.push(insn(JMP_JNE_X, 1, 3, 0, 0));
        }
        for (reg, num) in [(4u8, rule.major()), (5u8, rule.minor())] {
            if let Some(n) = num.filter(|&n| n >= 0) {
                let n = i32::try_from(n).map_err(|_| {
                    CgroupError::Invalid(format!(
                        "linux.resources.devices[{i}]: device number {n} is too large"
                    ))
                })?;
                checks.push(insn(JMP_JNE_K, reg, 0, 0, n));
            }
        }
        // Jumps skip the rest of this rule: its checks plus "r0 = verdict; exit".
        let len = checks.len() + 2;
        for (pos, c) in checks.iter_mut().enumerate() {
            if c.code == JMP_JNE_K || c.code == JMP_JNE_X {
                c.off = (len - pos - 1) as i16;
            }
        }
        let unconditional = checks.is_empty();
        prog.extend(checks);
        prog.push(insn(ALU_MOV_K, 0, 0, 0, i32::from(rule.allow())));
        prog.push(insn(EXIT, 0, 0, 0, 0));
        if unconditional {
            // Earlier rules can never be reached (the verifier refuses dead code).
            return Ok(prog);
        }
    }
    prog.push(insn(ALU_MOV_K, 0, 0, 0, 0));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    Ok(prog)
}

fn parse_access(access: &str, i: usize) -> Result<u32> {
    if access.is_empty() {
        return Ok(ACC_MKNOD | ACC_READ | ACC_WRITE);
    }
    access.chars().try_fold(0, |acc, c| match c {
        'r' => Ok(acc | ACC_READ),
        'w' => Ok(acc | ACC_WRITE),
        'm' => Ok(acc | ACC_MKNOD),
        _ => Err(CgroupError::Invalid(format!(
            "linux.resources.devices[{i}]: invalid access {access:?} (only r, w and m are allowed)"
        ))),
    })
}

/// Evaluate `prog` for one access the way the kernel would; used by tests to
/// check generated programs without a kernel. Supports exactly the
/// instructions [`device_filter`] emits.
pub fn evaluate(prog: &[Insn], dev_type: u32, major: u32, minor: u32, access: u32) -> Option<u32> {
    let ctx = [access << 16 | dev_type, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    while pc < prog.len() {
        let i = prog[pc];
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        match i.code {
            LDX_MEM_W => r[dst] = u64::from(ctx[(i.off / 4) as usize]),
            ALU_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
            ALU_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
            ALU_MOV_K => r[dst] = i.imm as u32 as u64,
            ALU_MOV_X => r[dst] = r[src] as u32 as u64,
            JMP_JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
            JMP_JNE_X if r[dst] != r[src] => pc += i.off as usize,
            JMP_JNE_K | JMP_JNE_X => {}
            EXIT => return Some(r[0] as u32),
            _ => return None,
        }
        pc += 1;
    }
    None
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `union bpf_attr`, as raw bytes large enough for every command used here.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().expect("4 bytes"))
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, zero-padded bpf_attr buffer of the size passed, and
    // every pointer stored in it refers to memory that outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned_fd(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new file descriptor to us.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Load `prog`; the verifier's log is part of the error.
pub fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = Attr::new();
    attr.u32(0, BPF_PROG_TYPE_CGROUP_DEVICE)
        .u32(4, prog.len() as u32)
        .u64(8, prog.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64);
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned_fd(fd)),
        Err(first) => {
            // Retry with the verifier log for a useful message.
            attr.u32(24, 1)
                .u32(28, log.len() as u32)
                .u64(32, log.as_mut_ptr() as u64);
            let _ = bpf(BPF_PROG_LOAD, &mut attr).map(owned_fd);
            let end = log.iter().position(|&b| b == 0).unwrap_or(0);
            Err(CgroupError::Invalid(format!(
                "linux.resources.devices: loading the eBPF device filter failed: {first}: {}",
                String::from_utf8_lossy(&log[..end]).trim()
            )))
        }
    }
}

/// Ids of the device programs attached to the cgroup `cg`.
fn attached(cg: &OwnedFd) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = Attr::new();
    attr.u32(0, cg.as_raw_fd() as u32)
        .u32(4, BPF_CGROUP_DEVICE)
        .u64(16, ids.as_mut_ptr() as u64)
        .u32(24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.get_u32(24) as usize);
    Ok(ids)
}

/// Attach `prog` to the cgroup directory `dir`, then detach the device programs
/// that were there before, so that the cgroup is never left without a filter.
pub fn attach_replacing(dir: &std::path::Path, prog: &OwnedFd) -> Result<()> {
    let err = |what: &str, e: io::Error| {
        CgroupError::Invalid(format!(
            "linux.resources.devices: {what} on {}: {e}",
            dir.display()
        ))
    };
    let cg: OwnedFd = std::fs::File::open(dir)
        .map_err(|e| err("open cgroup", e))?
        .into();
    let old = attached(&cg).map_err(|e| err("query device programs", e))?;
    let mut attr = Attr::new();
    attr.u32(0, cg.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE)
        .u32(12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| err("attach the device filter", e))?;
    for id in old {
        let mut get = Attr::new();
        get.u32(0, id);
        let Ok(fd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut get).map(owned_fd) else {
            continue;
        };
        let mut det = Attr::new();
        det.u32(0, cg.as_raw_fd() as u32)
            .u32(4, fd.as_raw_fd() as u32)
            .u32(8, BPF_CGROUP_DEVICE);
        bpf(BPF_PROG_DETACH, &mut det).map_err(|e| err("detach the previous device filter", e))?;
    }
    Ok(())
}

/// Number of device programs attached to `dir` (for tests and diagnostics).
pub fn attached_count(dir: &std::path::Path) -> Result<usize> {
    let cg: OwnedFd = std::fs::File::open(dir)
        .map_err(|e| crate::fs::io_err(dir, e))?
        .into();
    attached(&cg)
        .map(|v| v.len())
        .map_err(|e| crate::fs::io_err(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    const RWM: u32 = ACC_READ | ACC_WRITE | ACC_MKNOD;

    #[test]
    fn last_matching_rule_wins_and_default_is_deny() {
        let prog = device_filter(&rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":5,"access":"r"},
                {"allow":true,"type":"b","access":"m"},
                {"allow":false,"type":"c","major":1,"minor":3,"access":"w"}]"#,
        ))
        .unwrap();
        let eval = |t, maj, min, acc| evaluate(&prog, t, maj, min, acc).expect("program exits");
        assert_eq!(eval(DEV_CHAR, 1, 3, ACC_READ), 1);
        assert_eq!(
            eval(DEV_CHAR, 1, 3, ACC_WRITE),
            0,
            "the later deny of w wins"
        );
        assert_eq!(
            eval(DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE),
            1,
            "r+w is not a subset of the w rule"
        );
        assert_eq!(eval(DEV_CHAR, 1, 5, ACC_READ), 1);
        assert_eq!(eval(DEV_CHAR, 1, 5, ACC_WRITE), 0);
        assert_eq!(eval(DEV_BLOCK, 8, 0, ACC_MKNOD), 1);
        assert_eq!(eval(DEV_BLOCK, 8, 0, ACC_READ), 0);
        assert_eq!(eval(DEV_CHAR, 1, 7, ACC_READ), 0);
        assert_eq!(eval(DEV_CHAR, 5, 0, RWM), 0);
    }

    #[test]
    fn allow_all_and_empty_rules() {
        let all = device_filter(&rules(r#"[{"allow":true,"access":"rwm"}]"#)).unwrap();
        assert_eq!(evaluate(&all, DEV_BLOCK, 8, 1, RWM), Some(1));
        let none = device_filter(&[]).unwrap();
        assert_eq!(evaluate(&none, DEV_CHAR, 1, 3, ACC_READ), Some(0));
        assert!(device_filter(&rules(r#"[{"allow":true,"access":"rx"}]"#)).is_err());
    }
}
