//! Small helpers for cgroup interface files and directories.

use std::fmt::Display;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{CgroupError, Result};

pub(crate) fn io_err(path: impl Into<PathBuf>, source: std::io::Error) -> CgroupError {
    CgroupError::Io {
        path: path.into(),
        source,
    }
}

/// One cgroup directory. `create` marks a fake cgroup tree in a plain directory
/// (tests): writes then append `value\n` to the file, creating it, so a test
/// sees every write in order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CgDir<'a> {
    pub path: &'a Path,
    pub create: bool,
}

/// See [`CgDir::writer`]: the file is opened at the first write.
pub(crate) struct FileWriter<'a> {
    dir: CgDir<'a>,
    name: &'a str,
    file: Option<std::fs::File>,
}

impl FileWriter<'_> {
    /// Write `value` with a single write(2); `resource` names the OCI field in errors.
    pub fn write(&mut self, value: &str, resource: &str) -> Result<()> {
        let err = |source| CgroupError::Write {
            resource: resource.to_string(),
            path: self.dir.file(self.name),
            value: value.to_string(),
            source,
        };
        if self.dir.create {
            return self.dir.write_raw(self.name, value).map_err(err);
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(self.dir.file(self.name))
                    .map_err(err)?;
                self.file.insert(f)
            }
        };
        file.write_all(value.as_bytes()).map_err(err)
    }
}

impl<'a> CgDir<'a> {
    pub fn new(path: &'a Path, create: bool) -> Self {
        CgDir { path, create }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.file(name).exists()
    }

    /// Write `value` with a single write(2); `resource` names the OCI field in errors.
    pub fn write(&self, name: &str, value: impl Display, resource: &str) -> Result<()> {
        let value = value.to_string();
        self.write_raw(name, &value)
            .map_err(|source| CgroupError::Write {
                resource: resource.to_string(),
                path: self.file(name),
                value,
                source,
            })
    }

    /// An open interface file that takes one value per [`FileWriter::write`]
    /// (each its own write(2)), for files the kernel reads as one entry per
    /// write, such as v1's devices.allow: one open for many rules.
    pub fn writer(&self, name: &'a str) -> FileWriter<'a> {
        FileWriter {
            dir: *self,
            name,
            file: None,
        }
    }

    pub fn write_raw(&self, name: &str, value: &str) -> std::io::Result<()> {
        if self.create {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(self.file(name))?;
            return f.write_all(format!("{value}\n").as_bytes());
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.file(name))?
            .write_all(value.as_bytes())
    }

    pub fn read(&self, name: &str) -> Result<String> {
        let path = self.file(name);
        std::fs::read_to_string(&path).map_err(|e| io_err(path, e))
    }

    /// Read a file holding one number; `max` (and v1's huge "unlimited") read as u64::MAX.
    pub fn read_u64(&self, name: &str) -> Result<u64> {
        let text = self.read(name)?;
        parse_u64(text.trim()).ok_or_else(|| {
            CgroupError::Invalid(format!(
                "{}: unexpected content {:?}",
                self.file(name).display(),
                text.trim()
            ))
        })
    }

    /// Like `read_u64` but 0 when the file does not exist.
    pub fn read_u64_or_zero(&self, name: &str) -> Result<u64> {
        match self.read_u64(name) {
            Err(CgroupError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(0),
            other => other,
        }
    }

    /// `key value` lines (memory.stat, cpu.stat, ...). Missing file reads as empty.
    pub fn read_keyed(&self, name: &str) -> Result<Vec<(String, u64)>> {
        let text = match std::fs::read_to_string(self.file(name)) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(self.file(name), e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), parse_u64(v.trim())?))
            })
            .collect())
    }
}

pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

pub(crate) fn keyed(list: &[(String, u64)], key: &str) -> u64 {
    list.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or(0)
}

/// `mkdir -p dir`, never creating `stop` or anything above it. Returns the
/// directories it created, shallowest first.
pub(crate) fn mkdir_all(dir: &Path, stop: &Path) -> Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    mkdir_rec(dir, stop, &mut created)?;
    Ok(created)
}

fn mkdir_rec(dir: &Path, stop: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => {
            created.push(dir.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound && dir != stop && dir.starts_with(stop) => {
            let parent = dir.parent().ok_or_else(|| io_err(dir, e))?;
            mkdir_rec(parent, stop, created)?;
            mkdir_rec(dir, stop, created)
        }
        Err(e) => Err(io_err(dir, e)),
    }
}

/// rmdir, retrying briefly while the kernel still reports the cgroup busy
/// (exiting processes leave it asynchronously). A missing directory is fine.
pub(crate) fn rmdir_retry(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut pause = Duration::from_micros(100);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(e) => {
                return Err(CgroupError::Invalid(format!(
                    "cannot remove cgroup {}: {e}{}",
                    dir.display(),
                    if e.raw_os_error() == Some(libc::EBUSY) {
                        " (processes are still in it)"
                    } else {
                        ""
                    }
                )))
            }
        }
    }
}

