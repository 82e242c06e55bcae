//! `berth exec`: a new process in a running container.
//!
//! The calling process joins the container's pid and time namespaces (they
//! apply to its children), then forks. The child is put in the container's
//! cgroup by the parent, joins the other namespaces the container does not
//! share with the host (user first), sets up the process exactly as the init
//! does (rlimits, cwd, LSM label, seccomp, capabilities, user, no_new_privs)
//! and execs. Errors come back over a CLOEXEC channel, so its EOF means the
//! exec happened.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::channel::{self, Msg};
use crate::error::{Context, Error, Result};
use crate::state::{ContainerDir, Status, CONFIG_COPY};

pub struct ExecOpts {
    pub root: PathBuf,
    pub id: String,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    /// An already connected console socket (for `exec -t` in the foreground).
    pub console_fd: Option<RawFd>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// Start the process even when the container is paused (it runs once
    /// the container is resumed).
    pub ignore_paused: bool,
    /// `--cgroup`: sub-cgroup paths below the container's cgroup, keyed by
    /// controller (`""`: every hierarchy), from [`parse_sub_cgroups`].
    pub sub_cgroups: BTreeMap<String, String>,
    /// `--pidfd-socket`: receives a pidfd of the new process.
    pub pidfd_socket: Option<PathBuf>,
}

/// Parse `--cgroup` arguments as runc does: one `PATH` (every hierarchy; the
/// only form on cgroup v2) or any number of `CONTROLLER[,CONTROLLER]:PATH`.
pub fn parse_sub_cgroups(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in args {
        match a.split_once(':') {
            Some((ctrls, path)) => {
                for c in ctrls.split(',') {
                    if c.is_empty() {
                        return Err(Error::Config(format!(
                            "invalid --cgroup argument: {a} (empty <controller> prefix)"
                        )));
                    }
                    if out.insert(c.to_string(), path.to_string()).is_some() {
                        return Err(Error::Config(format!(
                            "invalid --cgroup argument(s): controller {c} specified multiple times"
                        )));
                    }
                }
            }
            None if args.len() == 1 => {
                out.insert(String::new(), a.clone());
            }
            None => {
                return Err(Error::Config(format!(
                    "invalid --cgroup argument: {a} (missing <controller>: prefix)"
                )))
            }
        }
    }
    Ok(out)
}

/// The existing sub-cgroup directories the process joins after the
/// container's cgroup: each must lie below the container's directory of its
/// hierarchy.
fn sub_cgroup_dirs(
    cgroup: &dyn berth_cgroups::CgroupManager,
    subs: &BTreeMap<String, String>,
) -> Result<Vec<PathBuf>> {
    if subs.is_empty() {
        return Ok(Vec::new());
    }
    let paths = cgroup.paths();
    let mut dirs = Vec::new();
    let mut resolve = |base: &Path, sub: &str| -> Result<()> {
        let joined = lexically_below(base, sub)
            .ok_or_else(|| Error::Config(format!("--cgroup {sub}: is not a sub cgroup path")))?;
        if !joined.is_dir() {
            return Err(Error::Config(format!(
                "--cgroup {sub}: {} does not exist (the sub-cgroup must be made first)",
                joined.display()
            )));
        }
        dirs.push(joined);
        Ok(())
    };
    if let Some(sub) = subs.get("") {
        for dir in paths.values() {
            resolve(dir, sub)?;
        }
        return Ok(dirs);
    }
    for (ctrl, sub) in subs {
        let dir = paths
            .iter()
            .find(|(key, _)| key.split(',').any(|c| c == ctrl))
            .map(|(_, d)| d)
            .ok_or_else(|| {
                Error::Config(format!(
                    "--cgroup {ctrl}:{sub}: the container has no {ctrl} cgroup"
                ))
            })?;
        resolve(dir, sub)?;
    }
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

/// `base/sub` cleaned lexically, if it stays below `base` (and is not `base`).
fn lexically_below(base: &Path, sub: &str) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(sub).components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n),
            std::path::Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        return None;
    }
    let mut p = base.to_path_buf();
    p.extend(parts);
    Some(p)
}

