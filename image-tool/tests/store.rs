//! The content store: pull, verification, records, rm and gc, concurrent layer unpacking.

mod common;

use berth_image::digest::Digest;
use berth_image::pull::{pull, PullOptions};
use berth_image::source::SourceRef;
use berth_image::{Error, Store};
use common::{busybox_layout, write_image, LayerBuilder, Scratch};
use std::path::Path;

fn oci(path: &Path, tag: &str) -> SourceRef {
    SourceRef::OciDir {
        path: path.to_path_buf(),
        tag: Some(tag.into()),
    }
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn pull_stores_blobs_layers_and_record() {
    let s = Scratch::new();
    let manifest = busybox_layout(&s.join("layout"), "1.0");
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull(
        &store,
        &oci(&s.join("layout"), "1.0"),
        &PullOptions::default(),
    )
    .unwrap();
    assert_eq!(rec.name, "layout:1.0");
    assert_eq!(rec.manifest_digest, manifest);
    assert_eq!(rec.layers.len(), 1);
    assert!(store.has_blob(&rec.manifest_digest));
    assert!(store.has_blob(&rec.config_digest));
    let layer = store.layer_path(&rec.layers[0].diff_id);
    assert!(layer.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(store.find_image("layout:1.0").unwrap(), rec);
    assert_eq!(store.find_image(&manifest.to_string()).unwrap(), rec);
    assert_eq!(store.list_images().unwrap(), vec![rec.clone()]);
    // A second name for the same image shares everything.
    let opts = PullOptions {
        name: Some("bb".into()),
        ..Default::default()
    };
    pull(&store, &oci(&s.join("layout"), "1.0"), &opts).unwrap();
    assert_eq!(
        store.find_image("bb").unwrap().manifest_digest,
        manifest,
        "bb means bb:latest"
    );
    assert_eq!(count(&store.layers_dir()), 1);
}

#[test]
fn corrupted_blob_is_rejected_and_nothing_kept() {
    // Near the end (the gzip trailer: the tar was already unpacked) and near the
    // start (the unpacker fails first): either way the blob's digest is the error.
    for at_end in [true, false] {
        let s = Scratch::new();
        let layout = s.join("layout");
        let mut big = LayerBuilder::new().file("a", "one");
        for i in 0..64 {
            big = big.file(&format!("f{i}"), &format!("{i}").repeat(4096));
        }
        write_image(
            &layout,
            "t",
            &[big.finish()],
            serde_json::json!({"Cmd": ["/a"]}),
        );
        // Corrupt the layer blob (the only gzip blob).
        let blobs = layout.join("blobs/sha256");
        let layer = std::fs::read_dir(&blobs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| std::fs::read(p).unwrap().starts_with(&[0x1f, 0x8b]))
            .unwrap();
        let mut data = std::fs::read(&layer).unwrap();
        let n = data.len();
        data[if at_end { n - 5 } else { 40 }] ^= 0xff;
        std::fs::write(&layer, data).unwrap();
        let store = Store::open(s.join("store")).unwrap();
        let err = pull(&store, &oci(&layout, "t"), &PullOptions::default()).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        let st = s.join("store");
        assert!(!st
            .join("blobs/sha256")
            .join(layer.file_name().unwrap())
            .exists());
        assert_eq!(count(&st.join("layers")), 0);
        assert_eq!(count(&st.join("tmp")), 0);
        assert!(store.list_images().unwrap().is_empty());
    }
}

#[test]
fn wrong_diff_id_is_rejected() {
    let s = Scratch::new();
    let layout = s.join("layout");
    let good = LayerBuilder::new().file("a", "one").finish();
    write_image(&layout, "t", &[good], serde_json::json!({}));
    // Rewrite the config with a wrong diff_id (and fix up the manifest and index).
    let w = berth_image::layout::LayoutWriter::create(&layout).unwrap();
    let index: berth_image::image::Index =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut manifest: berth_image::image::Manifest =
        serde_json::from_slice(&std::fs::read(w.blob_path(&index.manifests[0].digest)).unwrap())
            .unwrap();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(b"other").to_string()]}});
    let (cd, cs) = w.put_bytes(&serde_json::to_vec(&config).unwrap()).unwrap();
    manifest.config.digest = cd;
    manifest.config.size = cs;
    let (md, ms) = w
        .put_bytes(&serde_json::to_vec(&manifest).unwrap())
        .unwrap();
    w.tag(
        berth_image::pull::descriptor(berth_image::image::MEDIA_MANIFEST, md, ms),
        "t",
    )
    .unwrap();
    let store = Store::open(s.join("store")).unwrap();
    let err = pull(&store, &oci(&layout, "t"), &PullOptions::default()).unwrap_err();
    assert!(err.to_string().contains("diff_id"), "{err}");
    assert_eq!(count(&s.join("store/layers")), 0, "no layer left behind");
}

