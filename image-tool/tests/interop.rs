//! Interoperability with umoci and skopeo: the overlay root filesystem equals what
//! `umoci unpack` produces, and committed/exported images are readable by both tools.

mod common;

use berth_image::bundle::{self, BundleOptions};
use berth_image::pull::{pull, PullOptions};
use berth_image::source::SourceRef;
use berth_image::Store;
use common::{busybox_layout, run, write_image, LayerBuilder, Scratch};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

/// Everything observable about one file, except directory times.
fn describe(path: &Path) -> String {
    let m = std::fs::symlink_metadata(path).unwrap();
    let ft = m.file_type();
    let what = if ft.is_dir() {
        "dir".to_string()
    } else if ft.is_symlink() {
        format!("symlink->{}", std::fs::read_link(path).unwrap().display())
    } else if ft.is_file() {
        format!(
            "file:{:?} mtime={}",
            std::fs::read(path).unwrap(),
            m.mtime()
        )
    } else if ft.is_char_device() || ft.is_block_device() {
        format!("dev:{}:{}", ft.is_char_device(), m.rdev())
    } else {
        "fifo".to_string()
    };
    format!(
        "{what} mode={:o} owner={}:{}",
        m.mode() & 0o7777,
        m.uid(),
        m.gid()
    )
}

fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(root.join(rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            out.insert(r.display().to_string(), describe(&root.join(&r)));
            if e.file_type().unwrap().is_dir() {
                walk(root, &r, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn assert_same_tree(ours: &Path, umoci: &Path) {
    let (a, b) = (tree(ours), tree(umoci));
    for (k, v) in &b {
        assert_eq!(
            a.get(k),
            Some(v),
            "{k} differs (left: berth-image, right: umoci)"
        );
    }
    for k in a.keys() {
        assert!(
            b.contains_key(k),
            "{k} exists only in the berth-image rootfs"
        );
    }
}

fn umoci_unpack(layout: &Path, tag: &str, dest: &Path) {
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(dest));
}

fn pull_tag(store: &Store, layout: &Path, tag: &str) -> berth_image::store::ImageRecord {
    let src = SourceRef::OciDir {
        path: layout.to_path_buf(),
        tag: Some(tag.into()),
    };
    pull(store, &src, &PullOptions::default()).unwrap()
}

#[test]
fn whiteouts_match_umoci_unpack_file_by_file() {
    let s = Scratch::new();
    let base = LayerBuilder::new()
        .dir("etc/", 0o755)
        .dir("etc/conf.d/", 0o750)
        .file("etc/a", "a")
        .file_owned("etc/b", "b", 0o600, 5, 6)
        .file("etc/conf.d/x", "x")
        .file("etc/conf.d/y", "y")
        .symlink("etc/l", "a")
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file_owned("usr/bin/tool", "#!/bin/sh\n", 0o4755, 0, 0)
        .hardlink("usr/bin/tool2", "usr/bin/tool")
        .dir("var/", 0o755)
        .dir("var/lib/", 0o755)
        .dir("var/lib/data/", 0o700)
        .file("var/lib/data/f1", "1")
        .dir("var/lib/data/sub/", 0o755)
        .file("var/lib/data/sub/f2", "2")
        .node("dev-null", tar::EntryType::Char, 1, 3)
        .node("fifo", tar::EntryType::Fifo, 0, 0)
        .finish();
    let delete = LayerBuilder::new()
        .dir("etc/", 0o755)
        .whiteout("etc/.wh.a")
        .file("etc/new", "new")
        .whiteout(".wh.usr")
        .dir("var/", 0o755)
        .dir("var/lib/", 0o755)
        .whiteout("var/lib/.wh.data")
        .whiteout(".wh.fifo")
        .finish();
    let recreate = LayerBuilder::new()
        .dir("etc/", 0o755)
        .file_owned("etc/b", "b2", 0o640, 7, 8)
        .dir("etc/conf.d/", 0o755)
        .whiteout("etc/conf.d/.wh..wh..opq")
        .file("etc/conf.d/z", "z")
        .dir("usr/", 0o755)
        .dir("usr/local/", 0o755)
        .file("usr/local/x", "x")
        .dir("var/", 0o755)
        .dir("var/lib/", 0o755)
        .dir("var/lib/data/", 0o711)
        .file("var/lib/data/f3", "3")
        .finish();
    let layout = s.join("img");
    write_image(
        &layout,
        "t",
        &[base, delete, recreate],
        serde_json::json!({"Cmd": ["/x"]}),
    );
    umoci_unpack(&layout, "t", &s.join("umoci"));
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull_tag(&store, &layout, "t");
    let dir = s.join("bundle");
    bundle::create(&store, &rec, &dir, &BundleOptions::default()).unwrap();
    let ours = dir.join("rootfs");
    assert_same_tree(&ours, &s.join("umoci/rootfs"));
    // Spot-check the expected result independently of umoci.
    assert!(!ours.join("etc/a").exists() && !ours.join("usr/bin").exists());
    assert!(!ours.join("var/lib/data/f1").exists() && ours.join("var/lib/data/f3").exists());
    assert!(!ours.join("etc/conf.d/x").exists() && ours.join("etc/conf.d/z").exists());
    // The copied root filesystem is the same too.
    let copy = s.join("copy");
    let opts = BundleOptions {
        copy: true,
        ..Default::default()
    };
    bundle::create(&store, &rec, &copy, &opts).unwrap();
    assert_same_tree(&copy.join("rootfs"), &s.join("umoci/rootfs"));
    bundle::remove(&dir).unwrap();
    bundle::remove(&copy).unwrap();
}

#[test]
fn committed_image_is_read_by_umoci_and_skopeo() {
    let s = Scratch::new();
    busybox_layout(&s.join("bb"), "1");
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull_tag(&store, &s.join("bb"), "1");
    let dir = s.join("bundle");
    bundle::create(&store, &rec, &dir, &BundleOptions::default()).unwrap();
    let r = dir.join("rootfs");
    std::fs::remove_file(r.join("bin/ls")).unwrap();
    std::fs::remove_dir_all(r.join("home")).unwrap();
    std::fs::remove_dir_all(r.join("var")).unwrap();
    std::fs::create_dir(r.join("var")).unwrap();
    std::fs::write(r.join("var/fresh"), "fresh").unwrap();
    std::fs::create_dir_all(r.join("srv/app")).unwrap();
    std::fs::write(r.join("srv/app/data"), "payload").unwrap();
    std::fs::hard_link(r.join("srv/app/data"), r.join("srv/app/data2")).unwrap();
    std::os::unix::fs::symlink("app/data", r.join("srv/link")).unwrap();
    // Renaming a directory of the image (mv copies it: the overlay has no redirects).
    run(Command::new("mv")
        .arg(r.join("etc"))
        .arg(r.join("etc.moved")));

    let committed = berth_image::commit::commit(&dir, "mine:2").unwrap();
    assert_eq!(committed.layers.len(), 2);
    let out = s.join("out");
    berth_image::commit::export(&store, &committed, &out, "2").unwrap();

    let inspect: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:2", out.display()))))
    .unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(inspect["Layers"][1], committed.layers[1].digest.to_string());
    umoci_unpack(&out, "2", &s.join("umoci"));
    assert_same_tree(&r, &s.join("umoci/rootfs"));

    // And the committed image bundles like any other.
    let dir2 = s.join("bundle2");
    bundle::create(&store, &committed, &dir2, &BundleOptions::default()).unwrap();
    assert_same_tree(&dir2.join("rootfs"), &s.join("umoci/rootfs"));
    bundle::remove(&dir2).unwrap();
    bundle::remove(&dir).unwrap();
}
