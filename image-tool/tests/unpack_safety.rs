//! Layer unpacking: file types and metadata, whiteouts, and refusal of entries that would
//! reach outside the layer directory.

mod common;

use berth_image::unpack::unpack_tar;
use berth_image::Error;
use common::{raw_header, LayerBuilder, Scratch};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Unpack `tar` into `scratch/layer`, with a sentinel directory `scratch/outside` next to it.
fn unpack(scratch: &Scratch, tar: &[u8]) -> berth_image::Result<()> {
    let layer = scratch.join("layer");
    std::fs::create_dir_all(&layer).unwrap();
    std::fs::create_dir_all(scratch.join("outside")).unwrap();
    unpack_tar(tar, &layer).map(|_| ())
}

fn assert_unsafe(tar: Vec<u8>, what: &str) {
    let s = Scratch::new();
    let err = unpack(&s, &tar).expect_err(what);
    assert!(
        matches!(err, Error::UnsafeEntry { .. }),
        "{what}: unexpected error {err}"
    );
    let outside: Vec<_> = std::fs::read_dir(s.join("outside")).unwrap().collect();
    assert!(
        outside.is_empty(),
        "{what}: something was written outside the layer"
    );
    assert!(!s.join("pwned").exists(), "{what}: wrote next to the layer");
}

#[test]
fn dotdot_entry_is_refused() {
    let h = raw_header(tar::EntryType::Regular, b"a/../../outside/x", b"", 1);
    assert_unsafe(LayerBuilder::new().raw(h, b"x").finish(), "dotdot");
}

#[test]
fn absolute_entry_is_refused() {
    let s = Scratch::new();
    let target = format!("{}/pwned", s.path.display());
    let h = raw_header(tar::EntryType::Regular, target.as_bytes(), b"", 1);
    assert_unsafe(LayerBuilder::new().raw(h, b"x").finish(), "absolute");
    assert!(!s.join("pwned").exists());
}

/// Unpack a layer built around the absolute path of the sentinel `outside` directory: it
/// must fail naming a symlink, and `outside/leaked` must not appear.
fn assert_symlink_escape_refused(build: impl FnOnce(&str) -> Vec<u8>, leaked: &str) {
    let s = Scratch::new();
    let outside = format!("{}/outside", s.path.display());
    std::fs::create_dir_all(&outside).unwrap();
    let err = unpack(&s, &build(&outside)).expect_err(leaked);
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(!Path::new(&outside).join(leaked).exists());
}

#[test]
fn entry_below_symlinked_parent_is_refused() {
    // The symlink points at a real directory outside; writing through it would escape.
    assert_symlink_escape_refused(
        |outside| {
            LayerBuilder::new()
                .symlink("evil", outside)
                .file("evil/x", "data")
                .finish()
        },
        "x",
    );
    // Relative symlink pointing up, deeper entry.
    assert_unsafe(
        LayerBuilder::new()
            .symlink("up", "../outside")
            .file("up/sub/x", "data")
            .finish(),
        "relative symlinked parent",
    );
}

#[test]
fn directory_replaced_by_symlink_is_not_written_through() {
    // The unpacker keeps the previous entry's directory open; replacing that directory
    // with a symlink must not let later entries follow the stale handle or the link.
    assert_symlink_escape_refused(
        |outside| {
            LayerBuilder::new()
                .dir("d/", 0o755)
                .file("d/x", "x")
                .symlink("d", outside)
                .file("d/y", "y")
                .finish()
        },
        "y",
    );
}

#[test]
fn hardlink_out_of_layer_is_refused() {
    let h = raw_header(
        tar::EntryType::Link,
        b"passwd",
        b"../../../../etc/passwd",
        0,
    );
    assert_unsafe(LayerBuilder::new().raw(h, b"").finish(), "hardlink ..");
    let h = raw_header(tar::EntryType::Link, b"passwd", b"/etc/passwd", 0);
    assert_unsafe(
        LayerBuilder::new().raw(h, b"").finish(),
        "hardlink absolute",
    );
    // A link through a symlinked directory to a file outside.
    assert_unsafe(
        LayerBuilder::new()
            .symlink("etc", "/etc")
            .hardlink("passwd", "etc/passwd")
            .finish(),
        "hardlink via symlink",
    );
    // A target that is not part of this layer.
    assert_unsafe(
        LayerBuilder::new().hardlink("x", "missing").finish(),
        "hardlink missing",
    );
}

#[test]
fn dot_entry_that_is_a_symlink_is_refused() {
    // umoci CVE-2021-29136: "." as a symlink would redirect the whole layer.
    let h = raw_header(tar::EntryType::Symlink, b".", b"../outside", 0);
    assert_unsafe(
        LayerBuilder::new().raw(h, b"").file("x", "data").finish(),
        "dot symlink",
    );
    let h = raw_header(tar::EntryType::Symlink, b"./", b"/", 0);
    assert_unsafe(
        LayerBuilder::new().raw(h, b"").finish(),
        "dot-slash symlink",
    );
}

