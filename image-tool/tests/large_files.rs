//! Sparse files as GNU tar writes them (PAX formats 0.0, 0.1 and 1.0, old GNU 'S'
//! entries), zero runs written as holes, and the unpack size limit.

mod common;

use berth_image::pull::{pull, PullOptions};
use berth_image::source::SourceRef;
use berth_image::unpack::unpack_tar;
use berth_image::Store;
use common::fstree::data_map;
use common::{header, run, write_image, LayerBuilder, Scratch};
use sha2::Digest as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

fn sha256_file(p: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

/// A 24 MiB file with data at the start, in the middle and at the end, holes between.
fn make_sparse(path: &Path) {
    let f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path)
        .unwrap();
    f.set_len(24 << 20).unwrap();
    for (off, byte) in [(0u64, b'a'), (10 << 20, b'b'), ((24 << 20) - 8192, b'c')] {
        rustix::io::pwrite(&f, &vec![byte; 8192], off).unwrap();
    }
}

#[test]
fn gnu_sparse_files_unpack_with_their_holes() {
    let s = Scratch::new();
    let src = s.join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    make_sparse(&src.join("d/sparse"));
    let want_hash = sha256_file(&src.join("d/sparse"));
    let want_map = data_map(&src.join("d/sparse"));
    assert_eq!(want_map.len(), 3, "the source file is sparse: {want_map:?}");
    for (name, args) in [
        ("pax 0.0", &["--format=pax", "--sparse-version=0.0"][..]),
        ("pax 0.1", &["--format=pax", "--sparse-version=0.1"][..]),
        ("pax 1.0", &["--format=pax", "--sparse-version=1.0"][..]),
        ("old GNU", &["--format=gnu"][..]),
    ] {
        let tar = s.join("layer.tar");
        run(Command::new("tar")
            .args(args)
            .args(["--sparse", "-C"])
            .arg(&src)
            .arg("-cf")
            .arg(&tar)
            .arg("d/sparse"));
        let layer = s.join(&format!("layer-{}", name.replace(' ', "-")));
        std::fs::create_dir(&layer).unwrap();
        unpack_tar(std::fs::File::open(&tar).unwrap(), &layer)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let names: Vec<_> = std::fs::read_dir(layer.join("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["sparse"],
            "{name}: only the file, under its real name"
        );
        let out = layer.join("d/sparse");
        assert_eq!(
            std::fs::metadata(&out).unwrap().len(),
            24 << 20,
            "{name}: size"
        );
        assert_eq!(sha256_file(&out), want_hash, "{name}: content");
        assert_eq!(data_map(&out), want_map, "{name}: holes stay holes");
    }
}

/// PAX records for a 1.0 sparse entry named `f` of `real` bytes.
fn pax10(real: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("GNU.sparse.major", b"1".to_vec()),
        ("GNU.sparse.minor", b"0".to_vec()),
        ("GNU.sparse.name", b"f".to_vec()),
        ("GNU.sparse.realsize", real.as_bytes().to_vec()),
    ]
}

/// A layer with one PAX sparse entry: `records`, then a regular entry holding `data`.
fn sparse_layer(records: &[(&str, Vec<u8>)], data: &[u8]) -> Vec<u8> {
    let recs: Vec<(&str, &[u8])> = records.iter().map(|(k, v)| (*k, &v[..])).collect();
    let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
    h.set_path("GNUSparseFile.1/f").unwrap();
    h.set_cksum();
    LayerBuilder::new().pax(&recs).raw(h, data).finish()
}

/// A 1.0 sparse data block: the map in decimal lines, padded to 512 bytes, then data.
fn map10(map: &[u64], data: &[u8]) -> Vec<u8> {
    let mut v = format!("{}\n", map.len() / 2).into_bytes();
    for n in map {
        v.extend_from_slice(format!("{n}\n").as_bytes());
    }
    v.resize(v.len().div_ceil(512) * 512, 0);
    v.extend_from_slice(data);
    v
}

