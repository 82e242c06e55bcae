//! The shim daemon: the long-running process the `start` action spawns for a
//! pod. It serves the Task API on its socket until Shutdown.
//!
//! Built here from the `containerd-shim` crate's parts (flags, logger, the
//! generated Task service, ttrpc) rather than by `containerd_shim::run`: the
//! crate registers its service under one name only (0.11: task API v2 for
//! containerd 1.x; 0.12: v3 only, for 2.x), while this shim serves both on the
//! same socket (task_api.rs), and it reaps children itself (reaper.rs).

use std::os::unix::io::IntoRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::protos::ttrpc::Server;
use containerd_shim::util::write_address;
use containerd_shim::{logger, ExitSignal, Flags};

use crate::events::Publisher;
use crate::reaper::Reaper;
use crate::task::TaskService;
use crate::task_api;

/// How long a leaving shim waits for its last events to reach containerd.
const EVENT_FLUSH: Duration = Duration::from_secs(5);
/// How long a socket found in use is given to answer before it is taken over.
const IN_USE_PROBES: u32 = 5;
const IN_USE_PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// Serves until Shutdown, then exits. The process exits without the usual
/// teardown: Shutdown already removed the socket, and containerd may have
/// removed the bundle by then.
pub fn serve(flags: &Flags, runtime_id: &str) -> ! {
    match run(flags) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{runtime_id}: {e}");
            std::process::exit(1)
        }
    }
}

fn run(flags: &Flags) -> containerd_shim::Result<()> {
    if flags.namespace.is_empty() || flags.socket.is_empty() {
        return Err(containerd_shim::Error::InvalidArgument(
            "the shim daemon needs -namespace and -socket".into(),
        ));
    }
    let ttrpc_address = std::env::var("TTRPC_ADDRESS")
        .map_err(|_| containerd_shim::Error::InvalidArgument("TTRPC_ADDRESS is not set".into()))?;
    // containerd stops a shim with Shutdown; a stray SIGTERM or SIGINT must
    // not take the pod's containers' supervisor down (the crate did the same).
    for sig in [libc::SIGTERM, libc::SIGINT] {
        signal_hook::flag::register(sig, Arc::new(AtomicBool::new(false)))
            .map_err(|e| containerd_shim::Error::Other(format!("register signal {sig}: {e}")))?;
    }
    // Container processes whose parent exits become ours to reap.
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        return Err(containerd_shim::Error::Other(format!(
            "set child subreaper: {}",
            std::io::Error::from(e)
        )));
    }
    Reaper::get();
    // Warnings and errors only (containerd's debug level, which starts the
    // shim with -debug, still gives everything): the log is a FIFO that
    // containerd reads, one write per log field.
    logger::init(flags.debug, "warn", &flags.namespace, &flags.id)?;

    let Some(listener) = listen(&flags.socket)? else {
        // Another daemon serves this pod already (two start actions raced).
        write_address(&flags.socket)?;
        release_start_action();
        return Ok(());
    };
    let exit = Arc::new(ExitSignal::default());
    let publisher = Publisher::start(ttrpc_address, flags.namespace.clone());
    let task = TaskService::new(
        &flags.namespace,
        publisher.clone(),
        exit.clone(),
        &flags.socket,
    );
    let mut server = Server::new()
        .add_listener(listener.into_raw_fd())?
        .register_service(task_api::methods(Arc::new(task)));
    server.start()?;
    release_start_action();
    exit.wait();
    publisher.flush(EVENT_FLUSH);
    Ok(())
}

/// Binds the socket `address` (`unix://PATH`). `None` when a live daemon
/// already listens there; a socket file nobody answers on is replaced.
fn listen(address: &str) -> containerd_shim::Result<Option<UnixListener>> {
    let path = Path::new(address.strip_prefix("unix://").unwrap_or(address));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error(e, "create the socket directory"))?;
    }
    match UnixListener::bind(path) {
        Ok(l) => return Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
        Err(e) => return Err(io_error(e, "bind the shim socket")),
    }
    for _ in 0..IN_USE_PROBES {
        if UnixStream::connect(path).is_ok() {
            return Ok(None);
        }
        std::thread::sleep(IN_USE_PROBE_INTERVAL);
    }
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
        .map(Some)
        .map_err(|e| io_error(e, "bind the shim socket"))
}

/// The start action reads this process's stdout until EOF: point stdout at
/// stderr (/dev/null) now that the socket serves.
fn release_start_action() {
    // SAFETY: dup2 of the process's own standard descriptors.
    if unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) } < 0 {
        log::warn!(
            "release the start action: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn io_error(err: std::io::Error, context: &str) -> containerd_shim::Error {
    containerd_shim::Error::IoError {
        context: context.to_string(),
        err,
    }
}
