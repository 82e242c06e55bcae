//! Shared harness for the integration tests that run real containers as root.
//!
//! * [`Sandbox`]: one test's world under `/tmp/berth-rtests/`: a unique `--root`
//!   state directory, a bundle (busybox rootfs + `berth spec` config edited as
//!   JSON), a host directory bind-mounted at `/host` in the container, and a tag
//!   (an environment variable) that marks every process the test starts.
//! * [`Container`]: a guard whose `Drop` force-deletes the container.
//! * [`Baseline`]: the "no leftovers" checker (mounts, cgroups, state dir,
//!   processes).
//!
//! Every berth invocation writes its stdout/stderr to files (never pipes, so a
//! container that inherits them cannot block the test) and is bounded by a
//! timeout.

#![allow(dead_code)]

mod bundle;
mod console;
mod leaks;
mod sandbox;

#[allow(unused_imports)]
pub use bundle::*;
#[allow(unused_imports)]
pub use console::*;
pub use leaks::*;
pub use sandbox::*;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Every test directory lives here (the security tests rely on host paths under /tmp).
pub const BASE: &str = "/tmp/berth-rtests";
/// The environment variable that marks the processes of one test.
pub const TAG_VAR: &str = "BERTH_TEST_TAG";
/// How long any single berth command may take before the test gives up on it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default bound for polling a condition.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(10);

pub fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Poll `f` every few milliseconds until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The result of one berth command.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// Panic (with everything berth printed) unless the command succeeded.
    #[track_caller]
    pub fn expect_ok(&self) -> &Out {
        assert!(
            self.ok(),
            "`{}` failed with {}:\nstdout: {}\nstderr: {}",
            self.what,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panic unless the command failed, and its stderr names every one of `needles`.
    #[track_caller]
    pub fn expect_fail(&self, needles: &[&str]) -> &Out {
        assert!(
            !self.ok(),
            "`{}` should have failed but exited 0:\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout,
            self.stderr
        );
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "`{}` failed, but its error does not mention {n:?}:\nstderr: {}",
                self.what,
                self.stderr
            );
        }
        self
    }
}

fn exit_code(s: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// Wait for a child with a bound; kill it and panic when the bound passes.
pub fn wait_child(child: &mut Child, timeout: Duration, what: &str) -> i32 {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    match status {
        Some(s) => exit_code(s),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not finish within {timeout:?}");
        }
    }
}

/// Does a process exist (and is not a zombie)?
pub fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 2..i + 3))
        .unwrap_or("");
    !stat.is_empty() && state != "Z" && state != "X"
}

/// Spawn a command whose stdout/stderr go to files in the sandbox; returns the
/// child and the two paths.
pub fn spawn_to_files(sb: &Sandbox, mut cmd: Command, name: &str) -> (Child, PathBuf, PathBuf) {
    let out = sb.dir.join(format!("{name}.out"));
    let err = sb.dir.join(format!("{name}.err"));
    cmd.stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    (cmd.spawn().expect("spawn"), out, err)
}

/// A close-on-exec duplicate of `fd` numbered 200 or above, so it cannot
/// collide with the low numbers a child is given.
pub fn high_fd(fd: &impl std::os::fd::AsRawFd) -> std::os::fd::OwnedFd {
    // SAFETY: plain fcntl on a valid fd; the result is a fresh fd we own.
    unsafe {
        let n = libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200);
        assert!(
            n >= 0,
            "F_DUPFD_CLOEXEC: {}",
            std::io::Error::last_os_error()
        );
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n)
    }
}

/// Make `fd` available as `target` (without close-on-exec) in the child of `cmd`.
pub fn pass_fd(cmd: &mut Command, fd: i32, target: i32) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let flags = libc::fcntl(target, libc::F_GETFD);
            libc::fcntl(target, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            Ok(())
        });
    }
}

/// The value of a `Key:\tvalue` line of /proc/self/status-like output.
#[track_caller]
pub fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}
