//! The container's init process, from fork to execve.
//!
//! It is a fork of `berth create` (no re-exec of the runtime binary): it joins or
//! creates namespaces, builds the rootfs, drops privileges and then blocks on the
//! exec FIFO until `berth start` opens it. Every phase is a function of its own;
//! any error is reported to the parent over the channel, which fails `create`.

mod exec;
mod namespaces;

pub use exec::FifoHandle;
pub(crate) use exec::{
    apply_oom_score_adj, install_seccomp_with, setup_process as setup_exec_process,
};

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::channel::{Channel, Msg};
use crate::error::{Context, Error, Result};
use crate::namespaces::Plan;
use crate::rootfs::{self, mounts::MountCtx, paths::Root};
use crate::state::{State, Status};

/// Everything the init needs, inherited from the parent's memory at fork.
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub plan: &'a Plan,
    pub channel: Channel,
    /// O_PATH fd of the exec FIFO.
    pub fifo: Option<OwnedFd>,
    pub console_socket: Option<OwnedFd>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub no_new_keyring: bool,
    /// State as hooks see it (status and pid filled in as they become known).
    pub state: State,
    /// `linux.seccomp`, compiled by the parent before the fork.
    pub seccomp: Option<&'a crate::seccomp::Compiled>,
    /// The container's cgroup (directories made by the parent).
    pub cgroup: &'a dyn berth_cgroups::CgroupManager,
}

/// Entry point in the forked child. Never returns.
pub fn run(mut args: InitArgs) -> ! {
    let result = (|| -> Result<std::convert::Infallible> {
        setup_process()?;
        if let Some(p) = args.spec.process() {
            exec::apply_oom_score_adj(p)?;
        }
        if args.plan.involves_user() {
            namespaces::enter_via_intermediate(&args)?;
        } else {
            namespaces::enter_direct(args.plan)?;
        }
        container_setup(&mut args)
    })();
    let e = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = args.channel.send(&Msg::Error(e.to_string()));
    // SAFETY: terminate the forked child without running the parent's destructors.
    unsafe { libc::_exit(1) }
}

/// Make the init non-dumpable (so nothing in the container can open
/// /proc/PID/exe of the berth binary while it runs there, CVE-2019-5736) and give
/// it default signal handling.
fn setup_process() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE)")?;
    let all = nix::sys::signal::SigSet::all();
    nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_UNBLOCK, Some(&all), None)
        .ctx(|| "unblock signals")?;
    Ok(())
}

fn container_setup(a: &mut InitArgs) -> Result<std::convert::Infallible> {
    let spec = a.spec;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::Config("field linux: missing".into()))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Config("field process: missing".into()))?;

    crate::procattrs::apply_initial_affinity(process)?;
    match a.channel.expect("waiting for its cgroup")? {
        // The pid as the host sees it, for the state hooks receive.
        Msg::CgroupReady {
            pid,
            join,
            in_unified,
        } => {
            a.state.pid = pid;
            if join && in_unified {
                a.cgroup.join_self_v1()?;
            } else if join {
                a.cgroup.join_self()?;
            }
        }
        m => return Err(Error::Init(format!("unexpected message {m:?}"))),
    }
    crate::procattrs::reset_affinity_unless_initial(process)?;
    if a.plan.creates(LinuxNamespaceType::Cgroup) {
        crate::namespaces::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)?;
    }
    if !a.no_new_keyring {
        join_session_keyring(&a.state.id);
    }
    if let Some(h) = spec.hostname() {
        nix::unistd::sethostname(h)
            .map_err(|e| Error::Config(format!("field hostname \"{h}\": {e}")))?;
    }
    if let Some(d) = spec.domainname() {
        set_domainname(d)?;
    }

    let mount_ns = a.plan.has(LinuxNamespaceType::Mount);
    let root = if mount_ns {
        rootfs::prepare_root(spec, a.rootfs)?
    } else {
        rootfs::paths::Root::open(a.rootfs)?
    };
    let userns = a.plan.involves_user();
    let ctx = MountCtx {
        root: &root,
        cgroupns: a.plan.has(LinuxNamespaceType::Cgroup),
        userns,
        mount_label: linux.mount_label().as_deref(),
        runtime: Some(&a.channel),
    };
    rootfs::mount_all(spec, &root, &ctx, userns)?;
    let pty = setup_terminal(a, &root)?;
    rootfs::ensure_cwd(&root, process.cwd())?;

    run_creation_hooks(a)?;

    rootfs::sysctl::apply(linux)?;
    rootfs::mask_and_protect(spec, &root)?;
    let fifo_fd = a
        .fifo
        .take()
        .ok_or_else(|| Error::Init("exec fifo already taken".into()))?;
    if mount_ns {
        rootfs::enter(&root, a.no_pivot)?;
    } else {
        rootfs::chroot_into(&root)?;
    }
    drop(root);
    if fresh_dev(spec) {
        rootfs::devices::reopen_stdio_null()?;
    }
    rootfs::finalize(spec, a.rootfs)?;
    let fifo = exec::FifoHandle::in_container(fifo_fd)?;

    crate::procattrs::apply_personality(linux)?;
    crate::procattrs::apply_memory_policy(linux)?;
    let prepared = exec::prepare(a, process)?;
    exec::final_setup(a, pty)?;
    a.channel.send(&Msg::Created)?;
    exec::wait_and_exec(a, prepared, fifo)
}

