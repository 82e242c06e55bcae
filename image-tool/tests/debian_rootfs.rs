//! A real Debian 12 image (three layers: debootstrap minbase; hardlinks, set-id and
//! sticky bits, capability and user xattrs, fifos, devices, sparse files in every GNU
//! format, nanosecond mtimes, a parent the layer does not list; whiteouts and an opaque
//! directory; built by tests/debian/build-image.sh and cached outside the clone) is
//! pulled by berth-image from an OCI layout, a docker archive and a loopback registry,
//! and each bundle's root filesystem is compared file by file with `umoci unpack` and
//! with containerd's snapshot of the same image, and the sparse files' holes with the
//! files the layers were made from.
//!
//! Run with `--nocapture` to see the tables.

mod common;

use common::containerd::Containerd;
use common::fstree::{compare, data_map, scan, Difference, Fields, Tree};
use common::registry::start_registry;
use common::{berth_image, run, Scratch};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Build (or find in the cache) the image; returns its directory.
fn debian_image() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/debian/build-image.sh");
    let out = run(Command::new("timeout").args(["-k", "10", "1800", "bash", script]));
    PathBuf::from(out.trim())
}

/// `berth-image --store STORE pull SOURCE` and an overlay bundle of it at `bundle`.
fn berth_bundle(store: &Path, source: &str, extra: &[&str], bundle: &Path) -> PathBuf {
    run(berth_image()
        .arg("--store")
        .arg(store)
        .arg("pull")
        .arg(source)
        .args(extra)
        .args(["--name", "deb"]));
    run(berth_image()
        .arg("--store")
        .arg(store)
        .args(["bundle", "deb"])
        .arg(bundle));
    bundle.join("rootfs")
}

/// A difference a peer makes for reasons of its own, with the reason.
struct Known {
    path: &'static str,
    field: &'static str,
    why: &'static str,
}

/// containerd ignores the tar's entry for the layer root (its `applyNaive` skips a path
/// that resolves to the root), so the root of its snapshot is the directory its
/// snapshotter made; and a parent a layer does not list gets the lower layer's mode,
/// owner and xattrs but keeps the time containerd created the file inside it (its
/// `mkparent` copies the times, then the new entry changes them, and only directories
/// listed in the tar get their times set at the end).
const CONTAINERD_KNOWN: &[Known] = &[
    Known {
        path: "",
        field: "mtime",
        why: "containerd skips the layer-root entry: its snapshot directory's time",
    },
    Known {
        path: "root",
        field: "mtime",
        why: "containerd's mkparent copies the time, then creating root/.berth-profile changes it",
    },
];

/// umoci takes xattrs from Go's `Header.Xattrs`, which leaves out PAX records with an
/// empty value; GNU tar (which wrote it), containerd and berth-image set the empty
/// xattr.
const UMOCI_KNOWN: &[Known] = &[Known {
    path: "srv/shared",
    field: "xattrs",
    why: "umoci drops an xattr whose value is empty (user.berth.empty)",
}];

fn is_known(d: &Difference, known: &[Known]) -> Option<&'static str> {
    known
        .iter()
        .find(|k| k.path == d.path && k.field == d.field)
        .map(|k| k.why)
}

/// Compare `ours` with `theirs`; print a table of differences by field, each known one
/// with its reason; return the unexplained ones.
fn report(title: &str, ours: &Tree, theirs: &Tree, known: &[Known], fields: Fields) -> Vec<String> {
    let diffs = compare(ours, theirs, fields);
    let mut by_field: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unexplained = Vec::new();
    println!("\n{title}: {} paths vs {} paths", ours.len(), theirs.len());
    for d in &diffs {
        *by_field.entry(d.field).or_default() += 1;
        match is_known(d, known) {
            Some(why) => println!("  explained  {d}  ({why})"),
            None => {
                println!("  DIFFERENT  {d}");
                unexplained.push(format!("{title}: {d}"));
            }
        }
    }
    println!(
        "  differences: {} ({} explained){}",
        diffs.len(),
        diffs.len() - unexplained.len(),
        by_field
            .iter()
            .map(|(f, n)| format!(", {f}: {n}"))
            .collect::<String>()
    );
    unexplained
}

/// Regular files of the features stage that are sparse on disk.
fn sparse_sources(stage: &Path) -> Vec<(String, Vec<(u64, u64)>)> {
    let tree = scan(stage);
    tree.into_iter()
        .filter_map(|(path, node)| {
            let map = node.data_map?;
            let dense = node.size > 0 && map == [(0, node.size)];
            (!dense && node.size > 0).then_some((path, map))
        })
        .collect()
}

