//! Entering the container's namespaces from the forked child.

use nix::sched::CloneFlags;
use nix::unistd::ForkResult;
use oci_spec::runtime::LinuxNamespaceType;

use super::InitArgs;
use crate::channel::Msg;
use crate::error::{Context, Error, Result};
use crate::namespaces::{join, unshare, Plan};

/// Without a user namespace: the parent already placed us in the pid and time
/// namespaces; join the others by path and create the rest.
pub fn enter_direct(plan: &Plan) -> Result<()> {
    for (t, p) in &plan.join {
        if !matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
            join(*t, p)?;
        }
    }
    unshare(plan.unshare_flags())
}

/// With a user namespace, every other namespace must be owned by it, so this
/// process joins/creates the user namespace first, then the others (pid and time
/// only apply to children), and forks the real init. This process then reports
/// the init's pid and exits.
pub fn enter_via_intermediate(a: &InitArgs) -> Result<()> {
    let plan = a.plan;
    for (t, p) in &plan.join {
        join(*t, p)?;
    }
    if plan.creates(LinuxNamespaceType::User) {
        unshare(CloneFlags::CLONE_NEWUSER)?;
        // An unprivileged parent may only open /proc/PID/{uid,gid}_map of a
        // dumpable process: be dumpable just while it writes them.
        let rootless = crate::rootless::is_rootless();
        if rootless {
            nix::sys::prctl::set_dumpable(true).ctx(|| "prctl(PR_SET_DUMPABLE)")?;
        }
        a.channel.send(&Msg::MapIds {
            pid: nix::unistd::getpid().as_raw(),
        })?;
        match a.channel.expect("waiting for uid/gid maps")? {
            Msg::IdsMapped => {}
            m => return Err(Error::Init(format!("unexpected message {m:?}"))),
        }
        if rootless {
            nix::sys::prctl::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE)")?;
        }
        // Become the namespace's root (needed to create further namespaces cleanly).
        let _ = nix::unistd::setresgid(
            nix::unistd::Gid::from_raw(0),
            nix::unistd::Gid::from_raw(0),
            nix::unistd::Gid::from_raw(0),
        );
        let _ = nix::unistd::setresuid(
            nix::unistd::Uid::from_raw(0),
            nix::unistd::Uid::from_raw(0),
            nix::unistd::Uid::from_raw(0),
        );
    }
    let mut flags = plan.unshare_flags() & !CloneFlags::CLONE_NEWUSER;
    if plan.creates(LinuxNamespaceType::Pid) {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    if plan.creates(LinuxNamespaceType::Time) {
        flags |= CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
    }
    unshare(flags)?;
    if plan.creates(LinuxNamespaceType::Time) {
        if let Some(linux) = a.spec.linux().as_ref() {
            // /proc/self files of a non-dumpable process belong to the host's
            // root, which this user namespace does not map: be dumpable just
            // for the write (nothing of the container runs yet).
            nix::sys::prctl::set_dumpable(true).ctx(|| "prctl(PR_SET_DUMPABLE)")?;
            let written = crate::namespaces::write_time_offsets(linux);
            nix::sys::prctl::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE)")?;
            written?;
        }
    }
    // SAFETY: single-threaded process; the child only continues the init setup.
    match unsafe { nix::unistd::fork() }.ctx(|| "fork container init")? {
        ForkResult::Child => Ok(()),
        ForkResult::Parent { child } => {
            let _ = a.channel.send(&Msg::InitPid {
                pid: child.as_raw(),
            });
            // SAFETY: end the intermediate process without running destructors.
            unsafe { libc::_exit(0) }
        }
    }
}
