//! The `berth` command line, runc's: every call is
//! `berth --root R --log <bundle>/log.json --log-format json VERB ...`.
//! A failure is reported with the last error line berth wrote to the log
//! during that call (runc's JSON lines), else its stderr, else its status.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Context, Error, Result};
use crate::options::RuntimeOptions;
use crate::reaper::Reaper;

/// What the runtime's process gets as stdin, stdout and stderr (`berth create`
/// and `berth exec` hand theirs to the container process).
pub struct ChildStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl ChildStdio {
    pub fn null() -> Self {
        ChildStdio {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

/// Options of `berth create` / `berth exec` beyond the container id.
pub struct Launch<'a> {
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub stdio: ChildStdio,
}

#[derive(Debug, Clone)]
pub struct Berth {
    binary: PathBuf,
    root: PathBuf,
    log: PathBuf,
    systemd_cgroup: bool,
}

impl Berth {
    pub fn new(opts: &RuntimeOptions, bundle: &Path) -> Self {
        Berth {
            binary: opts.binary.clone(),
            root: opts.root.clone(),
            log: bundle.join("log.json"),
            systemd_cgroup: opts.systemd_cgroup,
        }
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"]);
        if self.systemd_cgroup {
            // As containerd's runc shim: on every call (berth reads it at create).
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(args);
        cmd
    }

    pub fn create(&self, id: &str, bundle: &Path, launch: Launch) -> Result<()> {
        let mut cmd = self.command(["create", "--bundle"]);
        cmd.arg(bundle).arg("--pid-file").arg(launch.pid_file);
        if let Some(s) = launch.console_socket {
            cmd.arg("--console-socket").arg(s);
        }
        cmd.arg(id);
        self.run_with("create", cmd, launch.stdio).map(drop)
    }

    pub fn exec(&self, id: &str, process_file: &Path, launch: Launch) -> Result<()> {
        let mut cmd = self.command(["exec", "--detach", "--process"]);
        cmd.arg(process_file).arg("--pid-file").arg(launch.pid_file);
        if let Some(s) = launch.console_socket {
            cmd.arg("--console-socket").arg(s);
        }
        cmd.arg(id);
        self.run_with("exec", cmd, launch.stdio).map(drop)
    }

    /// `berth checkpoint --image-path P --work-path W FLAGS ID`.
    pub fn checkpoint(&self, id: &str, image: &Path, work: &Path, flags: &[String]) -> Result<()> {
        let mut args: Vec<&OsStr> = vec![
            "checkpoint".as_ref(),
            "--image-path".as_ref(),
            image.as_os_str(),
            "--work-path".as_ref(),
            work.as_os_str(),
        ];
        args.extend(flags.iter().map(OsStr::new));
        args.push(id.as_ref());
        self.run("checkpoint", args).map(drop)
    }

    /// `berth restore --detach` of a checkpoint, the container's new stdio
    /// handed to it (the restored init's stdio pipes become these).
    pub fn restore(
        &self,
        id: &str,
        bundle: &Path,
        r: &crate::checkpoint::PendingRestore,
        launch: Launch,
    ) -> Result<()> {
        let mut cmd = self.command(["restore", "--detach", "--no-subreaper", "--bundle"]);
        cmd.arg(bundle)
            .arg("--image-path")
            .arg(&r.image_path)
            .arg("--pid-file")
            .arg(launch.pid_file);
        if let Some(w) = &r.work_path {
            cmd.arg("--work-path").arg(w);
        }
        if let Some(s) = launch.console_socket {
            cmd.arg("--console-socket").arg(s);
        }
        cmd.arg(id);
        self.run_with("restore", cmd, launch.stdio).map(drop)
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.run("start", ["start", id]).map(drop)
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let signal = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, signal.as_str()]);
        self.run("kill", args).map(drop).map_err(|e| {
            if is_gone(&e) {
                Error::not_found("process already finished")
            } else {
                e
            }
        })
    }

    /// `berth delete --force`; a container berth does not know is not an error.
    pub fn delete(&self, id: &str) -> Result<()> {
        match self.run("delete", ["delete", "--force", id]) {
            Err(e) if is_gone(&e) => Ok(()),
            r => r.map(drop),
        }
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.run("pause", ["pause", id]).map(drop)
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.run("resume", ["resume", id]).map(drop)
    }

    pub fn update(&self, id: &str, resources_file: &Path) -> Result<()> {
        let mut args: Vec<&OsStr> = vec!["update".as_ref(), "--resources".as_ref()];
        args.extend([resources_file.as_os_str(), id.as_ref()]);
        self.run("update", args).map(drop)
    }

    /// The pids of a container's processes (`berth ps --format json`).
    pub fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let out = self.run("ps", ["ps", "--format", "json", id])?;
        serde_json::from_slice(&out).context("parse berth ps output")
    }