#[test]
fn overlay_xattrs_from_the_tar_are_refused() {
    let tar = LayerBuilder::new()
        .pax(&[("SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
        .dir("d/", 0o755)
        .finish();
    assert_unsafe(tar, "overlay xattr");
}

#[test]
fn unpacks_types_modes_owners_and_times() {
    let s = Scratch::new();
    let tar = LayerBuilder::new()
        .dir("./", 0o755)
        .dir("./etc/", 0o751)
        .file_owned("./etc/secret", "s3cret", 0o4750, 1000, 1001)
        .hardlink("./etc/secret2", "./etc/secret")
        .symlink("./etc/link", "secret")
        .node("dev/null", tar::EntryType::Char, 1, 3)
        .node("dev/sda", tar::EntryType::Block, 8, 0)
        .node("run/fifo", tar::EntryType::Fifo, 0, 0)
        .pax(&[("SCHILY.xattr.user.berth", b"yes")])
        .file("tagged", "x")
        .file("deep/implicit/parents", "p")
        .finish();
    unpack(&s, &tar).unwrap();
    let l = s.join("layer");
    let m = std::fs::symlink_metadata(l.join("etc/secret")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o4750);
    assert_eq!((m.uid(), m.gid()), (1000, 1001));
    assert_eq!(m.mtime(), 1_600_000_000);
    assert_eq!(m.nlink(), 2);
    assert_eq!(
        std::fs::read_to_string(l.join("etc/secret2")).unwrap(),
        "s3cret"
    );
    assert_eq!(
        std::fs::read_link(l.join("etc/link")).unwrap(),
        Path::new("secret")
    );
    let etc = std::fs::metadata(l.join("etc")).unwrap();
    assert_eq!(etc.permissions().mode() & 0o7777, 0o751);
    assert_eq!(
        etc.mtime(),
        1_600_000_000,
        "directory mtime is set after its contents"
    );
    let null = std::fs::symlink_metadata(l.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert!(std::fs::symlink_metadata(l.join("dev/sda"))
        .unwrap()
        .file_type()
        .is_block_device());
    assert!(std::fs::symlink_metadata(l.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(l.join("tagged"), "user.berth", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"yes");
    assert_eq!(
        std::fs::read_to_string(l.join("deep/implicit/parents")).unwrap(),
        "p"
    );
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let s = Scratch::new();
    let tar = LayerBuilder::new()
        .whiteout("etc/.wh.passwd")
        .dir("var/", 0o755)
        .whiteout("var/.wh..wh..opq")
        .file("var/kept", "k")
        .finish();
    unpack(&s, &tar).unwrap();
    let l = s.join("layer");
    let wh = std::fs::symlink_metadata(l.join("etc/passwd")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!l.join("etc/.wh.passwd").exists());
    let mut buf = [0u8; 4];
    let n = rustix::fs::getxattr(l.join("var"), "trusted.overlay.opaque", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(!l.join("var/.wh..wh..opq").exists());
    assert!(l.join("var/kept").exists());
}

#[test]
fn later_entries_replace_earlier_ones() {
    let s = Scratch::new();
    let tar = LayerBuilder::new()
        .dir("a/", 0o755)
        .file("a/inner", "1")
        .file("a", "now a file")
        .symlink("b", "/etc")
        .dir("b/", 0o700)
        .file("b/x", "inside")
        .finish();
    unpack(&s, &tar).unwrap();
    let l = s.join("layer");
    assert_eq!(std::fs::read_to_string(l.join("a")).unwrap(), "now a file");
    assert!(std::fs::symlink_metadata(l.join("b")).unwrap().is_dir());
    assert_eq!(std::fs::read_to_string(l.join("b/x")).unwrap(), "inside");
}

/// PAX records are framed by their leading length (POSIX), as Go's archive/tar reads
/// them: a value may hold newlines (binary xattrs such as a file capability), and the
/// tail of a value is never taken for a record of its own.
#[test]
fn pax_records_are_read_by_length() {
    let s = Scratch::new();
    // A capability value with a 0x0a byte (CAP_DAC_OVERRIDE and CAP_FOWNER: bits 1, 3).
    let cap: &[u8] = &[
        1, 0, 0, 2, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let injected: &[u8] = b"x\n16 path=evil\n";
    let tar = LayerBuilder::new()
        .pax(&[("SCHILY.xattr.security.capability", cap)])
        .file("capable", "c")
        .pax(&[("SCHILY.xattr.user.note", injected)])
        .file("real", "r")
        .pax(&[("path", b"first"), ("path", b"second")])
        .file("header-name", "h")
        .finish();
    unpack(&s, &tar).unwrap();
    let l = s.join("layer");
    let mut buf = [0u8; 64];
    let n = rustix::fs::getxattr(l.join("capable"), "security.capability", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], cap);
    assert!(
        !l.join("evil").exists(),
        "a record inside a value was honoured"
    );
    let n = rustix::fs::getxattr(l.join("real"), "user.note", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], injected);
    // Of two records for one key the last counts (Go's archive/tar).
    assert!(l.join("second").exists() && !l.join("first").exists());
}
