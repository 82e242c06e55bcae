//! config-linux.md#seccomp: the filter the runtime installs, judged by what the
//! container's programs get from the kernel, and the notify-fd handoff to
//! `listenerPath`.

use crate::bundle::Bundle;
use crate::suite::{ensure, Case, CaseResult, Ctx, NotPassed};
use serde_json::{json, Value};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECTION: &str = "config-linux.md#seccomp";

/// Docker's default profile for amd64 as a `linux.seccomp` object (see that
/// directory's README.md for how it was derived).
const DOCKER_PROFILE: &str =
    include_str!("../../../runtime/tests/fixtures/seccomp/docker-default-amd64.json");

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            section: SECTION,
            desc: "SCMP_ACT_ERRNO with errnoRet: mkdir fails with EACCES, Seccomp: 2",
            run: errno_ret,
        },
        Case {
            section: SECTION,
            desc: "SCMP_ACT_ERRNO without errnoRet returns EPERM",
            run: errno_default,
        },
        Case {
            section: SECTION,
            desc:
                "argument filter: personality(PER_LINUX32) denied, personality(PER_LINUX) allowed",
            run: arg_filter,
        },
        Case {
            section: SECTION,
            desc: "Docker's default profile: unshare denied, ordinary programs work",
            run: docker_default,
        },
        Case {
            section: SECTION,
            desc: "SCMP_ACT_NOTIFY: the listener gets the fd and the state and answers",
            run: notify,
        },
        Case {
            section: SECTION,
            desc: "unknown action: create fails and leaves nothing",
            run: bad_action,
        },
    ]
}

/// `t NAME CMD...` prints `NAME rc=N <output on one line>`.
const T_FN: &str = r#"t() { n=$1; shift; o=$("$@" 2>&1); rc=$?; echo "$n rc=$rc $(echo $o)"; }"#;

fn allow_profile(rules: Value) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    })
}

/// Runs `script` (with [`T_FN`] defined) under `profile` with `run`; returns stdout.
fn run_script(ctx: &Ctx, profile: Value, script: &str) -> Result<(Bundle, String), NotPassed> {
    let (mut b, id) = ctx.bundle()?;
    b.config["linux"]["seccomp"] = profile;
    b.set_args(&["/bin/sh", "-c", &format!("{T_FN}\n{script}")]);
    b.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.run(&b.dir, &id);
    ensure(out.success(), format!("run failed: {}", out.describe()))?;
    let stdout = b.stdout();
    Ok((b, stdout))
}

/// The `NAME rc=N msg` line for `name`, as (rc, msg).
fn result(stdout: &str, name: &str) -> Result<(i32, String), NotPassed> {
    stdout
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(" rc=")?;
            let (rc, msg) = rest.split_once(' ').unwrap_or((rest, ""));
            Some((rc.parse().ok()?, msg.to_string()))
        })
        .ok_or_else(|| NotPassed::Fail(format!("no {name} result in {stdout:?}")))
}

fn expect_ok(stdout: &str, name: &str) -> CaseResult {
    let (rc, msg) = result(stdout, name)?;
    ensure(rc == 0, format!("{name} failed ({rc}): {msg}"))
}

fn expect_err(stdout: &str, name: &str, needle: &str) -> CaseResult {
    let (rc, msg) = result(stdout, name)?;
    ensure(
        rc != 0 && msg.contains(needle),
        format!("{name} should fail with {needle:?}, got rc={rc}: {msg}"),
    )
}

fn expect_seccomp_mode(stdout: &str) -> CaseResult {
    let (_, msg) = result(stdout, "status")?;
    ensure(msg == "Seccomp: 2", format!("/proc/self/status: {msg:?}"))
}

const STATUS: &str = "t status grep Seccomp: /proc/self/status";

fn errno_ret(ctx: &Ctx) -> CaseResult {
    let profile = allow_profile(json!([
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES}
    ]));
    let script = format!(
        "{STATUS}\nt mkdir mkdir /dev/shm/x\nt exists test -e /dev/shm/x\nt touch touch /dev/shm/y"
    );
    let (_, out) = run_script(ctx, profile, &script)?;
    expect_seccomp_mode(&out)?;
    expect_err(&out, "mkdir", "Permission denied")?;
    let (rc, _) = result(&out, "exists")?;
    ensure(rc != 0, "the directory was created after all")?;
    expect_ok(&out, "touch")
}

