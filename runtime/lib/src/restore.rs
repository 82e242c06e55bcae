//! `berth restore`: bring a checkpointed container back with CRIU, under the
//! id given (the one it had, or a new one), following runc's
//! Container.Restore. The state directory is made and guarded as `create`
//! makes it: atomic state writes under the container's lock, and nothing left
//! behind (processes, cgroup, state, mounts) when any step fails.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use berth_cgroups::CgroupManager;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use rust_criu::rust_criu_protobuf::rpc::{
    Cgroup_root, Criu_opts, Criu_req_type, Ext_mount_map, Inherit_fd, Join_namespace,
};

use crate::checkpoint::open_dir;
use crate::container::CreateOpts;
use crate::criu::swrk::{Session, FIRST_EXTRA_FD};
use crate::criu::{self, Criu, CriuFlags};
use crate::error::{Context, Error, Result};
use crate::state::{ContainerDir, State, Status};

/// Options of `berth restore`.
#[derive(Debug, Clone, Default)]
pub struct RestoreOpts {
    /// Id, bundle, root, --pid-file, --console-socket, --no-pivot (accepted).
    pub create: CreateOpts,
    pub criu: Criu,
    pub flags: CriuFlags,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
}

/// Where the rootfs is bind mounted for CRIU inside the state directory: its
/// root must be a mount point whose parent is not overmounted.
const CRIU_ROOT: &str = "criu-root";

/// Removes what a failed restore made.
struct RestoreGuard {
    dir: Option<ContainerDir>,
    pid: Option<i32>,
    cgroup: Option<Box<dyn CgroupManager>>,
    criu_root: Option<PathBuf>,
}

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            crate::container::destroy_cgroup(cg.as_ref());
        }
        if let Some(r) = self.criu_root.take() {
            let _ = umount2(&r, MntFlags::MNT_DETACH);
        }
        if let Some(d) = self.dir.take() {
            let _ = d.remove();
        }
    }
}

/// Everything checked before the system is touched.
struct Checked {
    spec: Spec,
    text: String,
    bundle: PathBuf,
    rootfs: PathBuf,
    stdio: Vec<String>,
    namespaces: criu::namespaces::RestoreNamespaces,
}

fn check(o: &RestoreOpts) -> Result<Checked> {
    if crate::rootless::is_rootless() {
        return Err(Error::Other(
            "restore needs root: CRIU cannot restore a container for an unprivileged user".into(),
        ));
    }
    let c = &o.create;
    crate::state::validate_id(&c.id)?;
    let bundle = std::fs::canonicalize(&c.bundle)
        .map_err(|e| Error::Config(format!("bundle {}: {e}", c.bundle.display())))?;
    let config = bundle.join("config.json");
    let text = std::fs::read_to_string(&config)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", config.display())))?;
    let spec = crate::bundle_config::parse(&text)?;
    let rootfs = crate::bundle_config::validate(&spec, &bundle)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal && c.console_socket.is_none() && c.console_fd.is_none() {
        return Err(Error::Config(
            "field process.terminal: true requires --console-socket".into(),
        ));
    }
    let image = &o.flags.image_path;
    drop(open_dir(image, "checkpoint image directory")?);
    if !image.join("inventory.img").is_file() {
        return Err(Error::Path {
            path: image.clone(),
            msg: "not a CRIU checkpoint (no inventory.img)".into(),
        });
    }
    let stdio = criu::descriptors::load(image)?;
    let namespaces = criu::namespaces::for_restore(&spec)?;
    Ok(Checked {
        spec,
        text,
        bundle,
        rootfs,
        stdio,
        namespaces,
    })
}

/// Mounts made from here on stay in a mount namespace of this process
/// (a slave of the host's): the rootfs bind CRIU needs disappears with the
/// process, whatever happens to it.
fn enter_private_mount_namespace() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .ctx(|| "unshare a mount namespace for the restore")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "make the restore's mounts a slave of the host's")
}

