//! Small custom profiles: errnoRet, users, user namespaces, flags, argument filters.

use super::notify::{notify_profile, Agent};
use super::*;

#[test]
fn errno_ret_on_mkdir() {
    for nnp in [true, false] {
        let mut sb = Sandbox::new("sc-mkdir");
        set_nnp(&mut sb.bundle, nnp);
        sb.bundle.set(
            "/linux/seccomp",
            allow_profile(json!([
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES}
            ])),
        );
        sb.bundle.sh(&format!(
            "{T_FN}\nt status grep Seccomp: /proc/self/status\nt mkdir mkdir /tmp/x\nt touch touch /tmp/y\nt rm rm /tmp/y"
        ));
        let id = sb.id("c");
        let out = run(&sb, &id);
        out.expect_ok();
        let r = results(&out);
        assert_eq!(
            get(&r, "status", &out).msg,
            "Seccomp: 2",
            "nnp={nnp} {r:#?}"
        );
        expect_err(&r, "mkdir", "Permission denied", &out);
        expect_ok(&r, "touch", &out);
        expect_ok(&r, "rm", &out);
        assert!(
            !sb.bundle.rootfs().join("tmp/x").exists(),
            "nnp={nnp}: /tmp/x was created after all"
        );
    }
}

/// A non-root user without no_new_privileges: the filter has to go on while
/// the init still has CAP_SYS_ADMIN (before the user switch).
#[test]
fn non_root_user_without_no_new_privileges() {
    let mut sb = Sandbox::new("sc-user");
    set_nnp(&mut sb.bundle, false);
    sb.bundle
        .set("/process/user", json!({"uid": 1000, "gid": 1000}));
    sb.bundle.set(
        "/linux/seccomp",
        allow_profile(json!([
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EOPNOTSUPP}
        ])),
    );
    // /host is mode 777, so without the filter uid 1000 could mkdir there.
    sb.bundle.sh(&format!(
        "{T_FN}\nt id id -u\nt status grep Seccomp: /proc/self/status\nt nnp grep NoNewPrivs: /proc/self/status\nt capeff grep CapEff: /proc/self/status\nt mkdir mkdir /host/x\nt touch touch /host/y"
    ));
    let id = sb.id("c");
    let out = run(&sb, &id);
    out.expect_ok();
    let r = results(&out);
    assert_eq!(get(&r, "id", &out).msg, "1000", "{r:#?}");
    assert_eq!(get(&r, "status", &out).msg, "Seccomp: 2", "{r:#?}");
    assert_eq!(get(&r, "nnp", &out).msg, "NoNewPrivs: 0", "{r:#?}");
    assert_eq!(
        get(&r, "capeff", &out).msg,
        "CapEff: 0000000000000000",
        "{r:#?}"
    );
    expect_err(&r, "mkdir", "Operation not supported", &out);
    expect_ok(&r, "touch", &out);
    assert!(!sb.host.join("x").exists());
    assert!(sb.host.join("y").exists());
}

/// A user-namespaced container (its init is host uid 100000) with a profile
/// as the first container of a fresh `--root`: the filter cache must not
/// create the root (or its parents) 0700, or the init cannot reach its exec
/// fifo.
#[test]
fn user_namespace_container_in_a_fresh_root() {
    use std::os::unix::fs::PermissionsExt;
    let mut sb = Sandbox::new("sc-userns");
    assert!(!sb.root.exists(), "the sandbox's root should not exist yet");
    let nested_root = sb.dir.join("state/nested/root");
    // The init (host uid 100000) cannot make mount points in the root-owned rootfs.
    std::fs::create_dir_all(sb.bundle.rootfs().join("host")).unwrap();
    let mut ns = sb.bundle.config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .clone();
    ns.push(json!({"type": "user"}));
    sb.bundle.set("/linux/namespaces", json!(ns));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    sb.bundle.set("/linux/uidMappings", map.clone());
    sb.bundle.set("/linux/gidMappings", map);
    sb.bundle.set(
        "/linux/seccomp",
        allow_profile(json!([
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES}
        ])),
    );
    sb.bundle.sh(&format!(
        "{T_FN}\nt status grep Seccomp: /proc/self/status\nt mkdir mkdir /host/x\nt map cat /proc/self/uid_map"
    ));
    for (name, root) in [("c", sb.root.clone()), ("d", nested_root.clone())] {
        let id = sb.id(name);
        sb.bundle.save();
        // Like `sb.cmd`, with this root (the second one is not the sandbox's;
        // `run` deletes the container, and the tag still marks its processes).
        let cmd = {
            let mut c = Command::new(berth_bin());
            c.arg("--root")
                .arg(&root)
                .args(["run", "--bundle", &sb.bundle_arg(), &id])
                .env(TAG_VAR, &sb.tag)
                .stdin(std::process::Stdio::null());
            c
        };
        let out = sb.run_cmd(cmd, &format!("berth --root {} run {id}", root.display()));
        let mode = std::fs::metadata(&root).map(|m| m.permissions().mode() & 0o777);
        out.expect_ok();
        let r = results(&out);
        assert_eq!(get(&r, "status", &out).msg, "Seccomp: 2", "{r:#?}");
        expect_err(&r, "mkdir", "Permission denied", &out);
        assert!(get(&r, "map", &out).msg.contains("100000"), "{r:#?}");
        assert_ne!(mode.unwrap(), 0o700, "{} was created 0700", root.display());
    }
    for p in ["state", "state/nested"] {
        let mode = std::fs::metadata(sb.dir.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_ne!(mode, 0o700, "{p} was created 0700");
    }
}