/// The container's config as saved by `create`.
pub fn container_spec(root: &Path, id: &str) -> Result<Spec> {
    let dir = ContainerDir::open(root, id)?;
    load_spec(&dir)
}

fn load_spec(dir: &ContainerDir) -> Result<Spec> {
    let text = std::fs::read_to_string(dir.path.join(CONFIG_COPY))
        .ctx(|| format!("read {}", dir.path.join(CONFIG_COPY).display()))?;
    crate::bundle_config::parse(&text)
}

/// Namespaces are joined in this order: the user namespace first (it grants
/// the capabilities the others need), mount last among those the child joins.
const CHILD_ORDER: [LinuxNamespaceType; 6] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Mount,
];

/// Open the namespaces of `pid` that differ from ours.
fn open_namespaces(
    pid: i32,
    kinds: &[LinuxNamespaceType],
) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    let mut out = Vec::new();
    for &t in kinds {
        let name = crate::namespaces::proc_name(t);
        let theirs = format!("/proc/{pid}/ns/{name}");
        let Ok(their_md) = std::fs::metadata(&theirs) else {
            continue;
        };
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}")).ok();
        if ours.is_some_and(|m| m.ino() == their_md.ino() && m.dev() == their_md.dev()) {
            continue;
        }
        let f = std::fs::File::open(&theirs).ctx(|| format!("open {theirs}"))?;
        out.push((t, OwnedFd::from(f)));
    }
    Ok(out)
}

fn setns(t: LinuxNamespaceType, fd: &OwnedFd) -> Result<()> {
    use std::os::fd::AsFd;
    nix::sched::setns(fd.as_fd(), crate::namespaces::clone_flag(t)).ctx(|| {
        format!(
            "join the container's {} namespace",
            crate::namespaces::proc_name(t)
        )
    })
}

/// Start the process; returns its host pid once it has exec'd.
pub fn exec(opts: &ExecOpts) -> Result<i32> {
    let dir = ContainerDir::open(&opts.root, &opts.id)?;
    let state = dir.load_current()?;
    check_status(state.status, &opts.id, opts.ignore_paused)?;
    let spec = load_spec(&dir)?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::Config("saved config has no linux section".into()))?;
    let process = &opts.process;
    let terminal = validate_process(opts)?;
    protect_runtime_binary(&opts.root, &dir, &state, &spec, process)?;
    let seccomp = crate::container::compile_seccomp(&opts.root, linux)?;

    let rootless = crate::rootless::is_rootless();
    let (early, late) = open_container_namespaces(state.pid, rootless)?;
    let shared_mount_root = open_shared_mount_root(linux, state.pid)?;
    let cgroup = crate::container::cgroup_manager(&state)?;
    let sub_dirs = sub_cgroup_dirs(cgroup.as_ref(), &opts.sub_cgroups)?;
    let console = crate::container::connect_console(
        opts.console_socket.as_deref(),
        opts.console_fd,
        terminal,
    )?;
    let (parent_end, child_end) = channel::pair()?;
    // pid and time namespaces apply to the children of the caller.
    for (t, fd) in &early {
        setns(*t, fd)?;
    }

    // The process joins the cgroup itself (cheaper, see `CgroupManager::join_self`)
    // and starts in its cgroup2 directory where possible; a rootless caller's
    // process is moved by the parent, as for the init.
    let self_join = !rootless;
    // SAFETY: berth is single-threaded; the child runs only the code below.
    let (fork, in_unified) =
        unsafe { crate::container::fork_child(cgroup.as_ref(), self_join, "exec process")? };
    let child = match fork {
        ForkResult::Child => {
            drop(parent_end);
            // flock locks belong to the open file description, which fork
            // shares: the child drops its copy of the locked directory handle
            // (closing its lock fd, once) so that only the parent holds the lock.
            drop(dir);
            let r = child_main(
                &child_end,
                cgroup.as_ref(),
                &sub_dirs,
                process,
                linux,
                &late,
                shared_mount_root.as_ref(),
                console,
                opts.console_fd.is_some(),
                seccomp.as_ref(),
                opts.preserve_fds,
            );
            let msg = match r {
                Err(e) => e.to_string(),
                Ok(never) => match never {},
            };
            let _ = child_end.send(&Msg::Error(msg));
            // SAFETY: end the child without running the parent's destructors.
            unsafe { libc::_exit(1) }
        }
        ForkResult::Parent { child } => child.as_raw(),
    };
    drop(child_end);
    drop(console);
    let fail = |e: Error| kill_and_reap(child, e);
    if !self_join {
        if let Err(e) = cgroup.add_task(child) {
            return Err(fail(e.into()));
        }
    }
    parent_end
        .send(&Msg::CgroupReady {
            pid: child,
            join: self_join,
            in_unified,
        })
        .map_err(fail)?;
    // From here on the process only sets itself up; the state lock would keep
    // `resume` (for --ignore-paused), `state` and `delete` waiting for it.
    drop(dir);
    wait_for_exec(&parent_end, linux, &state, child)?;
    crate::logging::debug(&format!("exec {}: process pid {child}", opts.id));
    hand_out_pid(opts, child)?;
    Ok(child)
}