#[test]
fn bad_sparse_maps_are_refused_and_no_file_is_written() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "overlapping",
            sparse_layer(&pax10("100"), &map10(&[0, 10, 5, 10], &[b'x'; 20])),
        ),
        (
            "beyond the real size",
            sparse_layer(&pax10("10"), &map10(&[0, 20], &[b'x'; 20])),
        ),
        (
            "more data than stored",
            sparse_layer(&pax10("100"), &map10(&[0, 50], &[b'x'; 20])),
        ),
        (
            "map not a number",
            sparse_layer(&pax10("100"), b"1\nzero\n10\n"),
        ),
        ("unknown version", {
            let mut r = pax10("100");
            r[0].1 = b"2".to_vec();
            sparse_layer(&r, &map10(&[0, 1], b"x"))
        }),
        (
            "0.1 map with an odd count",
            sparse_layer(
                &[
                    ("GNU.sparse.size", b"100".to_vec()),
                    ("GNU.sparse.numblocks", b"1".to_vec()),
                    ("GNU.sparse.name", b"f".to_vec()),
                    ("GNU.sparse.map", b"0,10,20".to_vec()),
                ],
                &[b'x'; 10],
            ),
        ),
    ];
    for (what, tar) in cases {
        let s = Scratch::new();
        let layer = s.join("layer");
        std::fs::create_dir(&layer).unwrap();
        let err = unpack_tar(&tar[..], &layer).expect_err(what);
        assert!(err.to_string().contains("sparse"), "{what}: {err}");
        assert!(!layer.join("f").exists(), "{what}: no file written");
        assert!(
            !layer.join("GNUSparseFile.1").exists(),
            "{what}: no raw entry"
        );
    }
}

#[test]
fn zero_runs_are_written_as_holes() {
    let s = Scratch::new();
    let mut body = vec![0u8; 64 << 20];
    body[(32 << 20) + 5] = 1;
    body.extend_from_slice(b"end");
    let mut h = header(tar::EntryType::Regular, 0o644, body.len() as u64);
    h.set_path("zeros").unwrap();
    h.set_cksum();
    let tar = LayerBuilder::new().raw(h, &body).finish();
    let layer = s.join("layer");
    std::fs::create_dir(&layer).unwrap();
    unpack_tar(&tar[..], &layer).unwrap();
    let out = layer.join("zeros");
    assert_eq!(std::fs::read(&out).unwrap(), body);
    let used = std::fs::metadata(&out).unwrap().blocks() * 512;
    assert!(
        used <= 64 << 10,
        "64 MiB of zeros take {used} bytes on disk"
    );
}

fn big_image(s: &Scratch) -> std::path::PathBuf {
    let mut h = header(tar::EntryType::Regular, 0o644, 8 << 20);
    h.set_path("big").unwrap();
    h.set_cksum();
    let layer = LayerBuilder::new()
        .file("small", "s")
        .raw(h, &vec![0u8; 8 << 20])
        .finish();
    let layout = s.join("img");
    write_image(&layout, "t", &[layer], serde_json::json!({"Cmd": ["/x"]}));
    layout
}

/// The layer digest of the only image in `layout`.
fn layer_digest(layout: &Path) -> String {
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let index = json(&layout.join("index.json"));
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = json(
        &layout
            .join("blobs/sha256")
            .join(m.trim_start_matches("sha256:")),
    );
    manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `berth-image --store STORE --max-layer-size LIMIT pull oci:LAYOUT:t`.
fn pull_limited(store: &Path, limit: &str, layout: &Path) -> std::process::Output {
    common::berth_image()
        .arg("--store")
        .arg(store)
        .args(["--max-layer-size", limit, "pull"])
        .arg(format!("oci:{}:t", layout.display()))
        .output()
        .unwrap()
}

/// Nothing of a refused pull stays in the store.
fn assert_store_empty(store: &Path) {
    for sub in ["layers", "tmp", "images", "blobs/sha256"] {
        let left: Vec<_> = std::fs::read_dir(store.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{sub}: {left:?}");
    }
}

#[test]
fn layers_beyond_the_size_limit_are_refused_naming_the_layer() {
    let s = Scratch::new();
    let layout = big_image(&s);
    let digest = layer_digest(&layout);
    let out = pull_limited(&s.join("store"), "4M", &layout);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&digest) && stderr.contains("limit of 4194304 bytes"),
        "{stderr}"
    );
    assert_store_empty(&s.join("store"));
    // Within the limit the same image is fine, and so it is without one.
    let out = pull_limited(&s.join("store2"), "1G", &layout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(s.join("store3")).unwrap();
    let src = SourceRef::OciDir {
        path: layout,
        tag: Some("t".into()),
    };
    pull(&store, &src, &PullOptions::default()).unwrap();
}

#[test]
fn a_sparse_entry_counts_with_its_real_size() {
    // 16 bytes stored, 1 TiB claimed: refused by the limit before anything is written.
    let mut recs = pax10("1099511627776");
    recs[2].1 = b"huge".to_vec();
    let tar = sparse_layer(&recs, &map10(&[1099511627760, 16], &[b'x'; 16]));
    let s = Scratch::new();
    let layout = s.join("img");
    write_image(&layout, "t", &[tar], serde_json::json!({"Cmd": ["/x"]}));
    let out = pull_limited(&s.join("store"), "1G", &layout);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("limit of 1073741824 bytes"), "{stderr}");
    assert_store_empty(&s.join("store"));
}