/// Every filter flag the kernel knows is accepted and the filter still works;
/// TSYNC and WAIT_KILLABLE_RECV together with NOTIFY too.
#[test]
fn filter_flags() {
    let mut sb = Sandbox::new("sc-flags");
    sb.bundle.sh(&format!(
        "{T_FN}\nt status grep Seccomp: /proc/self/status\nt mkdir mkdir /tmp/x"
    ));
    let all = [
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ];
    let sets: Vec<Vec<&str>> = all.iter().map(|f| vec![*f]).chain([all.to_vec()]).collect();
    for flags in sets {
        let mut p = allow_profile(json!([
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES}
        ]));
        p["flags"] = json!(flags);
        sb.bundle.set("/linux/seccomp", p);
        let id = sb.id("c");
        let out = run(&sb, &id);
        out.expect_ok();
        let r = results(&out);
        assert_eq!(
            get(&r, "status", &out).msg,
            "Seccomp: 2",
            "flags {flags:?}: {r:#?}"
        );
        expect_err(&r, "mkdir", "Permission denied", &out);
    }

    let sock = sb.dir.join("agent.sock");
    let agent = Agent::start(&sock, Some(libc::EXDEV)).unwrap();
    let mut p = notify_profile(&sock);
    p["flags"] = json!([
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
    ]);
    sb.bundle.set("/linux/seccomp", p);
    let id = sb.id("n");
    let out = run(&sb, &id);
    let rep = agent.finish();
    out.expect_ok();
    assert!(rep.errors.is_empty(), "agent errors: {:?}", rep.errors);
    expect_err(&results(&out), "mkdir", "Invalid cross-device link", &out);
}

/// SCMP_ACT_ERRNO without errnoRet returns EPERM.
#[test]
fn errno_without_errno_ret_is_eperm() {
    let mut sb = Sandbox::new("sc-eperm");
    sb.bundle.set(
        "/linux/seccomp",
        allow_profile(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}])),
    );
    sb.bundle.sh(&format!("{T_FN}\nt mkdir mkdir /tmp/x"));
    let id = sb.id("c");
    let out = run(&sb, &id);
    out.expect_ok();
    expect_err(&results(&out), "mkdir", "Operation not permitted", &out);
}

/// Argument filters: EQ on personality's persona and socket's domain,
/// MASKED_EQ on socket's type (ignoring SOCK_CLOEXEC).
#[test]
fn argument_filters() {
    let mut sb = Sandbox::new("sc-args");
    let rootfs = sb.bundle.rootfs();
    install_sc(&sb, &rootfs);
    const PER_LINUX32: u64 = 0x0008;
    sb.bundle.set(
        "/linux/seccomp",
        allow_profile(json!([
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EOPNOTSUPP,
             "args": [{"index": 0, "value": PER_LINUX32, "op": "SCMP_CMP_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPROTO,
             "args": [{"index": 0, "value": libc::AF_INET6, "op": "SCMP_CMP_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EMULTIHOP,
             "args": [{"index": 1, "value": 0xf, "valueTwo": libc::SOCK_DGRAM, "op": "SCMP_CMP_MASKED_EQ"}]}
        ])),
    );
    let sock = libc::SYS_socket;
    let dgram_cloexec = libc::SOCK_DGRAM | libc::SOCK_CLOEXEC;
    sb.bundle.sh(&format!(
        "{T_FN}
t linux32 linux32 true
t linux64 linux64 true
sc {sock},{inet6},1,0 {sock},{inet},1,0 {sock},{unix},1,0 {sock},{unix},{dgram_cloexec},0 {sock},{unix},5,0",
        inet6 = libc::AF_INET6,
        inet = libc::AF_INET,
        unix = libc::AF_UNIX,
    ));
    let id = sb.id("c");
    let out = run(&sb, &id);
    out.expect_ok();
    let r = results(&out);
    expect_err(&r, "linux32", "Operation not supported", &out);
    expect_ok(&r, "linux64", &out);
    let sc = sc_results(&out);
    let errnos: Vec<i32> = sc.iter().map(|x| x.2).collect();
    assert_eq!(
        errnos,
        vec![libc::EPROTO, 0, 0, libc::EMULTIHOP, 0],
        "socket(AF_INET6) -> EPROTO, AF_INET/AF_UNIX stream allowed, DGRAM|CLOEXEC -> EMULTIHOP, SEQPACKET allowed: {sc:?}\n{}",
        out.stderr
    );
}
