//! containerd-shim-berth-v2: containerd's shim v2 (runtime type
//! `io.containerd.berth.v2`) for the berth OCI runtime. Built from the parts
//! of the synchronous flavour of the `containerd-shim` crate (threads, no
//! async runtime) to keep an idle shim small; its three actions are served
//! here rather than by the crate's bootstrap (start.rs and daemon.rs say why).

mod berth;
mod checkpoint;
mod container;
mod containerd_version;
mod daemon;
mod delete;
mod error;
mod events;
mod metrics;
mod mount;
mod oom;
mod options;
mod process;
mod reaper;
mod start;
mod stdio;
mod task;
mod task_api;

const RUNTIME_ID: &str = "io.containerd.berth.v2";

fn main() {
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "-v" || a == "--version" || a == "-version")
    {
        println!(
            "containerd-shim-berth-v2 {} ({RUNTIME_ID})",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    // One malloc arena: the shim's threads are mostly idle, and per-thread
    // arenas would each keep pages resident. Fixed (small) trim and mmap
    // thresholds: freed memory at the top of the heap and large buffers go
    // back to the kernel instead of staying resident in an idle shim.
    // SAFETY: called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 * 1024);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let flags = match containerd_shim::parse(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{RUNTIME_ID}: {e}");
            std::process::exit(1);
        }
    };
    match flags.action.as_str() {
        "start" => start::run(&flags, RUNTIME_ID),
        "delete" => delete::run(&flags, RUNTIME_ID),
        // containerd starts the daemon without an action (start.rs spawns it).
        _ => daemon::serve(&flags, RUNTIME_ID),
    }
}
