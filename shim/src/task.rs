//! containerd's Task API over the containers this shim serves (all containers
//! of one pod share a shim).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use containerd_shim::api::*;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskIO, TaskPaused, TaskResumed,
};
use containerd_shim::{ExitSignal, Task, TtrpcContext, TtrpcResult};

use crate::container::Container;
use crate::error::{Error, Result};
use crate::events::Publisher;
use crate::process::ProcState;

pub struct TaskService {
    namespace: String,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    publisher: Publisher,
    exit: Arc<ExitSignal>,
    /// This shim's socket, removed on Shutdown.
    socket: String,
}

impl TaskService {
    pub fn new(namespace: &str, publisher: Publisher, exit: Arc<ExitSignal>, socket: &str) -> Self {
        TaskService {
            namespace: namespace.to_string(),
            containers: Mutex::new(HashMap::new()),
            publisher,
            exit,
            socket: socket.to_string(),
        }
    }

    fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.containers
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("container {id} does not exist")))
    }

    fn do_create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        if self.containers.lock().unwrap().contains_key(&req.id) {
            return Err(Error::already_exists(format!(
                "container {} already exists",
                req.id
            )));
        }
        let c = Arc::new(Container::create(&req, &self.namespace, &self.publisher)?);
        let pid = c.init.state().pid;
        self.containers
            .lock()
            .unwrap()
            .insert(req.id.clone(), c.clone());
        c.init.ungate(Some(TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: Some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            })
            .into(),
            checkpoint: req.checkpoint.clone(),
            pid,
            ..Default::default()
        }));
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    fn do_delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        let c = self.container(&req.id)?;
        let st = if req.exec_id.is_empty() {
            c.delete()?;
            self.containers.lock().unwrap().remove(&req.id);
            let st = c.init.state();
            self.publisher.publish(TaskDelete {
                container_id: req.id.clone(),
                pid: st.pid,
                exit_status: st.exit_status,
                exited_at: st.exited_at.clone().into(),
                ..Default::default()
            });
            st
        } else {
            c.delete_exec(&req.exec_id)?.state()
        };
        Ok(DeleteResponse {
            pid: st.pid,
            exit_status: st.exit_status,
            exited_at: st.exited_at.into(),
            ..Default::default()
        })
    }

    fn do_state(&self, req: StateRequest) -> Result<StateResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let st: ProcState = p.state();
        Ok(StateResponse {
            id: p.id().to_string(),
            bundle: c.bundle.to_string_lossy().into_owned(),
            pid: st.pid,
            status: st.status.into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: st.exit_status,
            exited_at: st.exited_at.into(),
            exec_id: req.exec_id,
            ..Default::default()
        })
    }

    fn do_start(&self, req: StartRequest) -> Result<StartResponse> {
        let c = self.container(&req.id)?;
        let pid = if req.exec_id.is_empty() {
            c.start()?
        } else {
            c.start_exec(&req.exec_id)?
        };
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn do_shutdown(&self, req: ShutdownRequest) -> Result<Empty> {
        if !req.now && !self.containers.lock().unwrap().is_empty() {
            return Ok(Empty::new());
        }
        let path = self.socket.strip_prefix("unix://").unwrap_or(&self.socket);
        let _ = std::fs::remove_file(path);
        self.exit.signal();
        Ok(Empty::new())
    }
}

impl Task for TaskService {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: CreateTaskRequest,
    ) -> TtrpcResult<CreateTaskResponse> {
        log::info!("create {} (bundle {})", req.id, req.bundle);
        Ok(self.do_create(req)?)
    }

    fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        Ok(self.do_start(req)?)
    }

    fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        Ok(self.do_state(req)?)
    }

    fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        Ok(self.do_delete(req)?)
    }

    fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        let processes = self.container(&req.id)?.pids()?;
        Ok(PidsResponse {
            processes,
            ..Default::default()
        })
    }

    fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> TtrpcResult<Empty> {
        self.container(&req.id)?.pause()?;
        self.publisher.publish(TaskPaused {
            container_id: req.id,
            ..Default::default()
        });
        Ok(Empty::new())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> TtrpcResult<Empty> {
        self.container(&req.id)?.resume()?;
        self.publisher.publish(TaskResumed {
            container_id: req.id,
            ..Default::default()
        });
        Ok(Empty::new())
    }

    fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        self.container(&req.id)?
            .kill(&req.exec_id, req.signal, req.all)?;
        Ok(Empty::new())
    }

    fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        self.container(&req.id)?.add_exec(&req)?;
        self.publisher.publish(TaskExecAdded {
            container_id: req.id,
            exec_id: req.exec_id,
            ..Default::default()
        });
        Ok(Empty::new())
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        p.with_io(|io| io.resize(req.width, req.height))
            .transpose()?;
        Ok(Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> TtrpcResult<Empty> {
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        if req.stdin {
            p.with_io(|io| io.close_stdin());
        }
        Ok(Empty::new())
    }

    fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        let c = self.container(&req.id)?;
        let resources = req
            .resources
            .as_ref()
            .ok_or_else(|| Error::invalid("update without resources"))?;
        c.update(resources)?;
        Ok(Empty::new())
    }

    fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        let st = p.wait();
        Ok(WaitResponse {
            exit_status: st.exit_status,
            exited_at: st.exited_at.into(),
            ..Default::default()
        })
    }

    fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        let stats = self.container(&req.id)?.stats()?;
        Ok(StatsResponse {
            stats: Some(stats).into(),
            ..Default::default()
        })
    }

    fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        let task_pid = self
            .containers
            .lock()
            .unwrap()
            .get(&req.id)
            .map(|c| c.init.state().pid)
            .unwrap_or(0);
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, req: ShutdownRequest) -> TtrpcResult<Empty> {
        Ok(self.do_shutdown(req)?)
    }

    fn checkpoint(&self, _ctx: &TtrpcContext, req: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        self.container(&req.id)?.checkpoint(&req)?;
        Ok(Empty::new())
    }
}
