//! Unit tests: programs are run through a small cBPF interpreter, so every
//! architecture path (x86, x32, foreign tokens) is checked, not only the
//! host's.

use super::arch::{AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use super::bpf::{self, SockFilter};
use super::cmp_reference::{holds as reference, EDGES, OPS};
use super::profile::*;
use super::*;

const ERRNO_ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;
const ERRNO_EPERM: u32 = RET_ERRNO | libc::EPERM as u32;

/// Run `prog` on a `struct seccomp_data`.
fn run(prog: &[SockFilter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&nr.to_ne_bytes());
    data.extend_from_slice(&arch.to_ne_bytes());
    data.extend_from_slice(&0u64.to_ne_bytes());
    for a in args {
        data.extend_from_slice(&a.to_ne_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            bpf::LD_W_ABS => {
                let o = i.k as usize;
                acc = u32::from_ne_bytes(data[o..o + 4].try_into().unwrap());
            }
            bpf::ALU_AND_K => acc &= i.k,
            bpf::JMP_JA => pc += i.k as usize,
            bpf::RET_K => return i.k,
            code => {
                let taken = match code {
                    0x15 => acc == i.k,
                    0x25 => acc > i.k,
                    0x35 => acc >= i.k,
                    0x45 => acc & i.k != 0,
                    _ => panic!("unexpected opcode {code:#x}"),
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
        }
    }
}

fn profile(json: serde_json::Value) -> LinuxSeccomp {
    parse(&json.to_string()).expect("valid profile")
}

fn prog(json: serde_json::Value) -> Vec<SockFilter> {
    compile(&profile(json)).expect("compiles").program
}

fn nr(name: &str) -> u32 {
    arch::Abi::X86_64.syscall_nr(name).unwrap()
}

#[test]
fn every_operator_on_both_halves_of_64_bit_arguments() {
    for op in OPS {
        for &v in &EDGES {
            let v2 = v & 0x0000_00ff_0000_00ff;
            let p = prog(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77,
                              "args": [{"index": 2, "value": v, "valueTwo": v2, "op": op}]}]
            }));
            for &a in &EDGES {
                let mut args = [0; 6];
                args[2] = a;
                let got = run(&p, AUDIT_ARCH_X86_64, nr("getppid"), args) == RET_ERRNO | 77;
                assert_eq!(
                    got,
                    reference(op, a, v, v2),
                    "x86_64 {op} arg {a:#x} value {v:#x}"
                );
                // i386 compares the low word only, like libseccomp.
                let i386 = arch::Abi::X86.syscall_nr("getppid").unwrap();
                let got = run(&p, AUDIT_ARCH_I386, i386, args) == RET_ERRNO | 77;
                let want = reference(op, a & 0xffff_ffff, v & 0xffff_ffff, v2 & 0xffff_ffff);
                assert_eq!(got, want, "x86 {op} arg {a:#x} value {v:#x}");
            }
        }
    }
}

