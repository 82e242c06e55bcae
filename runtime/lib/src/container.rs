//! Container operations: create, start, state, kill, delete (runtime-spec runtime.md).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_cgroups::{CgroupManager, FreezerState, ManagerOptions};
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::AsFd;

use crate::channel::{self, Msg};
use crate::error::{Context, Error, Result};
use crate::init::{self, InitArgs};
use crate::namespaces::{self, Plan};
use crate::state::{ContainerDir, State, Status};

/// Options of `create` (and the create half of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// An already connected console socket (used by `run` with its own pty).
    pub console_fd: Option<i32>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// `--pidfd-socket`: receives a pidfd of the container's init.
    pub pidfd_socket: Option<PathBuf>,
    /// `--systemd-cgroup`: the cgroup is a systemd scope unit.
    pub systemd_cgroup: bool,
}

/// Extra state kept beside the spec's: how many cgroup levels berth created.
fn cgroup_opts<'a>(state: &'a State) -> ManagerOptions<'a> {
    let mode = cgroup_mode();
    let mut o = ManagerOptions::new(state.cgroups_path.as_deref(), &state.id, mode);
    o.owned_depth = state.cgroup_owned_depth;
    o.systemd = state.systemd_cgroup;
    o.mounts = host_cgroup_mounts();
    o
}

/// The host's cgroup mounts, read from /proc/self/mountinfo once per berth
/// process: a command asks for the mode and builds a manager or two (`run`
/// creates, starts and deletes), and the mount table can be long on a busy
/// host. The runtime's own cgroup mounts do not change while it runs.
fn host_cgroup_mounts() -> Option<&'static berth_cgroups::mountinfo::CgroupMounts> {
    static MOUNTS: std::sync::OnceLock<Option<berth_cgroups::mountinfo::CgroupMounts>> =
        std::sync::OnceLock::new();
    MOUNTS
        .get_or_init(|| berth_cgroups::mountinfo::CgroupMounts::read().ok())
        .as_ref()
}

/// The host's cgroup mode (legacy when no cgroup filesystem is mounted).
pub(crate) fn cgroup_mode() -> berth_cgroups::Mode {
    host_cgroup_mounts()
        .and_then(|m| m.mode)
        .unwrap_or(berth_cgroups::Mode::Legacy)
}

pub fn cgroup_manager(state: &State) -> Result<Box<dyn CgroupManager>> {
    if state.no_cgroup {
        return Ok(Box::new(crate::rootless::NoCgroup {
            init_pid: state.pid,
            init_start_time: state.pid_start_time,
        }));
    }
    Ok(berth_cgroups::new_manager_with(&cgroup_opts(state))?)
}

/// Whether the container's cgroup is frozen (paused).
pub fn is_frozen(state: &State) -> bool {
    cgroup_manager(state)
        .and_then(|m| Ok(m.freezer_state()?))
        .map(|s| s == FreezerState::Frozen)
        .unwrap_or(false)
}

/// fork(2) for the container's init or an exec'd process. With `into_cgroup`
/// the child starts inside the cgroup2 directory of `cgroup` where there is one
/// and the kernel allows it (see `sys::fork_into_cgroup`); the bool says
/// whether it did, else it is a plain fork.
///
/// # Safety
/// As for fork(2): the caller is single-threaded.
pub(crate) unsafe fn fork_child(
    cgroup: &dyn CgroupManager,
    into_cgroup: bool,
    what: &str,
) -> Result<(ForkResult, bool)> {
    let unified = match cgroup.paths().get("") {
        Some(dir) if into_cgroup => {
            Some(std::fs::File::open(dir).ctx(|| format!("open cgroup {}", dir.display()))?)
        }
        _ => None,
    };
    if let Some(dir) = &unified {
        if let Some(f) = crate::sys::fork_into_cgroup(dir.as_fd())? {
            return Ok((f, true));
        }
    }
    let f = nix::unistd::fork().ctx(|| format!("fork {what}"))?;
    Ok((f, false))
}

/// Removes what a failed `create` made: the init, its cgroup, the state dir.
struct CreateGuard {
    dir: Option<ContainerDir>,
    pid: Option<i32>,
    cgroup: Option<Box<dyn CgroupManager>>,
    /// The rootfs of a container without a mount namespace, whose mounts
    /// land in the runtime's own namespace.
    shared_mounts: Option<PathBuf>,
}

impl CreateGuard {
    /// The container is created: keep everything.
    fn disarm(&mut self) {
        self.pid = None;
        self.cgroup = None;
        self.dir = None;
        self.shared_mounts = None;
    }
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            destroy_cgroup(cg.as_ref());
        }
        if let Some(rootfs) = &self.shared_mounts {
            crate::rootfs::detach_mounts_below(rootfs);
        }
        if let Some(d) = self.dir.take() {
            let _ = d.remove();
        }
    }
}

