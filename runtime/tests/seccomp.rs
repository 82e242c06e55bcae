//! Seccomp filters installed in forked children, checked by what the kernel
//! does to their syscalls. Needs no privileges (children set no_new_privs).

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_runtime::seccomp::{self, Compiled, InstallFlags};

#[path = "../lib/src/seccomp/cmp_reference.rs"]
mod cmp_reference;
use cmp_reference::{holds, EDGES, OPS};

const TIMEOUT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seccomp")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn docker_profile() -> oci_spec::runtime::LinuxSeccomp {
    seccomp::parse(&fixture("docker-default-amd64.json")).expect("fixture parses")
}

fn compile_json(json: serde_json::Value) -> Compiled {
    seccomp::compile(&seccomp::parse(&json.to_string()).unwrap()).unwrap()
}

/// `syscall(2)` result as the kernel returns it: value or -errno.
fn raw(nr: libc::c_long, args: [u64; 6]) -> i64 {
    // SAFETY: the syscalls used here take integer arguments only (or NULL).
    let r = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
    if r == -1 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        r
    }
}

/// An i386 syscall through `int 0x80` (ia32 emulation).
#[cfg(target_arch = "x86_64")]
fn raw_i386(nr: u32) -> i64 {
    let mut ret: i64 = i64::from(nr);
    // SAFETY: only argument-less i386 syscalls (or ones the filter refuses)
    // are made; int 0x80 preserves every register but eax.
    unsafe {
        std::arch::asm!("int 0x80", inout("rax") ret, options(nostack));
    }
    i64::from(ret as i32)
}

fn no_new_privs() {
    // SAFETY: plain prctl.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(rc, 0);
}

/// A forked child, killed and reaped if the test fails before it exits.
struct Child {
    pid: libc::pid_t,
    reaped: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Code(i32),
    Signal(i32),
}

impl Child {
    /// Fork; the child runs `f` and exits with its return value.
    fn spawn(f: impl FnOnce() -> i32) -> Child {
        // SAFETY: the child only runs `f` and then _exit()s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: leave without running the parent's atexit handlers.
            unsafe { libc::_exit(code) };
        }
        Child { pid, reaped: false }
    }

    fn wait(&mut self) -> Exit {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            assert!(r >= 0, "waitpid failed");
            if r == self.pid {
                self.reaped = true;
                return if libc::WIFSIGNALED(status) {
                    Exit::Signal(libc::WTERMSIG(status))
                } else {
                    Exit::Code(libc::WEXITSTATUS(status))
                };
            }
            assert!(Instant::now() < deadline, "child {} did not exit", self.pid);
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: our own, unreaped child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds we own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn write_all(fd: RawFd, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: writing from a live slice.
        let n = unsafe { libc::write(fd, data[off..].as_ptr().cast(), data.len() - off) };
        if n <= 0 {
            return;
        }
        off += n as usize;
    }
}

/// Read until EOF, giving up after TIMEOUT.
fn read_all(fd: OwnedFd) -> Vec<u8> {
    let deadline = Instant::now() + TIMEOUT;
    let mut f = std::fs::File::from(fd);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, 100) };
        assert!(r >= 0, "poll failed");
        if r > 0 {
            match f.read(&mut buf).unwrap() {
                0 => return out,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
        assert!(Instant::now() < deadline, "no EOF on child output");
    }
}