#[test]
fn conditions_are_anded_and_repeated_indexes_ored() {
    let p = prog(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let r = |name, a0, a1| run(&p, AUDIT_ARCH_X86_64, nr(name), [a0, a1, 0, 0, 0, 0]);
    assert_eq!(r("getppid", 1, 2), ERRNO_EPERM);
    assert_eq!(r("getppid", 1, 3), RET_ALLOW);
    assert_eq!(r("getppid", 0, 2), RET_ALLOW);
    assert_eq!(r("getpid", 1, 0), ERRNO_EPERM);
    assert_eq!(r("getpid", 2, 0), ERRNO_EPERM);
    assert_eq!(r("getpid", 3, 0), RET_ALLOW);
}

#[test]
fn first_matching_rule_wins_and_unconditional_overrides() {
    let p = prog(serde_json::json!({
        "defaultAction": "SCMP_ACT_KILL_PROCESS",
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 10,
             "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_GT"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11,
             "args": [{"index": 0, "value": 7, "op": "SCMP_CMP_GT"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    let r = |name, a0| run(&p, AUDIT_ARCH_X86_64, nr(name), [a0, 0, 0, 0, 0, 0]);
    assert_eq!(r("getppid", 9), RET_ERRNO | 10);
    assert_eq!(r("getppid", 0), RET_ALLOW);
    assert_eq!(r("getppid", 3), RET_KILL_PROCESS);
    assert_eq!(r("getpid", 0), RET_ALLOW);
}

#[test]
fn actions_encode_like_the_kernel_expects() {
    let cases = [
        ("SCMP_ACT_KILL", None, RET_KILL_THREAD),
        ("SCMP_ACT_KILL_THREAD", None, RET_KILL_THREAD),
        ("SCMP_ACT_KILL_PROCESS", None, RET_KILL_PROCESS),
        ("SCMP_ACT_TRAP", None, RET_TRAP),
        ("SCMP_ACT_ERRNO", None, ERRNO_EPERM),
        ("SCMP_ACT_ERRNO", Some(38), ERRNO_ENOSYS),
        ("SCMP_ACT_TRACE", Some(9), RET_TRACE | 9),
        ("SCMP_ACT_TRACE", None, RET_TRACE | 1),
        ("SCMP_ACT_LOG", None, RET_LOG),
        ("SCMP_ACT_NOTIFY", None, RET_USER_NOTIF),
    ];
    for (action, errno, want) in cases {
        let mut rule = serde_json::json!({"names": ["getppid"], "action": action});
        if let Some(e) = errno {
            rule["errnoRet"] = e.into();
        }
        let p = prog(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock", "syscalls": [rule]
        }));
        assert_eq!(
            run(&p, AUDIT_ARCH_X86_64, nr("getppid"), [0; 6]),
            want,
            "{action}"
        );
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, nr("getpid"), [0; 6]), RET_ALLOW);
    }
    let p = prog(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 123}));
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, 0, [0; 6]), RET_ERRNO | 123);
}

#[test]
fn enosys_above_the_profiles_highest_syscall() {
    let json = |default: &str| {
        serde_json::json!({
            "defaultAction": default,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["read", "write", "futex_waitv", "kexec_load"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]
        })
    };
    let p = prog(json("SCMP_ACT_ERRNO"));
    let x64 = |n| run(&p, AUDIT_ARCH_X86_64, n, [0; 6]);
    assert_eq!(x64(nr("read")), RET_ALLOW);
    assert_eq!(x64(nr("futex_waitv")), RET_ALLOW);
    assert_eq!(x64(nr("mount")), ERRNO_EPERM);
    assert_eq!(
        x64(nr("unshare")),
        ERRNO_EPERM,
        "known but below the maximum"
    );
    assert_eq!(x64(nr("futex_waitv") + 1), ERRNO_ENOSYS);
    assert_eq!(x64(nr("clone3")), ERRNO_EPERM);
    assert_eq!(x64(1000), ERRNO_ENOSYS);
    assert_eq!(x64(u32::MAX), ERRNO_ENOSYS);
    // x32 and i386 each use their own table and maximum.
    let x32 = |name: &str| arch::Abi::X32.syscall_nr(name).unwrap();
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, x32("read"), [0; 6]), RET_ALLOW);
    assert_eq!(
        run(&p, AUDIT_ARCH_X86_64, x32("mount"), [0; 6]),
        ERRNO_EPERM
    );
    // x32's kexec_load (528) lies in the legacy x32 range above futex_waitv.
    assert_eq!(
        run(&p, AUDIT_ARCH_X86_64, x32("futex_waitv") + 1, [0; 6]),
        ERRNO_EPERM
    );
    assert_eq!(
        run(&p, AUDIT_ARCH_X86_64, x32("kexec_load"), [0; 6]),
        RET_ALLOW
    );
    assert_eq!(
        run(&p, AUDIT_ARCH_X86_64, x32("kexec_load") + 1, [0; 6]),
        ERRNO_ENOSYS
    );
    assert_eq!(
        run(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 1000, [0; 6]),
        ERRNO_ENOSYS
    );
    let i386 = |name: &str| arch::Abi::X86.syscall_nr(name).unwrap();
    assert_eq!(run(&p, AUDIT_ARCH_I386, i386("read"), [0; 6]), RET_ALLOW);
    assert_eq!(
        run(&p, AUDIT_ARCH_I386, i386("futex_waitv") + 1, [0; 6]),
        ERRNO_ENOSYS
    );
    // A permissive default has no stub.
    let p = prog(json("SCMP_ACT_ALLOW"));
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, 1000, [0; 6]), RET_ALLOW);
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, nr("mount"), [0; 6]), ERRNO_EPERM);
}