pub(crate) fn destroy_cgroup(cg: &dyn CgroupManager) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match cg.destroy() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => {
                crate::logging::warn(&format!("remove cgroup: {e}"));
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// `berth create`: returns the init's pid with the container `created`.
pub fn create(opts: &CreateOpts) -> Result<i32> {
    crate::logging::debug(&format!(
        "create {}: bundle {}",
        opts.id,
        opts.bundle.display()
    ));
    let BundleConfig {
        bundle,
        text,
        spec,
        rootfs,
    } = read_bundle_config(&opts.bundle)?;
    let linux = spec.linux().as_ref().expect("validated");
    validate_for_create(opts, &spec, linux)?;
    let plan = Plan::from_linux(linux);
    crate::state::validate_id(&opts.id)?;
    protect_runtime_binary(&opts.root, &spec, &plan)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    require_console(terminal, opts.console_socket.as_deref(), opts.console_fd)?;

    // Compile the seccomp filter before touching the system (a profile error
    // leaves nothing behind); identical profiles are compiled once per root.
    let seccomp = compile_seccomp(&opts.root, linux)?;

    let dir = ContainerDir::create(&opts.root, &opts.id)?;
    let mut guard = CreateGuard {
        dir: Some(dir),
        pid: None,
        cgroup: None,
        shared_mounts: (!plan.has(LinuxNamespaceType::Mount)).then(|| rootfs.clone()),
    };
    let dir = guard.dir.as_ref().expect("set");
    let mut state = initial_state(opts, &spec, linux, &bundle, &rootfs);
    let fifo_fd = prepare_state_dir(dir, &state, &text)?;

    let rootless = crate::rootless::is_rootless();
    let (cgroup, resources) = new_cgroup(&state, linux, rootless)?;
    let init_joins = init_joins_cgroup(&plan, rootless, cgroup.as_ref());
    // A cgroup2 cgroup is made before the fork, so that the init starts in it
    // (see `sys::fork_into_cgroup`). The directories of v1 hierarchies are made
    // after it, while the init creates its namespaces (a network namespace
    // alone costs the kernel about as much as all the directories); it joins
    // them itself once told they are there.
    let made_before_fork = init_joins && cgroup.mode() == berth_cgroups::Mode::Unified;
    if made_before_fork {
        cgroup.apply(0)?;
        state.cgroup_owned_depth = Some(cgroup.owned_depth());
    }
    guard.cgroup = Some(cgroup);
    let cgroup = guard.cgroup.as_deref().expect("set");
    let console = connect_console(opts.console_socket.as_deref(), opts.console_fd, terminal)?;
    let (parent_end, child_end) = channel::pair()?;
    if !plan.involves_user() {
        enter_children_namespaces(&plan, linux)?;
    }

    // SAFETY: berth is single-threaded here; the child runs only the init code.
    let (fork, in_unified) = unsafe { fork_child(cgroup, made_before_fork, "container init")? };
    let child = match fork {
        ForkResult::Child => {
            drop(parent_end);
            // flock locks belong to the open file description, which fork
            // shares: the child drops its copy of the locked directory handle
            // (closing its lock fd, once) so that only the parent holds the lock.
            drop(guard.dir.take());
            init::run(InitArgs {
                spec: &spec,
                rootfs: &rootfs,
                plan: &plan,
                channel: child_end,
                fifo: Some(fifo_fd),
                console_socket: console,
                no_pivot: opts.no_pivot,
                preserve_fds: opts.preserve_fds,
                no_new_keyring: opts.no_new_keyring,
                state: state.clone(),
                seccomp: seccomp.as_ref(),
                cgroup,
            })
        }
        ForkResult::Parent { child } => child.as_raw(),
    };
    drop(child_end);
    drop(console);
    guard.pid = Some(child);
    if init_joins && !made_before_fork {
        if let Err(e) = cgroup.apply(0) {
            // apply removed what it made; what is left (a busy or frozen
            // cgroup) is someone else's: the guard kills the init only.
            guard.cgroup = None;
            return Err(e.into());
        }
        state.cgroup_owned_depth = Some(cgroup.owned_depth());
    }
    if cgroup.apply_needs_pid() && !plan.involves_user() {
        leave_children_namespaces(&plan)?;
    }

    let pid = if plan.involves_user() {
        wait_for_init_pid(&parent_end, linux, child)?
    } else {
        child
    };
    guard.pid = Some(pid);
    record_init_pid(&opts.id, &mut state, pid);
    if !init_joins {
        move_init_into_cgroup(&mut guard, &mut state, linux, rootless, pid)?;
    }
    // Persist the pid and cgroup now, so `delete --force` can clean up even if
    // this process is killed from here on.
    guard.dir.as_ref().expect("set").save(&state)?;
    parent_end.send(&Msg::CgroupReady {
        pid,
        join: init_joins,
        in_unified,
    })?;
    serve_init_until_created(&parent_end, &spec, linux, &state)?;
    // Resources (the device rules above all) apply once the init has made its
    // device nodes, as with runc.
    let cgroup = guard.cgroup.as_deref().expect("set");
    apply_resources(cgroup, linux, resources.as_ref(), rootless)?;
    write_created_state(guard.dir.as_ref().expect("set"), &mut state)?;
    hand_out_pid(opts.pid_file.as_deref(), opts.pidfd_socket.as_deref(), pid)?;
    guard.disarm();
    crate::logging::debug(&format!("create {}: created", opts.id));
    Ok(pid)
}

/// config.json of a bundle, read, parsed and checked (nothing made yet).
struct BundleConfig {
    /// The bundle directory, canonical.
    bundle: PathBuf,
    /// config.json as read (saved in the state directory as it is).
    text: String,
    spec: Spec,
    /// The container's root filesystem, from `root.path`.
    rootfs: PathBuf,
}

/// Read, parse and validate the bundle's config.json.
fn read_bundle_config(bundle: &Path) -> Result<BundleConfig> {
    let bundle = std::fs::canonicalize(bundle)
        .map_err(|e| Error::Config(format!("bundle {}: {e}", bundle.display())))?;
    let text = std::fs::read_to_string(bundle.join("config.json")).map_err(|e| {
        Error::Config(format!(
            "cannot read {}: {e}",
            bundle.join("config.json").display()
        ))
    })?;
    let spec = crate::bundle_config::parse(&text)?;
    let rootfs = crate::bundle_config::validate(&spec, &bundle)?;
    Ok(BundleConfig {
        bundle,
        text,
        spec,
        rootfs,
    })
}

/// Checks of the process attributes and of the options against the config
/// that [`crate::bundle_config::validate`] does not make.
fn validate_for_create(
    opts: &CreateOpts,
    spec: &Spec,
    linux: &oci_spec::runtime::Linux,
) -> Result<()> {
    if let Some(p) = spec.process() {
        crate::procattrs::check(p, Some(linux))?;
    }
    if opts.no_pivot {
        if let Some(p) = linux.rootfs_propagation() {
            if crate::rootfs::propagation_flag(p)?.contains(nix::mount::MsFlags::MS_PRIVATE) {
                return Err(Error::Config(format!(
                    "field linux.rootfsPropagation: {p}: rootfsPropagation of [r]private is not safe without pivot_root"
                )));
            }
        }
    }
    Ok(())
}

/// Where something in the container could trace the init, run from a
/// protected copy of the binary (see `exe_seal`).
fn protect_runtime_binary(root: &Path, spec: &Spec, plan: &Plan) -> Result<()> {
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref());
    if crate::exe_seal::ptrace_reachable(plan, caps, false) {
        // May re-execute berth from a protected copy (nothing is made yet).
        crate::exe_seal::ensure(root).map_err(|e| Error::Other(e.to_string()))?;
    }
    Ok(())
}

