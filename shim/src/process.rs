//! One process of a container (its init, or an exec): lifecycle state, exit
//! status for Wait, and the ordering of its events: an exit that happens while
//! a request is about to publish the process's create/start event is held back
//! until that event went out, so containerd always sees start before exit.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use containerd_shim::api::Status;

use containerd_shim::protos::events::task::TaskExit;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::util::timestamp;

use crate::events::{Publisher, TaskEvent};
use crate::reaper::{ExitObserver, Reaper};
use crate::stdio::{ProcessIo, StdioPaths};

#[derive(Debug, Clone)]
pub struct ProcState {
    pub status: Status,
    pub pid: u32,
    pub exit_status: u32,
    pub exited_at: Option<Timestamp>,
    /// A request is between launching the process and publishing its event.
    gated: bool,
    /// Kill calls in flight for this process (see [`Process::killing`]).
    kills: u32,
    exit_held: bool,
}

pub struct Process {
    pub container_id: String,
    /// Empty for the container's init process.
    pub exec_id: String,
    pub stdio: StdioPaths,
    /// For an exec: the runtime-spec Process JSON from containerd.
    pub spec: Vec<u8>,
    state: Mutex<ProcState>,
    exited: Condvar,
    io: Mutex<Option<ProcessIo>>,
    publisher: Publisher,
}

impl Process {
    pub fn new(
        container_id: &str,
        exec_id: &str,
        stdio: StdioPaths,
        spec: Vec<u8>,
        publisher: Publisher,
    ) -> Arc<Self> {
        Arc::new(Process {
            container_id: container_id.to_string(),
            exec_id: exec_id.to_string(),
            stdio,
            spec,
            state: Mutex::new(ProcState {
                status: Status::CREATED,
                pid: 0,
                exit_status: 0,
                exited_at: None,
                gated: false,
                kills: 0,
                exit_held: false,
            }),
            exited: Condvar::new(),
            io: Mutex::new(None),
            publisher,
        })
    }

    /// The id containerd uses for this process: the exec id, or the container id.
    pub fn id(&self) -> &str {
        if self.exec_id.is_empty() {
            &self.container_id
        } else {
            &self.exec_id
        }
    }

    pub fn state(&self) -> ProcState {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().unwrap()
    }

    pub fn set_io(&self, io: ProcessIo) {
        *self.io.lock().unwrap() = Some(io);
    }

    pub fn with_io<T>(&self, f: impl FnOnce(&ProcessIo) -> T) -> Option<T> {
        self.io.lock().unwrap().as_ref().map(f)
    }

    /// Holds exit events back until [`Process::ungate`].
    pub fn gate(&self) {
        self.lock().gated = true;
    }

    /// Publishes `event` (if any), then an exit that was held back.
    pub fn ungate<E: TaskEvent>(&self, event: Option<E>) {
        let mut st = self.lock();
        if let Some(e) = event {
            self.publisher.publish(e);
        }
        st.gated = false;
        self.publish_held_exit(&mut st);
    }

    /// Holds this process's exit event back while a Kill call for it runs,
    /// until the guard is dropped (after the call's work, just before its
    /// reply). containerd handles an exit by deleting the task and closing
    /// its connection to the shim; an exit published while the Kill that
    /// caused it is still being answered made containerd's Kill fail with
    /// "ttrpc: closed" (StopPodSandbox of a pod shim serving many containers).
    pub fn killing(self: &Arc<Self>) -> KillGuard {
        self.lock().kills += 1;
        KillGuard(self.clone())
    }

    fn publish_held_exit(&self, st: &mut ProcState) {
        if !st.gated && st.kills == 0 && std::mem::take(&mut st.exit_held) {
            self.publisher.publish(self.exit_event(st));
        }
    }

    /// Records the pid and has the reaper report its exit here.
    pub fn watch_pid(self: &Arc<Self>, pid: u32) {
        self.lock().pid = pid;
        if let Some(status) = Reaper::get().watch(pid as i32, self.clone()) {
            self.set_exited(status);
        }
    }

    pub fn set_status(&self, status: Status) {
        let mut st = self.lock();
        if st.status != Status::STOPPED {
            st.status = status;
        }
    }

    fn exit_event(&self, st: &ProcState) -> TaskExit {
        TaskExit {
            container_id: self.container_id.clone(),
            id: self.id().to_string(),
            pid: st.pid,
            exit_status: st.exit_status,
            exited_at: st.exited_at.clone().into(),
            ..Default::default()
        }
    }

    pub fn set_exited(&self, status: i32) {
        let mut st = self.lock();
        if st.exited_at.is_some() {
            return;
        }
        st.status = Status::STOPPED;
        st.exit_status = status as u32;
        st.exited_at = Some(timestamp().unwrap_or_default());
        if st.gated || st.kills > 0 {
            st.exit_held = true;
        } else {
            self.publisher.publish(self.exit_event(&st));
        }
        self.exited.notify_all();
    }

    /// The process will never run (its launch failed, or it is deleted before
    /// it exited): wakes Wait callers without publishing an exit.
    pub fn abandon(&self) {
        let mut st = self.lock();
        if st.exited_at.is_none() {
            st.status = Status::STOPPED;
            st.exit_status = 255;
            st.exited_at = Some(timestamp().unwrap_or_default());
            self.exited.notify_all();
        }
    }

    /// Blocks until the process exited; its status and time.
    pub fn wait(&self) -> ProcState {
        let mut st = self.lock();
        while st.exited_at.is_none() {
            st = self.exited.wait(st).unwrap();
        }
        st.clone()
    }

    /// The process is going away: stop watching its pid, let its io threads end.
    pub fn release(&self) {
        let st = self.state();
        if st.pid != 0 && st.exited_at.is_none() {
            Reaper::get().forget(st.pid as i32);
        }
        self.abandon();
        if let Some(io) = self.io.lock().unwrap().take() {
            io.release();
        }
    }
}

impl ExitObserver for Process {
    fn exited(&self, status: i32) {
        self.set_exited(status);
    }
}

/// See [`Process::killing`]: publishes an exit held back during the Kill.
pub struct KillGuard(Arc<Process>);

impl Drop for KillGuard {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.kills -= 1;
        self.0.publish_held_exit(&mut st);
    }
}