#[test]
fn unlisted_architectures_and_x32_get_the_default_action() {
    let p = prog(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 99,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, 0, [0; 6]), RET_ALLOW);
    assert_eq!(
        run(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, [0; 6]),
        RET_ERRNO | 99
    );
    assert_eq!(run(&p, AUDIT_ARCH_I386, 3, [0; 6]), RET_ERRNO | 99);
    assert_eq!(run(&p, AUDIT_ARCH_AARCH64, 63, [0; 6]), RET_ERRNO | 99);
    // The native architecture is always in the filter, as with libseccomp.
    let p = prog(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X32", "SCMP_ARCH_MIPS"],
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, 0, [0; 6]), RET_ALLOW);
    assert_eq!(
        run(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, [0; 6]),
        RET_ALLOW
    );
}

#[test]
fn unknown_names_are_skipped() {
    let s = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["no_such_call", "read"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let policy = lower(&s).unwrap();
    assert_eq!(policy.unknown_names, vec!["no_such_call".to_string()]);
    let p = compile(&s).unwrap().program;
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, 0, [0; 6]), RET_ALLOW);
}

#[test]
fn long_programs_use_trampolines_and_still_decide_correctly() {
    // Every x86_64 syscall with its own conditional rule: far more than 255
    // instructions between the search tree's branches.
    let names: Vec<&str> = syscall_table::X86_64.iter().map(|(n, _)| *n).collect();
    let rules: Vec<_> = names
        .iter()
        .map(|n| serde_json::json!({"names": [n], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 + nr(n) % 1000,
                                     "args": [{"index": 1, "value": 0x1_0000_0000u64, "op": "SCMP_CMP_GE"}]}))
        .collect();
    let p = prog(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}));
    assert!(p.len() > 1000, "{}", p.len());
    for n in names {
        let k = nr(n);
        assert_eq!(
            run(&p, AUDIT_ARCH_X86_64, k, [0, 1 << 32, 0, 0, 0, 0]),
            RET_ERRNO | (1 + k % 1000)
        );
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, k, [0, 5, 0, 0, 0, 0]), RET_ALLOW);
    }
}

#[test]
fn too_large_programs_are_refused() {
    let rules: Vec<_> = (0..2000)
        .map(|i| {
            serde_json::json!({"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
                                    "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}]})
        })
        .collect();
    let s = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}));
    assert!(matches!(compile(&s), Err(SeccompError::TooLarge(_))));
}

fn invalid_field(json: serde_json::Value) -> String {
    match parse(&json.to_string()).and_then(|s| compile(&s)) {
        Err(SeccompError::Invalid { field, msg }) => {
            assert!(!msg.is_empty());
            field
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn invalid_profiles_name_the_field() {
    let f = invalid_field(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                     {"names": ["write"], "action": "SCMP_ACT_SOMETHING"}]}));
    assert_eq!(f, "linux.seccomp.syscalls[1].action");
    let f = invalid_field(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]}));
    assert_eq!(f, "linux.seccomp.architectures[1]");
    let f = invalid_field(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}));
    assert_eq!(f, "linux.seccomp.syscalls[0].args[0].op");
    let f = invalid_field(serde_json::json!({"defaultAction": "SCMP_ACT_FOO"}));
    assert_eq!(f, "linux.seccomp.defaultAction");
    let f = invalid_field(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                     {"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5}]}));
    assert_eq!(f, "linux.seccomp.syscalls[1].errnoRet");
    let f =
        invalid_field(serde_json::json!({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 5}));
    assert_eq!(f, "linux.seccomp.defaultErrnoRet");
    let f = invalid_field(
        serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5000}),
    );
    assert_eq!(f, "linux.seccomp.defaultErrnoRet");
    let f = invalid_field(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}));
    assert_eq!(f, "linux.seccomp.syscalls[0].args[0].index");
    let f = invalid_field(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}));
    assert_eq!(f, "linux.seccomp.syscalls[0].names");
    let f = invalid_field(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY",
        "listenerPath": "/run/a.sock"}));
    assert_eq!(f, "linux.seccomp.defaultAction");
    let f = invalid_field(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}));
    assert_eq!(f, "linux.seccomp.listenerPath");
    let f = invalid_field(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "listenerMetadata": "x"}));
    assert_eq!(f, "linux.seccomp.listenerMetadata");
    let f = invalid_field(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
        "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert_eq!(f, "linux.seccomp.syscalls[0].action");
    let f = invalid_field(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}));
    assert_eq!(f, "linux.seccomp.flags[0]");
}

