//! Network namespaces pinned by a bind mount on a file, so that they outlive
//! the processes in them (the CNI plugins are given the file's path, and the
//! container's config names it). A pin that survives a crash keeps the
//! namespace, its veth and its addresses, so a later cleanup can still run
//! CNI DEL against it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::mount::{mount_bind, unmount, UnmountFlags};
use rustix::thread::{unshare_unsafe, UnshareFlags};

use super::NetError;

/// Make a new network namespace and pin it at `path` (a new empty file).
pub fn create(path: &Path) -> Result<(), NetError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| NetError::Io(format!("create {}", dir.display()), e))?;
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| NetError::Io(format!("create {}", path.display()), e))?;
    let target = path.to_path_buf();
    // unshare(CLONE_NEWNET) moves only the calling thread; a thread of its
    // own keeps this process's other threads where they are, and the
    // namespace lives on through the bind mount after the thread ends.
    let pinned = std::thread::spawn(move || -> Result<(), NetError> {
        // SAFETY: only the network namespace of this short-lived thread
        // changes; no memory or file-descriptor state is unshared.
        unsafe { unshare_unsafe(UnshareFlags::NEWNET) }
            .map_err(|e| NetError::Io("unshare(CLONE_NEWNET)".into(), e.into()))?;
        mount_bind("/proc/thread-self/ns/net", &target).map_err(|e| {
            NetError::Io(
                format!("bind the new netns to {}", target.display()),
                e.into(),
            )
        })
    })
    .join()
    .unwrap_or_else(|_| Err(NetError::Config("netns thread panicked".into())));
    if pinned.is_err() {
        let _ = fs::remove_file(path);
    }
    pinned
}

/// Unpin (the namespace goes away with its last user) and remove the file.
pub fn remove(path: &Path) -> Result<(), NetError> {
    match unmount(path, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => {
            return Err(NetError::Io(
                format!("unmount {}", path.display()),
                e.into(),
            ))
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::Io(format!("remove {}", path.display()), e)),
    }
}

/// The namespace's identity (device, inode) when `path` pins one.
pub fn identity(path: &Path) -> Option<(u64, u64)> {
    let m = fs::metadata(path).ok()?;
    // An unpinned file is a regular file on the store's filesystem; a pin is
    // an nsfs inode.
    let st = rustix::fs::statfs(path).ok()?;
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    (st.f_type as i64 == NSFS_MAGIC).then_some((m.dev(), m.ino()))
}

/// Whether any process is in the namespace pinned at `path`.
pub fn in_use(path: &Path) -> bool {
    let Some(id) = identity(path) else {
        return false;
    };
    let Ok(rd) = fs::read_dir("/proc") else {
        return false;
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| {
            fs::metadata(e.path().join("ns/net"))
                .map(|m| (m.dev(), m.ino()) == id)
                .unwrap_or(false)
        })
}
