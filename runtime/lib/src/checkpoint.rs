//! `berth checkpoint`: save a running container with CRIU (runc's
//! Container.Checkpoint). Without `--leave-running` (or `--pre-dump`) CRIU
//! kills the container after the dump and berth deletes it, as runc does;
//! `restore` brings it back, under the same id or another.

use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rust_criu::rust_criu_protobuf::rpc::{
    Criu_features, Criu_opts, Criu_page_server_info, Criu_req_type, Ext_mount_map,
};

use crate::criu::swrk::Session;
use crate::criu::{self, Criu, CriuError, CriuFlags};
use crate::error::{Context, Error, Result};
use crate::state::{ContainerDir, Status};

/// Options of `berth checkpoint`.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOpts {
    pub criu: Criu,
    pub flags: CriuFlags,
    pub leave_running: bool,
    /// Dump memory only, leaving the container running (iterative migration).
    pub pre_dump: bool,
    /// `--parent-path`: the previous pre-dump, relative to the image path.
    pub parent_path: Option<PathBuf>,
    /// `--page-server ADDRESS:PORT`.
    pub page_server: Option<String>,
    /// `--status-fd`: written `\0` once lazy pages are ready to be served.
    pub status_fd: Option<i32>,
}

/// Make `path` (and its parents) as a directory only its owner can read.
pub(crate) fn make_private_dir(path: &Path, what: &str) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .ctx(|| format!("create {what} {}", path.display()))
}

pub(crate) fn open_dir(path: &Path, what: &str) -> Result<std::fs::File> {
    let f = std::fs::File::open(path).ctx(|| format!("open {what} {}", path.display()))?;
    if !f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(Error::Path {
            path: path.into(),
            msg: format!("{what} is not a directory"),
        });
    }
    Ok(f)
}

fn parse_page_server(s: &str) -> Result<Criu_page_server_info> {
    let bad = || {
        Error::Other(format!(
            "--page-server \"{s}\": use ADDRESS:PORT to name the page server"
        ))
    };
    let (addr, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: i32 = port.parse().map_err(|_| bad())?;
    if addr.is_empty() || port <= 0 {
        return Err(bad());
    }
    let mut ps = Criu_page_server_info::new();
    ps.set_address(addr.trim_matches(|c| c == '[' || c == ']').to_string());
    ps.set_port(port);
    Ok(ps)
}

fn check_parent(image: &Path, parent: &Path) -> Result<()> {
    if parent.is_absolute() {
        return Err(Error::Other(format!(
            "--parent-path {}: must be relative to the image path",
            parent.display()
        )));
    }
    let real = image.join(parent);
    if !real.is_dir() {
        return Err(Error::Other(format!(
            "invalid --parent-path: {} is not a directory",
            real.display()
        )));
    }
    Ok(())
}

/// `berth checkpoint`.
pub fn checkpoint(root: &Path, id: &str, o: &CheckpointOpts) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.load_current()?;
    if !matches!(state.status, Status::Running | Status::Paused) {
        return Err(Error::WrongState(format!(
            "container \"{id}\" cannot be checkpointed in {} state",
            state.status
        )));
    }
    let spec_text = std::fs::read_to_string(dir.path.join(crate::state::CONFIG_COPY))
        .ctx(|| format!("read the config of container \"{id}\""))?;
    let spec = crate::bundle_config::parse(&spec_text)?;
    let page_server = o
        .page_server
        .as_deref()
        .map(parse_page_server)
        .transpose()?;
    let image = &o.flags.image_path;
    make_private_dir(image, "checkpoint image directory")?;
    if let Some(p) = &o.parent_path {
        check_parent(image, p)?;
    }
    let image_dir = open_dir(image, "checkpoint image directory")?;
    let work_dir = match &o.flags.work_path {
        Some(w) => {
            make_private_dir(w, "checkpoint work directory")?;
            Some(open_dir(w, "checkpoint work directory")?)
        }
        None => None,
    };
    let log = o
        .flags
        .work_path
        .as_deref()
        .unwrap_or(image)
        .join("dump.log");

    let mut opts = Criu_opts::new();
    o.flags.apply(&mut opts)?;
    opts.set_images_dir_fd(image_dir.as_raw_fd());
    if let Some(w) = &work_dir {
        opts.set_work_dir_fd(w.as_raw_fd());
    }
    opts.set_log_file("dump.log".into());
    opts.set_root(state.rootfs.to_string_lossy().into_owned());
    opts.set_pid(state.pid);
    opts.set_leave_running(o.leave_running);
    if let Some(c) = criu::config_file(spec.annotations().as_ref()) {
        opts.set_config_file(c);
    }
    opts.external = crate::criu::namespaces::dump_externals(&spec)?;
    if let Some(freezer) = freezer_path(&state)? {
        opts.set_freeze_cgroup(freezer);
    }
    opts.cgroup_dump_controller = dump_controllers(&state)?;
    if let Some(ps) = page_server {
        opts.ps = protobuf::MessageField::some(ps);
    }
    if let Some(p) = &o.parent_path {
        opts.set_parent_img(p.to_string_lossy().into_owned());
        opts.set_track_mem(true);
    }
    if o.flags.lazy_pages {
        if let Some(fd) = o.status_fd {
            check_writable_fd(fd)?;
        }
    }
    if !o.pre_dump {
        for m in criu::mounts::for_dump(&spec, &state.rootfs, state.pid) {
            let mut e = Ext_mount_map::new();
            e.set_key(m.key);
            e.set_val(m.val);
            opts.ext_mnt.push(e);
        }
        criu::descriptors::save(image, state.pid)?;
    }

    let mut session = Session::start(&o.criu, "dump", false, &[])?;
    session.check_version(&o.criu)?;
    let mut want = Criu_features::new();
    if o.pre_dump {
        want.set_mem_track(true);
    }
    if o.flags.lazy_pages {
        want.set_lazy_pages(true);
    }
    if o.pre_dump || o.flags.lazy_pages {
        session.check_features(want)?;
    }
    let typ = if o.pre_dump {
        Criu_req_type::PRE_DUMP
    } else {
        Criu_req_type::DUMP
    };
    let mut status_fd = o.status_fd;
    let r = session.run(typ, opts, &log, &mut |script, _pid, _fd| {
        if script == "status-ready" {
            if let Some(fd) = status_fd.take() {
                // SAFETY: writing one byte to, then closing, the caller's fd.
                unsafe {
                    libc::write(fd, [0u8].as_ptr().cast(), 1);
                    libc::close(fd);
                }
            }
        }
        Ok(())
    });
    match r {
        // In pre-dump mode CRIU waits for a final dump request that never
        // comes: its exit status after our hang-up does not count.
        Err(CriuError::Failed { msg, .. }) if o.pre_dump && msg.contains("criu exited with") => {}
        r => r?,
    }
    drop(image_dir);
    drop(work_dir);
    if !o.leave_running && !o.pre_dump {
        // CRIU killed the processes; remove what is left (cgroup, state),
        // running the poststop hooks, as runc's destroy does.
        drop(dir);
        crate::container::delete(root, id, true)?;
    }
    Ok(())
}

