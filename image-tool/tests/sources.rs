//! Image sources: OCI layouts, OCI archives and docker archives (written by skopeo and
//! umoci), and platform selection from image indexes.

mod common;

use berth_image::image::{Descriptor, Index, Platform, MEDIA_INDEX};
use berth_image::layout::LayoutWriter;
use berth_image::pull::{descriptor, pull, PullOptions};
use berth_image::source::SourceRef;
use berth_image::Store;
use common::{busybox_layout, run, write_image, LayerBuilder, Scratch};
use std::process::Command;

fn parse(s: &str) -> SourceRef {
    SourceRef::parse(s).unwrap().unwrap()
}

#[test]
fn oci_archive_written_by_skopeo() {
    let s = Scratch::new();
    let manifest = busybox_layout(&s.join("bb"), "1.0");
    let archive = s.join("bb.tar");
    run(Command::new("skopeo").args([
        "copy",
        &format!("oci:{}:1.0", s.join("bb").display()),
        &format!("oci-archive:{}:2.0", archive.display()),
    ]));
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull(
        &store,
        &parse(&format!("oci-archive:{}:2.0", archive.display())),
        &PullOptions::default(),
    )
    .unwrap();
    assert_eq!(rec.name, "bb:2.0");
    assert_eq!(
        rec.manifest_digest, manifest,
        "skopeo keeps the manifest as is"
    );
    assert!(store
        .layer_path(&rec.layers[0].diff_id)
        .join("bin/busybox")
        .is_file());
}

#[test]
fn docker_archive_written_by_skopeo() {
    let s = Scratch::new();
    busybox_layout(&s.join("bb"), "1.0");
    let archive = s.join("docker.tar");
    run(Command::new("skopeo").args([
        "copy",
        &format!("oci:{}:1.0", s.join("bb").display()),
        &format!("docker-archive:{}:example/bb:3", archive.display()),
    ]));
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull(
        &store,
        &parse(&format!("docker-archive:{}", archive.display())),
        &PullOptions::default(),
    )
    .unwrap();
    assert_eq!(
        rec.name, "example/bb:3",
        "named after the archive's RepoTags"
    );
    let rec2 = pull(
        &store,
        &parse(&format!(
            "docker-archive:{}:docker.io/example/bb:3",
            archive.display()
        )),
        &PullOptions {
            name: Some("other".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(rec2.name, "other");
    assert_eq!(rec.layers[0].diff_id, rec2.layers[0].diff_id);
    let layer = store.layer_path(&rec.layers[0].diff_id);
    assert!(layer.join("bin/busybox").is_file());
    assert!(store.find_image("example/bb:3").is_ok());
}

#[test]
fn layout_written_by_umoci() {
    let s = Scratch::new();
    let layout = s.join("umoci");
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci")
        .args(["new", "--image"])
        .arg(format!("{}:base", layout.display())));
    run(Command::new("umoci")
        .args([
            "config",
            "--config.cmd",
            "/bin/hello",
            "--config.user",
            "0:0",
            "--image",
        ])
        .arg(format!("{}:base", layout.display())));
    // Add a layer with content via umoci's own unpack/repack.
    let bundle = s.join("ub");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:base", layout.display()))
        .arg(&bundle));
    std::fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
    std::fs::write(bundle.join("rootfs/etc/motd"), "from umoci\n").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image"])
        .arg(format!("{}:base", layout.display()))
        .arg(&bundle));
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull(
        &store,
        &parse(&format!("oci:{}:base", layout.display())),
        &PullOptions::default(),
    )
    .unwrap();
    let found = rec
        .chain_ids()
        .iter()
        .any(|c| store.layer_path(c).join("etc/motd").is_file());
    assert!(found, "the umoci layer was unpacked");
}

#[test]
fn platform_is_selected_from_an_index() {
    let s = Scratch::new();
    let layout = s.join("multi");
    let amd = write_image(
        &layout,
        "amd",
        &[LayerBuilder::new().file("arch", "amd64").finish()],
        serde_json::json!({}),
    );
    let arm = write_image(
        &layout,
        "arm",
        &[LayerBuilder::new().file("arch", "arm64").finish()],
        serde_json::json!({}),
    );
    let w = LayoutWriter::create(&layout).unwrap();
    let desc = |d, arch: &str| Descriptor {
        platform: Some(Platform::parse(&format!("linux/{arch}")).unwrap()),
        ..descriptor(berth_image::image::MEDIA_MANIFEST, d, 0)
    };
    let size = |d: &berth_image::Digest| std::fs::metadata(w.blob_path(d)).unwrap().len();
    let mut a = desc(amd.clone(), "amd64");
    a.size = size(&amd);
    let mut b = desc(arm.clone(), "arm64");
    b.size = size(&arm);
    let (idx, idx_size) = w
        .put_bytes(&serde_json::to_vec(&Index::new(vec![a, b])).unwrap())
        .unwrap();
    w.tag(descriptor(MEDIA_INDEX, idx, idx_size), "multi")
        .unwrap();

    let store = Store::open(s.join("store")).unwrap();
    let src = parse(&format!("oci:{}:multi", layout.display()));
    let rec = pull(&store, &src, &PullOptions::default()).unwrap();
    assert_eq!(rec.manifest_digest, amd, "host default linux/amd64");
    let opts = PullOptions {
        platform: Platform::parse("linux/arm64").unwrap(),
        name: Some("m-arm".into()),
        ..Default::default()
    };
    assert_eq!(pull(&store, &src, &opts).unwrap().manifest_digest, arm);
    let opts = PullOptions {
        platform: Platform::parse("linux/s390x").unwrap(),
        name: Some("m-s390x".into()),
        ..Default::default()
    };
    let err = pull(&store, &src, &opts).unwrap_err();
    assert!(err.to_string().contains("linux/s390x"), "{err}");
}

#[test]
fn bad_references_fail_clearly() {
    let s = Scratch::new();
    let store = Store::open(s.join("store")).unwrap();
    let err = pull(
        &store,
        &parse("oci:/nonexistent/layout:x"),
        &PullOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/layout/index.json"),
        "{err}"
    );
    let out = common::berth_image()
        .arg("--store")
        .arg(s.join("store"))
        .args(["pull", "--insecure", "docker://example.com/x:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only allowed for loopback"));
}