/// A process with a terminal needs somewhere to send the pty's master.
pub(crate) fn require_console(
    terminal: bool,
    console_socket: Option<&Path>,
    console_fd: Option<i32>,
) -> Result<()> {
    if terminal && console_socket.is_none() && console_fd.is_none() {
        return Err(Error::Config(
            "field process.terminal: true requires --console-socket".into(),
        ));
    }
    Ok(())
}

/// The compiled `linux.seccomp` filter, from the cache in `root` where an
/// identical profile was compiled before.
pub(crate) fn compile_seccomp(
    root: &Path,
    linux: &oci_spec::runtime::Linux,
) -> Result<Option<crate::seccomp::Compiled>> {
    let seccomp = match linux.seccomp() {
        Some(sc) => Some(
            crate::seccomp::compile_cached(sc, Some(&root.join(SECCOMP_CACHE)))
                .map_err(crate::seccomp::config_error)?,
        ),
        None => None,
    };
    Ok(seccomp)
}

/// The state of a container being created, before its init exists.
fn initial_state(
    opts: &CreateOpts,
    spec: &Spec,
    linux: &oci_spec::runtime::Linux,
    bundle: &Path,
    rootfs: &Path,
) -> State {
    State {
        oci_version: spec.version().clone(),
        id: opts.id.clone(),
        status: Status::Creating,
        pid: 0,
        bundle: bundle.to_path_buf(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        pid_start_time: 0,
        rootfs: rootfs.to_path_buf(),
        created: crate::sys::rfc3339_now(),
        owner: String::new(),
        cgroups_path: linux
            .cgroups_path()
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        cgroup_owned_depth: None,
        no_cgroup: false,
        ptrace_exec: false,
        systemd_cgroup: opts.systemd_cgroup,
    }
}

/// Fill the new state directory: the state, a copy of config.json and the
/// exec FIFO that `start` opens. Returns an O_PATH fd of the FIFO for the init.
fn prepare_state_dir(dir: &ContainerDir, state: &State, config_text: &str) -> Result<OwnedFd> {
    dir.save(state)?;
    std::fs::write(dir.path.join(crate::state::CONFIG_COPY), config_text)
        .ctx(|| "save config copy")?;
    nix::unistd::mkfifo(
        &dir.fifo_path(),
        nix::sys::stat::Mode::from_bits_truncate(0o622),
    )
    .ctx(|| "create exec fifo")?;
    // mkfifo applies the umask; the init may run as any user.
    std::fs::set_permissions(
        dir.fifo_path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o622),
    )
    .ctx(|| "chmod exec fifo")?;
    crate::init::FifoHandle::open_path(&dir.fifo_path())
}

