//! One container: its bundle and rootfs, the berth invocations on it, its init
//! process and its execs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use containerd_shim::api::{CreateTaskRequest, ExecProcessRequest, Status};
use containerd_shim::protos::events::task::{TaskExecStarted, TaskStart};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::shim::oci::ProcessDetails;
use containerd_shim::protos::types::task::ProcessInfo;
use containerd_shim::util::convert_to_any;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::berth::{Berth, Launch};
use crate::checkpoint::PendingRestore;
use crate::error::{Context, Error, Result};
use crate::events::Publisher;
use crate::options::RuntimeOptions;
use crate::process::Process;
use crate::stdio::{PendingIo, StdioPaths};
use crate::{metrics, mount, oom};

pub(crate) const INIT_PID_FILE: &str = "init.pid";

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub(crate) berth: Berth,
    /// `<bundle>/rootfs` when the shim mounted it from the request's mounts.
    rootfs: Option<PathBuf>,
    pub init: Arc<Process>,
    execs: Mutex<HashMap<String, Arc<Process>>>,
    pub(crate) publisher: Publisher,
    /// Created from a checkpoint: Start restores it (see `checkpoint.rs`).
    restore: Mutex<Option<PendingRestore>>,
}

impl Container {
    /// Mounts the rootfs and runs `berth create`. The init's exit events are
    /// held back until the caller published TaskCreate (`init.ungate`).
    pub fn create(
        req: &CreateTaskRequest,
        namespace: &str,
        publisher: &Publisher,
    ) -> Result<Container> {
        let bundle = PathBuf::from(&req.bundle);
        let opts = RuntimeOptions::from_request(req.options.as_ref(), namespace)?;
        opts.save(&bundle)?;
        let rootfs = match req.rootfs.is_empty() {
            true => None,
            false => {
                let dir = bundle.join("rootfs");
                std::fs::create_dir_all(&dir).context("create rootfs directory")?;
                mount::mount_all(&req.rootfs, &dir)?;
                Some(dir)
            }
        };
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let init = Process::new(&req.id, "", stdio, Vec::new(), publisher.clone());
        init.gate();
        let c = Container {
            id: req.id.clone(),
            berth: Berth::new(&opts, &bundle),
            bundle,
            rootfs,
            init,
            execs: Mutex::new(HashMap::new()),
            publisher: publisher.clone(),
            restore: Mutex::new(None),
        };
        if !req.checkpoint.is_empty() {
            // As the runc shim: nothing runs until Start restores it.
            *c.restore.lock().unwrap() = Some(PendingRestore {
                image_path: PathBuf::from(&req.checkpoint),
                work_path: opts.criu_work_path.clone(),
            });
            return Ok(c);
        }
        if let Err(e) = c.launch_init() {
            c.cleanup();
            return Err(e);
        }
        Ok(c)
    }

    fn launch_init(&self) -> Result<()> {
        let pid_file = self.bundle.join(INIT_PID_FILE);
        let (pending, stdio) = PendingIo::prepare(&self.init.stdio)?;
        let launch = Launch {
            pid_file: &pid_file,
            console_socket: pending.console_socket(),
            stdio,
        };
        self.berth
            .create(&self.id, &self.bundle, launch)
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
        Ok(())
    }

    /// Runs the init's program (`berth start`).
    pub fn start(&self) -> Result<u32> {
        let restore = self.restore.lock().unwrap().take();
        if let Some(r) = restore {
            return self.start_restored(&r);
        }
        self.init.gate();
        if let Err(e) = self.berth.start(&self.id) {
            self.init.ungate(None::<TaskStart>);
            return Err(e);
        }
        self.init.set_status(Status::RUNNING);
        let pid = self.init.state().pid;
        self.init.ungate(Some(TaskStart {
            container_id: self.id.clone(),
            pid,
            ..Default::default()
        }));
        Ok(pid)
    }

