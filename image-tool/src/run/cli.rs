//! The command line of the container verbs (docker's flags), shared by the
//! `berth-image` binary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::{ExecOptions, Net, RunOptions};
use crate::image::Platform;
use crate::progress::Progress;
use crate::pull::{pull, PullOptions};
use crate::source::SourceRef;
use crate::store::{ImageRecord, Store};

/// Flags of `create` and `run`.
#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Remove the container when it stops.
    #[arg(long)]
    rm: bool,
    /// Give the container a terminal (this one, in raw mode).
    #[arg(short, long)]
    tty: bool,
    /// Keep stdin attached.
    #[arg(short, long)]
    interactive: bool,
    /// Container name (default: the first 12 digits of its id).
    #[arg(long)]
    name: Option<String>,
    /// Network: bridge (default; the network is set by BERTH_NETWORK,
    /// BERTH_BRIDGE, BERTH_SUBNET), none, host or container:NAME.
    #[arg(long = "network", alias = "net", default_value = "bridge")]
    net: Net,
    /// Publish a port: [HOSTIP:]HOSTPORT:CTRPORT[/udp] or CTRPORT.
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Set an environment variable (KEY=VALUE, or KEY from this environment).
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines, # comments).
    #[arg(long = "env-file")]
    env_file: Vec<PathBuf>,
    /// Bind a host directory (HOST:CTR[:ro]) or a named volume (NAME:CTR[:ro]).
    #[arg(short = 'v', long = "volume")]
    volume: Vec<String>,
    /// Mount a tmpfs: CTR[:OPTIONS].
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Working directory in the container.
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// User: name, uid, name:group or uid:gid.
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Replace the image's Entrypoint (and drop its Cmd).
    #[arg(long)]
    entrypoint: Option<String>,
    /// Host name in the container (default: its short id).
    #[arg(long)]
    hostname: Option<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Number of CPUs (e.g. 0.5).
    #[arg(long)]
    cpus: Option<String>,
    /// Limit on the number of processes (-1: unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Add a capability (NET_ADMIN, ALL, ...).
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop a capability (CHOWN, ALL, ...).
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long = "read-only")]
    read_only: bool,
    /// All capabilities, all host devices, no masked paths.
    #[arg(long)]
    privileged: bool,
    /// Add a host device: HOST[:CTR[:PERMS]].
    #[arg(long)]
    device: Vec<String>,
    /// Run a small init (tini) as PID 1 that forwards signals and reaps.
    #[arg(long)]
    init: bool,
    /// Signal that `stop` sends first (default: the image's, else SIGTERM).
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Set a label KEY=VALUE.
    #[arg(short = 'l', long = "label")]
    label: Vec<String>,
    /// The OCI runtime (runc's command line; default: berth next to this program).
    #[arg(long)]
    runtime: Option<PathBuf>,
    /// os/arch[/variant] when the image is pulled.
    #[arg(long)]
    platform: Option<String>,
    /// Stored image name, or a source reference (pulled first).
    image: String,
    /// Command replacing the image's Cmd.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

