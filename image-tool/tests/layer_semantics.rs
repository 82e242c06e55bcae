//! How layers combine into a root filesystem: parent directories a layer does not list,
//! nanosecond mtimes, whiteouts next to files of the same layer, and a layer writing
//! below a path that a lower layer made a symlink. Each result is checked on its own
//! and against `umoci unpack` (and, for the symlink case, containerd).

mod common;

use berth_image::bundle::{self, BundleOptions};
use berth_image::pull::{pull, PullOptions};
use berth_image::source::SourceRef;
use berth_image::unpack::unpack_tar;
use berth_image::Store;
use common::containerd::Containerd;
use common::fstree::{compare, scan, Fields};
use common::{header, run, write_image, LayerBuilder, Scratch};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory entry with owner, mode, mtime and one user xattr.
fn dir_with(
    b: LayerBuilder,
    path: &str,
    mode: u32,
    owner: (u64, u64),
    mtime: u64,
    xattr: (&str, &[u8]),
) -> LayerBuilder {
    let key = format!("SCHILY.xattr.{}", xattr.0);
    let b = b.pax(&[(key.as_str(), xattr.1)]);
    let mut h = header(tar::EntryType::Directory, mode, 0);
    h.set_uid(owner.0);
    h.set_gid(owner.1);
    h.set_mtime(mtime);
    h.set_path(path).unwrap();
    h.set_cksum();
    b.raw(h, b"")
}

/// Pull the layout's image `t` and make an overlay bundle of it; returns the rootfs.
fn bundle_of(s: &Scratch, layout: &Path) -> PathBuf {
    let store = Store::open(s.join("store")).unwrap();
    let src = SourceRef::OciDir {
        path: layout.to_path_buf(),
        tag: Some("t".into()),
    };
    let rec = pull(&store, &src, &PullOptions::default()).unwrap();
    let dir = s.join("bundle");
    bundle::create(&store, &rec, &dir, &BundleOptions::default()).unwrap();
    dir.join("rootfs")
}

fn umoci_unpack(layout: &Path, dest: &Path) -> PathBuf {
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:t", layout.display()))
        .arg(dest));
    dest.join("rootfs")
}

/// Differences between two trees, leaving out the given paths' mtimes (directories
/// both tools create on their own, at unpack time) and the root directory.
fn differences(ours: &Path, theirs: &Path, unstable_mtimes: &[&str]) -> Vec<String> {
    compare(&scan(ours), &scan(theirs), Fields { data_map: false })
        .into_iter()
        .filter(|d| !d.path.is_empty())
        .filter(|d| !(d.field == "mtime" && unstable_mtimes.contains(&d.path.as_str())))
        .map(|d| d.to_string())
        .collect()
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn mode_owner(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

#[test]
fn parents_a_layer_does_not_list_keep_the_lower_layers_metadata() {
    let s = Scratch::new();
    let lower = LayerBuilder::new().dir("./", 0o755);
    let lower = dir_with(
        lower,
        "root/",
        0o700,
        (0, 0),
        1_500_000_000,
        ("user.k", b"root"),
    );
    let lower = lower.file("root/.profile", "profile");
    let lower = dir_with(
        lower,
        "data/",
        0o700,
        (1000, 1000),
        1_500_000_100,
        ("user.d", b"1"),
    );
    let lower = lower
        .file_owned("data/old", "old", 0o600, 1000, 1000)
        .finish();
    // What umoci writes when one file below /root and /data changes: no parent entries.
    let upper = LayerBuilder::new()
        .file("root/.bashrc", "bashrc")
        .file("data/sub/new", "new")
        .finish();
    let layout = s.join("img");
    write_image(
        &layout,
        "t",
        &[lower, upper],
        serde_json::json!({"Cmd": ["/x"]}),
    );
    let rootfs = bundle_of(&s, &layout);

    assert_eq!(mode_owner(&rootfs.join("root")), (0o700, 0, 0));
    assert_eq!(
        xattr(&rootfs.join("root"), "user.k").as_deref(),
        Some(&b"root"[..])
    );
    assert_eq!(
        std::fs::metadata(rootfs.join("root")).unwrap().mtime(),
        1_500_000_000
    );
    assert_eq!(mode_owner(&rootfs.join("data")), (0o700, 1000, 1000));
    assert_eq!(
        xattr(&rootfs.join("data"), "user.d").as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        std::fs::metadata(rootfs.join("data")).unwrap().mtime(),
        1_500_000_100
    );
    // Not in any lower layer: the default.
    assert_eq!(mode_owner(&rootfs.join("data/sub")), (0o755, 0, 0));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("root/.profile")).unwrap(),
        "profile"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/old")).unwrap(),
        "old"
    );

    // umoci gives data/sub (which no layer lists) the time of its unpack, and so data,
    // which it changes by making data/sub inside it; the lower layer's time of data
    // is checked above.
    let umoci = umoci_unpack(&layout, &s.join("umoci"));
    let diffs = differences(&rootfs, &umoci, &["data", "data/sub"]);
    assert!(
        diffs.is_empty(),
        "berth-image vs umoci:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn pax_mtimes_keep_their_nanoseconds() {
    let s = Scratch::new();
    let tar = LayerBuilder::new()
        .pax(&[("mtime", b"1700000000.123456789")])
        .dir("d/", 0o755)
        .pax(&[("mtime", b"1700000001.5")])
        .file("d/f", "f")
        .pax(&[("mtime", b"1700000002.987654321999")])
        .symlink("d/l", "f")
        .pax(&[("mtime", b"1700000003")])
        .file("whole", "w")
        .pax(&[("mtime", b"-1.25")])
        .file("before-epoch", "b")
        .finish();
    let layer = s.join("layer");
    std::fs::create_dir(&layer).unwrap();
    unpack_tar(&tar[..], &layer).unwrap();
    let t = |p: &str| {
        let m = std::fs::symlink_metadata(layer.join(p)).unwrap();
        (m.mtime(), m.mtime_nsec())
    };
    assert_eq!(t("d"), (1_700_000_000, 123_456_789));
    assert_eq!(t("d/f"), (1_700_000_001, 500_000_000));
    assert_eq!(t("d/l"), (1_700_000_002, 987_654_321));
    assert_eq!(t("whole"), (1_700_000_003, 0));
    assert_eq!(t("before-epoch"), (-2, 750_000_000));
}

#[test]
fn a_whiteout_hides_only_lower_layers_not_its_own() {
    let s = Scratch::new();
    let lower = LayerBuilder::new()
        .file("f", "lower f")
        .file("g", "lower g")
        .dir("d/", 0o755)
        .file("d/old", "old")
        .dir("e/", 0o755)
        .file("e/old", "old")
        .finish();
    let upper = LayerBuilder::new()
        // The file first, its whiteout after: the whiteout is for the lower f only.
        .file("f", "upper f")
        .whiteout(".wh.f")
        // The whiteout first: the same meaning.
        .whiteout(".wh.g")
        .file("g", "upper g")
        // A directory of this layer and a whiteout of its name, both orders: the
        // lower directory's contents go, this layer's stay.
        .dir("d/", 0o755)
        .file("d/new", "new")
        .whiteout(".wh.d")
        .whiteout(".wh.e")
        .dir("e/", 0o755)
        .file("e/new", "new")
        .finish();
    let layout = s.join("img");
    write_image(
        &layout,
        "t",
        &[lower, upper],
        serde_json::json!({"Cmd": ["/x"]}),
    );
    let rootfs = bundle_of(&s, &layout);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("f")).unwrap(),
        "upper f"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("g")).unwrap(),
        "upper g"
    );
    let names = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(rootfs.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("d"), ["new"]);
    assert_eq!(names("e"), ["new"]);

    // umoci deletes the lower d/old after it made d and leaves d with the time of
    // that deletion; berth-image keeps the time d has in the layer.
    assert_eq!(
        std::fs::metadata(rootfs.join("d")).unwrap().mtime(),
        1_600_000_000
    );
    let umoci = umoci_unpack(&layout, &s.join("umoci"));
    let diffs = differences(&rootfs, &umoci, &["d"]);
    assert!(
        diffs.is_empty(),
        "berth-image vs umoci:\n{}",
        diffs.join("\n")
    );
}