    fn run<I, S>(&self, verb: &str, args: I) -> Result<Vec<u8>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let stdio = ChildStdio {
            stdin: Stdio::null(),
            stdout: Stdio::piped(),
            stderr: Stdio::piped(),
        };
        self.run_with(verb, self.command(args), stdio)
    }

    /// Runs `cmd` to completion (waiting through the reaper: the shim's signal
    /// thread reaps all children) and returns what it wrote to a piped stdout.
    fn run_with(&self, verb: &str, mut cmd: Command, stdio: ChildStdio) -> Result<Vec<u8>> {
        let log_start = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        cmd.stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        let reaper = Reaper::get();
        let mut child = cmd
            .spawn()
            .context(format_args!("run {}", self.binary.display()))?;
        drop(cmd); // closes our copies of the fds handed to the child
        let pid = child.id() as i32;
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_end(&mut out);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_end(&mut err);
        }
        let status = reaper.wait(pid);
        if status == 0 {
            return Ok(out);
        }
        let msg = last_error(&self.log, log_start)
            .or_else(|| {
                Some(String::from_utf8_lossy(&err).trim().to_string()).filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| format!("exit status {status}"));
        Err(Error::other(format!("OCI runtime {verb} failed: {msg}")))
    }
}

/// Whether berth said the container or process is not there (any more).
fn is_gone(e: &Error) -> bool {
    let m = e.to_string().to_lowercase();
    [
        "not running",
        "does not exist",
        "not exist",
        "no such process",
        "not found",
        "already stopped",
        "stopped",
    ]
    .iter()
    .any(|s| m.contains(s))
}

/// The `msg` of the last `"level":"error"` JSON line written after `offset`.
fn last_error(log: &Path, offset: u64) -> Option<String> {
    let mut f = File::open(log).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut text = String::new();
    f.read_to_string(&mut text).ok()?;
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        (v.get("level")?.as_str()? == "error")
            .then(|| v.get("msg")?.as_str().map(str::to_string))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_reads_only_new_lines() {
        let dir = std::env::temp_dir().join(format!("berth-shim-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log.json");
        let old = "{\"level\":\"error\",\"msg\":\"old failure\",\"time\":\"t\"}\n";
        std::fs::write(&log, old).unwrap();
        assert_eq!(last_error(&log, 0).as_deref(), Some("old failure"));
        let new = "{\"level\":\"error\",\"msg\":\"container \\\"x\\\" does not exist\",\"time\":\"t\"}\n{\"level\":\"info\",\"msg\":\"bye\",\"time\":\"t\"}\nnot json\n";
        std::fs::write(&log, format!("{old}{new}")).unwrap();
        assert_eq!(
            last_error(&log, old.len() as u64).as_deref(),
            Some("container \"x\" does not exist")
        );
        std::fs::write(&log, old).unwrap();
        assert_eq!(last_error(&log, old.len() as u64), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gone_errors_are_recognised() {
        assert!(is_gone(&Error::other(
            "OCI runtime kill failed: container \"a\" is not running"
        )));
        assert!(is_gone(&Error::other(
            "OCI runtime delete failed: container \"a\" does not exist"
        )));
        assert!(!is_gone(&Error::other(
            "OCI runtime kill failed: permission denied"
        )));
    }
}
