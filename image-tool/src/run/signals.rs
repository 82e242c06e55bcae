//! A supervisor in the foreground passes the signals it is sent on to the
//! runtime process (which passes them to the container), instead of dying
//! of them before it could record the exit and tear the network down, as
//! docker's `--sig-proxy` does.

use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::{Handle, Signals};

/// Forwards signals to a child until dropped.
pub(super) struct Forwarder {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Forward SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to `pid`.
    pub(super) fn start(pid: u32) -> std::io::Result<Forwarder> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                let sig = rustix::process::Signal::from_named_raw(sig);
                let pid = rustix::process::Pid::from_raw(pid as i32);
                if let (Some(sig), Some(pid)) = (sig, pid) {
                    let _ = rustix::process::kill_process(pid, sig);
                }
            }
        });
        Ok(Forwarder {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        // The handlers stay installed: a signal during the teardown that
        // follows is not fatal either.
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