/// runc's refusals by the container's status.
fn check_status(status: Status, id: &str, ignore_paused: bool) -> Result<()> {
    match status {
        Status::Running | Status::Created => {}
        Status::Paused if ignore_paused => {}
        Status::Paused => {
            return Err(Error::WrongState(format!(
            "container \"{}\": cannot exec in a paused container (use --ignore-paused to override)",
            id
        )))
        }
        Status::Stopped => {
            return Err(Error::WrongState(format!(
                "container \"{}\": cannot exec in a stopped container",
                id
            )))
        }
        Status::Creating => {
            return Err(Error::WrongState(format!(
                "cannot exec in container \"{}\": it is still being created",
                id
            )))
        }
    }
    Ok(())
}

/// Check the process to start; returns whether it has a terminal.
fn validate_process(opts: &ExecOpts) -> Result<bool> {
    let process = &opts.process;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Config("field process.args: no command given".into()));
    }
    let terminal = process.terminal().unwrap_or(false);
    crate::container::require_console(terminal, opts.console_socket.as_deref(), opts.console_fd)?;
    crate::procattrs::check(process, None)?;
    Ok(terminal)
}

/// The container's namespaces that differ from ours: those the caller joins
/// before forking (pid and time, which apply to its children) and those the
/// child joins, in [`CHILD_ORDER`].
#[allow(clippy::type_complexity)]
fn open_container_namespaces(
    pid: i32,
    rootless: bool,
) -> Result<(
    Vec<(LinuxNamespaceType, OwnedFd)>,
    Vec<(LinuxNamespaceType, OwnedFd)>,
)> {
    // Rootless, the pid namespace can only be joined from inside the
    // container's user namespace, so the caller joins that first.
    let early_kinds: &[LinuxNamespaceType] = if rootless {
        &[
            LinuxNamespaceType::User,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Time,
        ]
    } else {
        &[LinuxNamespaceType::Pid, LinuxNamespaceType::Time]
    };
    let early = open_namespaces(pid, early_kinds)?;
    let late_kinds = if rootless {
        &CHILD_ORDER[1..]
    } else {
        &CHILD_ORDER[..]
    };
    let late = open_namespaces(pid, late_kinds)?;
    Ok((early, late))
}