#[test]
fn debian_image_rootfs_equals_umoci_and_containerd_from_every_source() {
    let t0 = std::time::Instant::now();
    let phase = |what: &str| println!("[{:6.1} s] {what}", t0.elapsed().as_secs_f64());
    let image = debian_image();
    phase("image built or found in the cache");
    // Five root filesystems of ~4000 files each are made and removed: on tmpfs.
    let s = Scratch::on_tmpfs();
    let layout = image.join("layout");

    // berth-image from the three sources, each into its own store.
    let from_layout = berth_bundle(
        &s.join("store-oci"),
        &format!("oci:{}:deb", layout.display()),
        &[],
        &s.join("bundle-oci"),
    );
    let from_archive = berth_bundle(
        &s.join("store-docker"),
        &format!(
            "docker-archive:{}",
            image.join("docker-archive.tar").display()
        ),
        &[],
        &s.join("bundle-docker"),
    );
    phase("berth-image: OCI layout and docker archive pulled and bundled");
    let registry = start_registry(&s, "registry", "");
    let reference = format!("{}/berth-test/debian:12", registry.addr);
    run(Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:deb", layout.display()))
        .arg(format!("docker://{reference}")));
    let from_registry = berth_bundle(
        &s.join("store-registry"),
        &format!("docker://{reference}"),
        &["--insecure"],
        &s.join("bundle-registry"),
    );

    phase("berth-image: registry pulled and bundled");
    // The peers.
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:deb", layout.display()))
        .arg(s.join("umoci")));
    phase("umoci unpack");
    let mut containerd = Containerd::start(&s, "containerd");
    containerd.import(&image.join("oci-archive.tar"), "berth-test/debian");
    let name = containerd.imported_name("berth-test/debian");
    containerd.mount(&name, &s.join("containerd-rootfs"));

    phase("containerd import and mount");
    let ours = scan(&from_layout);
    let all = Fields { data_map: true };
    let no_map = Fields { data_map: false };
    let mut unexplained = Vec::new();
    // The three sources give the same tree, down to the holes.
    unexplained.extend(report(
        "berth-image (docker-archive) vs berth-image (OCI layout)",
        &scan(&from_archive),
        &ours,
        &[],
        all,
    ));
    unexplained.extend(report(
        "berth-image (registry) vs berth-image (OCI layout)",
        &scan(&from_registry),
        &ours,
        &[],
        all,
    ));
    // umoci and containerd write holes out as zeros: their data maps are not compared
    // (the holes are checked against the source files below).
    unexplained.extend(report(
        "berth-image vs umoci unpack",
        &ours,
        &scan(&s.join("umoci/rootfs")),
        UMOCI_KNOWN,
        no_map,
    ));
    unexplained.extend(report(
        "berth-image vs containerd (ctr images import, overlayfs snapshot)",
        &ours,
        &scan(&s.join("containerd-rootfs")),
        CONTAINERD_KNOWN,
        no_map,
    ));

    phase("trees compared");
    // Sparse files keep the holes the layer's source files have.
    let stage = image.join("stage/features");
    let sources = sparse_sources(&stage);
    assert!(sources.len() >= 7, "sparse sources: {sources:?}");
    println!("\nsparse files (data extents) vs the files the layer was made from:");
    for (path, want) in &sources {
        let got = data_map(&from_layout.join(path));
        let umoci = data_map(&s.join("umoci/rootfs").join(path));
        let ctr = data_map(&s.join("containerd-rootfs").join(path));
        println!(
            "  {path}: source {} extents, berth-image {}, umoci {}, containerd {}",
            want.len(),
            got.len(),
            umoci.len(),
            ctr.len()
        );
        if &got != want {
            unexplained.push(format!("{path}: data map {got:?}, source {want:?}"));
        }
    }
    // A file of zero runs stored densely in the tar takes only its data blocks.
    let zeros = data_map(&from_layout.join("var/lib/berth/zeros"));
    let allocated: u64 = zeros.iter().map(|(_, l)| l).sum();
    println!("  var/lib/berth/zeros (dense in the tar, 3 MiB): {allocated} bytes of data extents");
    if allocated > 64 << 10 {
        unexplained.push(format!("zeros: {zeros:?}"));
    }

    for b in ["bundle-oci", "bundle-docker", "bundle-registry"] {
        run(berth_image().arg("unbundle").arg(s.join(b)));
    }
    drop(containerd);
    drop(s);
    phase("cleaned up");
    assert!(
        unexplained.is_empty(),
        "unexplained differences:\n{}",
        unexplained.join("\n")
    );
}
