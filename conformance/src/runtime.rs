//! Drives a runc-compatible runtime through its command line, as runtime.md describes.

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Upper bound for any single runtime invocation.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound when polling for a state change.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Runtime {
    pub path: PathBuf,
    /// The runtime's global `--root` state directory, unique per suite run.
    pub root: PathBuf,
    logs: PathBuf,
    counter: AtomicUsize,
}

/// What one runtime invocation did.
#[derive(Debug)]
pub struct Output {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// A one-line description for failure reasons.
    pub fn describe(&self) -> String {
        let status = match (self.timed_out, self.status) {
            (true, _) => "timed out".to_string(),
            (false, Some(s)) => s.to_string(),
            (false, None) => "not run".to_string(),
        };
        let err = self.stderr.trim();
        let err = if err.len() > 300 {
            &err[err.len() - 300..]
        } else {
            err
        };
        format!("{status}; stderr: {}", err.replace('\n', " | "))
    }
}

impl Runtime {
    pub fn new(path: PathBuf, root: PathBuf, logs: PathBuf) -> std::io::Result<Self> {
        fs::create_dir_all(&root)?;
        fs::create_dir_all(&logs)?;
        Ok(Runtime {
            path,
            root,
            logs,
            counter: AtomicUsize::new(0),
        })
    }

    /// Runs `runtime --root ROOT ARGS...` with stdio going to files (a container started
    /// by `create` or `run` inherits them, so pipes would never reach EOF).
    pub fn exec(&self, args: &[&str]) -> Output {
        self.exec_in(args, None)
    }

    /// Like [`exec`](Self::exec) with the container's stdout/stderr in the given files.
    pub fn exec_in(&self, args: &[&str], stdio: Option<(&Path, &Path)>) -> Output {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let (out_path, err_path) = match stdio {
            Some((o, e)) => (o.to_path_buf(), e.to_path_buf()),
            None => (
                self.logs.join(format!("{n}.out")),
                self.logs.join(format!("{n}.err")),
            ),
        };
        let mut result = Output {
            status: None,
            stdout: String::new(),
            stderr: String::new(),
            timed_out: false,
        };
        let (Ok(out), Ok(err)) = (fs::File::create(&out_path), fs::File::create(&err_path)) else {
            result.stderr = format!("cannot create log files in {}", self.logs.display());
            return result;
        };
        let spawned = Command::new(&self.path)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                result.stderr = format!("cannot run {}: {e}", self.path.display());
                return result;
            }
        };
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    result.status = Some(status);
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    result.status = child.wait().ok();
                    result.timed_out = true;
                    break;
                }
            }
        }
        result.stdout = fs::read_to_string(&out_path).unwrap_or_default();
        result.stderr = fs::read_to_string(&err_path).unwrap_or_default();
        result
    }

    pub fn create(&self, bundle: &Path, id: &str) -> Output {
        self.with_bundle("create", bundle, id)
    }

    pub fn run(&self, bundle: &Path, id: &str) -> Output {
        self.with_bundle("run", bundle, id)
    }

    /// `VERB --bundle B ID`, with the container's stdio in B/stdout.log and B/stderr.log.
    fn with_bundle(&self, verb: &str, bundle: &Path, id: &str) -> Output {
        let b = bundle.display().to_string();
        let (out, err) = (bundle.join("stdout.log"), bundle.join("stderr.log"));
        let stdio = bundle.is_dir().then_some((out.as_path(), err.as_path()));
        self.exec_in(&[verb, "--bundle", &b, id], stdio)
    }

    pub fn start(&self, id: &str) -> Output {
        self.exec(&["start", id])
    }

    pub fn kill(&self, id: &str, signal: &str) -> Output {
        self.exec(&["kill", id, signal])
    }

    pub fn delete(&self, id: &str) -> Output {
        self.exec(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Output {
        self.exec(&["delete", "--force", id])
    }

    /// The parsed output of `state ID`.
    pub fn state(&self, id: &str) -> Result<Value, String> {
        let out = self.exec(&["state", id]);
        if !out.success() {
            return Err(format!("state {id} failed: {}", out.describe()));
        }
        serde_json::from_str(&out.stdout)
            .map_err(|e| format!("state {id} printed invalid JSON ({e}): {}", out.stdout))
    }

    pub fn status(&self, id: &str) -> Result<String, String> {
        let state = self.state(id)?;
        state["status"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("state has no status: {state}"))
    }

    /// Polls `state` until the status is `want`, within [`POLL_TIMEOUT`].
    pub fn wait_status(&self, id: &str, want: &str) -> Result<(), String> {
        let deadline = Instant::now() + POLL_TIMEOUT;
        loop {
            let status = self.status(id)?;
            if status == want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("status stayed {status:?}, expected {want:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Container ids known to the runtime (`list -q`), or an error.
    pub fn list(&self) -> Result<Vec<String>, String> {
        let out = self.exec(&["list", "-q"]);
        if !out.success() {
            return Err(format!("list failed: {}", out.describe()));
        }
        Ok(out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// Checks that the runtime holds nothing for `id`: not in `list`, `state` fails,
    /// no entry in the state directory.
    pub fn assert_absent(&self, id: &str) -> Result<(), String> {
        if self.list()?.iter().any(|c| c == id) {
            return Err(format!("{id} still listed by `list`"));
        }
        if self.state(id).is_ok() {
            return Err(format!("`state {id}` still succeeds"));
        }
        if self.root.join(id).exists() {
            return Err(format!("{} left behind", self.root.join(id).display()));
        }
        Ok(())
    }
}

/// Deletes the container (`delete --force`) when dropped, even on failure or panic.
pub struct ContainerGuard<'a> {
    pub runtime: &'a Runtime,
    pub id: String,
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        if self.runtime.state(&self.id).is_ok() {
            let _ = self.runtime.delete_force(&self.id);
        }
    }
}

/// Polls `cond` until it holds, within [`POLL_TIMEOUT`].
pub fn poll(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + POLL_TIMEOUT;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
