//! The major version of the containerd that runs the shim, read from the Go
//! build information of its executable (the `.go.buildinfo` ELF section: the
//! main package's path, `github.com/containerd/containerd/cmd/containerd` up
//! to 1.7, `github.com/containerd/containerd/v2/cmd/containerd` from 2.0).
//!
//! containerd passes nothing else that tells 1.7 from 2.x to the `start`
//! action (both set `MAX_SHIM_VERSION=2`, `GRPC_ADDRESS` and `NAMESPACE`), and
//! asking its gRPC Version service would need an HTTP/2 client in the shim.
//! Only the ELF section headers and this one small section are read.

use std::fs::File;
use std::path::Path;

use object::read::ReadCache;
use object::{Object, ObjectSection};

const SECTION: &str = ".go.buildinfo";
/// Go 1.18+: the magic, pointer size, flags; strings follow inline when
/// flags has bit 1 set.
const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_INLINE_STRINGS: u8 = 0x2;
const MODULE: &str = "github.com/containerd/containerd";

/// containerd's major version if `executable` is a containerd built by Go
/// 1.18 or later; `None` for anything else.
pub fn major(executable: &Path) -> Option<u32> {
    let file = File::open(executable).ok()?;
    let cache = ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    let data = elf.section_by_name(SECTION)?.data().ok()?;
    major_of_main_package(&main_package(data)?)
}

/// The `path` line of the build information in a `.go.buildinfo` section.
fn main_package(section: &[u8]) -> Option<String> {
    if !section.starts_with(MAGIC) || section.len() < HEADER_LEN {
        return None;
    }
    if section[MAGIC.len() + 1] & FLAG_INLINE_STRINGS == 0 {
        return None;
    }
    let rest = &section[HEADER_LEN..];
    let (_go_version, rest) = varint_string(rest)?;
    let (mut modinfo, _) = varint_string(rest)?;
    // Framed by 16-byte sentinels, as Go's debug/buildinfo strips them.
    if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        modinfo = &modinfo[16..modinfo.len() - 16];
    }
    let modinfo = String::from_utf8_lossy(modinfo);
    modinfo
        .lines()
        .find_map(|l| l.strip_prefix("path\t"))
        .map(str::to_string)
}

/// A string prefixed by its length as an unsigned LEB128 varint.
fn varint_string(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut len: usize = 0;
    for (i, b) in data.iter().enumerate().take(10) {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let start = i + 1;
            let end = start.checked_add(len)?;
            return Some((data.get(start..end)?, &data[end..]));
        }
    }
    None
}

/// 1 for `github.com/containerd/containerd/...`, N for `.../containerd/vN/...`.
fn major_of_main_package(path: &str) -> Option<u32> {
    let rest = path.strip_prefix(MODULE)?.strip_prefix('/')?;
    let first = rest.split('/').next()?;
    match first.strip_prefix('v').and_then(|n| n.parse().ok()) {
        Some(n) if n >= 2 => Some(n),
        _ => Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(path: &str) -> Vec<u8> {
        let mut s = MAGIC.to_vec();
        s.push(8);
        s.push(FLAG_INLINE_STRINGS);
        s.resize(HEADER_LEN, 0);
        let version = b"go1.22.5";
        let mut modinfo = vec![0xa5; 16];
        modinfo.extend_from_slice(format!("path\t{path}\nbuild\t-compiler=gc\n").as_bytes());
        modinfo.extend_from_slice(&[0x5a; 16]);
        for v in [&version[..], &modinfo[..]] {
            assert!(v.len() < 128);
            s.push(v.len() as u8);
            s.extend_from_slice(v);
        }
        s
    }

    #[test]
    fn the_main_package_tells_the_major_version() {
        let v1 = section("github.com/containerd/containerd/cmd/containerd");
        assert_eq!(major_of_main_package(&main_package(&v1).unwrap()), Some(1));
        let v2 = section("github.com/containerd/containerd/v2/cmd/containerd");
        assert_eq!(major_of_main_package(&main_package(&v2).unwrap()), Some(2));
        let other = section("example.com/not/containerd");
        assert_eq!(major_of_main_package(&main_package(&other).unwrap()), None);
        assert_eq!(main_package(b"not a buildinfo section"), None);
    }

    #[test]
    fn varint_lengths_longer_than_one_byte() {
        let mut data = vec![0x81, 0x01];
        data.extend(std::iter::repeat_n(b'x', 129));
        data.push(b'!');
        let (s, rest) = varint_string(&data).unwrap();
        assert_eq!(s.len(), 129);
        assert_eq!(rest, b"!");
        assert_eq!(varint_string(&[0x85, 0x01, b'a']), None, "truncated");
    }

    #[test]
    fn a_non_go_executable_has_no_version() {
        assert_eq!(major(Path::new("/proc/self/exe")), None);
        assert_eq!(major(Path::new("/nonexistent")), None);
    }
}