/// A container without a mount namespace of its own shares ours, chrooted
/// into its rootfs: the process goes into the same root (an O_PATH fd of the
/// init's root).
fn open_shared_mount_root(linux: &oci_spec::runtime::Linux, pid: i32) -> Result<Option<OwnedFd>> {
    let root = if linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Mount)
    {
        None
    } else {
        let p = format!("/proc/{}/root", pid);
        Some(
            crate::sys::openat2(
                libc::AT_FDCWD,
                Path::new(&p),
                libc::O_PATH | libc::O_DIRECTORY,
                0,
                0,
            )
            .ctx(|| format!("open {p}"))?,
        )
    };
    Ok(root)
}

/// Kill and reap the half set up process; returns `e`.
fn kill_and_reap(child: i32, e: Error) -> Error {
    let _ = nix::sys::signal::kill(Pid::from_raw(child), nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(Pid::from_raw(child), None);
    e
}

/// Serve the process (its seccomp listener fd) until it execs (EOF of the
/// CLOEXEC channel) or reports an error.
fn wait_for_exec(
    parent_end: &channel::Channel,
    linux: &oci_spec::runtime::Linux,
    state: &crate::state::State,
    child: i32,
) -> Result<()> {
    let fail = |e: Error| kill_and_reap(child, e);
    loop {
        match parent_end.recv().map_err(fail)? {
            None => return Ok(()),
            Some(Msg::Error(e)) => {
                let _ = nix::sys::wait::waitpid(Pid::from_raw(child), None);
                return Err(Error::Init(e));
            }
            Some(Msg::SeccompFd) => {
                let fd = parent_end.recv_fd().map_err(fail)?;
                let mut st = state.clone();
                st.pid = child;
                let r = crate::container::send_seccomp_fd(linux, &st, &fd);
                drop(fd);
                r.map_err(fail)?;
                parent_end.send(&Msg::SeccompFdSent).map_err(fail)?;
            }
            Some(m) => {
                return Err(fail(Error::Init(format!(
                    "unexpected message from exec process: {m:?}"
                ))))
            }
        }
    }
}

/// `--pid-file` and `--pidfd-socket`: give the process's pid to the caller.
fn hand_out_pid(opts: &ExecOpts, child: i32) -> Result<()> {
    if let Some(pf) = &opts.pid_file {
        crate::sys::write_atomic(pf, child.to_string().as_bytes())?;
    }
    if let Some(sock) = &opts.pidfd_socket {
        crate::pidfd::send(sock, child)?;
    }
    Ok(())
}

/// Before the child enters the container's pid namespace: where something
/// there could trace it, run from a protected copy of the binary (see
/// `exe_seal`; this may re-execute berth, which then comes back here). A
/// process that may hold CAP_SYS_PTRACE is remembered in the state, so every
/// later exec is protected too; into a container whose init still waits for
/// `start` unprotected, it is refused.
fn protect_runtime_binary(
    root: &Path,
    dir: &ContainerDir,
    state: &crate::state::State,
    spec: &Spec,
    process: &Process,
) -> Result<()> {
    use crate::exe_seal::{may_hold_ptrace, ptrace_reachable};
    let linux = spec.linux().as_ref().expect("checked by the caller");
    let plan = crate::namespaces::Plan::from_linux(linux);
    let config_caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref());
    let grants = may_hold_ptrace(process.capabilities().as_ref());
    let init_protected = ptrace_reachable(&plan, config_caps, false);
    let reachable = ptrace_reachable(&plan, config_caps, state.ptrace_exec || grants);
    if state.status == Status::Created && reachable && !init_protected {
        return Err(Error::WrongState(format!(
            "cannot exec a process that may hold CAP_SYS_PTRACE in container \"{}\" before it \
             is started: its init runs the runtime binary, which that process could reach; \
             start the container first",
            state.id
        )));
    }
    if !reachable {
        return Ok(());
    }
    if grants && !state.ptrace_exec {
        let mut saved = dir.load()?;
        saved.ptrace_exec = true;
        dir.save(&saved)?;
    }
    crate::exe_seal::ensure(root).map_err(|e| Error::Other(e.to_string()))
}