#[test]
fn unknown_tag_and_bad_names_fail_clearly() {
    let s = Scratch::new();
    busybox_layout(&s.join("layout"), "1.0");
    let store = Store::open(s.join("store")).unwrap();
    let err = pull(
        &store,
        &oci(&s.join("layout"), "nope"),
        &PullOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let opts = PullOptions {
        name: Some("../escape".into()),
        ..Default::default()
    };
    assert!(pull(&store, &oci(&s.join("layout"), "1.0"), &opts).is_err());
    assert!(matches!(
        store.find_image("missing"),
        Err(Error::ImageNotFound(_))
    ));
}

#[test]
fn rm_and_gc_free_unreferenced_content() {
    let s = Scratch::new();
    let layout = s.join("layout");
    let base = LayerBuilder::new().file("base", "b").finish();
    let top = LayerBuilder::new().file("top", "t").finish();
    write_image(
        &layout,
        "one",
        std::slice::from_ref(&base),
        serde_json::json!({}),
    );
    write_image(&layout, "two", &[base, top], serde_json::json!({}));
    let store = Store::open(s.join("store")).unwrap();
    let one = pull(&store, &oci(&layout, "one"), &PullOptions::default()).unwrap();
    let two = pull(&store, &oci(&layout, "two"), &PullOptions::default()).unwrap();
    assert_eq!(
        count(&store.layers_dir()),
        2,
        "the shared base layer is unpacked once"
    );
    assert_eq!(store.gc().unwrap().blobs, 0, "gc keeps referenced content");
    store.remove_image("layout:two").unwrap();
    let stats = store.gc().unwrap();
    assert_eq!(
        (stats.blobs, stats.layers),
        (3, 1),
        "manifest, config, top layer blob; top layer dir"
    );
    assert!(store.layer_path(&one.layers[0].diff_id).is_dir());
    assert!(!store.layer_path(&two.chain_ids()[1]).exists());
    store.remove_image("layout:one").unwrap();
    store.gc().unwrap();
    assert_eq!(count(&s.join("store/blobs/sha256")), 0);
    assert_eq!(count(&store.layers_dir()), 0);
}

#[test]
fn concurrent_unpacks_of_one_layer_do_the_work_once() {
    let s = Scratch::new();
    let layout = s.join("layout");
    let mut big = LayerBuilder::new();
    for i in 0..2000 {
        big = big.file(&format!("d{}/f{i}", i % 20), &"x".repeat(i % 300));
    }
    write_image(&layout, "t", &[big.finish()], serde_json::json!({}));
    let store = Store::open(s.join("store")).unwrap();
    // Put the blobs in the store without unpacking, then race unpackers.
    let rec = {
        let index: berth_image::image::Index =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let m: berth_image::image::Manifest = serde_json::from_slice(
            &std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(index.manifests[0].digest.hex()),
            )
            .unwrap(),
        )
        .unwrap();
        let l = &m.layers[0];
        let f = std::fs::File::open(layout.join("blobs/sha256").join(l.digest.hex())).unwrap();
        store.put_blob_verified(f, &l.digest, "layer").unwrap();
        let c: berth_image::image::ImageConfig = serde_json::from_slice(
            &std::fs::read(layout.join("blobs/sha256").join(m.config.digest.hex())).unwrap(),
        )
        .unwrap();
        (l.digest.clone(), c.rootfs.diff_ids[0].clone())
    };
    let did_work: Vec<bool> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|_| sc.spawn(|| store.ensure_layer(&rec.0, &rec.1).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(did_work.iter().filter(|w| **w).count(), 1, "{did_work:?}");
    assert_eq!(count(&store.layers_dir()), 1, "no temp dirs left");
    assert_eq!(count(&store.layer_path(&rec.1).join("d7")), 100);
}

#[test]
fn cli_pull_list_inspect_rm_gc() {
    let s = Scratch::new();
    busybox_layout(&s.join("bb"), "1.0");
    let st = s.join("store");
    let cli = |args: &[&str]| {
        let mut c = common::berth_image();
        c.arg("--store").arg(&st).args(args);
        common::run(&mut c)
    };
    let layout_ref = format!("oci:{}:1.0", s.join("bb").display());
    assert!(cli(&["pull", &layout_ref, "--name", "busybox:1"]).starts_with("busybox:1 sha256:"));
    assert!(cli(&["list"]).contains("busybox:1"));
    let json: serde_json::Value =
        serde_json::from_str(&cli(&["inspect", "busybox:1", "--format", "json"])).unwrap();
    assert_eq!(json["config"]["config"]["Cmd"][0], "/bin/sh");
    assert_eq!(json["record"]["layers"].as_array().unwrap().len(), 1);
    cli(&["rmi", "busybox:1"]);
    assert_eq!(cli(&["gc"]).trim(), "removed 3 blobs, 1 layers");
    let out = common::berth_image()
        .arg("--store")
        .arg(&st)
        .args(["inspect", "busybox:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("image not found: busybox:1"));
}

#[test]
fn a_mounted_bundle_keeps_what_commit_needs_across_rmi_and_gc() {
    let s = Scratch::new();
    let layout = s.join("layout");
    let base = LayerBuilder::new().file("base", "b").finish();
    let top = LayerBuilder::new().file("top", "t").finish();
    write_image(
        &layout,
        "t",
        &[base, top],
        serde_json::json!({"Cmd": ["/x"]}),
    );
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull(&store, &oci(&layout, "t"), &PullOptions::default()).unwrap();
    let dir = s.join("bundle");
    berth_image::bundle::create(&store, &rec, &dir, &Default::default()).unwrap();
    std::fs::write(dir.join("rootfs/added"), "added").unwrap();
    store.remove_image(&rec.name).unwrap();
    store.gc().unwrap();
    // The manifest, the config and the layer blobs the new image refers to are kept.
    assert!(store.has_blob(&rec.manifest_digest), "manifest kept");
    assert!(store.has_blob(&rec.config_digest), "config kept");
    for l in &rec.layers {
        assert!(store.has_blob(&l.digest), "layer blob {} kept", l.digest);
    }
    let committed = berth_image::commit::commit(&dir, "committed:1").unwrap();
    assert_eq!(committed.layers.len(), 3);
    // The committed image is complete: exported and read back by umoci.
    let out = s.join("out");
    berth_image::commit::export(&store, &committed, &out, "1").unwrap();
    common::run(
        std::process::Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:1", out.display()))
            .arg(s.join("umoci")),
    );
    let rootfs = s.join("umoci/rootfs");
    for (f, body) in [("base", "b"), ("top", "t"), ("added", "added")] {
        assert_eq!(std::fs::read_to_string(rootfs.join(f)).unwrap(), body);
    }
    berth_image::bundle::remove(&dir).unwrap();
    // Once the bundle is gone, gc frees what only it kept (not the committed image).
    store.gc().unwrap();
    assert!(!store.has_blob(&rec.manifest_digest));
    assert!(store.has_blob(&committed.manifest_digest));
}

#[test]
fn gc_keeps_diff_id_named_layers_of_bundles_mounted_before_chain_ids() {
    let s = Scratch::new();
    let layout = s.join("layout");
    let base = LayerBuilder::new().file("base", "b").finish();
    let top = LayerBuilder::new().file("top", "t").finish();
    write_image(
        &layout,
        "t",
        &[base, top],
        serde_json::json!({"Cmd": ["/x"]}),
    );
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull(&store, &oci(&layout, "t"), &PullOptions::default()).unwrap();
    let dir = s.join("bundle");
    berth_image::bundle::create(&store, &rec, &dir, &Default::default()).unwrap();
    // What an older berth-image named the top layer's directory (its diff_id).
    let old = store.layers_dir().join(rec.layers[1].diff_id.hex());
    std::fs::create_dir(&old).unwrap();
    store.remove_image(&rec.name).unwrap();
    store.gc().unwrap();
    assert!(old.is_dir(), "kept while a bundle may have it mounted");
    berth_image::bundle::remove(&dir).unwrap();
    store.gc().unwrap();
    assert!(!old.exists());
}
