//! The runc-compatible command line: one file per verb, each a thin layer over
//! the library.

/// `println!` for results: a closed stdout (`berth list | head`) ends the
/// program quietly, as it would a C tool, instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*).and_then(|_| out.flush()) {
            $crate::cli::stdout_failed(e);
        }
    }};
}

/// Where [`outln!`] goes when stdout cannot be written.
pub(crate) fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("berth: write to stdout: {e}");
    std::process::exit(1)
}

mod cgroup_verbs;
mod checkpoint;
mod exec;
mod list;
mod restore;
mod run;
pub mod spec;

use std::path::PathBuf;

use berth_runtime::container::{self, CreateOpts};
use berth_runtime::logging;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    about = "a runc-compatible OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for container state [default: /run/berth, or
    /// $XDG_RUNTIME_DIR/berth for a non-root user].
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Log file (errors are also written to stderr).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    /// Enable debug logging.
    #[arg(long, global = true)]
    debug: bool,
    /// Manage the container's cgroup through systemd (a transient scope unit;
    /// cgroupsPath is then "slice:prefix:name"). Only create and run read it:
    /// a container keeps the driver it was created with.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// The criu binary checkpoint and restore run [default: criu on PATH].
    #[arg(long, global = true)]
    criu: Option<PathBuf>,
    /// Accepted for runc compatibility: true, false or auto.
    #[arg(long = "rootless", id = "global_rootless", hide = true)]
    rootless: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct CreateArgs {
    /// Path to the bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// File to write the container init's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass this many extra fds (from 3 on) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Unix socket that receives a pidfd of the container's init.
    #[arg(long = "pidfd-socket")]
    pidfd_socket: Option<PathBuf>,
    /// Container id.
    id: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a container (its program waits for `start`).
    Create(CreateArgs),
    /// Run the program of a created container.
    Start { id: String },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal to a container's init (or all its processes).
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything create made.
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; in the foreground wait for it and exit with its status.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach: return once the container is running.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
        /// Accepted for runc compatibility.
        #[arg(long = "no-subreaper", hide = true)]
        no_subreaper: bool,
    },
    /// List containers.
    List {
        #[arg(short, long)]
        quiet: bool,
        #[arg(short, long, default_value = "table")]
        format: String,
    },
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime supports, as JSON.
    Features,
    /// Run a new process inside a running container.
    Exec(Box<exec::ExecArgs>),
    /// Checkpoint a running container with CRIU.
    Checkpoint(checkpoint::CheckpointArgs),
    /// Restore a container from a checkpoint, under this id.
    Restore(restore::RestoreArgs),
    /// Management verbs over a container's cgroup: pause, resume, ps, events, update.
    #[command(flatten)]
    CgroupVerb(cgroup_verbs::CgroupVerbCommand),
}

fn create_opts(root: &std::path::Path, a: &CreateArgs, systemd_cgroup: bool) -> CreateOpts {
    CreateOpts {
        root: root.to_path_buf(),
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        console_fd: None,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        pidfd_socket: a.pidfd_socket.clone(),
        systemd_cgroup,
    }
}

/// Help in runc's layout (its clients and tests read the first lines).
const HELP_TEMPLATE: &str = "\
NAME:
   {name} - {about}

USAGE:
   {usage}

{all-args}{after-help}";

/// The command line with runc's help layout on every verb ("berth VERB -
/// ..."; clap's own name for a verb would be "berth-VERB").
fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command()
        .help_template(HELP_TEMPLATE)
        .mut_subcommands(|c| {
            let verb = c.get_name().to_string();
            c.help_template(HELP_TEMPLATE.replace("{name}", &format!("berth {verb}")))
        })
}

/// Parse the arguments; an unknown verb has "no help topic", as with runc.
fn parse() -> Result<Cli, i32> {
    use clap::FromArgMatches;
    let parsed = command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    parsed.map_err(|e| {
        if e.kind() == clap::error::ErrorKind::InvalidSubcommand {
            if let Some(v) = e.get(clap::error::ContextKind::InvalidSubcommand) {
                eprintln!("berth: No help topic for '{v}' (see berth --help)");
                return 1;
            }
        }
        let code = if e.use_stderr() { 1 } else { 0 };
        let _ = e.print();
        code
    })
}

pub fn main() -> i32 {
    let cli = match parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    // The caller's fds go before berth opens any of its own (the log file).
    let preserve = match &cli.command {
        Some(Command::Create(a)) | Some(Command::Run { create: a, .. }) => a.preserve_fds,
        Some(Command::Exec(a)) => a.preserve_fds(),
        _ => 0,
    };
    let closed = match &cli.command {
        Some(Command::Checkpoint(a)) => match a.passed_fd() {
            Some(fd) => berth_runtime::sys::close_from_except(3, fd),
            None => berth_runtime::sys::close_from(3),
        },
        _ => berth_runtime::sys::close_from(3u32.saturating_add(preserve)),
    };
    if let Err(e) = closed {
        eprintln!("berth: {e}");
        return 1;
    }
    let format = match cli.log_format.as_str() {
        "json" => logging::Format::Json,
        "text" => logging::Format::Text,
        other => {
            eprintln!("berth: unknown --log-format \"{other}\" (text or json)");
            return 1;
        }
    };
    logging::init(cli.log.clone(), format, cli.debug);
    if cli.version {
        outln!(
            "berth version {}\ncommit: {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            env!("BERTH_COMMIT"),
            berth_runtime::OCI_VERSION
        );
        return 0;
    }
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            logging::error(&format!("{e:#}"));
            1
        }
    }
}

fn dispatch(cli: &Cli) -> anyhow::Result<i32> {
    let Some(cmd) = &cli.command else {
        anyhow::bail!("no command given; see berth --help");
    };
    let root = &cli
        .root
        .clone()
        .unwrap_or_else(berth_runtime::rootless::default_state_root);
    match cmd {
        Command::Create(a) => {
            container::create(&create_opts(root, a, cli.systemd_cgroup))?;
        }
        Command::Start { id } => container::start(root, id)?,
        Command::State { id } => {
            let s = container::state(root, id)?;
            outln!("{}", serde_json::to_string_pretty(&s.public())?);
        }
        Command::Kill { all, id, signal } => {
            let sig = berth_runtime::signal::parse(signal)?;
            container::kill(root, id, sig, *all)?;
        }
        Command::Delete { force, id } => match container::delete(root, id, *force) {
            Err(berth_runtime::Error::NotFound(_)) if *force => {}
            r => r?,
        },
        Command::Run {
            create,
            detach,
            keep,
            ..
        } => {
            return run::run(
                &create_opts(root, create, cli.systemd_cgroup),
                *detach,
                *keep,
            )
        }
        Command::List { quiet, format } => list::run(root, *quiet, format)?,
        Command::Spec { bundle, rootless } => spec::run(bundle, *rootless)?,
        Command::Features => outln!(
            "{}",
            serde_json::to_string_pretty(&berth_runtime::features::document())?
        ),
        // runc's exec exits 255 when the runtime, not the process, failed.
        Command::Exec(a) => {
            return Ok(exec::run(root, a).unwrap_or_else(|e| {
                logging::error(&format!("exec failed: {e:#}"));
                255
            }))
        }
        Command::Checkpoint(a) => return checkpoint::run(root, cli.criu.clone(), a),
        Command::Restore(a) => return restore::run(root, cli.criu.clone(), cli.systemd_cgroup, a),
        Command::CgroupVerb(m) => return cgroup_verbs::dispatch(root, m),
    }
    Ok(0)
}