/// `berth restore`: returns the restored init's pid, the container running.
pub fn restore(o: &RestoreOpts) -> Result<i32> {
    let c = check(o)?;
    let linux = c.spec.linux().as_ref().expect("validated");
    if let Some(w) = &o.flags.work_path {
        crate::checkpoint::make_private_dir(w, "restore work directory")?;
    }
    let log = o
        .flags
        .work_path
        .as_deref()
        .unwrap_or(&o.flags.image_path)
        .join("restore.log");
    enter_private_mount_namespace()?;
    // Opened in the new mount namespace: CRIU works (and mounts) in them.
    let image_dir = open_dir(&o.flags.image_path, "checkpoint image directory")?;
    let work_dir = match &o.flags.work_path {
        Some(w) => Some(open_dir(w, "restore work directory")?),
        None => None,
    };

    let dir = ContainerDir::create(&o.create.root, &o.create.id)?;
    let mut guard = RestoreGuard {
        dir: Some(dir),
        pid: None,
        cgroup: None,
        criu_root: None,
    };
    let dir = guard.dir.as_ref().expect("set");
    let mut state = State {
        oci_version: c.spec.version().clone(),
        id: o.create.id.clone(),
        status: Status::Creating,
        pid: 0,
        bundle: c.bundle.clone(),
        annotations: c.spec.annotations().clone().unwrap_or_default(),
        pid_start_time: 0,
        rootfs: c.rootfs.clone(),
        created: crate::sys::rfc3339_now(),
        owner: String::new(),
        cgroups_path: linux
            .cgroups_path()
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        cgroup_owned_depth: None,
        no_cgroup: false,
        ptrace_exec: false,
        systemd_cgroup: false,
    };
    dir.save(&state)?;
    std::fs::write(dir.path.join(crate::state::CONFIG_COPY), &c.text).ctx(|| "save config copy")?;

    criu::mounts::prepare_mountpoints(&c.spec, &c.bundle, &c.rootfs)?;
    let criu_root = dir.path.join(CRIU_ROOT);
    std::fs::create_dir(&criu_root).ctx(|| format!("create {}", criu_root.display()))?;
    mount(
        Some(c.rootfs.as_path()),
        &criu_root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind mount the rootfs on {}", criu_root.display()))?;
    guard.criu_root = Some(criu_root.clone());

    let extra: Vec<BorrowedFd<'_>> = c
        .namespaces
        .inherit
        .iter()
        .map(|(_, f)| f.as_fd())
        .collect();
    let mut session = Session::start(&o.criu, "restore", true, &extra)?;
    session.check_version(&o.criu)?;
    if o.flags.lazy_pages {
        let mut want = rust_criu::rust_criu_protobuf::rpc::Criu_features::new();
        want.set_lazy_pages(true);
        session.check_features(want)?;
    }

    // runc's criuApplyCgroups: criu itself joins the container's cgroup (so
    // the tree it restores lands there) and names its cgroups as the roots
    // to restore into.
    let cgroup = crate::container::cgroup_manager(&state)?;
    guard.cgroup = Some(cgroup);
    let cg = guard.cgroup.as_deref().expect("set");
    cg.apply(session.pid())?;
    state.cgroup_owned_depth = Some(cg.owned_depth());
    if let Some(res) = crate::device_rules::resources_to_apply(linux) {
        cg.set(&res)?;
    }
    dir.save(&state)?;

    let mut opts = Criu_opts::new();
    o.flags.apply(&mut opts)?;
    opts.set_images_dir_fd(image_dir.as_raw_fd());
    if let Some(w) = &work_dir {
        opts.set_work_dir_fd(w.as_raw_fd());
    }
    opts.set_log_file("restore.log".into());
    opts.set_evasive_devices(true);
    opts.set_rst_sibling(true);
    opts.set_root(criu_root.to_string_lossy().into_owned());
    if let Some(p) = &o.lsm_profile {
        opts.set_lsm_profile(p.clone());
    }
    if let Some(p) = &o.lsm_mount_context {
        opts.set_lsm_mount_context(p.clone());
    }
    if let Some(f) = criu::config_file(c.spec.annotations().as_ref()) {
        opts.set_config_file(f);
    }
    for (i, (key, _)) in c.namespaces.inherit.iter().enumerate() {
        opts.inherit_fd
            .push(inherit(key, FIRST_EXTRA_FD + i as i32));
    }
    for (key, fd) in criu::descriptors::inherited_pipes(&c.stdio) {
        opts.inherit_fd.push(inherit(&key, fd));
    }
    for (ns, path) in &c.namespaces.join {
        let mut j = Join_namespace::new();
        j.set_ns(ns.clone());
        j.set_ns_file(path.to_string_lossy().into_owned());
        opts.join_ns.push(j);
    }
    for m in criu::mounts::for_restore(&c.spec, &c.bundle, &c.rootfs, session.pid()) {
        let mut e = Ext_mount_map::new();
        e.set_key(m.key);
        e.set_val(m.val);
        opts.ext_mnt.push(e);
    }
    opts.cg_root = cgroup_roots(session.pid())?;

    let console = match (&o.create.console_socket, o.create.console_fd) {
        (_, Some(fd)) => Some(crate::container::dup_fd(fd)?),
        (Some(p), _) => Some(crate::terminal::connect(p)?),
        _ => None,
    };
    let mut restored: Option<i32> = None;
    let r = session.run(
        Criu_req_type::RESTORE,
        opts,
        &log,
        &mut |script, pid, fd| {
            on_notify(
                script,
                pid,
                fd,
                &c.spec,
                &state,
                &mut restored,
                console.as_ref(),
            )
        },
    );
    // The init may exist even when a later step failed: the guard kills it.
    guard.pid = restored;
    r?;
    let pid = restored.ok_or_else(|| {
        Error::Other("criu restored the container but never reported its pid".into())
    })?;

    if let Some(r) = guard.criu_root.take() {
        let _ = umount2(&r, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&r);
    }
    state.pid = pid;
    state.pid_start_time = crate::sys::proc_start_time(pid)
        .map(|(t, _)| t)
        .unwrap_or(0);
    state.status = Status::Running;
    state.created = crate::sys::rfc3339_now();
    guard.dir.as_ref().expect("set").save(&state)?;
    if let Some(pf) = &o.create.pid_file {
        crate::container::write_pid_file(pf, pid)?;
    }
    guard.pid = None;
    guard.cgroup = None;
    guard.dir = None;
    Ok(pid)
}

fn inherit(key: &str, fd: i32) -> Inherit_fd {
    let mut i = Inherit_fd::new();
    i.set_key(key.to_string());
    i.set_fd(fd);
    i
}

/// CRIU's notifications during a restore (runc's criuNotifications).
fn on_notify(
    script: &str,
    pid: i32,
    fd: Option<OwnedFd>,
    spec: &Spec,
    state: &State,
    restored: &mut Option<i32>,
    console: Option<&OwnedFd>,
) -> criu::swrk::NotifyResult {
    match script {
        // The namespaces exist, nothing runs yet: the hooks that configure
        // them (networking) run now, with the restored init's pid.
        "setup-namespaces" => {
            #[allow(deprecated)]
            if let Some(h) = spec.hooks().as_ref() {
                let mut s = state.clone();
                s.pid = pid;
                s.status = Status::Created;
                let json = s.hook_json();
                // In the bundle directory, as create runs them.
                let place = crate::hooks::Place {
                    cwd: Some(&s.bundle),
                    default_env: None,
                };
                crate::hooks::run_all(h.prestart().as_ref(), &json, "prestart", place)
                    .and_then(|_| {
                        crate::hooks::run_all(
                            h.create_runtime().as_ref(),
                            &json,
                            "createRuntime",
                            place,
                        )
                    })
                    .map_err(|e| e.to_string())?;
            }
        }
        "post-restore" => *restored = Some(pid),
        "orphan-pts-master" => {
            let (Some(master), Some(sock)) = (fd, console) else {
                return Err("the container's terminal arrived without a console socket".into());
            };
            crate::terminal::send_master(sock.as_raw_fd(), &master).map_err(|e| e.to_string())?;
        }
        _ => {}
    }
    Ok(())
}

/// The cgroups CRIU restores into, per controller: those of the criu process
/// (in the container's cgroup by now), as /proc/PID/cgroup lists them.
fn cgroup_roots(criu_pid: i32) -> Result<Vec<Cgroup_root>> {
    let path = format!("/proc/{criu_pid}/cgroup");
    let text = std::fs::read_to_string(&path).ctx(|| format!("read {path}"))?;
    let mut v = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, cg) = (parts.next(), parts.next(), parts.next());
        let (Some(ctrls), Some(cg)) = (ctrls, cg) else {
            continue;
        };
        for ctrl in ctrls.split(',') {
            let mut r = Cgroup_root::new();
            r.set_ctrl(ctrl.to_string());
            r.set_path(cg.to_string());
            v.push(r);
        }
    }
    Ok(v)
}
