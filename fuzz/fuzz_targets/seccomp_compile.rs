//! The seccomp profile compiler: `seccomp::parse` then `seccomp::compile`.
//! For profiles that compile, the program must be a well-formed cBPF filter
//! the kernel would load: non-empty, at most BPF_MAXINSNS instructions, every
//! jump landing inside the program, and ending in a return. For the others,
//! the error must not be `SeccompError::Internal` (a generator bug).
#![no_main]

use berth_runtime::seccomp::{self, bpf::MAX_INSNS, SockFilter};
use libfuzzer_sys::fuzz_target;

const BPF_CLASS_JMP: u16 = 0x05;
const BPF_CLASS_RET: u16 = 0x06;
const JMP_JA: u16 = 0x05;

fn check_program(p: &[SockFilter]) {
    assert!(!p.is_empty(), "compiled program is empty");
    assert!(p.len() <= MAX_INSNS, "program has {} instructions", p.len());
    let last = p[p.len() - 1];
    assert_eq!(
        last.code & 0x07,
        BPF_CLASS_RET,
        "program does not end in a return: {last:?}"
    );
    for (pc, insn) in p.iter().enumerate() {
        if insn.code & 0x07 != BPF_CLASS_JMP {
            continue;
        }
        let next = pc + 1;
        if insn.code == JMP_JA {
            let to = next as u64 + u64::from(insn.k);
            assert!(
                to < p.len() as u64,
                "ja at {pc} jumps to {to}, program has {}",
                p.len()
            );
        } else {
            for off in [insn.jt, insn.jf] {
                let to = next + usize::from(off);
                assert!(
                    to < p.len(),
                    "jump at {pc} lands at {to}, program has {}",
                    p.len()
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let profile = match seccomp::parse(json) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    match seccomp::compile(&profile) {
        Ok(c) => {
            check_program(c.program());
            let _ = c.filter_flags();
        }
        Err(e) => {
            assert!(
                !matches!(e, seccomp::SeccompError::Internal(_)),
                "compile hit an internal error: {e}"
            );
            let _ = e.to_string();
        }
    }
});
