//! Inputs found by fuzzing the layer unpacker (fuzz/fuzz_targets/unpack_tar.rs) that once
//! panicked. Bad input must give an error, and nothing may appear outside the layer.

mod common;

use berth_image::unpack::unpack_tar;
use berth_image::Error;
use common::{header, LayerBuilder, Scratch};
use std::os::unix::fs::MetadataExt;

/// Unpack `tar` into `scratch/layer` next to an empty sentinel `scratch/outside`.
fn unpack(s: &Scratch, tar: &[u8]) -> berth_image::Result<()> {
    let layer = s.join("layer");
    std::fs::create_dir_all(&layer).unwrap();
    std::fs::create_dir_all(s.join("outside")).unwrap();
    let r = unpack_tar(tar, &layer).map(|_| ());
    assert_eq!(std::fs::read_dir(s.join("outside")).unwrap().count(), 0);
    r
}

fn assert_bad_owner(tar: Vec<u8>, what: &str) {
    let s = Scratch::new();
    let err = unpack(&s, &tar).expect_err(what);
    assert!(
        matches!(err, Error::UnsafeEntry { .. }),
        "{what}: unexpected error {err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("uid") || msg.contains("gid"), "{what}: {msg}");
}

/// The fuzzer's minimized input (checksum repaired): a regular file `de` whose gid field
/// is base-256 all ones. The tar crate reads it as u64::MAX, which the unpacker truncated
/// to 0xffffffff and handed to rustix's `Gid::from_raw`, whose debug assertion rejects -1
/// (chown's "leave unchanged" value): a panic in debug builds, and in release builds a
/// chown that silently left the file owned by the unpacking user.
#[test]
fn fuzz_base256_gid_all_ones() {
    let mut block = [0u8; 512];
    block[..2].copy_from_slice(b"de");
    block[100..108].copy_from_slice(b"0000644\0");
    block[108..116].copy_from_slice(b"0000000\0");
    block[116..124].fill(0xff);
    block[124..136].copy_from_slice(b"00000000000\0");
    block[136..148].copy_from_slice(b"00000000000\0");
    block[156] = b'0';
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = block.to_vec();
    tar.extend_from_slice(&[0u8; 1024]);
    assert_bad_owner(tar, "gid base-256 -1");
}

#[test]
fn uid_and_gid_minus_one_are_refused() {
    let max = u64::from(u32::MAX);
    assert_bad_owner(
        LayerBuilder::new()
            .file_owned("f", "x", 0o644, max, 0)
            .finish(),
        "uid 4294967295",
    );
    assert_bad_owner(
        LayerBuilder::new()
            .file_owned("f", "x", 0o644, 0, max)
            .finish(),
        "gid 4294967295",
    );
    // Directories, symlinks and the layer root are chowned by other code paths.
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    h.set_uid(max);
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut h, "d", std::io::empty()).unwrap();
    assert_bad_owner(b.into_inner().unwrap(), "directory uid 4294967295");
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    h.set_gid(max);
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut h, "./", std::io::empty()).unwrap();
    assert_bad_owner(b.into_inner().unwrap(), "layer root gid 4294967295");
}

#[test]
fn ids_beyond_32_bits_are_refused_not_truncated() {
    // 2^32 used to be truncated to 0: a file owned by root instead of an error.
    assert_bad_owner(
        LayerBuilder::new()
            .file_owned("f", "x", 0o644, 1 << 32, 0)
            .finish(),
        "uid 2^32",
    );
    assert_bad_owner(
        LayerBuilder::new()
            .file_owned("f", "x", 0o644, 0, (1 << 32) + 1000)
            .finish(),
        "gid 2^32 + 1000",
    );
}

#[test]
fn pax_ids_minus_one_are_refused() {
    assert_bad_owner(
        LayerBuilder::new()
            .pax(&[("uid", b"4294967295")])
            .file("f", "x")
            .finish(),
        "PAX uid 4294967295",
    );
    assert_bad_owner(
        LayerBuilder::new()
            .pax(&[("gid", b"4294967295")])
            .symlink("l", "target")
            .finish(),
        "PAX gid 4294967295 on a symlink",
    );
}

#[test]
fn largest_valid_ids_still_unpack() {
    let top = u64::from(u32::MAX - 1);
    let s = Scratch::new();
    unpack(
        &s,
        &LayerBuilder::new()
            .file_owned("f", "x", 0o644, top, top)
            .pax(&[("uid", b"4294967294"), ("gid", b"100000")])
            .file("g", "y")
            .finish(),
    )
    .unwrap();
    let m = std::fs::symlink_metadata(s.join("layer/f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (u32::MAX - 1, u32::MAX - 1));
    let m = std::fs::symlink_metadata(s.join("layer/g")).unwrap();
    assert_eq!((m.uid(), m.gid()), (u32::MAX - 1, 100_000));
}

#[test]
fn pax_owner_overrides_an_out_of_range_header_owner() {
    // Only the owner after PAX overrides must be valid.
    let s = Scratch::new();
    unpack(
        &s,
        &LayerBuilder::new()
            .pax(&[("uid", b"1000"), ("gid", b"2000")])
            .file_owned("f", "x", 0o644, 1 << 40, u64::from(u32::MAX))
            .finish(),
    )
    .unwrap();
    let m = std::fs::symlink_metadata(s.join("layer/f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 2000));
}
