//! `berth exec`: run a new process inside a running container, with runc's flags.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use berth_runtime::exec::{self, ExecOpts};
use std::collections::HashSet;

use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Path to a process.json (an OCI `process` object); the flags below are then ignored.
    #[arg(short = 'p', long)]
    process: Option<PathBuf>,
    /// Unix socket that receives the pty master when --tty is set.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE); may be repeated.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    tty: bool,
    /// User as uid[:gid].
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Additional gids; may be repeated.
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// Detach from the process.
    #[arg(short = 'd', long)]
    detach: bool,
    /// File to write the process's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// SELinux label for the process.
    #[arg(long = "process-label")]
    process_label: Option<String>,
    /// AppArmor profile for the process.
    #[arg(long)]
    apparmor: Option<String>,
    /// Set no_new_privileges.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Add a capability to the bounding, effective and permitted sets; may be repeated.
    #[arg(short = 'c', long = "cap")]
    cap: Vec<String>,
    /// Pass this many extra fds (from 3 on) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Run the process in an existing sub-cgroup of the container:
    /// [CONTROLLER[,CONTROLLER]:]PATH (the controller prefix on cgroup v1).
    #[arg(long)]
    cgroup: Vec<String>,
    /// Allow exec in a paused container (the process starts once it is resumed).
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// Unix socket that receives a pidfd of the new process.
    #[arg(long = "pidfd-socket")]
    pidfd_socket: Option<PathBuf>,
    /// Container id.
    id: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

impl ExecArgs {
    /// How many fds from 3 on go to the process.
    pub fn preserve_fds(&self) -> u32 {
        self.preserve_fds
    }
}

fn load_process_file(path: &Path) -> anyhow::Result<Process> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("read process file {}: {e}", path.display()))?;
    let mut v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("process file {}: {e}", path.display()))?;
    // `user` may be left out (runc runs the process as 0:0 then); unknown
    // capability names are ignored with a warning.
    if let Some(obj) = v.as_object_mut() {
        obj.entry("user")
            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    }
    berth_runtime::bundle_config::normalize_process(&mut v);
    serde_path_to_error::deserialize(v).map_err(|e| {
        anyhow::anyhow!(
            "process file {}: field {}: {}",
            path.display(),
            e.path(),
            e.inner()
        )
    })
}

/// The process to run: --process, or the container's own process with the
/// flags applied (as runc builds it).
fn build_process(root: &Path, a: &ExecArgs) -> anyhow::Result<Process> {
    if let Some(p) = &a.process {
        return load_process_file(p);
    }
    if a.command.is_empty() {
        anyhow::bail!("exec: no command given (berth exec [flags] ID COMMAND [ARGS...])");
    }
    let spec = exec::container_spec(root, &a.id)?;
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    // Appended: the last value of a name wins when the process starts.
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(c) = &a.cwd {
        p.set_cwd(c.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let mut user = p.user().clone();
        user.set_uid(
            uid.parse()
                .map_err(|_| anyhow::anyhow!("--user {u}: uid must be a number"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|_| anyhow::anyhow!("--user {u}: gid must be a number"))?,
            );
        }
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(a.additional_gids.iter().copied());
        user.set_additional_gids(Some(gids));
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    if let Some(l) = &a.apparmor {
        p.set_apparmor_profile(Some(l.clone()));
    }
    if !a.cap.is_empty() {
        p.set_capabilities(Some(with_added_caps(
            p.capabilities().clone().unwrap_or_default(),
            &a.cap,
        )));
    }
    Ok(p)
}

/// `--cap` names added to the bounding, effective and permitted sets, and to
/// the ambient set when the config has an inheritable set (runc's rule: an
/// ambient capability must also be inheritable, and `--cap` never adds
/// inheritable ones). Unknown names are ignored with a warning, as runc does.
fn with_added_caps(mut caps: LinuxCapabilities, names: &[String]) -> LinuxCapabilities {
    let mut unknown = Vec::new();
    let add = |set: &Option<HashSet<Capability>>, cap: Capability| {
        let mut s = set.clone().unwrap_or_default();
        s.insert(cap);
        Some(s)
    };
    for c in names {
        let name = if c.starts_with("CAP_") {
            c.clone()
        } else {
            format!("CAP_{}", c.to_uppercase())
        };
        let Ok(cap) = serde_json::from_value::<Capability>(serde_json::Value::String(name)) else {
            unknown.push(c.clone());
            continue;
        };
        caps.set_bounding(add(caps.bounding(), cap));
        caps.set_effective(add(caps.effective(), cap));
        caps.set_permitted(add(caps.permitted(), cap));
        if caps.inheritable().is_some() {
            caps.set_ambient(add(caps.ambient(), cap));
        }
    }
    if !unknown.is_empty() {
        berth_runtime::logging::warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            unknown.join(" ")
        ));
    }
    caps
}

pub fn run(root: &Path, a: &ExecArgs) -> anyhow::Result<i32> {
    let process = build_process(root, a)?;
    let tty = process.terminal().unwrap_or(false);
    let own_pty = tty && a.console_socket.is_none();
    if own_pty && a.detach {
        anyhow::bail!("exec --detach --tty needs --console-socket");
    }
    let mut opts = ExecOpts {
        root: root.to_path_buf(),
        id: a.id.clone(),
        process,
        console_socket: a.console_socket.clone(),
        console_fd: None,
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        sub_cgroups: exec::parse_sub_cgroups(&a.cgroup)?,
        pidfd_socket: a.pidfd_socket.clone(),
    };
    if a.detach {
        exec::exec(&opts)?;
        return Ok(0);
    }
    let guard = super::run::Supervisor::prepare()?;
    let console = if own_pty {
        let (x, y) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )?;
        opts.console_fd = Some(x.as_raw_fd());
        Some((x, y))
    } else {
        None
    };
    let pid = exec::exec(&opts)?;
    let master = match &console {
        Some((_, y)) => Some(super::run::recv_master(y)?),
        None => None,
    };
    drop(console);
    guard.supervise(pid, master.as_ref())
}
