//! `berth restore`: runc's flags, over [`berth_runtime::restore`]. Detached,
//! berth returns once the container runs again; in the foreground it forwards
//! signals (and its terminal) to the restored init, exits with its status and
//! deletes the container, as `run` does.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use berth_runtime::container::{self, CreateOpts};
use berth_runtime::criu::Criu;
use berth_runtime::restore::{self, RestoreOpts};

use super::checkpoint::CriuArgs;
use super::run::{recv_master, Supervisor};

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    criu: CriuArgs,
    /// Path to the bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Detach: return once the container runs.
    #[arg(short, long)]
    detach: bool,
    /// File to write the restored init's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility.
    #[arg(long = "no-subreaper", hide = true)]
    no_subreaper: bool,
    /// Accepted for runc compatibility (CRIU restores the mount namespace).
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// LSM profile for the restored processes (TYPE:LABEL).
    #[arg(long = "lsm-profile")]
    lsm_profile: Option<String>,
    /// LSM mount context for the restored mounts.
    #[arg(long = "lsm-mount-context")]
    lsm_mount_context: Option<String>,
    /// Container id (the checkpointed one's or a new one).
    id: String,
}

pub fn run(
    root: &Path,
    criu: Option<PathBuf>,
    systemd_cgroup: bool,
    a: &RestoreArgs,
) -> anyhow::Result<i32> {
    if systemd_cgroup {
        anyhow::bail!(
            "restore with --systemd-cgroup is not supported yet: restore with the cgroupfs driver"
        );
    }
    let mut opts = RestoreOpts {
        create: CreateOpts {
            root: root.to_path_buf(),
            id: a.id.clone(),
            bundle: a.bundle.clone(),
            pid_file: a.pid_file.clone(),
            console_socket: a.console_socket.clone(),
            console_fd: None,
            no_pivot: a.no_pivot,
            no_new_keyring: false,
            preserve_fds: 0,
            systemd_cgroup: false,
            pidfd_socket: None,
        },
        criu: Criu::new(criu),
        flags: a.criu.flags()?,
        lsm_profile: a.lsm_profile.clone(),
        lsm_mount_context: a.lsm_mount_context.clone(),
    };
    let own_pty = super::run::config_wants_terminal(&a.bundle) && a.console_socket.is_none();
    if a.detach {
        if own_pty {
            anyhow::bail!("cannot restore a terminal container detached without --console-socket");
        }
        restore::restore(&opts)?;
        return Ok(0);
    }
    let sup = Supervisor::prepare()?;
    let console = if own_pty {
        let (a, b) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )?;
        opts.create.console_fd = Some(a.as_raw_fd());
        Some((a, b))
    } else {
        None
    };
    let pid = restore::restore(&opts)?;
    let master = match &console {
        Some((_, b)) => Some(recv_master(b)?),
        None => None,
    };
    drop(console);
    let code = sup.supervise(pid, master.as_ref())?;
    container::delete(root, &a.id, true)?;
    Ok(code)
}