fn errno_default(ctx: &Ctx) -> CaseResult {
    let profile =
        allow_profile(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]));
    let (_, out) = run_script(ctx, profile, "t mkdir mkdir /dev/shm/x")?;
    expect_err(&out, "mkdir", "Operation not permitted")
}

fn arg_filter(ctx: &Ctx) -> CaseResult {
    const PER_LINUX32: u64 = 0x0008;
    let profile = allow_profile(json!([
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EOPNOTSUPP,
         "args": [{"index": 0, "value": PER_LINUX32, "op": "SCMP_CMP_EQ"}]}
    ]));
    let (_, out) = run_script(
        ctx,
        profile,
        "t linux32 linux32 true\nt linux64 linux64 true",
    )?;
    expect_err(&out, "linux32", "not supported")?;
    expect_ok(&out, "linux64")
}

fn docker_default(ctx: &Ctx) -> CaseResult {
    if !cfg!(target_arch = "x86_64") {
        return crate::suite::skip("the fixture is Docker's amd64 profile");
    }
    let profile: Value = serde_json::from_str(DOCKER_PROFILE).map_err(|e| e.to_string())?;
    let script = format!(
        "{STATUS}\nt unshare unshare -U true\nt ls ls /bin/busybox\nt date date\nt pipe sh -c 'echo abc | tr a-c x-z | grep xyz'\nt bg sh -c 'sleep 0.01 & wait'\nt write sh -c 'echo hi > /dev/shm/f && cat /dev/shm/f'"
    );
    let (_, out) = run_script(ctx, profile, &script)?;
    expect_seccomp_mode(&out)?;
    expect_err(&out, "unshare", "Operation not permitted")?;
    for name in ["ls", "date", "pipe", "bg", "write"] {
        expect_ok(&out, name)?;
    }
    Ok(())
}

fn bad_action(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["linux"]["seccomp"] =
        allow_profile(json!([{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]));
    b.write()?;
    let _g = ctx.guard(&id);
    let out = ctx.runtime.create(&b.dir, &id);
    ensure(
        !out.success(),
        "create succeeded with action SCMP_ACT_BOGUS",
    )?;
    ctx.runtime.assert_absent(&id).map_err(NotPassed::Fail)
}

// --- SCMP_ACT_NOTIFY -------------------------------------------------------

/// struct seccomp_data, seccomp_notif and seccomp_notif_resp (linux/seccomp.h).
#[repr(C)]
struct SeccompData {
    nr: libc::c_int,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

#[repr(C)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const _: () = assert!(std::mem::size_of::<SeccompNotif>() == 80);
const _: () = assert!(std::mem::size_of::<SeccompNotifResp>() == 24);

struct AgentReport {
    payload: Option<Value>,
    got_fd: bool,
    answered: usize,
    errors: Vec<String>,
}

const AGENT_DEADLINE: Duration = Duration::from_secs(60);

/// Accepts one connection, takes the fd and the JSON, then answers every
/// notification with -EXDEV until the filtered processes are gone or `stop`.
fn agent(listener: UnixListener, stop: Arc<AtomicBool>) -> AgentReport {
    let mut rep = AgentReport {
        payload: None,
        got_fd: false,
        answered: 0,
        errors: Vec::new(),
    };
    let deadline = Instant::now() + AGENT_DEADLINE;
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                    return rep;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                rep.errors.push(format!("accept: {e}"));
                return rep;
            }
        }
    };
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = vec![0u8; 64 * 1024];
    let (n, fd) = match recv_fd(conn.as_raw_fd(), &mut buf) {
        Ok(x) => x,
        Err(e) => {
            rep.errors.push(e);
            return rep;
        }
    };
    // The spec does not promise EOF after the payload (runc keeps the
    // connection open), so read only while the JSON is incomplete.
    let mut payload = buf[..n].to_vec();
    loop {
        match serde_json::from_slice::<Value>(&payload) {
            Ok(v) => {
                rep.payload = Some(v);
                break;
            }
            Err(e) if e.is_eof() => {
                let mut more = [0u8; 4096];
                match (&conn).read(&mut more) {
                    Ok(0) | Err(_) => {
                        rep.errors.push(format!("payload ends early: {e}"));
                        break;
                    }
                    Ok(k) => payload.extend_from_slice(&more[..k]),
                }
            }
            Err(e) => {
                rep.errors.push(format!(
                    "payload is not JSON ({e}): {}",
                    String::from_utf8_lossy(&payload)
                ));
                break;
            }
        }
    }
    let Some(fd) = fd else {
        rep.errors.push("no fd came with the payload".into());
        return rep;
    };
    rep.got_fd = true;
    while Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, 50) };
        if r == 0 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            continue;
        }
        if r < 0 || pfd.revents & libc::POLLIN == 0 {
            break;
        }
        // SAFETY: a zeroed plain-data struct for the kernel to fill.
        let mut req: SeccompNotif = unsafe { std::mem::zeroed() };
        // SAFETY: ioctl with a correctly sized struct seccomp_notif.
        if unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV as _, &mut req) } < 0 {
            continue;
        }
        let mut resp = SeccompNotifResp {
            id: req.id,
            val: 0,
            error: -libc::EXDEV,
            flags: 0,
        };
        // SAFETY: ioctl with a correctly sized struct seccomp_notif_resp.
        if unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND as _, &mut resp) } == 0 {
            rep.answered += 1;
        }
    }
    rep
}