/// Whether /dev is made by the runtime (a mount that is not a bind of a host
/// directory), so its /dev/null is the container's own.
fn fresh_dev(spec: &oci_spec::runtime::Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        m.destination() == std::path::Path::new("/dev")
            && m.typ().as_deref() != Some("bind")
            && !m
                .options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind")
    })
}

/// A fresh session keyring named after the container, as runc does (errors are
/// ignored: keyrings may be unavailable, e.g. in some user namespaces).
fn join_session_keyring(id: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = std::ffi::CString::new(format!("_ses.{id}")).unwrap_or_default();
    // SAFETY: plain syscall with a valid C string.
    unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
}

fn set_domainname(d: &str) -> Result<()> {
    // SAFETY: valid buffer and length.
    let r = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
    if r != 0 {
        return Err(Error::Config(format!(
            "field domainname \"{d}\": {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn setup_terminal(a: &mut InitArgs, root: &Root) -> Result<Option<crate::terminal::Pty>> {
    let process = a.spec.process().as_ref().expect("validated");
    if !process.terminal().unwrap_or(false) {
        return Ok(None);
    }
    let socket = a.console_socket.take().ok_or_else(|| {
        Error::Config("field process.terminal: true, but no --console-socket was given".into())
    })?;
    let pty = crate::terminal::open_in_root(root)?;
    crate::terminal::give_to(&pty, process.user().uid())?;
    if let Some(sz) = process.console_size() {
        crate::terminal::set_size(
            pty.master.as_raw_fd(),
            sz.height() as u16,
            sz.width() as u16,
        )?;
    }
    crate::terminal::mount_console(root, &pty)?;
    crate::terminal::send_master(socket.as_raw_fd(), &pty.master)?;
    Ok(Some(pty))
}

/// prestart and createRuntime hooks run in the runtime's namespaces (the parent
/// does that), then createContainer hooks here, in the container's namespaces
/// before pivot_root.
fn run_creation_hooks(a: &mut InitArgs) -> Result<()> {
    let Some(hooks) = a.spec.hooks().as_ref() else {
        return Ok(());
    };
    #[allow(deprecated)]
    let runtime_side = hooks.prestart().as_ref().is_some_and(|h| !h.is_empty())
        || hooks
            .create_runtime()
            .as_ref()
            .is_some_and(|h| !h.is_empty());
    if runtime_side {
        a.channel.send(&Msg::RunRuntimeHooks)?;
        match a.channel.expect("waiting for createRuntime hooks")? {
            Msg::HooksDone => {}
            m => return Err(Error::Init(format!("unexpected message {m:?}"))),
        }
    }
    a.state.status = Status::Creating;
    // In the rootfs, as runc runs them.
    crate::hooks::run_all(
        hooks.create_container().as_ref(),
        &a.state.hook_json(),
        "createContainer",
        crate::hooks::Place {
            cwd: Some(a.rootfs),
            default_env: None,
        },
    )
}
