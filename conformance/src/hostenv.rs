//! Facts about the host the suite needs, and the per-run work directory.

use crate::runtime::Runtime;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const NS_FILES: &[&str] = &["pid", "net", "mnt", "ipc", "uts", "user", "cgroup", "time"];

/// The runner's namespace inodes as `pid=N,net=N,...`.
pub fn host_namespaces() -> String {
    NS_FILES
        .iter()
        .filter_map(|ns| {
            fs::metadata(format!("/proc/self/ns/{ns}"))
                .ok()
                .map(|m| format!("{ns}={}", m.ino()))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Fails unless `path` is an ELF file without a program interpreter (statically linked).
pub fn require_static(path: &Path, what: &str) -> Result<(), String> {
    let data = fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return Err(format!(
            "{what} {} is not a 64-bit ELF file",
            path.display()
        ));
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        let Some(p_type) = data.get(off..off + 4) else {
            break;
        };
        if u32::from_le_bytes(p_type.try_into().expect("4 bytes")) == 3 {
            return Err(format!(
                "{what} {} is dynamically linked; build it static: RUSTFLAGS=\"-C target-feature=+crt-static\" \
                 cargo build -p berth-conformance --target x86_64-unknown-linux-gnu",
                path.display()
            ));
        }
    }
    Ok(())
}

/// The run's private directory; removed (after unmounting anything left below it) unless kept.
pub struct WorkDir {
    pub path: PathBuf,
    keep: bool,
}

impl WorkDir {
    pub fn create(parent: &Path, keep: bool) -> Result<Self, String> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = parent.join(format!("berth-conformance-{}-{stamp}", std::process::id()));
        fs::create_dir_all(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        let path = fs::canonicalize(&path).map_err(|e| e.to_string())?;
        Ok(WorkDir { path, keep })
    }

    /// Deletes every container the runtime still knows in this run's state dir.
    pub fn sweep(&self, runtime: &Runtime) {
        if let Ok(ids) = runtime.list() {
            for id in ids {
                eprintln!("berth-conformance: removing leftover container {id}");
                let _ = runtime.delete_force(&id);
            }
        }
    }

    fn unmount_below(&self) {
        let prefix = format!("{}/", self.path.display());
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let points: Vec<String> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&prefix))
            .map(str::to_string)
            .collect();
        for p in points.iter().rev() {
            if let Ok(c) = std::ffi::CString::new(p.as_str()) {
                // SAFETY: c is a valid NUL-terminated path.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        self.unmount_below();
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header followed by one program header of type `p_type`.
    fn elf_with_phdr(p_type: u32) -> Vec<u8> {
        let mut data = vec![0u8; 64 + 56];
        data[..4].copy_from_slice(b"\x7fELF");
        data[4] = 2;
        data[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        data[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        data[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        data[64..68].copy_from_slice(&p_type.to_le_bytes());
        data
    }

    fn check(bytes: &[u8]) -> Result<(), String> {
        // Tests run in parallel: each call gets its own directory.
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "berth-conformance-elf-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("bin-{}", bytes[64]));
        std::fs::write(&path, bytes).unwrap();
        let r = require_static(&path, "test binary");
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn static_elf_is_accepted() {
        assert!(check(&elf_with_phdr(1)).is_ok());
    }

    #[test]
    fn elf_with_interpreter_is_rejected() {
        let err = check(&elf_with_phdr(3)).unwrap_err();
        assert!(err.contains("dynamically linked"), "{err}");
    }

    #[test]
    fn non_elf_is_rejected() {
        let mut bytes = elf_with_phdr(1);
        bytes[0] = b'#';
        assert!(check(&bytes).unwrap_err().contains("not a 64-bit ELF"));
    }

    #[test]
    fn host_namespaces_lists_pid_and_net() {
        let ns = host_namespaces();
        assert!(ns.split(',').any(|kv| kv.starts_with("pid=")), "{ns}");
        assert!(ns.split(',').any(|kv| kv.starts_with("net=")), "{ns}");
    }
}