    /// The init (empty `exec_id`) or an exec.
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs
            .lock()
            .unwrap()
            .get(exec_id)
            .cloned()
            .ok_or_else(|| {
                Error::not_found(format!(
                    "process {exec_id} does not exist in container {}",
                    self.id
                ))
            })
    }

    /// Registers an exec (ExecProcess); `start_exec` launches it.
    pub fn add_exec(&self, req: &ExecProcessRequest) -> Result<()> {
        if self.init.state().status == Status::STOPPED {
            return Err(Error::failed_precondition(format!(
                "container {} is stopped",
                self.id
            )));
        }
        let mut execs = self.execs.lock().unwrap();
        if execs.contains_key(&req.exec_id) {
            return Err(Error::already_exists(format!(
                "exec process {} already exists",
                req.exec_id
            )));
        }
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        let p = Process::new(&self.id, &req.exec_id, stdio, spec, self.publisher.clone());
        execs.insert(req.exec_id.clone(), p);
        Ok(())
    }

    /// `berth exec --detach` of a registered exec.
    pub fn start_exec(&self, exec_id: &str) -> Result<u32> {
        let p = self.process(exec_id)?;
        if p.state().status != Status::CREATED {
            return Err(Error::failed_precondition(format!(
                "exec {exec_id} was already started"
            )));
        }
        p.gate();
        let started = self.launch_exec(&p);
        if started.is_err() {
            p.abandon();
        }
        let event = started.as_ref().ok().map(|&pid| TaskExecStarted {
            container_id: self.id.clone(),
            exec_id: exec_id.to_string(),
            pid,
            ..Default::default()
        });
        if event.is_some() {
            p.set_status(Status::RUNNING);
        }
        p.ungate(event);
        started
    }

    fn launch_exec(&self, p: &Arc<Process>) -> Result<u32> {
        let n = next_seq();
        let spec_file = self.bundle.join(format!(".exec-{n}.json"));
        let pid_file = self.bundle.join(format!(".exec-{n}.pid"));
        std::fs::write(&spec_file, &p.spec).context("write exec process spec")?;
        let result: Result<u32> = (|| {
            let (pending, stdio) = PendingIo::prepare(&p.stdio)?;
            let launch = Launch {
                pid_file: &pid_file,
                console_socket: pending.console_socket(),
                stdio,
            };
            self.berth
                .exec(&self.id, &spec_file, launch)
                .map_err(|e| pending.explain(e))?;
            let pid = read_pid(&pid_file)?;
            p.watch_pid(pid);
            p.set_io(pending.start(&p.stdio)?);
            Ok(pid)
        })();
        let _ = std::fs::remove_file(&spec_file);
        let _ = std::fs::remove_file(&pid_file);
        result
    }

    pub fn kill(&self, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        if exec_id.is_empty() {
            let _held = self.init.killing();
            return self.berth.kill(&self.id, signal, all);
        }
        let p = self.process(exec_id)?;
        let _held = p.killing();
        let st = p.state();
        if st.pid == 0 {
            return Err(Error::failed_precondition(format!(
                "exec {exec_id} is not started"
            )));
        }
        if st.exited_at.is_some() {
            return Err(Error::not_found("process already finished"));
        }
        let sig = Signal::try_from(signal as i32)
            .map_err(|_| Error::invalid(format!("invalid signal {signal}")))?;
        kill(Pid::from_raw(st.pid as i32), sig).map_err(|e| match e {
            nix::errno::Errno::ESRCH => Error::not_found("process already finished"),
            e => e.into(),
        })
    }

    /// Removes a stopped (or never started) exec.
    pub fn delete_exec(&self, exec_id: &str) -> Result<Arc<Process>> {
        let p = self.process(exec_id)?;
        if matches!(p.state().status, Status::RUNNING | Status::PAUSED) {
            return Err(Error::failed_precondition(format!(
                "exec {exec_id} is still running"
            )));
        }
        self.execs.lock().unwrap().remove(exec_id);
        p.release();
        Ok(p)
    }

    /// Deletes the container (`berth delete --force`, unmount the rootfs).
    /// Refused while the init runs.
    pub fn delete(&self) -> Result<()> {
        if matches!(self.init.state().status, Status::RUNNING | Status::PAUSED) {
            return Err(Error::failed_precondition(format!(
                "container {} is still running",
                self.id
            )));
        }
        self.cleanup_checked()
    }

    fn cleanup_checked(&self) -> Result<()> {
        let deleted = self.berth.delete(&self.id);
        self.cleanup();
        if deleted.is_ok() {
            // Nothing left for the `delete` action containerd runs after the
            // shim exits: it then skips `berth delete`.
            RuntimeOptions::forget(&self.bundle);
        }
        deleted
    }

    /// Everything this container holds in the shim and on the host, best effort.
    fn cleanup(&self) {
        for p in self.execs.lock().unwrap().drain().map(|(_, p)| p) {
            p.release();
        }
        self.init.release();
        if let Some(rootfs) = &self.rootfs {
            mount::unmount_all(rootfs);
        }
        let _ = std::fs::remove_file(self.bundle.join(INIT_PID_FILE));
    }

    /// For the `delete` action after the shim died: what can be cleaned up
    /// from the bundle alone.
    /// Without saved options the container was deleted already (or never
    /// created), so there is no `berth delete` to run.
    pub fn cleanup_bundle(id: &str, bundle: &Path, namespace: &str) -> Result<()> {
        let deleted = match RuntimeOptions::load(bundle, namespace) {
            Some(opts) => Berth::new(&opts, bundle).delete(id),
            None => Ok(()),
        };
        mount::unmount_all(&bundle.join("rootfs"));
        if deleted.is_ok() {
            RuntimeOptions::forget(bundle);
        }
        deleted
    }

    pub fn pause(&self) -> Result<()> {
        self.berth.pause(&self.id)?;
        self.init.set_status(Status::PAUSED);
        Ok(())
    }

    pub fn resume(&self) -> Result<()> {
        self.berth.resume(&self.id)?;
        self.init.set_status(Status::RUNNING);
        Ok(())
    }

    /// `berth update --resources` with the LinuxResources JSON containerd sent.
    pub fn update(&self, resources: &Any) -> Result<()> {
        let file = self.bundle.join(format!(".update-{}.json", next_seq()));
        std::fs::write(&file, &resources.value).context("write resources")?;
        let r = self.berth.update(&self.id, &file);
        let _ = std::fs::remove_file(&file);
        r
    }

    /// The container's processes (`berth ps`), execs marked with their id.
    pub fn pids(&self) -> Result<Vec<ProcessInfo>> {
        let pids = self.berth.ps(&self.id)?;
        let execs: HashMap<u32, String> = self
            .execs
            .lock()
            .unwrap()
            .values()
            .map(|p| (p.state().pid, p.exec_id.clone()))
            .collect();
        pids.into_iter()
            .map(|pid| {
                let mut info = ProcessInfo {
                    pid,
                    ..Default::default()
                };
                if let Some(exec_id) = execs.get(&pid) {
                    let details = ProcessDetails {
                        exec_id: exec_id.clone(),
                        ..Default::default()
                    };
                    info.info = Some(convert_to_any(Box::new(details))?).into();
                }
                Ok(info)
            })
            .collect()
    }

    pub fn stats(&self) -> Result<Any> {
        let st = self.init.state();
        if st.pid == 0 || st.exited_at.is_some() {
            return Err(Error::failed_precondition(format!(
                "container {} is not running",
                self.id
            )));
        }
        metrics::collect(st.pid)
    }
}

pub(crate) fn read_pid(file: &Path) -> Result<u32> {
    let text = std::fs::read_to_string(file).context(format_args!("read {}", file.display()))?;
    text.trim()
        .parse()
        .map_err(|_| Error::other(format!("bad pid in {}: {text:?}", file.display())))
}

fn next_seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}
