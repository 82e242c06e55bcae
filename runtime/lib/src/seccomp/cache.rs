//! Compiled programs cached on disk by profile hash:
//! `<cache dir>/<sha256 hex>.bpf`, written to a temporary file and renamed.
//!
//! The key covers the profile's JSON, the host architecture, the crate
//! version, [`FORMAT`] and the syscall table sizes, so a changed generator or
//! table never serves a stale program. A file that does not parse exactly is
//! ignored and rewritten.
//!
//! File layout (native endian): magic "BSCB", u32 format, 32-byte key,
//! u32 filter flags, u8 needs_notify, u32 instruction count, instructions.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use super::bpf::SockFilter;
use super::{syscall_table, Compiled, SeccompError};

const MAGIC: &[u8; 4] = b"BSCB";
/// Bump when the generated code for a given profile changes.
const FORMAT: u32 = 1;
const HEADER: usize = 4 + 4 + 32 + 4 + 1 + 4;

pub(crate) fn key(s: &LinuxSeccomp) -> Result<[u8; 32], SeccompError> {
    let json = serde_json::to_vec(s).map_err(|e| SeccompError::Internal(e.to_string()))?;
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(FORMAT.to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(std::env::consts::ARCH.as_bytes());
    for t in [
        syscall_table::X86_64,
        syscall_table::X86,
        syscall_table::X32,
        syscall_table::AARCH64,
    ] {
        h.update((t.len() as u32).to_le_bytes());
    }
    h.update(&json);
    Ok(h.finalize().into())
}

pub(crate) fn path(dir: &Path, key: &[u8; 32]) -> PathBuf {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}.bpf"))
}

pub(crate) fn encode(key: &[u8; 32], c: &Compiled) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 8 * c.program.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_ne_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&c.filter_flags.to_ne_bytes());
    out.push(c.needs_notify as u8);
    out.extend_from_slice(&(c.program.len() as u32).to_ne_bytes());
    for i in &c.program {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

pub(crate) fn decode(key: &[u8; 32], data: &[u8]) -> Option<Compiled> {
    let u32_at = |o: usize| Some(u32::from_ne_bytes(data.get(o..o + 4)?.try_into().ok()?));
    if data.get(..4)? != MAGIC || u32_at(4)? != FORMAT || data.get(8..40)? != key {
        return None;
    }
    let filter_flags = u32_at(40)?;
    let needs_notify = match data.get(44)? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let n = u32_at(45)? as usize;
    let body = &data[HEADER..];
    if n == 0 || n > super::bpf::MAX_INSNS || body.len() != 8 * n {
        return None;
    }
    let program = body
        .chunks_exact(8)
        .map(|c| SockFilter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Some(Compiled {
        program,
        filter_flags,
        needs_notify,
    })
}

/// The cached program, if a valid file written by this user is present.
/// Files owned by someone else or writable by group/others are not trusted.
pub(crate) fn load(dir: &Path, key: &[u8; 32]) -> Option<Compiled> {
    let mut f = fs::File::open(path(dir, key)).ok()?;
    let meta = f.metadata().ok()?;
    if meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return None;
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut data).ok()?;
    decode(key, &data)
}

/// Create the cache directory 0700, but its missing parents (the runtime's
/// `--root` among them) with the default mode, as the runtime itself would:
/// a 0700 root would keep a user-namespaced container's init (a non-root
/// host uid) from reaching its exec fifo.
fn create_dir(dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        r => r,
    }
}

/// Write atomically: a unique temporary file in `dir`, then rename.
pub(crate) fn store(dir: &Path, key: &[u8; 32], c: &Compiled) -> Result<(), SeccompError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let io = |context: String| move |source| SeccompError::Io { context, source };
    create_dir(dir).map_err(io(format!("create {}", dir.display())))?;
    let dest = path(dir, key);
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&encode(key, c)))
        .map_err(io(format!("write {}", tmp.display())))
        .and_then(|()| {
            fs::rename(&tmp, &dest).map_err(io(format!("rename to {}", dest.display())))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