/// The manager of the container's cgroup (nothing made yet but a systemd
/// scope's settings) and the resources to set once the init is set up.
fn new_cgroup(
    state: &State,
    linux: &oci_spec::runtime::Linux,
    rootless: bool,
) -> Result<(
    Box<dyn CgroupManager>,
    Option<oci_spec::runtime::LinuxResources>,
)> {
    if rootless && state.systemd_cgroup {
        return Err(Error::Config(
            "--systemd-cgroup: a rootless container's scope would need the user's systemd instance, which berth does not drive yet; drop the flag".into(),
        ));
    }
    // The systemd driver starts the scope with the resources systemd knows.
    let resources = crate::device_rules::resources_to_apply(linux);
    let cgroup = if state.systemd_cgroup {
        let mut o = cgroup_opts(state);
        o.resources = resources.as_ref();
        berth_cgroups::new_manager_with(&o)?
    } else {
        cgroup_manager(state)?
    };
    Ok((cgroup, resources))
}

/// Whether the init moves itself into its cgroup.
///
/// Without a user namespace the init moves itself in, which is cheaper on
/// v1 (see `join_self`); a user-namespaced init may not write the host's
/// cgroupfs, so the parent moves it. When the init joins, the directories
/// are made before the fork, so that it can start inside the cgroup2
/// directory (see `sys::fork_into_cgroup`). A systemd scope is made with
/// its first process: the parent hands the init's pid to systemd.
fn init_joins_cgroup(plan: &Plan, rootless: bool, cgroup: &dyn CgroupManager) -> bool {
    !plan.involves_user() && !rootless && !cgroup.apply_needs_pid()
}

/// An already connected console socket (`console_fd`) or one connected to
/// `console_socket`, for a process with a terminal.
pub(crate) fn connect_console(
    console_socket: Option<&Path>,
    console_fd: Option<i32>,
    terminal: bool,
) -> Result<Option<OwnedFd>> {
    Ok(match (console_socket, console_fd) {
        (_, Some(fd)) if terminal => Some(dup_fd(fd)?),
        (Some(p), _) if terminal => Some(crate::terminal::connect(p)?),
        _ => None,
    })
}

/// The init's pid and start time go into the state.
fn record_init_pid(id: &str, state: &mut State, pid: i32) {
    crate::logging::debug(&format!("create {id}: init pid {pid}"));
    state.pid = pid;
    state.pid_start_time = crate::sys::proc_start_time(pid)
        .map(|(t, _)| t)
        .unwrap_or(0);
}

/// The parent puts the init into its cgroup (made here); a rootless
/// container may go on without one (see [`without_cgroup`]).
fn move_init_into_cgroup(
    guard: &mut CreateGuard,
    state: &mut State,
    linux: &oci_spec::runtime::Linux,
    rootless: bool,
    pid: i32,
) -> Result<()> {
    let cgroup = guard.cgroup.take().expect("set");
    let cgroup = match cgroup.apply(pid) {
        Ok(()) => cgroup,
        Err(e) if rootless => {
            guard.cgroup = Some(cgroup);
            let none = without_cgroup(e, linux, state)?;
            state.no_cgroup = true;
            none
        }
        Err(e) => {
            guard.cgroup = Some(cgroup);
            return Err(e.into());
        }
    };
    state.cgroup_owned_depth = Some(cgroup.owned_depth());
    guard.cgroup = Some(cgroup);
    Ok(())
}

