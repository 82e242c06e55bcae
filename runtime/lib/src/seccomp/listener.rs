//! Handing the notify fd to the seccomp agent at `listenerPath`
//! (runtime-spec config-linux.md, "The Container Process State").

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

use super::SeccompError;

/// A stuck agent must not hang the runtime forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The container process state sent next to the fd.
pub(crate) fn process_state(
    metadata: Option<&str>,
    state: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let pid = state
        .get("pid")
        .and_then(serde_json::Value::as_i64)
        .ok_or("the container state has no \"pid\"")?;
    let oci_version = state
        .get("ociVersion")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(crate::OCI_VERSION);
    let mut msg = serde_json::json!({
        "ociVersion": oci_version,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = metadata {
        msg["metadata"] = serde_json::Value::String(m.to_owned());
    }
    Ok(msg)
}

pub(crate) fn send(
    listener_path: &Path,
    notify_fd: &OwnedFd,
    metadata: Option<&str>,
    state: &serde_json::Value,
) -> Result<(), SeccompError> {
    let err = |msg: String| SeccompError::Listener {
        path: listener_path.to_owned(),
        msg,
    };
    let payload = serde_json::to_vec(&process_state(metadata, state).map_err(err)?)
        .map_err(|e| err(e.to_string()))?;
    let mut stream =
        UnixStream::connect(listener_path).map_err(|e| err(format!("connect: {e}")))?;
    stream
        .set_write_timeout(Some(SEND_TIMEOUT))
        .map_err(|e| err(format!("set timeout: {e}")))?;
    let fds = [notify_fd.as_raw_fd()];
    // The fd travels with the first sendmsg only; the rest is plain payload.
    let sent = sendmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &[IoSlice::new(&payload)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| err(format!("sendmsg: {e}")))?;
    stream
        .write_all(&payload[sent..])
        .map_err(|e| err(format!("write: {e}")))?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| err(format!("shutdown: {e}")))?;
    Ok(())
}
