//! ENOSYS for syscalls newer than the profile, EPERM (the default) below it.

use super::*;

/// What the init (after installing with no_new_privs, so right before the exec
/// wait) and the static `sc` need.
const ENOSYS_ALLOWED: &[(&str, libc::c_long)] = &[
    ("read", libc::SYS_read),
    ("write", libc::SYS_write),
    ("open", libc::SYS_open),
    ("openat", libc::SYS_openat),
    ("close", libc::SYS_close),
    ("fstat", libc::SYS_fstat),
    ("newfstatat", libc::SYS_newfstatat),
    ("lseek", libc::SYS_lseek),
    ("mmap", libc::SYS_mmap),
    ("munmap", libc::SYS_munmap),
    ("mprotect", libc::SYS_mprotect),
    ("brk", libc::SYS_brk),
    ("rt_sigaction", libc::SYS_rt_sigaction),
    ("rt_sigprocmask", libc::SYS_rt_sigprocmask),
    ("rt_sigreturn", libc::SYS_rt_sigreturn),
    ("sigaltstack", libc::SYS_sigaltstack),
    ("ioctl", libc::SYS_ioctl),
    ("fcntl", libc::SYS_fcntl),
    ("sendto", libc::SYS_sendto),
    ("sendmsg", libc::SYS_sendmsg),
    ("recvfrom", libc::SYS_recvfrom),
    ("recvmsg", libc::SYS_recvmsg),
    ("execve", libc::SYS_execve),
    ("exit", libc::SYS_exit),
    ("exit_group", libc::SYS_exit_group),
    ("arch_prctl", libc::SYS_arch_prctl),
    ("set_tid_address", libc::SYS_set_tid_address),
    ("set_robust_list", libc::SYS_set_robust_list),
    ("futex", libc::SYS_futex),
    ("getpid", libc::SYS_getpid),
    ("gettid", libc::SYS_gettid),
    ("uname", libc::SYS_uname),
    ("readlink", libc::SYS_readlink),
    ("prlimit64", libc::SYS_prlimit64),
    ("getrandom", libc::SYS_getrandom),
    ("rseq", libc::SYS_rseq),
];

#[test]
fn enosys_above_the_profile_and_eperm_below() {
    let max = ENOSYS_ALLOWED.iter().map(|x| x.1).max().unwrap();
    let newer = libc::SYS_faccessat2; // real, and newer than anything allowed
    assert!(
        newer > max,
        "faccessat2 ({newer}) should be above the profile's highest syscall ({max})"
    );
    let denied = libc::SYS_getppid;
    assert!(denied < max && !ENOSYS_ALLOWED.iter().any(|x| x.1 == denied));

    let mut sb = Sandbox::new("sc-enosys");
    let rootfs = sb.bundle.rootfs();
    install_sc(&sb, &rootfs);
    let calls = [
        format!("{}", libc::SYS_getpid),
        format!("{denied}"),
        format!("{},0,-3,0", libc::SYS_keyctl),
        format!("{newer},-100,s:/,0,0"),
        // Not max + 1: on x86_64 that is 335, uretprobe (Linux 6.11), which
        // raises SIGILL outside a uretprobe trampoline.
        "1000".to_string(),
    ];
    let mut args = vec!["/bin/sc"];
    args.extend(calls.iter().map(String::as_str));
    sb.bundle.args(&args);
    set_nnp(&mut sb.bundle, true);

    // Control without a profile: faccessat2 and getppid work.
    let id = sb.id("control");
    let out = run(&sb, &id);
    out.expect_ok();
    let sc = sc_results(&out);
    assert_eq!(
        sc.len(),
        calls.len(),
        "control: {}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(sc[1].2, 0, "control getppid: {sc:?}");
    assert_eq!(sc[3].2, 0, "control faccessat2: {sc:?}");
    assert_eq!(sc[2].2, 0, "control keyctl: {sc:?}");
    assert_eq!(sc[4].2, libc::ENOSYS, "control syscall 1000: {sc:?}");

    let names: Vec<&str> = ENOSYS_ALLOWED.iter().map(|x| x.0).collect();
    sb.bundle.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": libc::EPERM,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
        }),
    );
    let id = sb.id("c");
    let base = sb.baseline(&id);
    let out = run(&sb, &id);
    out.expect_ok();
    let sc = sc_results(&out);
    assert_eq!(sc.len(), calls.len(), "{}\n{}", out.stdout, out.stderr);
    assert!(sc[0].1 > 0 && sc[0].2 == 0, "getpid is allowed: {sc:?}");
    assert_eq!(sc[1].2, libc::EPERM, "getppid (known, not allowed): {sc:?}");
    assert_eq!(sc[2].2, libc::EPERM, "keyctl (known, not allowed): {sc:?}");
    assert_eq!(
        sc[3].2,
        libc::ENOSYS,
        "faccessat2 (newer than the profile): {sc:?}"
    );
    assert_eq!(sc[4].2, libc::ENOSYS, "1000: {sc:?}");
    base.assert_clean(&sb);
}