/// Do what the init asks of the parent while it sets the container up
/// (runtime hooks, seccomp listener, idmapped mount sources) until it
/// reports the container created. A failure is reported to the init too.
fn serve_init_until_created(
    parent_end: &channel::Channel,
    spec: &Spec,
    linux: &oci_spec::runtime::Linux,
    state: &State,
) -> Result<()> {
    loop {
        match parent_end.expect("setting up the container")? {
            Msg::RunRuntimeHooks => {
                let r = run_runtime_hooks(spec, state);
                match r {
                    Ok(()) => parent_end.send(&Msg::HooksDone)?,
                    Err(e) => {
                        let _ = parent_end.send(&Msg::Error(e.to_string()));
                        return Err(e);
                    }
                }
            }
            Msg::SeccompFd => {
                let fd = parent_end.recv_fd()?;
                let r = send_seccomp_fd(linux, state, &fd);
                drop(fd);
                if let Err(e) = r {
                    let _ = parent_end.send(&Msg::Error(e.to_string()));
                    return Err(e);
                }
                parent_end.send(&Msg::SeccompFdSent)?;
            }
            Msg::OpenMountSource { index } => {
                match crate::rootfs::idmap::open_source(spec, index) {
                    Ok(fd) => {
                        parent_end.send(&Msg::MountSource)?;
                        parent_end.send_fd(&fd)?;
                    }
                    Err(e) => {
                        let _ = parent_end.send(&Msg::Error(e.to_string()));
                        return Err(e);
                    }
                }
            }
            Msg::IdmapMount { index } => {
                let tree = parent_end.recv_fd()?;
                match crate::rootfs::idmap::apply(spec, index, &tree) {
                    Ok(()) => parent_end.send(&Msg::Idmapped)?,
                    Err(e) => {
                        let _ = parent_end.send(&Msg::Error(e.to_string()));
                        return Err(e);
                    }
                }
            }
            Msg::Created => return Ok(()),
            m => return Err(Error::Init(format!("unexpected message from init: {m:?}"))),
        }
    }
}

/// Set the config's resources on the container's cgroup (rootless: only
/// those it asks for, failing clearly where the cgroup is not writable).
fn apply_resources(
    cgroup: &dyn CgroupManager,
    linux: &oci_spec::runtime::Linux,
    resources: Option<&oci_spec::runtime::LinuxResources>,
    rootless: bool,
) -> Result<()> {
    if rootless {
        if let Some(res) = crate::rootless::requested_resources(linux) {
            cgroup.set(&res).map_err(|e| match e {
                e if crate::rootless::is_permission_error(&e) => {
                    crate::rootless::cgroup_not_writable(&e)
                }
                e => e.into(),
            })?;
        }
    } else if let Some(res) = resources {
        cgroup.set(res)?;
    }
    Ok(())
}

/// The container is `created`: say so in its state.
fn write_created_state(dir: &ContainerDir, state: &mut State) -> Result<()> {
    state.status = Status::Created;
    dir.save(state)
}

/// `--pid-file` and `--pidfd-socket`: give the process's pid to the caller.
fn hand_out_pid(pid_file: Option<&Path>, pidfd_socket: Option<&Path>, pid: i32) -> Result<()> {
    if let Some(pf) = pid_file {
        write_pid_file(pf, pid)?;
    }
    if let Some(sock) = pidfd_socket {
        crate::pidfd::send(sock, pid)?;
    }
    Ok(())
}

/// A rootless `create` whose cgroup could not be joined: go on without one when
/// the directories could not even be made and the config asks for no
/// resources; otherwise fail (the guard then removes what apply made).
fn without_cgroup(
    e: berth_cgroups::CgroupError,
    linux: &oci_spec::runtime::Linux,
    state: &State,
) -> Result<Box<dyn CgroupManager>> {
    if !crate::rootless::is_permission_error(&e) {
        return Err(e.into());
    }
    let not_made = matches!(e, berth_cgroups::CgroupError::Io { .. });
    if !not_made || crate::rootless::requested_resources(linux).is_some() {
        return Err(crate::rootless::cgroup_not_writable(&e));
    }
    Ok(Box::new(crate::rootless::NoCgroup {
        init_pid: state.pid,
        init_start_time: state.pid_start_time,
    }))
}

/// Where compiled seccomp filters are cached, inside `--root` (`@` keeps the
/// name out of the container id space).
pub const SECCOMP_CACHE: &str = "@seccomp-cache";

