//! Bad profiles fail create naming the field, leaving nothing behind.

use super::*;

#[test]
fn bad_profiles_fail_create_naming_the_field() {
    let mut sb = Sandbox::new("sc-bad");
    let abs = sb.dir.join("agent.sock");
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "unknown action",
            allow_profile(json!([{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}])),
            &["linux.seccomp.syscalls[0].action"],
        ),
        (
            "unknown default action",
            json!({"defaultAction": "SCMP_ACT_NOPE"}),
            &["linux.seccomp.defaultAction"],
        ),
        (
            "unknown arch token",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]}),
            &["linux.seccomp.architectures"],
        ),
        (
            "errnoRet on SCMP_ACT_ALLOW",
            json!({"defaultAction": "SCMP_ACT_ERRNO",
                   "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5}]}),
            &["linux.seccomp.syscalls[0].errnoRet"],
        ),
        (
            "argument index 6",
            allow_profile(
                json!([{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                                  "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]),
            ),
            &["linux.seccomp.syscalls[0].args[0].index"],
        ),
        (
            "unknown operator",
            allow_profile(
                json!([{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                                  "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]),
            ),
            &["linux.seccomp.syscalls[0].args[0].op"],
        ),
        (
            "errnoRet above 4095",
            allow_profile(
                json!([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5000}]),
            ),
            &["linux.seccomp.syscalls[0].errnoRet"],
        ),
        (
            "NOTIFY without listenerPath",
            allow_profile(json!([{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}])),
            &["linux.seccomp.listenerPath"],
        ),
        (
            "relative listenerPath",
            {
                let mut p =
                    allow_profile(json!([{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]));
                p["listenerPath"] = json!("agent.sock");
                p
            },
            &["linux.seccomp.listenerPath"],
        ),
        (
            "NOTIFY as the default action",
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": abs}),
            &["linux.seccomp.defaultAction"],
        ),
        (
            "unknown flag",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}),
            &["linux.seccomp.flags"],
        ),
    ];
    let mut failures = Vec::new();
    for (n, (what, profile, needles)) in cases.into_iter().enumerate() {
        sb.bundle.set("/linux/seccomp", profile);
        let id = sb.id(&format!("bad{n}"));
        let base = sb.baseline(&id);
        let out = sb.create(&id);
        if out.ok() {
            failures.push(format!("{what}: create succeeded"));
            sb.berth(&["delete", "--force", &id]);
            continue;
        }
        for needle in needles {
            if !out.stderr.contains(needle) {
                failures.push(format!(
                    "{what}: error does not name {needle:?}: {}",
                    out.stderr.trim()
                ));
            }
        }
        base.assert_clean(&sb);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let list = sb.berth(&["list", "-q"]);
    list.expect_ok();
    assert_eq!(list.stdout.trim(), "", "containers left: {}", list.stdout);
}
