//! `berth checkpoint`: runc's flags, over [`berth_runtime::checkpoint`].

use std::path::{Path, PathBuf};

use berth_runtime::checkpoint::{self, CheckpointOpts};
use berth_runtime::criu::{CgroupsMode, Criu, CriuFlags};

/// The CRIU flags `checkpoint` and `restore` share (runc's names).
#[derive(clap::Args, Debug, Clone)]
pub struct CriuArgs {
    /// Path for the CRIU image files [default: ./checkpoint].
    #[arg(long = "image-path")]
    image_path: Option<PathBuf>,
    /// Path for CRIU's work files and logs [default: the image path].
    #[arg(long = "work-path")]
    work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long = "tcp-established")]
    tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long = "shell-job")]
    shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    file_locks: bool,
    /// Cgroups mode: soft (default), full, strict or ignore.
    #[arg(long = "manage-cgroups-mode")]
    manage_cgroups_mode: Option<String>,
    /// Create this namespace empty instead of restoring its properties (network).
    #[arg(long = "empty-ns")]
    empty_ns: Vec<String>,
    /// Deduplicate memory images automatically.
    #[arg(long = "auto-dedup")]
    auto_dedup: bool,
    /// Restore memory pages lazily (userfaultfd).
    #[arg(long = "lazy-pages")]
    lazy_pages: bool,
}

impl CriuArgs {
    pub fn flags(&self) -> anyhow::Result<CriuFlags> {
        let image_path = match &self.image_path {
            Some(p) => absolute(p)?,
            None => std::env::current_dir()?.join("checkpoint"),
        };
        Ok(CriuFlags {
            image_path,
            work_path: self.work_path.as_deref().map(absolute).transpose()?,
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            cgroups_mode: self
                .manage_cgroups_mode
                .as_deref()
                .map(str::parse::<CgroupsMode>)
                .transpose()?,
            empty_ns: self.empty_ns.clone(),
            auto_dedup: self.auto_dedup,
            lazy_pages: self.lazy_pages,
        })
    }
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

#[derive(clap::Args, Debug)]
pub struct CheckpointArgs {
    #[command(flatten)]
    criu: CriuArgs,
    /// Path of the previous pre-dump's images, relative to the image path.
    #[arg(long = "parent-path")]
    parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint.
    #[arg(long = "leave-running")]
    leave_running: bool,
    /// Dump the memory only and leave the container running.
    #[arg(long = "pre-dump")]
    pre_dump: bool,
    /// ADDRESS:PORT of the page server.
    #[arg(long = "page-server")]
    page_server: Option<String>,
    /// CRIU writes \0 to this fd once lazy pages are ready (with --lazy-pages).
    #[arg(long = "status-fd")]
    status_fd: Option<i32>,
    /// Container id.
    id: String,
}

impl CheckpointArgs {
    /// The fds the caller passes to berth (kept open at start-up).
    pub fn passed_fd(&self) -> Option<i32> {
        self.status_fd
    }
}

pub fn run(root: &Path, criu: Option<PathBuf>, a: &CheckpointArgs) -> anyhow::Result<i32> {
    let opts = CheckpointOpts {
        criu: Criu::new(criu),
        flags: a.criu.flags()?,
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        parent_path: a.parent_path.clone(),
        page_server: a.page_server.clone(),
        status_fd: a.status_fd,
    };
    checkpoint::checkpoint(root, &a.id, &opts)?;
    Ok(0)
}
