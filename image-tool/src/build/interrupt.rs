//! Stopping a build on SIGINT, SIGTERM or SIGHUP, as docker build stops on
//! Ctrl-C: the signal sets a flag, the step in progress ends (a RUN step's
//! container is killed), and the build fails, leaving nothing behind. A
//! second signal ends the process at once (the next build sweeps what that
//! leaves). A flag rather than the default action: while a RUN container
//! runs, the run code passes these signals on to it (a command may ignore
//! them) and keeps its handlers installed afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Set once the build was asked to stop.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// A flag set by SIGINT, SIGTERM and SIGHUP of this process from now on.
    pub fn on_signals() -> std::io::Result<Interrupt> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            // Registered first, so it sees the flag as the earlier signal
            // left it; the status is the shell's for death by that signal.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, flag.clone())?;
            signal_hook::flag::register(sig, flag.clone())?;
        }
        Ok(Interrupt(flag))
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