/// Remove `dir` and every sub-cgroup below it, deepest first. The common case
/// (no sub-cgroups) costs a single rmdir. Only directories are removed: cgroupfs
/// interface files vanish with their directory; in a fake tree (`fake`) plain
/// files are removed too.
pub(crate) fn remove_tree(dir: &Path, fake: bool) -> Result<()> {
    if !fake {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(_) => {}
        }
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let ft = entry.file_type().map_err(|e| io_err(entry.path(), e))?;
        if ft.is_dir() {
            remove_tree(&entry.path(), fake)?;
        } else if fake {
            std::fs::remove_file(entry.path()).map_err(|e| io_err(entry.path(), e))?;
        }
    }
    rmdir_retry(dir)
}

/// Remove `dir`'s tree, then up to `owned - 1` of its parents that are empty.
/// Parents still used by other cgroups are left alone.
pub(crate) fn remove_owned(dir: &Path, owned: usize, fake: bool) -> Result<()> {
    remove_tree(dir, fake)?;
    let mut cur = dir.parent();
    for _ in 1..owned {
        let Some(p) = cur else { break };
        if fake {
            // A fake parent holds files written by enabling controllers.
            if let Ok(entries) = std::fs::read_dir(p) {
                if entries.flatten().any(|e| e.path().is_dir()) {
                    break;
                }
                for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if !remove_parent(p) {
            break;
        }
        cur = p.parent();
    }
    Ok(())
}

/// rmdir of a parent the manager created; false when it stays. A parent that
/// still has sub-cgroups is in use by others and left alone at once. EBUSY without
/// any sub-cgroup is retried briefly: right after a child's rmdir the kernel still
/// counts the child as online until its asynchronous teardown ends (a memory cgroup
/// takes longest), and giving up there would leave the parent behind for good.
fn remove_parent(p: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut pause = Duration::from_micros(100);
    loop {
        match std::fs::remove_dir(p) {
            Ok(()) => return true,
            Err(e) if e.kind() == ErrorKind::NotFound => return true,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                let in_use = std::fs::read_dir(p)
                    .map(|d| d.flatten().any(|e| e.file_type().is_ok_and(|t| t.is_dir())))
                    .unwrap_or(true);
                if in_use {
                    return false;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(_) => return false,
        }
    }
}

/// Pids in `cgroup.procs` of `dir` and all its sub-cgroups.
pub(crate) fn procs_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    match std::fs::read_to_string(&procs) {
        Ok(text) => out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(procs, e)),
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir, e)),
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            procs_recursive(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// Whether `dir/cgroup.procs` lists any process.
pub(crate) fn has_procs(dir: &Path) -> Result<bool> {
    let procs = dir.join("cgroup.procs");
    match std::fs::read_to_string(&procs) {
        Ok(text) => Ok(text.lines().any(|l| !l.trim().is_empty())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(procs, e)),
    }
}

/// Send `signal` to each pid, ignoring processes that are already gone.
pub(crate) fn signal_pids(pids: &[i32], signal: i32) -> Result<()> {
    for &pid in pids {
        // SAFETY: kill(2) has no memory-safety preconditions. Raw because the
        // signal may be real-time (SIGRTMIN+n), which nix's Signal cannot name.
        if unsafe { libc::kill(pid, signal) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(CgroupError::Invalid(format!(
                    "kill pid {pid} with signal {signal}: {err}"
                )));
            }
        }
    }
    Ok(())
}

/// Poll `check` until it returns true, sleeping a little more each time, for at most `limit`.
pub(crate) fn poll_until(limit: Duration, mut check: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_micros(50);
    loop {
        if check()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// An existing cgroup may be joined only if it is empty and not frozen.
pub(crate) fn refuse_busy_cgroup(dir: &Path) -> Result<()> {
    if has_procs(dir)? {
        return Err(CgroupError::Invalid(format!(
            "container's cgroup is not empty: {} already has processes; refusing to share it",
            dir.display()
        )));
    }
    let d = CgDir::new(dir, false);
    let frozen = if d.has("freezer.state") {
        d.read("freezer.state")?.trim() != "THAWED"
    } else if d.has("cgroup.freeze") {
        d.read("cgroup.freeze")?.trim() == "1"
    } else {
        false
    };
    if frozen {
        return Err(CgroupError::Invalid(format!(
            "container's cgroup unexpectedly frozen: {} already exists and is frozen",
            dir.display()
        )));
    }
    Ok(())
}
