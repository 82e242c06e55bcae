//! Checkpoint and restore, as containerd's runc shim drives runc: the Task
//! API's Checkpoint runs `berth checkpoint` into the path containerd gives
//! (leaving the container running unless the options say `exit`); a Create
//! that carries a checkpoint path makes no container yet, and its Start runs
//! `berth restore --detach` with the new stdio.

use std::path::{Path, PathBuf};

use containerd_shim::api::{CheckpointTaskRequest, Status};
use containerd_shim::protos::events::task::TaskStart;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::shim::oci::CheckpointOptions;

use crate::berth::Launch;
use crate::container::{read_pid, Container, INIT_PID_FILE};
use crate::error::{Context, Error, Result};
use crate::oom;
use crate::stdio::PendingIo;

/// A Create with a checkpoint: what the Start restores from.
#[derive(Debug, Clone)]
pub struct PendingRestore {
    pub image_path: PathBuf,
    /// `CriuWorkPath` of the runtime options (else the image directory).
    pub work_path: Option<PathBuf>,
}

/// The flags of `berth checkpoint` for a Checkpoint request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CheckpointFlags {
    pub leave_running: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub empty_ns: Vec<String>,
    pub cgroups_mode: String,
    pub work_path: Option<PathBuf>,
}

impl CheckpointFlags {
    /// From containerd's `containerd.runc.v1.CheckpointOptions` (what ctr and
    /// the containerd client send); other or no options: the defaults, which
    /// leave the container running.
    pub fn from_options(options: Option<&Any>) -> Result<Self> {
        let mut f = CheckpointFlags {
            leave_running: true,
            ..Default::default()
        };
        let Some(any) = options else {
            return Ok(f);
        };
        if !any
            .type_url
            .ends_with("containerd.runc.v1.CheckpointOptions")
        {
            log::warn!("ignoring checkpoint options of type {}", any.type_url);
            return Ok(f);
        }
        let o =
            CheckpointOptions::parse_from_bytes(&any.value).context("decode checkpoint options")?;
        f.leave_running = !o.exit;
        f.tcp_established = o.open_tcp;
        f.ext_unix_sk = o.external_unix_sockets;
        f.shell_job = o.terminal;
        f.file_locks = o.file_locks;
        f.empty_ns = o.empty_namespaces.clone();
        f.cgroups_mode = o.cgroups_mode.clone();
        f.work_path = (!o.work_path.is_empty()).then(|| PathBuf::from(&o.work_path));
        Ok(f)
    }

    /// `berth checkpoint` arguments after the image and work paths.
    pub fn args(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (on, flag) in [
            (self.leave_running, "--leave-running"),
            (self.tcp_established, "--tcp-established"),
            (self.ext_unix_sk, "--ext-unix-sk"),
            (self.shell_job, "--shell-job"),
            (self.file_locks, "--file-locks"),
        ] {
            if on {
                v.push(flag.to_string());
            }
        }
        for ns in &self.empty_ns {
            v.extend(["--empty-ns".to_string(), ns.clone()]);
        }
        if !self.cgroups_mode.is_empty() {
            v.extend([
                "--manage-cgroups-mode".to_string(),
                self.cgroups_mode.clone(),
            ]);
        }
        v
    }
}

impl Container {
    /// Task API Checkpoint: `berth checkpoint` of the init into `req.path`.
    /// CRIU's work files go to the requested work path, else to a directory
    /// in the bundle removed afterwards; on failure CRIU's log is kept as
    /// `<bundle>/criu-dump.log` and named in the error, as the runc shim does.
    pub fn checkpoint(&self, req: &CheckpointTaskRequest) -> Result<()> {
        if !matches!(self.init.state().status, Status::RUNNING | Status::PAUSED) {
            return Err(Error::failed_precondition(format!(
                "container {} is not running",
                self.id
            )));
        }
        if req.path.is_empty() {
            return Err(Error::invalid("checkpoint without an image path"));
        }
        let flags = CheckpointFlags::from_options(req.options.as_ref())?;
        let (work, temporary) = match &flags.work_path {
            Some(w) => (w.clone(), false),
            None => (self.bundle.join("criu-work"), true),
        };
        let r = self
            .berth
            .checkpoint(&self.id, Path::new(&req.path), &work, &flags.args());
        if let Err(e) = r {
            let kept = self.bundle.join("criu-dump.log");
            let _ = std::fs::copy(work.join("dump.log"), &kept);
            if temporary {
                let _ = std::fs::remove_dir_all(&work);
            }
            return Err(e.context(format_args!("checkpoint (log: {})", kept.display())));
        }
        if temporary {
            let _ = std::fs::remove_dir_all(&work);
        }
        Ok(())
    }

    /// Start of a container created from a checkpoint: `berth restore`.
    pub(crate) fn start_restored(&self, r: &PendingRestore) -> Result<u32> {
        self.init.gate();
        let restored = self.launch_restored(r);
        let pid = match restored {
            Ok(pid) => pid,
            Err(e) => {
                self.init.ungate(None::<TaskStart>);
                return Err(e);
            }
        };
        self.init.set_status(Status::RUNNING);
        self.init.ungate(Some(TaskStart {
            container_id: self.id.clone(),
            pid,
            ..Default::default()
        }));
        Ok(pid)
    }

    fn launch_restored(&self, r: &PendingRestore) -> Result<u32> {
        let pid_file = self.bundle.join(INIT_PID_FILE);
        let (pending, stdio) = PendingIo::prepare(&self.init.stdio)?;
        let launch = Launch {
            pid_file: &pid_file,
            console_socket: pending.console_socket(),
            stdio,
        };
        self.berth
            .restore(&self.id, &self.bundle, r, launch)
            .map_err(|e| pending.explain(e))?;
        let pid = read_pid(&pid_file)?;
        self.init.watch_pid(pid);
        let io = pending.start(&self.init.stdio).inspect_err(|_| {
            let _ = self.berth.delete(&self.id);
        })?;
        self.init.set_io(io);
        if let Err(e) = oom::watch(pid, &self.id, &self.publisher) {
            log::warn!("{}: no OOM events: {e}", self.id);
        }
        Ok(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(o: &CheckpointOptions) -> Any {
        Any {
            type_url: "type.googleapis.com/containerd.runc.v1.CheckpointOptions".into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn no_options_leave_the_container_running() {
        let f = CheckpointFlags::from_options(None).unwrap();
        assert_eq!(f.args(), vec!["--leave-running"]);
    }

    #[test]
    fn runc_checkpoint_options_become_berth_flags() {
        let o = CheckpointOptions {
            exit: true,
            open_tcp: true,
            terminal: true,
            file_locks: true,
            empty_namespaces: vec!["network".into()],
            cgroups_mode: "soft".into(),
            work_path: "/w".into(),
            ..Default::default()
        };
        let f = CheckpointFlags::from_options(Some(&any(&o))).unwrap();
        assert_eq!(
            f.args(),
            vec![
                "--tcp-established",
                "--shell-job",
                "--file-locks",
                "--empty-ns",
                "network",
                "--manage-cgroups-mode",
                "soft"
            ]
        );
        assert_eq!(f.work_path, Some(PathBuf::from("/w")));
    }
}
