//! berth-crictl: a minimal crictl for inspecting a CRI server by hand.
//!
//! ```text
//! berth-crictl [--socket PATH] version|info|images|pods|ps
//! berth-crictl [--socket PATH] inspect|inspectp|stats CONTAINER_OR_POD_ID
//! berth-crictl [--socket PATH] exec CONTAINER_ID CMD [ARG...]
//! berth-crictl [--socket PATH] runp NAME CGROUP_PARENT [HANDLER]
//! berth-crictl [--socket PATH] create POD_ID POD_NAME CGROUP_PARENT NAME IMAGE CMD...
//! berth-crictl [--socket PATH] start|stop|rm|stopp|rmp ID
//! ```
//! Answers are printed as JSON; `exec` prints the command's output and exits
//! with its status.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use berth_cri_client::Cri;

mod pod;

const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
const USAGE: &str = "usage: berth-crictl [--socket PATH] \
    version|info|images|pods|ps|inspect ID|inspectp ID|stats ID|exec ID CMD [ARG...]|\
    runp NAME CGROUP_PARENT [HANDLER]|create POD_ID POD_NAME CGROUP_PARENT NAME IMAGE CMD...|\
    start ID|stop ID|rm ID|stopp ID|rmp ID";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth-crictl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<ExitCode, String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(ExitCode::SUCCESS)
}

/// Prints the id a verb made or acted on.
fn done(id: String) -> Result<ExitCode, String> {
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

fn run(mut args: Vec<String>) -> Result<ExitCode, String> {
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    if args.first().map(String::as_str) == Some("--socket") {
        if args.len() < 2 {
            return Err(format!("--socket needs a path\n{USAGE}"));
        }
        socket = PathBuf::from(args.remove(1));
        args.remove(0);
    }
    let Some(verb) = args.first().cloned() else {
        return Err(USAGE.into());
    };
    let id = || {
        args.get(1)
            .cloned()
            .ok_or_else(|| format!("{verb} needs an id\n{USAGE}"))
    };
    let known = [
        "version", "info", "images", "pods", "ps", "inspect", "inspectp", "stats", "exec", "runp",
        "create", "start", "stop", "rm", "stopp", "rmp",
    ];
    if !known.contains(&verb.as_str()) {
        return Err(format!("unknown command {verb:?}\n{USAGE}"));
    }
    let mut cri = Cri::connect(&socket, Duration::from_secs(60)).map_err(|e| e.to_string())?;
    let e = |e: berth_cri_client::Error| e.to_string();
    match verb.as_str() {
        "version" => json(&cri.version().map_err(e)?),
        "info" => json(&cri.status().map_err(e)?),
        "images" => json(&cri.list_images().map_err(e)?),
        "pods" => json(&cri.list_pod_sandbox().map_err(e)?),
        "ps" => json(&cri.list_containers().map_err(e)?),
        "inspect" => json(&cri.container_status(&id()?).map_err(e)?),
        "inspectp" => json(&cri.pod_sandbox_status(&id()?).map_err(e)?),
        "stats" => json(&cri.container_stats(&id()?).map_err(e)?),
        "runp" => done(pod::run_pod(&mut cri, &args[1..])?),
        "create" => done(pod::create_container(&mut cri, &args[1..])?),
        "start" => done(cri.start_container(&id()?).map_err(e).map(|_| id())??),
        "stop" => done(cri.stop_container(&id()?, 10).map_err(e).map(|_| id())??),
        "rm" => done(cri.remove_container(&id()?).map_err(e).map(|_| id())??),
        "stopp" => done(cri.stop_pod_sandbox(&id()?).map_err(e).map(|_| id())??),
        "rmp" => done(cri.remove_pod_sandbox(&id()?).map_err(e).map(|_| id())??),
        _ => {
            let id = id()?;
            let cmd: Vec<&str> = args[2..].iter().map(String::as_str).collect();
            if cmd.is_empty() {
                return Err(format!("exec needs a command\n{USAGE}"));
            }
            let r = cri.exec_sync(&id, &cmd, 0).map_err(e)?;
            std::io::stdout()
                .write_all(&r.stdout)
                .map_err(|e| e.to_string())?;
            std::io::stderr()
                .write_all(&r.stderr)
                .map_err(|e| e.to_string())?;
            Ok(ExitCode::from(r.exit_code.clamp(0, 255) as u8))
        }
    }
}