impl CreateArgs {
    fn options(&self, detach: bool) -> RunOptions {
        RunOptions {
            name: self.name.clone(),
            rm: self.rm,
            detach,
            tty: self.tty,
            interactive: self.interactive,
            net: self.net.clone(),
            network: None,
            publish: self.publish.clone(),
            args: self.args.clone(),
            runtime: self.runtime.clone().unwrap_or_else(super::default_runtime),
            env: self.env.clone(),
            env_files: self.env_file.clone(),
            volumes: self.volume.clone(),
            tmpfs: self.tmpfs.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            entrypoint: self.entrypoint.clone(),
            hostname: self.hostname.clone(),
            memory: self.memory.clone(),
            cpus: self.cpus.clone(),
            pids_limit: self.pids_limit,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            read_only: self.read_only,
            privileged: self.privileged,
            devices: self.device.clone(),
            init: self.init,
            stop_signal: self.stop_signal.clone(),
            labels: self.label.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ContainerCmd {
    /// Create and start a container (docker run).
    Run {
        /// Run in the background (output to its log: `berth-image logs NAME`).
        #[arg(short, long)]
        detach: bool,
        #[command(flatten)]
        create: Box<CreateArgs>,
    },
    /// Create a container without starting it.
    Create {
        #[command(flatten)]
        create: Box<CreateArgs>,
    },
    /// Start created or stopped containers (on their kept writable layer).
    Start {
        /// Attach: stay in the foreground with the container's output and status.
        #[arg(short, long)]
        attach: bool,
        /// Attach stdin too.
        #[arg(short, long)]
        interactive: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop and start a container again.
    Restart {
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop a container: its stop signal, then SIGKILL after --time seconds.
    Stop {
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Send a signal to a running container (default SIGKILL).
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Wait until containers stop; print their exit status.
    Wait {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove containers and their writable layers (-f: kill them first).
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List containers (-a: also stopped ones).
    Ps {
        #[arg(short, long)]
        all: bool,
    },
    /// Print a container's output (-f: follow until it stops).
    Logs {
        name: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// Run a command in a running container.
    Exec {
        #[arg(short, long)]
        interactive: bool,
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long)]
        detach: bool,
        #[arg(short, long = "env")]
        env: Vec<String>,
        #[arg(short, long = "workdir")]
        workdir: Option<String>,
        #[arg(short, long)]
        user: Option<String>,
        name: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Copy files between a container and the host (NAME:PATH HOSTPATH or HOSTPATH NAME:PATH).
    Cp { src: String, dst: String },
    /// Show a container's processes (options for ps may follow).
    Top {
        name: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Resource usage of running containers.
    Stats {
        /// Print one table and exit (the only mode).
        #[arg(long = "no-stream")]
        no_stream: bool,
        names: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Thaw a paused container.
    Unpause {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show a container's published ports.
    Port { name: String, port: Option<String> },
    /// Rename a container.
    Rename { old: String, new: String },
    /// Named volumes.
    Volume {
        #[command(subcommand)]
        cmd: VolumeCmd,
    },
    /// Supervise a detached run (started by `start`).
    #[command(hide = true)]
    Monitor { id: String },
}

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// List named volumes.
    Ls,
    /// Remove named volumes (not while a container uses them).
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// A stored image, or a source reference pulled into the store.
pub fn find_or_pull(store: &Store, image: &str, platform: Option<&str>) -> Result<ImageRecord> {
    match store.find_image(image) {
        Ok(rec) => Ok(rec),
        Err(e) => match SourceRef::parse(image) {
            Some(src) => {
                let opts = PullOptions {
                    platform: match platform {
                        Some(p) => Platform::parse(p)?,
                        None => Platform::host(),
                    },
                    progress: Progress::stderr(),
                    ..Default::default()
                };
                Ok(pull(store, &src?, &opts)?)
            }
            None => Err(e.into()),
        },
    }
}

/// Run one container verb; the exit status to leave with.
pub fn dispatch(store: &Store, cmd: &ContainerCmd) -> Result<i32> {
    let each = |names: &[String], f: &dyn Fn(&str) -> Result<()>| -> Result<i32> {
        let mut failed = 0;
        for n in names {
            match f(n) {
                Ok(()) => println!("{n}"),
                Err(e) => {
                    eprintln!("berth-image: {e:#}");
                    failed = 1;
                }
            }
        }
        Ok(failed)
    };
    match cmd {
        ContainerCmd::Run { detach, create } => {
            let image = find_or_pull(store, &create.image, create.platform.as_deref())?;
            super::run(store, &image, &create.options(*detach))
        }
        ContainerCmd::Create { create } => {
            let image = find_or_pull(store, &create.image, create.platform.as_deref())?;
            let rec = super::create(store, &image, &create.options(false))?;
            println!("{}", rec.id);
            Ok(0)
        }
        ContainerCmd::Start {
            attach,
            interactive,
            names,
        } => {
            let opts = super::start::StartOptions {
                attach: *attach,
                interactive: *interactive,
            };
            if *attach {
                if names.len() != 1 {
                    anyhow::bail!("start -a takes one container");
                }
                return super::start(store, &names[0], &opts);
            }
            each(names, &|n| super::start(store, n, &opts).map(|_| ()))
        }
        ContainerCmd::Restart { time, names } => each(names, &|n| {
            super::restart(store, n, Duration::from_secs(*time))
        }),
        ContainerCmd::Stop { time, names } => each(names, &|n| {
            super::stop(store, n, Duration::from_secs(*time)).map(|_| ())
        }),
        ContainerCmd::Kill { signal, names } => each(names, &|n| super::kill(store, n, signal)),
        ContainerCmd::Wait { names } => {
            let mut failed = 0;
            for n in names {
                match super::wait(store, n) {
                    Ok(c) => println!("{c}"),
                    Err(e) => {
                        eprintln!("berth-image: {e:#}");
                        failed = 1;
                    }
                }
            }
            Ok(failed)
        }
        ContainerCmd::Rm { force, names } => each(names, &|n| super::rm(store, n, *force)),
        ContainerCmd::Ps { all } => {
            print!("{}", super::ps(store, *all)?);
            Ok(0)
        }
        ContainerCmd::Logs { name, follow } => {
            super::logs(store, name, *follow, &mut std::io::stdout().lock())?;
            Ok(0)
        }
        ContainerCmd::Exec {
            interactive,
            tty,
            detach,
            env,
            workdir,
            user,
            name,
            args,
        } => {
            let opts = ExecOptions {
                interactive: *interactive,
                tty: *tty,
                env: env.clone(),
                workdir: workdir.clone(),
                user: user.clone(),
                detach: *detach,
            };
            super::exec(store, name, args, &opts)
        }
        ContainerCmd::Cp { src, dst } => {
            super::cp(store, src, dst)?;
            Ok(0)
        }
        ContainerCmd::Top { name, ps_args } => {
            print!("{}", super::top(store, name, ps_args)?);
            Ok(0)
        }
        ContainerCmd::Stats { no_stream, names } => {
            if !no_stream {
                anyhow::bail!("stats: only --no-stream is supported (one table)");
            }
            print!("{}", super::stats(store, names)?);
            Ok(0)
        }
        ContainerCmd::Pause { names } => each(names, &|n| super::pause(store, n)),
        ContainerCmd::Unpause { names } => each(names, &|n| super::unpause(store, n)),
        ContainerCmd::Port { name, port } => {
            print!("{}", super::port(store, name, port.as_deref())?);
            Ok(0)
        }
        ContainerCmd::Rename { old, new } => {
            super::rename(store, old, new)?;
            Ok(0)
        }
        ContainerCmd::Volume { cmd } => match cmd {
            VolumeCmd::Ls => {
                println!("VOLUME NAME");
                for v in super::volumes::list(store)? {
                    println!("{v}");
                }
                Ok(0)
            }
            VolumeCmd::Rm { names } => each(names, &|n| super::volumes::remove(store, n)),
        },
        ContainerCmd::Monitor { id } => {
            super::monitor(store, id)?;
            Ok(0)
        }
    }
}