/// A lower layer has `lib -> usr/lib`; the upper layer writes
/// `lib/x86_64-linux-gnu/libfoo.so` without listing `lib/`. berth-image does what
/// containerd, docker and podman do: the layer's `lib` is a directory that replaces the
/// symlink (taking the metadata of the directory the symlink led to, as containerd
/// does), and the symlink's target is not written through. umoci instead writes the
/// file into `usr/lib/`; README.md, "Layer semantics", says why berth-image does not.
#[test]
fn a_layer_below_a_lower_symlink_replaces_it_like_containerd() {
    let s = Scratch::new();
    let lower = LayerBuilder::new().dir("usr/", 0o755);
    let lower = dir_with(
        lower,
        "usr/lib/",
        0o750,
        (5, 6),
        1_500_000_000,
        ("user.lib", b"1"),
    );
    let lower = lower
        .file("usr/lib/a", "a")
        .symlink("lib", "usr/lib")
        .finish();
    let upper = LayerBuilder::new()
        .file("lib/x86_64-linux-gnu/libfoo.so", "foo")
        .finish();
    let layout = s.join("img");
    write_image(
        &layout,
        "t",
        &[lower, upper],
        serde_json::json!({"Cmd": ["/x"]}),
    );
    let rootfs = bundle_of(&s, &layout);

    let lib = rootfs.join("lib");
    assert!(
        std::fs::symlink_metadata(&lib).unwrap().is_dir(),
        "lib replaced by a directory"
    );
    assert_eq!(
        mode_owner(&lib),
        (0o750, 5, 6),
        "metadata of usr/lib, as containerd"
    );
    assert_eq!(xattr(&lib, "user.lib").as_deref(), Some(&b"1"[..]));
    assert_eq!(
        std::fs::read_to_string(lib.join("x86_64-linux-gnu/libfoo.so")).unwrap(),
        "foo"
    );
    assert!(!lib.join("a").exists());
    assert!(rootfs.join("usr/lib/a").exists());
    assert!(!rootfs.join("usr/lib/x86_64-linux-gnu").exists());

    // containerd: the same tree (directories it creates itself get the time of the
    // import as their mtime).
    let archive = s.join("img.tar");
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:t", layout.display()))
        .arg(format!("oci-archive:{}:t", archive.display())));
    let mut cd = Containerd::start(&s, "containerd");
    cd.import(&archive, "berth-test/symlink");
    let name = cd.imported_name("berth-test/symlink");
    let mnt = s.join("containerd-rootfs");
    cd.mount(&name, &mnt);
    let diffs = differences(&rootfs, &mnt, &["lib", "lib/x86_64-linux-gnu"]);
    assert!(
        diffs.is_empty(),
        "berth-image vs containerd:\n{}",
        diffs.join("\n")
    );

    // umoci resolves the symlink inside the root filesystem instead.
    let umoci = umoci_unpack(&layout, &s.join("umoci"));
    assert!(std::fs::symlink_metadata(umoci.join("lib"))
        .unwrap()
        .is_symlink());
    assert!(umoci.join("usr/lib/x86_64-linux-gnu/libfoo.so").exists());
}
