//! The layer unpacker: arbitrary bytes as an (uncompressed) layer tar,
//! unpacked with `unpack::unpack_tar` into `<scratch>/layer`, next to a
//! sentinel directory `<scratch>/outside`. Whatever the input, unpacking may
//! fail but must not panic, `outside` must stay empty and nothing may appear
//! in `<scratch>` besides `layer` and `outside`.
//!
//! Most mutated headers fail their checksum, so each input is unpacked twice:
//! as given, and (when that differs) with every header's checksum repaired
//! (`fix_checksums`), which lets mutations of the other header fields through.
//!
//! Each input gets a fresh scratch directory (removed afterwards) under
//! `$BERTH_FUZZ_TMPDIR`, else /dev/shm when it exists (on this VM's ext4 the
//! same loop runs about 70 times slower), else the temp dir. The file
//! size limit is lowered so that a tiny archive cannot fill the disk (a GNU
//! sparse entry can describe gigabytes of holes): writes past it fail with
//! EFBIG, which the unpacker reports as an error.
#![no_main]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// RLIMIT_FSIZE for the fuzzing process.
const MAX_FILE_SIZE: u64 = 32 << 20;

fn base() -> &'static PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        // SAFETY: plain libc calls with valid arguments, before any threads of ours.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: MAX_FILE_SIZE,
                rlim_max: MAX_FILE_SIZE,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
        }
        let tmp = match std::env::var_os("BERTH_FUZZ_TMPDIR") {
            Some(d) => PathBuf::from(d),
            None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
            None => std::env::temp_dir(),
        };
        let dir = tmp.join(format!("berth-fuzz-unpack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create fuzz scratch base");
        dir
    })
}

fn names(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("read dir entry").file_name())
        .collect();
    v.sort();
    v
}

/// The size field of a tar header (octal, or base-256 when the high bit is set).
fn header_size(field: &[u8]) -> u64 {
    if field[0] & 0x80 != 0 {
        return field[1..]
            .iter()
            .fold(0u64, |acc, b| acc.wrapping_shl(8) | u64::from(*b));
    }
    let digits = field
        .iter()
        .skip_while(|b| **b == b' ' || **b == 0)
        .take_while(|b| (b'0'..=b'7').contains(*b));
    digits.fold(0u64, |acc, b| {
        acc.wrapping_mul(8).wrapping_add(u64::from(b - b'0'))
    })
}

/// `data` with the checksum of every header block rewritten to match, walking
/// header -> data blocks -> next header like a tar reader does.
fn fix_checksums(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    let mut off = 0usize;
    while v.len().saturating_sub(off) >= 512 {
        let h = &mut v[off..off + 512];
        if h.iter().all(|b| *b == 0) {
            off += 512;
            continue;
        }
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let blocks = header_size(&h[124..136]).div_ceil(512);
        match usize::try_from(blocks)
            .ok()
            .and_then(|b| b.checked_mul(512))
            .and_then(|b| b.checked_add(off + 512))
        {
            Some(next) => off = next,
            None => break,
        }
    }
    v
}

fuzz_target!(|data: &[u8]| {
    unpack_and_check(data);
    let fixed = fix_checksums(data);
    if fixed != data {
        unpack_and_check(&fixed);
    }
});

fn unpack_and_check(data: &[u8]) {
    static N: AtomicU64 = AtomicU64::new(0);
    let scratch = base().join(N.fetch_add(1, Ordering::Relaxed).to_string());
    let layer = scratch.join("layer");
    let outside = scratch.join("outside");
    std::fs::create_dir_all(&layer).expect("create layer dir");
    std::fs::create_dir_all(&outside).expect("create sentinel dir");

    let result = berth_image::unpack::unpack_tar(data, &layer);
    if let Err(e) = &result {
        let _ = e.to_string();
    }

    let leaked = names(&outside);
    assert!(
        leaked.is_empty(),
        "unpack ({result:?}) wrote outside the layer: {leaked:?}"
    );
    let siblings = names(&scratch);
    assert_eq!(
        siblings,
        [OsString::from("layer"), OsString::from("outside")],
        "unpack ({result:?}) created entries next to the layer"
    );
    assert!(
        std::fs::symlink_metadata(&layer)
            .expect("layer dir still there")
            .is_dir(),
        "the layer directory itself was replaced"
    );
    let _ = std::fs::remove_dir_all(&scratch);
}
