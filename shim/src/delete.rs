//! The `delete` action: containerd runs it in a container's bundle when it
//! cannot reach the container's shim any more (and containerd 1.6 after every
//! shim exit). It removes what the container left (berth's state, the rootfs
//! mount) and prints a `DeleteResponse` for a process killed by SIGKILL.

use std::io::Write;

use containerd_shim::api::DeleteResponse;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::util::timestamp;
use containerd_shim::Flags;

use crate::container::Container;
use crate::reaper::Reaper;

/// Runs the action for `flags` and exits.
pub fn run(flags: &Flags, runtime_id: &str) -> ! {
    match delete(flags) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{runtime_id}: {e}");
            std::process::exit(1)
        }
    }
}

fn delete(flags: &Flags) -> containerd_shim::Result<()> {
    if flags.namespace.is_empty() {
        return Err(containerd_shim::Error::InvalidArgument(
            "shim namespace cannot be empty".into(),
        ));
    }
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().map_err(|e| containerd_shim::Error::IoError {
            context: "the bundle (working directory)".into(),
            err: e,
        })?
    } else {
        flags.bundle.clone().into()
    };
    // `berth delete` is waited for through the reaper.
    Reaper::get();
    if let Err(e) = Container::cleanup_bundle(&flags.id, &bundle, &flags.namespace) {
        eprintln!("delete {}: {e}", flags.id);
    }
    let response = DeleteResponse {
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: Some(timestamp()?).into(),
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    response.write_to_writer(&mut out)?;
    out.flush().map_err(|e| containerd_shim::Error::IoError {
        context: "write the delete response".into(),
        err: e,
    })
}