#[allow(clippy::too_many_arguments)]
fn child_main(
    ch: &channel::Channel,
    cgroup: &dyn berth_cgroups::CgroupManager,
    sub_cgroups: &[PathBuf],
    process: &Process,
    linux: &oci_spec::runtime::Linux,
    namespaces: &[(LinuxNamespaceType, OwnedFd)],
    shared_mount_root: Option<&OwnedFd>,
    console: Option<OwnedFd>,
    relayed_console: bool,
    seccomp: Option<&crate::seccomp::Compiled>,
    preserve_fds: u32,
) -> Result<std::convert::Infallible> {
    nix::sys::prctl::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE)")?;
    // A foreground `berth exec` blocks every signal; the process gets none of that.
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .ctx(|| "unblock signals")?;
    crate::procattrs::apply_initial_affinity(process)?;
    crate::init::apply_oom_score_adj(process)?;
    match ch.expect("waiting for its cgroup")? {
        Msg::CgroupReady {
            join, in_unified, ..
        } => {
            if join && in_unified {
                cgroup.join_self_v1()?;
            } else if join {
                cgroup.join_self()?;
            }
        }
        m => return Err(Error::Init(format!("unexpected message {m:?}"))),
    }
    for dir in sub_cgroups {
        std::fs::write(dir.join("cgroup.procs"), "0")
            .ctx(|| format!("join sub-cgroup {}", dir.display()))?;
    }
    crate::procattrs::reset_affinity_unless_initial(process)?;
    for (t, fd) in namespaces {
        setns(*t, fd)?;
    }
    if let Some(root) = shared_mount_root {
        nix::unistd::fchdir(root).ctx(|| "chdir to the container's root")?;
        nix::unistd::chroot(".").ctx(|| "chroot into the container's root")?;
        nix::unistd::chdir("/").ctx(|| "chdir /")?;
    }
    let pty = match &console {
        Some(sock) => {
            let root = crate::rootfs::paths::Root::open(Path::new("/"))?;
            let pty = crate::terminal::open_in_root(&root)?;
            crate::terminal::give_to(&pty, process.user().uid())?;
            if let Some(b) = process.console_size() {
                crate::terminal::set_size(
                    pty.master.as_raw_fd(),
                    b.height() as u16,
                    b.width() as u16,
                )?;
            }
            if relayed_console {
                // `berth exec -t` relays this terminal itself (see
                // `terminal::clear_onlcr`); the process may write before the
                // relay has the master.
                crate::terminal::clear_onlcr(std::os::fd::AsFd::as_fd(&pty.slave))?;
            }
            crate::terminal::send_master(sock.as_raw_fd(), &pty.master)?;
            Some(pty)
        }
        None => None,
    };
    drop(console);
    crate::procattrs::apply_personality(linux)?;
    crate::procattrs::apply_memory_policy(linux)?;
    let install = |ch: &channel::Channel| crate::init::install_seccomp_with(seccomp, ch);
    let prepared = crate::init::setup_exec_process(process, &mut || install(ch))?;
    if let Some(p) = &pty {
        nix::unistd::setsid().ctx(|| "setsid")?;
        crate::terminal::make_controlling(&p.slave)?;
    }
    drop(pty);
    let nnp = process.no_new_privileges().unwrap_or(false);
    if nnp {
        nix::sys::prctl::set_no_new_privs().ctx(|| "prctl(PR_SET_NO_NEW_PRIVS)")?;
    }
    // Keep the channel (CLOEXEC) above the preserved range for the sweep.
    crate::sys::cloexec_from(3 + preserve_fds)?;
    if nnp {
        install(ch)?;
    }
    let e = prepared.exec();
    Err(Error::Other(format!(
        "unable to start container process: exec: \"{}\": {e}",
        prepared.path_lossy()
    )))
}