/// Give the notify fd and the container state to `linux.seccomp.listenerPath`.
pub(crate) fn send_seccomp_fd(
    linux: &oci_spec::runtime::Linux,
    state: &State,
    fd: &OwnedFd,
) -> Result<()> {
    let sc = linux
        .seccomp()
        .as_ref()
        .ok_or_else(|| Error::Init("seccomp fd without linux.seccomp".into()))?;
    let path = sc.listener_path().as_ref().ok_or_else(|| {
        Error::Config("field linux.seccomp.listenerPath: required with SCMP_ACT_NOTIFY".into())
    })?;
    let st = serde_json::to_value(state.public())
        .map_err(|e| Error::Other(format!("encode state: {e}")))?;
    crate::seccomp::send_to_listener(path, fd, sc.listener_metadata().as_deref(), &st).map_err(
        |e| {
            Error::Config(format!(
                "field linux.seccomp.listenerPath {}: {e}",
                path.display()
            ))
        },
    )
}

pub(crate) fn dup_fd(fd: i32) -> Result<OwnedFd> {
    // SAFETY: borrowing an fd the caller keeps open for the duration of the call.
    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    b.try_clone_to_owned().ctx(|| "dup console socket")
}

/// pid and time namespaces apply to the children of the process that enters
/// them, so the parent enters them right before forking the init.
fn enter_children_namespaces(plan: &Plan, linux: &oci_spec::runtime::Linux) -> Result<()> {
    if let Some(p) = plan.joins(LinuxNamespaceType::Pid) {
        namespaces::join(LinuxNamespaceType::Pid, p)?;
    } else if plan.creates(LinuxNamespaceType::Pid) {
        namespaces::unshare(nix::sched::CloneFlags::CLONE_NEWPID)?;
    }
    if let Some(p) = plan.joins(LinuxNamespaceType::Time) {
        namespaces::join(LinuxNamespaceType::Time, p)?;
    } else if plan.creates(LinuxNamespaceType::Time) {
        namespaces::unshare(nix::sched::CloneFlags::from_bits_retain(
            libc::CLONE_NEWTIME,
        ))?;
        namespaces::write_time_offsets(linux)?;
    }
    Ok(())
}

/// Undo [`enter_children_namespaces`] in the parent once the init is forked.
/// A process whose children go to another pid or time namespace cannot start
/// threads (clone with CLONE_THREAD fails with EINVAL), and the systemd
/// driver's D-Bus client runs one. Entering the namespaces the parent itself
/// is in makes its children's namespaces its own again.
fn leave_children_namespaces(plan: &Plan) -> Result<()> {
    for t in [LinuxNamespaceType::Pid, LinuxNamespaceType::Time] {
        if plan.has(t) {
            let own = format!("/proc/self/ns/{}", namespaces::proc_name(t));
            namespaces::join(t, Path::new(&own))?;
        }
    }
    Ok(())
}

/// With a user namespace the forked child is an intermediate process: write its
/// id maps, learn the real init's pid and reap the intermediate.
fn wait_for_init_pid(
    ch: &channel::Channel,
    linux: &oci_spec::runtime::Linux,
    intermediate: i32,
) -> Result<i32> {
    loop {
        match ch.expect("entering its namespaces")? {
            Msg::MapIds { pid } => {
                namespaces::write_id_maps(pid, linux)?;
                ch.send(&Msg::IdsMapped)?;
            }
            Msg::InitPid { pid } => {
                let _ = nix::sys::wait::waitpid(Pid::from_raw(intermediate), None);
                return Ok(pid);
            }
            m => return Err(Error::Init(format!("unexpected message from init: {m:?}"))),
        }
    }
}

#[allow(deprecated)]
fn run_runtime_hooks(spec: &Spec, state: &State) -> Result<()> {
    let Some(h) = spec.hooks().as_ref() else {
        return Ok(());
    };
    let json = state.hook_json();
    // In the bundle directory, as runc (which works from there) runs them.
    let place = crate::hooks::Place {
        cwd: Some(&state.bundle),
        default_env: None,
    };
    crate::hooks::run_all(h.prestart().as_ref(), &json, "prestart", place)?;
    crate::hooks::run_all(h.create_runtime().as_ref(), &json, "createRuntime", place)
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ctx(|| "getcwd")?.join(path)
    };
    crate::sys::write_atomic(&abs, pid.to_string().as_bytes())
}