/// Run `body` in a child under `filter`; returns the i64 values it reports.
fn under_filter(filter: &Compiled, body: impl FnOnce() -> Vec<i64>) -> (Exit, Vec<i64>) {
    let (r, w) = pipe();
    let mut child = Child::spawn(|| {
        no_new_privs();
        if seccomp::install(filter, InstallFlags::NONE).is_err() {
            return 90;
        }
        let values = body();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        write_all(w.as_raw_fd(), &bytes);
        0
    });
    drop(w);
    let out = read_all(r);
    let exit = child.wait();
    let values = out
        .chunks_exact(8)
        .map(|c| i64::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    (exit, values)
}

const EPERM: i64 = -(libc::EPERM as i64);
const ENOSYS: i64 = -(libc::ENOSYS as i64);

#[test]
fn errno_actions_with_default_and_custom_errno() {
    let dir = tempfile::tempdir().unwrap();
    let target = std::ffi::CString::new(dir.path().join("d").to_str().unwrap()).unwrap();
    let filter = compile_json(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}
        ]
    }));
    let p = target.as_ptr() as u64;
    let (exit, v) = under_filter(&filter, || {
        vec![
            raw(libc::SYS_mkdir, [p, 0o755, 0, 0, 0, 0]),
            raw(
                libc::SYS_mkdirat,
                [libc::AT_FDCWD as u64, p, 0o755, 0, 0, 0],
            ),
            raw(libc::SYS_getpid, [0; 6]),
        ]
    });
    assert_eq!(exit, Exit::Code(0));
    assert_eq!(v[0], EPERM);
    assert_eq!(v[1], -122);
    assert!(v[2] > 0);
    assert!(!dir.path().join("d").exists());
}