#[test]
fn flags_and_notify() {
    let c = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                  "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
    })))
    .unwrap();
    assert!(!c.needs_notify());
    assert_eq!(
        c.filter_flags(),
        (libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW) as u32
    );
    let c = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap();
    assert!(c.needs_notify());
    let want = libc::SECCOMP_FILTER_FLAG_TSYNC
        | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
        | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
        | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    assert_eq!(c.filter_flags(), want as u32);
}

#[test]
fn cache_roundtrip_and_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let s = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let fresh = compile(&s).unwrap();
    let first = compile_cached(&s, Some(dir.path())).unwrap();
    assert_eq!(first, fresh);
    let file = cache_path(&s, dir.path()).unwrap();
    assert!(file.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary files left"
    );
    let key = cache::key(&s).unwrap();
    assert_eq!(cache::load(dir.path(), &key).unwrap(), fresh);
    // A truncated or foreign file is ignored and rewritten.
    let data = std::fs::read(&file).unwrap();
    std::fs::write(&file, &data[..data.len() - 3]).unwrap();
    assert!(cache::load(dir.path(), &key).is_none());
    assert_eq!(compile_cached(&s, Some(dir.path())).unwrap(), fresh);
    assert_eq!(std::fs::read(&file).unwrap(), data);
    // A different profile gets a different file.
    let other = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    assert_ne!(cache_path(&other, dir.path()).unwrap(), file);
}

/// Only the cache directory itself is 0700; missing parents (the runtime's
/// `--root`) get the default mode, as `create_dir_all` gives them.
#[test]
fn cache_creates_only_its_own_dir_private() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let cache_dir = t.path().join("root/nested/@seccomp-cache");
    let s = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    compile_cached(&s, Some(&cache_dir)).unwrap();
    assert!(cache_path(&s, &cache_dir).unwrap().exists());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // What create_dir_all makes under this process's umask.
    let reference = t.path().join("reference");
    std::fs::create_dir_all(&reference).unwrap();
    assert_eq!(mode(&cache_dir), 0o700);
    assert_eq!(mode(&t.path().join("root")), mode(&reference));
    assert_eq!(mode(&t.path().join("root/nested")), mode(&reference));
    // An existing directory is fine.
    compile_cached(&s, Some(&cache_dir)).unwrap();
}

#[test]
fn bpf_max_is_the_kernel_limit() {
    assert_eq!(bpf::MAX_INSNS, 4096);
}

#[test]
fn features_lists_what_compiles_here() {
    let f = features();
    assert_eq!(f["actions"].as_array().unwrap().len(), 9);
    assert_eq!(f["operators"].as_array().unwrap().len(), 7);
    let archs = f["archs"].as_array().unwrap();
    if cfg!(target_arch = "x86_64") {
        assert_eq!(archs.len(), 3, "{f}");
        assert!(archs.contains(&"SCMP_ARCH_X32".into()));
    }
    // Every kernel with seccomp notify (5.0+) knows TSYNC and LOG.
    let supported = f["supportedFlags"].as_array().unwrap();
    assert!(
        supported.contains(&"SECCOMP_FILTER_FLAG_TSYNC".into()),
        "{f}"
    );
    assert!(supported.contains(&"SECCOMP_FILTER_FLAG_LOG".into()), "{f}");
}