/// What start, kill and delete need of the config.json saved at create: the
/// hooks and the namespaces. Only these fields are built (serde skips the
/// rest of the text), which is most of the cost of reading it back.
#[derive(Debug, Default, serde::Deserialize)]
struct SavedConfig {
    #[serde(default)]
    hooks: Option<oci_spec::runtime::Hooks>,
    #[serde(default)]
    linux: Option<SavedLinux>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct SavedLinux {
    #[serde(default)]
    namespaces: Option<Vec<oci_spec::runtime::LinuxNamespace>>,
}

impl SavedConfig {
    fn namespaces(&self) -> &[oci_spec::runtime::LinuxNamespace] {
        self.linux
            .as_ref()
            .and_then(|l| l.namespaces.as_deref())
            .unwrap_or_default()
    }
}

fn load_spec_copy(dir: &ContainerDir) -> Option<SavedConfig> {
    let text = std::fs::read(dir.path.join(crate::state::CONFIG_COPY)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// `berth start`: let the init exec the user program, exactly once.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let mut state = dir.load_current()?;
    match state.status {
        Status::Created => {}
        Status::Stopped => {
            return Err(Error::WrongState(format!(
                "cannot start container \"{id}\": it has stopped"
            )))
        }
        Status::Creating => {
            return Err(Error::WrongState(format!(
                "cannot start container \"{id}\": it is still being created"
            )))
        }
        Status::Running | Status::Paused => {
            return Err(Error::WrongState(format!(
                "cannot start container \"{id}\": it is already {}",
                state.status
            )))
        }
    }
    crate::logging::debug(&format!("start {id}: releasing init pid {}", state.pid));
    let reply = release_init(&dir, &state)?;
    let _ = std::fs::remove_file(dir.fifo_path());
    if reply != b"0" {
        let msg = String::from_utf8_lossy(reply.strip_prefix(b"0").unwrap_or(&reply)).into_owned();
        return Err(Error::Init(msg));
    }
    state.status = Status::Running;
    if let Some(spec) = load_spec_copy(&dir) {
        if let Some(h) = spec.hooks.as_ref() {
            crate::hooks::run_all_warn(h.poststart().as_ref(), &state.hook_json(), "poststart");
        }
    }
    Ok(())
}

/// Open the exec FIFO for reading (this unblocks the init) and collect what the
/// init writes until it execs (the write end is close-on-exec): "0" on success,
/// otherwise the reason it failed.
fn release_init(dir: &ContainerDir, state: &State) -> Result<Vec<u8>> {
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(dir.fifo_path())
        .ctx(|| "open exec fifo")?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&fifo),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(100u16)).unwrap_or(0);
        if n > 0 {
            // SAFETY: valid buffer.
            let r = unsafe { libc::read(fifo.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r > 0 {
                out.extend_from_slice(&buf[..r as usize]);
                continue;
            }
            if r == 0 && !out.is_empty() {
                return Ok(out);
            }
            if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                return Err(std::io::Error::last_os_error()).ctx(|| "read exec fifo");
            }
        }
        if !crate::sys::process_alive(state.pid, state.pid_start_time) {
            if out.is_empty() {
                return Err(Error::Init(format!(
                    "container \"{}\" init exited before it could start",
                    state.id
                )));
            }
            return Ok(out);
        }
        if r_would_spin(n, &out) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn r_would_spin(n: i32, out: &[u8]) -> bool {
    // poll reports POLLHUP with nothing to read before the writer appears.
    n > 0 && out.is_empty()
}

use std::os::unix::fs::OpenOptionsExt;

/// `berth state`.
pub fn state(root: &Path, id: &str) -> Result<State> {
    let dir = ContainerDir::open(root, id)?;
    dir.load_current()
}

/// `berth kill`: signal the init, or with `all` every process of the
/// container's cgroup. As runc: a container without its own pid namespace
/// has an init like any other process, so SIGKILL goes to every process
/// (also once the init is gone); signal 0 only checks the init is alive; a
/// stopped container is "not running", which `all` does not make an error.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.load_current()?;
    let own_pid_ns = load_spec_copy(&dir).is_none_or(|s| has_own_pid_namespace(&s));
    if signal == libc::SIGKILL && !own_pid_ns {
        let cg = cgroup_manager(&state)?;
        cg.kill_all(signal)?;
        if state.status == Status::Paused {
            let _ = cg.thaw();
        }
        return Ok(());
    }
    if matches!(state.status, Status::Stopped) {
        if all {
            return Ok(());
        }
        return Err(Error::WrongState(format!(
            "cannot kill container \"{id}\": container not running"
        )));
    }
    if all {
        let cg = cgroup_manager(&state)?;
        cg.kill_all(signal)?;
        if state.status == Status::Paused && signal == libc::SIGKILL {
            let _ = cg.thaw();
        }
        return Ok(());
    }
    // SAFETY: plain kill(2); the pid was checked against its start time. Raw
    // because the signal may be real-time (SIGRTMIN+n, as runc accepts), which
    // nix's Signal cannot name and rustix's names only through an unsafe call.
    if unsafe { libc::kill(state.pid, signal) } != 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| format!("signal {signal} to container \"{id}\" (pid {})", state.pid));
    }
    Ok(())
}