/// The hierarchies the container was placed in, named as CRIU names them
/// (`cpu,cpuacct`, `name=systemd`; `unified` for cgroup2). CRIU otherwise
/// dumps every hierarchy listed in the task's /proc/PID/cgroup, including
/// ones berth never used that another program mounted for a moment
/// elsewhere (a v1 `net_cls,net_prio` in a private mount namespace): mounting
/// such a hierarchy races with its owner unmounting it and the dump fails
/// with EBUSY or "controller not found".
fn dump_controllers(state: &crate::state::State) -> Result<Vec<String>> {
    if state.no_cgroup {
        return Ok(Vec::new());
    }
    let cg = crate::container::cgroup_manager(state)?;
    Ok(cg
        .paths()
        .keys()
        .map(|k| {
            if k.is_empty() {
                "unified".to_string()
            } else {
                k.clone()
            }
        })
        .collect())
}

/// The freezer cgroup CRIU freezes the tree with (else it stops each
/// task with ptrace): v1's freezer directory, or the cgroup2 directory on
/// a unified host.
fn freezer_path(state: &crate::state::State) -> Result<Option<String>> {
    if state.no_cgroup {
        return Ok(None);
    }
    let cg = crate::container::cgroup_manager(state)?;
    let paths = cg.paths();
    let p = match paths.get("freezer") {
        Some(p) => Some(p),
        None if cg.mode() == berth_cgroups::Mode::Unified => paths.get(""),
        None => None,
    };
    Ok(p.map(|p| p.to_string_lossy().into_owned()))
}

fn check_writable_fd(fd: i32) -> Result<()> {
    // SAFETY: F_GETFL on an integer; fails cleanly on a bad fd.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| format!("invalid --status-fd {fd}"));
    }
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(Error::Other(format!(
            "invalid --status-fd {fd}: not writable"
        )));
    }
    Ok(())
}