/// One recvmsg with room for one SCM_RIGHTS fd.
fn recv_fd(sock: i32, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>), String> {
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: zeroed msghdr, then pointed at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg describes valid buffers.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    let mut fd = None;
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let raw = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, fd))
}

fn notify(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let sock = b.dir.join("agent.sock");
    let listener =
        UnixListener::bind(&sock).map_err(|e| format!("bind {}: {e}", sock.display()))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut profile =
        allow_profile(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]));
    profile["listenerPath"] = json!(sock);
    profile["listenerMetadata"] = json!("conformance-meta");
    b.config["linux"]["seccomp"] = profile;
    b.set_args(&[
        "/bin/sh",
        "-c",
        &format!("{T_FN}\nt mkdir mkdir /dev/shm/x\nt touch touch /dev/shm/y"),
    ]);
    b.write()?;

    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let handle = std::thread::spawn(move || agent(listener, s));
    let out = {
        let _g = ctx.guard(&id);
        ctx.runtime.run(&b.dir, &id)
    };
    stop.store(true, Ordering::SeqCst);
    let rep = handle
        .join()
        .map_err(|_| NotPassed::Fail("agent thread panicked".into()))?;
    ensure(out.success(), format!("run failed: {}", out.describe()))?;
    ensure(rep.errors.is_empty(), format!("agent: {:?}", rep.errors))?;
    ensure(rep.got_fd, "no fd reached the listener")?;
    let stdout = b.stdout();
    expect_err(&stdout, "mkdir", "Invalid cross-device link")?;
    expect_ok(&stdout, "touch")?;
    ensure(rep.answered > 0, "the agent answered no notification")?;
    let p = rep.payload.unwrap_or(Value::Null);
    ensure(p["fds"] == json!(["seccompFd"]), format!("fds: {p}"))?;
    ensure(
        p["metadata"] == json!("conformance-meta"),
        format!("metadata: {p}"),
    )?;
    ensure(p["ociVersion"].is_string(), format!("ociVersion: {p}"))?;
    ensure(
        p["pid"].as_i64().is_some_and(|x| x > 0),
        format!("pid: {p}"),
    )?;
    ensure(p["state"]["id"] == json!(id), format!("state.id: {p}"))?;
    ensure(p["state"]["pid"] == p["pid"], format!("state.pid: {p}"))?;
    let bundle = std::fs::canonicalize(Path::new(&b.dir)).map_err(|e| e.to_string())?;
    ensure(
        p["state"]["bundle"] == json!(bundle),
        format!("state.bundle: {p}"),
    )
}