#[test]
fn kill_actions_end_the_process_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
    ] {
        let filter = compile_json(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": action}]
        }));
        let (exit, v) = under_filter(&filter, || {
            raw(libc::SYS_getppid, [0; 6]);
            vec![1]
        });
        assert_eq!(exit, Exit::Signal(libc::SIGSYS), "{action}");
        assert!(
            v.is_empty(),
            "{action}: the child went on after the syscall"
        );
    }
    // The default action applies to everything else: a kill default ends
    // the child at its first unlisted syscall.
    let filter = compile_json(serde_json::json!({
        "defaultAction": "SCMP_ACT_KILL_PROCESS",
        "syscalls": [{"names": ["write", "exit_group", "getpid"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let (exit, v) = under_filter(&filter, || vec![raw(libc::SYS_getpid, [0; 6])]);
    assert_eq!(exit, Exit::Code(0));
    assert!(v[0] > 0);
    let (exit, _) = under_filter(&filter, || vec![raw(libc::SYS_getppid, [0; 6])]);
    assert_eq!(exit, Exit::Signal(libc::SIGSYS));
}

/// Syscalls that ignore their arguments: the filter still sees them.
const CARRIERS: [(&str, libc::c_long); 7] = [
    ("getpid", libc::SYS_getpid),
    ("getppid", libc::SYS_getppid),
    ("getuid", libc::SYS_getuid),
    ("geteuid", libc::SYS_geteuid),
    ("getgid", libc::SYS_getgid),
    ("getegid", libc::SYS_getegid),
    ("gettid", libc::SYS_gettid),
];

#[test]
fn argument_operators_compare_all_64_bits() {
    for &v in &EDGES {
        let v2 = v & 0x0000_00ff_0000_00ff;
        // One rule per operator, each on its own carrier syscall and argument.
        let rules: Vec<_> = OPS
            .iter()
            .zip(CARRIERS)
            .enumerate()
            .map(|(i, (op, (name, _)))| {
                serde_json::json!({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": 100 + i,
                                   "args": [{"index": i % 6, "value": v, "valueTwo": v2, "op": op}]})
            })
            .collect();
        let filter =
            compile_json(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}));
        let (exit, got) = under_filter(&filter, || {
            let mut out = Vec::new();
            for (i, (_, nr)) in CARRIERS.iter().enumerate() {
                for &a in &EDGES {
                    let mut args = [0u64; 6];
                    args[i % 6] = a;
                    out.push(raw(*nr, args));
                }
            }
            out
        });
        assert_eq!(exit, Exit::Code(0));
        let mut k = 0;
        for (i, op) in OPS.iter().enumerate() {
            for &a in &EDGES {
                let denied = got[k] == -(100 + i as i64);
                assert_eq!(
                    denied,
                    holds(op, a, v, v2),
                    "{op}: arg {a:#x} against {v:#x}"
                );
                k += 1;
            }
        }
    }
}

#[test]
fn docker_default_profile_denies_and_returns_enosys() {
    let filter = seccomp::compile(&docker_profile()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
    let none = c"none";
    let tmpfs = c"tmpfs";
    let (exit, v) = under_filter(&filter, || {
        let mut out = vec![
            raw(
                libc::SYS_mount,
                [
                    none.as_ptr() as u64,
                    target.as_ptr() as u64,
                    tmpfs.as_ptr() as u64,
                    0,
                    0,
                    0,
                ],
            ),
            raw(libc::SYS_unshare, [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]),
            raw(libc::SYS_kexec_load, [0; 6]),
            raw(libc::SYS_clone3, [0; 6]),
            raw(
                libc::SYS_socket,
                [libc::AF_VSOCK as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
            ),
            raw(libc::SYS_personality, [0x0040_0000, 0, 0, 0, 0, 0]),
            raw(libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0, 0]),
            raw(
                libc::SYS_socket,
                [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
            ),
            raw(1000, [0; 6]),
            raw(452, [0; 6]), // fchmodat2, newer than the profile
            raw(462, [0; 6]), // mseal
        ];
        let r = raw(
            libc::SYS_clone,
            [(libc::CLONE_NEWUSER | libc::SIGCHLD) as u64, 0, 0, 0, 0, 0],
        );
        if r == 0 {
            // SAFETY: a child that must not run the test any further.
            unsafe { libc::_exit(0) };
        }
        out.push(r);
        out
    });
    assert_eq!(exit, Exit::Code(0));
    assert_eq!(v[0], EPERM, "mount");
    assert_eq!(v[1], EPERM, "unshare");
    assert_eq!(v[2], EPERM, "kexec_load");
    assert_eq!(v[3], ENOSYS, "clone3");
    assert_eq!(v[4], EPERM, "socket(AF_VSOCK)");
    assert_eq!(v[5], EPERM, "personality(ADDR_COMPAT_LAYOUT)");
    assert!(v[6] >= 0, "personality query: {}", v[6]);
    assert!(v[7] >= 0, "socket(AF_UNIX): {}", v[7]);
    assert_eq!(v[8], ENOSYS, "syscall 1000");
    assert_eq!(v[9], ENOSYS, "fchmodat2");
    assert_eq!(v[10], ENOSYS, "mseal");
    assert_eq!(v[11], EPERM, "clone(CLONE_NEWUSER)");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn compat_abis_use_their_own_tables() {
    let filter = seccomp::compile(&docker_profile()).unwrap();
    let (exit, v) = under_filter(&filter, || {
        vec![
            raw_i386(20),                                      // i386 getpid: allowed
            raw_i386(21),                                      // i386 mount: default EPERM
            raw_i386(1000), // above the i386 table of the profile
            raw((0x4000_0000 | 165) as libc::c_long, [0; 6]), // x32 mount
            raw((0x4000_0000 | 1000) as libc::c_long, [0; 6]), // x32, unknown
        ]
    });
    assert_eq!(exit, Exit::Code(0));
    assert!(v[0] > 0, "i386 getpid: {}", v[0]);
    assert_eq!(v[1], EPERM);
    assert_eq!(v[2], ENOSYS);
    assert_eq!(v[3], EPERM);
    assert_eq!(v[4], ENOSYS);

    // Architectures missing from the profile get the default action.
    let filter = compile_json(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 99,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["getpid", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let (exit, v) = under_filter(&filter, || {
        vec![
            raw(libc::SYS_getpid, [0; 6]),
            raw_i386(20),
            raw((0x4000_0000 | 39) as libc::c_long, [0; 6]),
        ]
    });
    assert_eq!(exit, Exit::Code(0));
    assert!(v[0] > 0);
    assert_eq!(v[1], -99, "i386 getpid");
    assert_eq!(v[2], -99, "x32 getpid");
}

#[test]
fn docker_default_profile_runs_busybox() {
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "busybox-static is required");
    let filter = seccomp::compile(&docker_profile()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let script = r#"
set -e
cd "$WORK"
echo hello > a.txt
grep -q hello a.txt
mkdir -p d/e && touch d/e/f && ls -la d/e > /dev/null
cp a.txt b.txt && mv b.txt c.txt && rm c.txt
ln -s a.txt l && readlink l > /dev/null
tar cf t.tar d && tar tf t.tar | grep -q d/e/f
gzip -k a.txt && gunzip -c a.txt.gz | grep -q hello
sha256sum a.txt > /dev/null
find . -name f | grep -q f
test "$(printf '3\n1\n2\n' | sort -n | head -n 1)" = 1
x=$(echo subst); test "$x" = subst
ps > /dev/null; id > /dev/null; uname -a > /dev/null; date > /dev/null
sleep 0.01 & wait
chmod 600 a.txt && chown "$(id -u):$(id -g)" a.txt
grep Seccomp: /proc/self/status
if busybox unshare -m true 2>/dev/null; then echo unshare-allowed; else echo unshare-denied; fi
if busybox mount -t tmpfs none d 2>/dev/null; then echo mount-allowed; else echo mount-denied; fi
echo done
"#;
    let argv: Vec<std::ffi::CString> = ["sh", "-c", script]
        .iter()
        .map(|s| std::ffi::CString::new(*s).unwrap())
        .collect();
    let envs: Vec<std::ffi::CString> = [
        "PATH=/bin:/usr/bin".to_string(),
        format!("WORK={}", work.path().display()),
    ]
    .iter()
    .map(|s| std::ffi::CString::new(s.as_str()).unwrap())
    .collect();
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = envs.iter().map(|c| c.as_ptr()).collect();
    env_p.push(std::ptr::null());
    let bb = std::ffi::CString::new("/bin/busybox").unwrap();

    let (r, w) = pipe();
    let mut child = Child::spawn(|| {
        // SAFETY: redirect stdout/stderr into the pipe, then exec.
        unsafe {
            libc::dup2(w.as_raw_fd(), 1);
            libc::dup2(w.as_raw_fd(), 2);
        }
        no_new_privs();
        if seccomp::install(&filter, InstallFlags::NONE).is_err() {
            return 90;
        }
        // SAFETY: NUL-terminated argv/envp built before fork.
        unsafe { libc::execve(bb.as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
        91
    });
    drop(w);
    let out = String::from_utf8_lossy(&read_all(r)).into_owned();
    let exit = child.wait();
    assert_eq!(exit, Exit::Code(0), "output:\n{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("unshare-denied"), "{out}");
    assert!(out.contains("mount-denied"), "{out}");
    assert!(out.trim_end().ends_with("done"), "{out}");
}

/// One recvmsg: the bytes read into `buf` and the fd sent with them.
fn recv_fd(sock: RawFd, buf: &mut [u8]) -> (usize, OwnedFd) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<UnixAddr>(sock, &mut iov, Some(&mut cmsg), MsgFlags::empty()).unwrap();
    let fd = msg
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("an fd with the message");
    // SAFETY: the fd arrived with SCM_RIGHTS and is ours now.
    (msg.bytes, unsafe { OwnedFd::from_raw_fd(fd) })
}

#[test]
fn notify_listener_answers_the_syscall() {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let profile = seccomp::parse(
        &serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "MKNOD=/dev/null",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
        })
        .to_string(),
    )
    .unwrap();
    let filter = seccomp::compile(&profile).unwrap();
    assert!(filter.needs_notify());

    // The agent: receive the state + fd, answer one notification with 4242.
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 65536];
        let (n, fd) = recv_fd(conn.as_raw_fd(), &mut buf);
        let mut payload = buf[..n].to_vec();
        (&conn).read_to_end(&mut payload).unwrap();
        let state: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let notify = fd;
        let mut pfd = libc::pollfd {
            fd: notify.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, TIMEOUT.as_millis() as i32) };
        assert_eq!(ready, 1, "no notification");
        // SAFETY: zeroed plain-data structs filled by the kernel.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: ioctl with a correctly sized seccomp_notif.
        let rc =
            unsafe { libc::ioctl(notify.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
        assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
        // SAFETY: a plain-data struct, all zero is valid.
        let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
        resp.id = req.id;
        resp.val = 4242;
        // SAFETY: ioctl with a correctly sized seccomp_notif_resp.
        let rc = unsafe {
            libc::ioctl(
                notify.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp,
            )
        };
        assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
        (state, req.data.nr, req.pid)
    });

    // The child hands its notify fd to the "runtime" (this process) over a
    // socketpair, as a container's init would.
    let (parent_end, child_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let (r, w) = pipe();
    let mut child = Child::spawn(|| {
        no_new_privs();
        let Ok(Some(fd)) = seccomp::install(&filter, InstallFlags::NONE) else {
            return 90;
        };
        let fds = [fd.as_raw_fd()];
        let iov = [std::io::IoSlice::new(b"f")];
        if sendmsg::<UnixAddr>(
            child_end.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .is_err()
        {
            return 91;
        }
        drop(fd);
        let v = raw(libc::SYS_getppid, [0; 6]);
        write_all(w.as_raw_fd(), &v.to_ne_bytes());
        0
    });
    drop(w);
    drop(child_end);

    let (_, fd) = recv_fd(parent_end.as_raw_fd(), &mut [0u8; 1]);
    let notify_fd = fd;
    let state = serde_json::json!({
        "ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": child.pid,
        "bundle": "/bundles/c1", "annotations": {"k": "v"}
    });
    seccomp::send_to_listener(
        &sock,
        &notify_fd,
        profile.listener_metadata().as_deref(),
        &state,
    )
    .unwrap();
    drop(notify_fd);

    let out = read_all(r);
    assert_eq!(child.wait(), Exit::Code(0));
    assert_eq!(i64::from_ne_bytes(out[..8].try_into().unwrap()), 4242);
    let (sent, nr, pid) = agent.join().unwrap();
    assert_eq!(nr as libc::c_long, libc::SYS_getppid);
    assert_eq!(pid as i32, child.pid);
    assert_eq!(sent["ociVersion"], "1.2.0");
    assert_eq!(sent["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(sent["pid"], child.pid);
    assert_eq!(sent["metadata"], "MKNOD=/dev/null");
    assert_eq!(sent["state"], state);
}

#[test]
fn listener_errors_name_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = OwnedFd::from(a);
    let missing = dir.path().join("nobody.sock");
    let err =
        seccomp::send_to_listener(&missing, &fd, None, &serde_json::json!({"pid": 1})).unwrap_err();
    assert!(err.to_string().contains("nobody.sock"), "{err}");
    let _l = std::os::unix::net::UnixListener::bind(dir.path().join("a.sock")).unwrap();
    let err = seccomp::send_to_listener(
        &dir.path().join("a.sock"),
        &fd,
        None,
        &serde_json::json!({}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("pid"), "{err}");
}

/// Prints compile vs cached-load time of Docker's profile (run with
/// `--nocapture`); asserts only that both give the same program.
#[test]
fn docker_profile_compile_and_cache_timing() {
    let profile = docker_profile();
    let cache = tempfile::tempdir().unwrap();
    let rounds = 200;
    let t = Instant::now();
    let mut compiled = None;
    for _ in 0..rounds {
        compiled = Some(seccomp::compile(&profile).unwrap());
    }
    let compile_time = t.elapsed() / rounds;
    let compiled = compiled.unwrap();
    let first = seccomp::compile_cached(&profile, Some(cache.path())).unwrap();
    assert_eq!(first, compiled);
    let t = Instant::now();
    for _ in 0..rounds {
        assert_eq!(
            seccomp::compile_cached(&profile, Some(cache.path())).unwrap(),
            compiled
        );
    }
    let cached_time = t.elapsed() / rounds;
    println!(
        "docker default profile: {} BPF instructions, compile {:?}, cached load {:?}",
        compiled.program().len(),
        compile_time,
        cached_time
    );
}