/// Whether the container has a pid namespace of its own (a new one, not
/// shared with the host or joined by path).
fn has_own_pid_namespace(spec: &SavedConfig) -> bool {
    spec.namespaces()
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Pid && n.path().is_none())
}

/// `berth delete`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = match ContainerDir::open(root, id) {
        // A directory without state.json (a create or delete killed midway)
        // is no container, but it holds the id: --force removes it.
        Err(Error::NotFound(n)) if force => {
            crate::state::remove_incomplete(root, id)?;
            return Err(Error::NotFound(n));
        }
        r => r?,
    };
    let mut state = dir.load_current()?;
    let spec = load_spec_copy(&dir);
    let own_pid_ns = spec.as_ref().is_some_and(has_own_pid_namespace);
    match state.status {
        Status::Stopped => {}
        // A created container's program never ran: deleting it is allowed, as runc
        // does and as containerd relies on.
        Status::Created | Status::Creating => kill_and_wait(&state, own_pid_ns)?,
        Status::Running | Status::Paused if force => kill_and_wait(&state, own_pid_ns)?,
        s => {
            return Err(Error::WrongState(format!(
                "cannot delete container \"{id}\": it is {s}; stop it first or use --force"
            )))
        }
    }
    crate::logging::debug(&format!("delete {id}: status {}", state.status));
    if spec.as_ref().is_some_and(|s| !has_mount_namespace(s)) {
        crate::rootfs::detach_mounts_below(&state.rootfs);
    }
    if let Ok(cg) = cgroup_manager(&state) {
        let _ = cg.kill_all(libc::SIGKILL);
        let _ = cg.thaw();
        destroy_cgroup(cg.as_ref());
    }
    dir.remove()?;
    state.status = Status::Stopped;
    if let Some(h) = spec.as_ref().and_then(|s| s.hooks.as_ref()) {
        crate::hooks::run_all_warn(h.poststop().as_ref(), &state.hook_json(), "poststop");
    }
    Ok(())
}

/// Whether the config gives the container a mount namespace of its own.
fn has_mount_namespace(spec: &SavedConfig) -> bool {
    spec.namespaces()
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Mount)
}

/// SIGKILL the init and everything in its cgroup, and wait until it is gone.
///
/// With a pid namespace of its own the init's death takes every process of
/// the container with it (the kernel kills the namespace), as runc relies on:
/// a running init is then simply killed, without freezing the cgroup to
/// signal its processes one by one. A paused container is thawed for the
/// signal to be taken.
fn kill_and_wait(state: &State, own_pid_ns: bool) -> Result<()> {
    let init_alive = state.pid > 0 && crate::sys::process_alive(state.pid, state.pid_start_time);
    let init_takes_all = own_pid_ns && init_alive && state.status != Status::Paused;
    if !init_takes_all {
        if let Ok(cg) = cgroup_manager(state) {
            let _ = cg.kill_all(libc::SIGKILL);
            let _ = cg.thaw();
        }
    }
    // A pidfd taken while the pid is still the init's (checked by its start
    // time after opening) says exactly when it has exited, without polling.
    let pidfd = (state.pid > 0)
        .then(|| crate::pidfd::open(state.pid).ok())
        .flatten()
        .filter(|_| crate::sys::process_alive(state.pid, state.pid_start_time));
    if state.pid > 0 && crate::sys::process_alive(state.pid, state.pid_start_time) {
        let _ = nix::sys::signal::kill(Pid::from_raw(state.pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::sys::process_alive(state.pid, state.pid_start_time) {
        // Reap it if it is our child (run, tests); harmless otherwise.
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(state.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Other(format!(
                "container \"{}\" (pid {}) did not die after SIGKILL",
                state.id, state.pid
            )));
        }
        match &pidfd {
            // Readable once the process has exited: a zombie left for its
            // parent to reap is dead (and, as a pid namespace's init, the
            // last of the namespace's processes).
            Some(fd) => {
                let wait = (deadline - now).min(Duration::from_millis(100));
                let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX).max(1);
                let mut pfd = [nix::poll::PollFd::new(
                    fd.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                if nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms)).unwrap_or(0) > 0 {
                    let _ = nix::sys::wait::waitpid(
                        Pid::from_raw(state.pid),
                        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                    );
                    break;
                }
            }
            None => std::thread::sleep(Duration::from_micros(200)),
        }
    }
    Ok(())
}

/// Every container under `root`, with its derived status.
pub fn list(root: &Path) -> Result<Vec<State>> {
    let mut v = Vec::new();
    for id in crate::state::list_ids(root)? {
        if let Ok(dir) = ContainerDir::open(root, &id) {
            if let Ok(s) = dir.load_current() {
                v.push(s);
            }
        }
    }
    Ok(v)
}
