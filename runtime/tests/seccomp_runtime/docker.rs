//! Docker's default profile, with and without no_new_privileges.

use super::*;

/// Things Docker's profile denies (with CAP_SYS_ADMIN present) and things
/// ordinary programs do.
fn docker_script() -> String {
    format!(
        "{T_FN}
rm -rf /tmp/d /tmp/m /tmp/swapfile
t status grep Seccomp: /proc/self/status
t nnp grep NoNewPrivs: /proc/self/status
t unshare_user unshare -U true
t unshare_root unshare -r true
t unshare_mnt unshare -m true
mkdir -p /tmp/m
t mount mount -t tmpfs none /tmp/m
dd if=/dev/zero of=/tmp/swapfile bs=4096 count=16 2>/dev/null
t swapon swapon /tmp/swapfile
t keyctl sc {keyctl},0,-3,0
t sh sh -c 'echo sub'
t ls ls /bin/busybox
t mkdir mkdir /tmp/d
t write sh -c 'echo hello > /tmp/d/f'
t cat cat /tmp/d/f
t chmod chmod 600 /tmp/d/f
t date date
t id id -u
t bg sh -c 'sleep 0.01 & wait'
t pipe sh -c 'echo abc | tr a-c x-z | grep xyz'
",
        keyctl = libc::SYS_keyctl
    )
}

fn docker_default_profile(nnp: bool) {
    let mut sb = Sandbox::new(if nnp { "sc-docker-nnp" } else { "sc-docker" });
    let rootfs = sb.bundle.rootfs();
    install_sc(&sb, &rootfs);
    let script = docker_script();
    sb.bundle.sh(&script);
    set_nnp(&mut sb.bundle, nnp);
    add_sys_admin(&mut sb.bundle);

    // Control: the same container without a profile may do all of it.
    let id = sb.id("control");
    let out = run(&sb, &id);
    out.expect_ok();
    let r = results(&out);
    assert!(
        get(&r, "status", &out).msg.ends_with('0'),
        "control: {r:#?}"
    );
    for name in ["unshare_user", "unshare_root", "unshare_mnt", "mount"] {
        expect_ok(&r, name, &out);
    }
    // A zero-filled file is no swap area: EINVAL, not EPERM.
    expect_err(&r, "swapon", "Invalid argument", &out);
    assert!(
        get(&r, "keyctl", &out).msg.contains("errno=0"),
        "control keyctl: {r:#?}"
    );

    // Under Docker's profile.
    sb.bundle.set("/linux/seccomp", docker_profile());
    let id = sb.id("docker");
    let base = sb.baseline(&id);
    let out = run(&sb, &id);
    out.expect_ok();
    let r = results(&out);
    let status = get(&r, "status", &out);
    assert_eq!(status.rc, 0, "{r:#?}");
    assert_eq!(status.msg, "Seccomp: 2", "{r:#?}");
    // Installing the filter must not have turned no_new_privs on.
    let want_nnp = format!("NoNewPrivs: {}", u8::from(nnp));
    assert_eq!(get(&r, "nnp", &out).msg, want_nnp, "{r:#?}");
    for name in ["unshare_user", "unshare_root", "unshare_mnt", "swapon"] {
        expect_err(&r, name, "Operation not permitted", &out);
    }
    // busybox mount reports EPERM as "permission denied (are you root?)".
    expect_err(&r, "mount", "permission denied", &out);
    assert!(
        get(&r, "keyctl", &out).msg.contains("errno=1"),
        "keyctl: {r:#?}"
    );
    for name in [
        "sh", "ls", "mkdir", "write", "cat", "chmod", "date", "id", "bg", "pipe",
    ] {
        expect_ok(&r, name, &out);
    }
    assert_eq!(get(&r, "cat", &out).msg, "hello");
    assert_eq!(get(&r, "sh", &out).msg, "sub");
    base.assert_clean(&sb);
}

#[test]
fn docker_default_profile_with_no_new_privileges() {
    docker_default_profile(true);
}

#[test]
fn docker_default_profile_without_no_new_privileges() {
    docker_default_profile(false);
}

/// The profile's defaultErrnoRet is what denied syscalls return.
#[test]
fn docker_profile_with_default_errno_ret() {
    let mut sb = Sandbox::new("sc-deferrno");
    let mut p = docker_profile();
    p["defaultErrnoRet"] = json!(libc::EOPNOTSUPP);
    sb.bundle.set("/linux/seccomp", p);
    sb.bundle.sh(&format!(
        "{T_FN}\nt unshare_user unshare -U true\ndd if=/dev/zero of=/tmp/swapfile bs=4096 count=16 2>/dev/null\nt swapon swapon /tmp/swapfile\nt echo echo fine"
    ));
    let id = sb.id("c");
    let out = run(&sb, &id);
    out.expect_ok();
    let r = results(&out);
    expect_err(&r, "unshare_user", "Operation not supported", &out);
    expect_err(&r, "swapon", "Operation not supported", &out);
    expect_ok(&r, "echo", &out);
}
