//! The short-lived `start` action of the shim (containerd runs it for every
//! container and reads the shim's address from its stdout) must never hang.
//!
//! It used to: the synchronous `containerd-shim` bootstrap registered
//! SIGCHLD/SIGPIPE handlers (signal-hook, a self-pipe) in the `start` process
//! too. When the child it spawned to serve the pod exited (the pod's shim was
//! already running) and its SIGCHLD arrived while the self-pipe was being torn
//! down at exit, the handler's `send` failed with EPIPE, which raised SIGPIPE,
//! whose handler did the same, forever; containerd waited for the address until
//! the CRI deadline. The window is microseconds wide, so the test does not wait
//! for luck: strace delivers a SIGCHLD at the entry of every close(2) of the
//! start process, the self-pipe's among them.
//!
//! No containerd is needed: the shim daemon only connects to containerd's ttrpc
//! socket (a listening socket of the test) and writes to the bundle's `log` FIFO.
//! Root (the shim's socket is under /run/containerd/s) and strace.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-berth-v2");
/// A start action that takes longer than this hangs.
const START_LIMIT_SECS: &str = "20";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A bundle directory of a CRI container (grouped by its sandbox-id
/// annotation), a fake containerd ttrpc endpoint, and cleanup of the daemons
/// the start actions spawned (found by their unique namespace), their socket
/// and the directory.
struct Fixture {
    dir: PathBuf,
    bundle: PathBuf,
    namespace: String,
    _ttrpc: UnixListener,
    _log: fs::File,
}

impl Fixture {
    fn new() -> Fixture {
        let tag = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = PathBuf::from(format!("/tmp/berth-shim-start-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        let bundle = dir.join("bundle");
        fs::create_dir_all(&bundle).unwrap();
        fs::write(
            bundle.join("config.json"),
            format!(r#"{{"annotations":{{"io.kubernetes.cri.sandbox-id":"start-test-{tag}"}}}}"#),
        )
        .unwrap();
        // The daemon logs into the bundle's FIFO; held open read-write here so
        // its writes never block or fail (it logs warnings only).
        let log = bundle.join("log");
        nix::unistd::mkfifo(&log, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let log = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log)
            .unwrap();
        // containerd's ttrpc socket: the daemon connects to publish events.
        let ttrpc = UnixListener::bind(dir.join("ttrpc.sock")).unwrap();
        Fixture {
            dir,
            bundle,
            namespace: format!("berth-start-test-{tag}"),
            _ttrpc: ttrpc,
            _log: log,
        }
    }

    /// Runs `start` for container `id` with a SIGCHLD delivered at every
    /// close(2) it makes; returns the address it printed. Fails the test if
    /// it does not finish in time or fails.
    fn start_with_sigchld_at_every_close(&self, id: &str) -> String {
        let trace = self.dir.join(format!("strace-{id}.log"));
        let t0 = Instant::now();
        let mut child = Command::new("timeout")
            .args(["-k", "2", START_LIMIT_SECS, "strace", "-o"])
            .arg(&trace)
            .args(["-e", "trace=close", "-e", "inject=close:signal=SIGCHLD"])
            .arg(SHIM)
            .args(["-namespace", &self.namespace, "-id", id, "-address"])
            .arg(self.dir.join("containerd.sock"))
            .arg("start")
            .current_dir(&self.bundle)
            .env("TTRPC_ADDRESS", self.dir.join("ttrpc.sock"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run strace (scripts/install-deps.sh)");
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        let tracelog = fs::read_to_string(&trace).unwrap_or_default();
        // timeout(1) exits 124 after its TERM, or dies of its own KILL.
        let hung = matches!(status.code(), Some(124) | Some(137))
            || status.signal() == Some(libc::SIGKILL);
        assert!(
            !hung,
            "start of {id} hung (killed after {:?}); strace tail:\n{}",
            t0.elapsed(),
            tail(&tracelog, 12)
        );
        assert!(status.success(), "start of {id} failed ({status}): {err}");
        let injected = tracelog.matches("si_code=SI_KERNEL").count();
        assert!(injected > 0, "no SIGCHLD was injected:\n{tracelog}");
        out
    }

    fn daemons(&self) -> Vec<u32> {
        let needle = format!("-namespace\0{}\0", self.namespace);
        let mut pids = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for pid in self.daemons() {
            // SAFETY: plain kill(2) of a shim this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        if let Ok(address) = fs::read_to_string(self.bundle.join("address")) {
            let _ = fs::remove_file(address.trim().trim_start_matches("unix://"));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn wait_gone(pids: &[u32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if pids
            .iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists() || is_zombie(*p))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

#[test]
fn start_never_hangs_on_a_sigchld_at_any_close() {
    if !common::root_with_tools(&["strace"]) {
        return;
    }
    let f = Fixture::new();
    // The pod's first container: a daemon is spawned and serves the pod.
    let first = f.start_with_sigchld_at_every_close("c1");
    assert!(first.starts_with("unix:///run/containerd/s/"), "{first:?}");
    assert_eq!(
        fs::read_to_string(f.bundle.join("address")).unwrap(),
        first,
        "the address file"
    );
    let daemons = f.daemons();
    assert_eq!(daemons.len(), 1, "one daemon for the pod: {daemons:?}");
    // Its next containers: the running daemon is reused, from the same
    // start action that hung.
    for id in ["c2", "c3"] {
        let again = f.start_with_sigchld_at_every_close(id);
        assert_eq!(again, first, "the pod's shim is reused for {id}");
    }
    assert_eq!(f.daemons(), daemons, "no second daemon for the pod");
    for pid in &daemons {
        // SAFETY: plain kill(2) of the shim this test started.
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    assert!(wait_gone(&daemons), "daemon still running");
}
