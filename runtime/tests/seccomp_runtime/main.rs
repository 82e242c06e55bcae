//! `linux.seccomp` end to end: real containers (busybox rootfs) created by the
//! berth binary, with the filter judged by what the container's programs get
//! from the kernel. Needs root, gcc and glibc's static libc (for `sc`, a tiny
//! raw-syscall helper compiled into the rootfs).
//!
//! Every container runs in a [`Sandbox`] whose `Drop` deletes it and removes
//! everything it made, also when an assertion fails. The notify agent is a
//! thread with a bounded life that a guard stops and joins.

mod bad_profiles;
mod cache;
#[path = "../common/mod.rs"]
mod common;
mod custom;
mod docker;
mod enosys;
mod notify;

use std::collections::BTreeMap;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{json, Value};

const CACHE_DIR: &str = "@seccomp-cache";

/// Docker's default profile as an OCI `linux.seccomp` object (amd64).
fn docker_profile() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seccomp/docker-default-amd64.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// defaultAction ALLOW plus `rules`.
fn allow_profile(rules: Value) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    })
}

fn set_nnp(b: &mut Bundle, nnp: bool) {
    b.set("/process/noNewPrivileges", json!(nnp));
}

/// Add CAP_SYS_ADMIN (and CAP_SETUID/CAP_SETGID/CAP_SETFCAP, which mapping
/// uid 0 in `unshare -r` needs)
/// to the bounding/effective/permitted sets, so that what the profile denies
/// would otherwise be allowed (the control runs show it).
fn add_sys_admin(b: &mut Bundle) {
    for set in ["bounding", "effective", "permitted"] {
        let caps = b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap_or_else(|| panic!("process.capabilities.{set} missing in the spec"));
        for c in ["CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SETFCAP"] {
            caps.push(json!(c));
        }
    }
}

/// `berth run --bundle B ID` for the sandbox's main bundle (config saved first).
fn run(sb: &Sandbox, id: &str) -> Out {
    sb.bundle.save();
    sb.berth(&["run", "--bundle", &sb.bundle_arg(), id])
}

/// A shell function `t NAME CMD...` that prints `NAME rc=N <output on one line>`.
const T_FN: &str = r#"t() { n=$1; shift; o=$("$@" 2>&1); rc=$?; echo "$n rc=$rc $(echo $o)"; }"#;

/// One `t` result.
#[derive(Debug, Clone)]
struct Res {
    rc: i32,
    msg: String,
}

/// Parse the `NAME rc=N msg` lines of a script run with [`T_FN`].
fn results(out: &Out) -> BTreeMap<String, Res> {
    let mut m = BTreeMap::new();
    for line in out.stdout.lines() {
        let mut it = line.splitn(3, ' ');
        let (Some(name), Some(rc)) = (it.next(), it.next()) else {
            continue;
        };
        let Some(rc) = rc.strip_prefix("rc=").and_then(|r| r.parse().ok()) else {
            continue;
        };
        m.insert(
            name.to_string(),
            Res {
                rc,
                msg: it.next().unwrap_or("").to_string(),
            },
        );
    }
    m
}

#[track_caller]
fn get<'a>(r: &'a BTreeMap<String, Res>, name: &str, out: &Out) -> &'a Res {
    r.get(name).unwrap_or_else(|| {
        panic!(
            "no result for {name:?} in the container's output:\nstdout: {}\nstderr: {}",
            out.stdout, out.stderr
        )
    })
}

#[track_caller]
fn expect_ok(r: &BTreeMap<String, Res>, name: &str, out: &Out) {
    let x = get(r, name, out);
    assert_eq!(
        x.rc, 0,
        "{name} should succeed under the profile, got {x:?}\nall: {r:#?}"
    );
}

#[track_caller]
fn expect_err(r: &BTreeMap<String, Res>, name: &str, needle: &str, out: &Out) {
    let x = get(r, name, out);
    assert!(
        x.rc != 0 && x.msg.to_lowercase().contains(&needle.to_lowercase()),
        "{name} should fail with {needle:?}, got {x:?}\nall: {r:#?}"
    );
}

// ---------------------------------------------------------------------------
// `sc`: raw syscalls from inside the container
// ---------------------------------------------------------------------------

/// Each argument is one call, `NR[,ARG...]` (ARG: an integer in any C base,
/// or `s:TEXT` for a pointer to TEXT); prints `sc NR ret=R errno=E`.
const SC_SOURCE: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        long a[7] = {0};
        int n = 0;
        char *save = NULL;
        for (char *tok = strtok_r(argv[i], ",", &save); tok && n < 7; tok = strtok_r(NULL, ",", &save))
            a[n++] = strncmp(tok, "s:", 2) == 0 ? (long)(tok + 2) : (long)strtoull(tok, NULL, 0);
        errno = 0;
        long r = syscall(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
        int e = r == -1 ? errno : 0;
        printf("sc %ld ret=%ld errno=%d\n", a[0], r, e);
        fflush(stdout);
    }
    return 0;
}
"#;

/// Compile [`SC_SOURCE`] statically into `<rootfs>/bin/sc`.
fn install_sc(sb: &Sandbox, rootfs: &Path) {
    let src = sb.dir.join("sc.c");
    std::fs::write(&src, SC_SOURCE).unwrap();
    let dest = rootfs.join("bin/sc");
    let out = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&dest)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc ({e}): these tests need gcc and glibc's libc.a (apt install gcc libc6-dev)"));
    assert!(
        out.status.success(),
        "gcc -static failed; these tests need gcc and glibc's static libc.a (apt install gcc libc6-dev):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `sc NR ret=R errno=E` lines, in order: (nr, ret, errno).
fn sc_results(out: &Out) -> Vec<(i64, i64, i32)> {
    out.stdout
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("sc ")?;
            let mut it = rest.split(' ');
            let nr = it.next()?.parse().ok()?;
            let ret = it.next()?.strip_prefix("ret=")?.parse().ok()?;
            let errno = it.next()?.strip_prefix("errno=")?.parse().ok()?;
            Some((nr, ret, errno))
        })
        .collect()
}
