//! The content store survives a killed `berth-image`: `pull` and `gc` are
//! SIGKILLed at a sweep of delays covering the whole command. Afterwards `list`
//! works, every layer directory visible under `layers/` (anything not
//! `.tmp-*`) is complete, every blob matches its digest, a new pull succeeds
//! and its layers (and, every fourth kill, a `bundle --copy` rootfs) are
//! identical to the ones of an undisturbed pull. `BERTH_FAULT_POINTS` sets
//! the number of delays per sweep (default 40).

mod common;

use berth_image::digest::Digest;
use berth_testsupport::faults::{tally, End, Sweep};
use common::{berth_image, write_image, LayerBuilder};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The tests run one at a time, so the measured durations hold for the sweeps.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One filesystem entry as compared between stores.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    rdev: u64,
    /// Content digest for files, target for symlinks.
    data: String,
    opaque: bool,
}

fn opaque(p: &Path) -> bool {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = [0u8; 8];
    // SAFETY: valid C strings and buffer.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// Every entry below `dir` (relative path → node); the root itself as "".
fn tree(dir: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, Node>) {
        let md = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let ft = md.file_type();
        let data = if ft.is_file() {
            berth_image::digest::Digest::of(&std::fs::read(p).unwrap()).to_string()
        } else if ft.is_symlink() {
            std::fs::read_link(p).unwrap().display().to_string()
        } else {
            String::new()
        };
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        out.insert(
            rel,
            Node {
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
                size: if ft.is_dir() { 0 } else { md.size() },
                rdev: if ft.is_char_device() { md.rdev() } else { 0 },
                data,
                opaque: ft.is_dir() && opaque(p),
            },
        );
        if ft.is_dir() {
            let mut names: Vec<PathBuf> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for n in names {
                walk(root, &n, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The first difference between two trees, if any.
fn diff(want: &BTreeMap<String, Node>, got: &BTreeMap<String, Node>) -> Option<String> {
    for (k, v) in want {
        match got.get(k) {
            None => {
                return Some(format!(
                    "{k:?} is missing ({} of {} entries present)",
                    got.len(),
                    want.len()
                ))
            }
            Some(g) if g != v => return Some(format!("{k:?} differs: want {v:?}, got {g:?}")),
            _ => {}
        }
    }
    got.keys()
        .find(|k| !want.contains_key(*k))
        .map(|k| format!("{k:?} should not exist"))
}

/// Deterministic, moderately compressible content.
fn content(seed: usize, len: usize) -> Vec<u8> {
    let mut x = (seed as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|i| {
            if i % 4 == 0 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
            }
            b'a' + ((x >> 33) % 16) as u8
        })
        .collect()
}

fn file_bytes(b: LayerBuilder, path: &str, mode: u32, body: &[u8]) -> LayerBuilder {
    let mut h = common::header(tar::EntryType::Regular, mode, body.len() as u64);
    h.set_path(path).unwrap();
    h.set_cksum();
    b.raw(h, body)
}

/// Image "x": busybox plus three layers with thousands of files, big files,
/// symlinks, whiteouts and an opaque directory. Image "y": two layers of its
/// own (many small files) that no other image shares.
fn build_layout(layout: &Path) {
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox");
    let mut base = LayerBuilder::new().dir("bin/", 0o755);
    base = file_bytes(base, "bin/busybox", 0o755, &busybox);
    for a in ["sh", "ls", "cat", "echo"] {
        base = base.symlink(&format!("bin/{a}"), "busybox");
    }
    let mut l1 = LayerBuilder::new();
    for d in 0..20 {
        l1 = l1.dir(&format!("data/d{d}/"), 0o755);
    }
    for i in 0..1500 {
        l1 = file_bytes(
            l1,
            &format!("data/d{}/f{i}", i % 20),
            0o644,
            &content(i, (i * 37) % 3000),
        );
    }
    l1 = l1.dir("opq/", 0o755).file("opq/old", "old");
    let mut l2 = LayerBuilder::new()
        .whiteout("data/d3/.wh.f3")
        .whiteout("data/d4/.wh.f4")
        .dir("opq/", 0o755)
        .whiteout("opq/.wh..wh..opq")
        .file("opq/new", "new")
        .symlink("data/link", "d1/f1");
    for i in 0..1500 {
        l2 = file_bytes(
            l2,
            &format!("more/m{}/g{i}", i % 10),
            0o600,
            &content(10_000 + i, (i * 53) % 2000),
        );
    }
    let mut l3 = LayerBuilder::new().dir("big/", 0o755);
    for i in 0..3 {
        l3 = file_bytes(
            l3,
            &format!("big/b{i}"),
            0o644,
            &content(20_000 + i, 2 << 20),
        );
    }
    write_image(
        layout,
        "x",
        &[base.finish(), l1.finish(), l2.finish(), l3.finish()],
        serde_json::json!({"Cmd": ["/bin/sh"]}),
    );
    let mut y1 = LayerBuilder::new();
    let mut y2 = LayerBuilder::new();
    for i in 0..3000 {
        y1 = y1.file(&format!("y1/d{}/f{i}", i % 30), &format!("y1 {i}"));
        y2 = y2.file(&format!("y2/d{}/f{i}", i % 30), &format!("y2 {i}"));
    }
    write_image(
        layout,
        "y",
        &[y1.finish(), y2.finish()],
        serde_json::json!({"Cmd": ["/bin/sh"]}),
    );
}

/// What an undisturbed pull produces.
struct Reference {
    /// Layer directory name → tree.
    layers: BTreeMap<String, BTreeMap<String, Node>>,
    /// Image tag → layer directory names.
    image_layers: BTreeMap<String, Vec<String>>,
    /// Image tag → the `bundle --copy` rootfs tree.
    rootfs: BTreeMap<String, BTreeMap<String, Node>>,
}

/// The scratch directory: on tmpfs when there is one (this VM's disk takes
/// about 1 ms per file created, which would dominate the sweeps; the store's
/// kill safety rests on rename and flock, which tmpfs has too).
fn scratch() -> tempfile::TempDir {
    let base = if Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/var/tmp"
    };
    tempfile::Builder::new()
        .prefix("berth-image-faults-")
        .tempdir_in(base)
        .expect("create scratch dir")
}

struct World {
    s: tempfile::TempDir,
    layout: PathBuf,
    reference: Reference,
}

fn source(w: &World, tag: &str) -> String {
    format!("oci:{}:{tag}", w.layout.display())
}

/// `berth-image --store STORE ARGS`, bounded; returns (success, stdout, stderr).
fn cli(store: &Path, args: &[&str]) -> (bool, String, String) {
    let mut c = berth_image();
    c.arg("--store").arg(store).args(args).stdin(Stdio::null());
    let (end, out, err) = run_bounded(c, None);
    (end == End::Finished(0), out, err)
}

#[track_caller]
fn cli_ok(store: &Path, args: &[&str]) -> String {
    let (ok, out, err) = cli(store, args);
    assert!(ok, "berth-image {args:?} failed: {err}");
    out
}

/// Run `cmd` with its output in temp files; SIGKILL it after `kill_after`
/// (if given and it is still running), otherwise wait up to the timeout.
fn run_bounded(mut cmd: Command, kill_after: Option<Duration>) -> (End, String, String) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    cmd.stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap());
    let mut child = cmd.spawn().expect("spawn berth-image");
    let t0 = Instant::now();
    if let Some(d) = kill_after {
        std::thread::sleep(d);
        let _ = child.kill();
    }
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    use std::os::unix::process::ExitStatusExt;
    let end = match (status.code(), status.signal()) {
        (_, Some(9)) => End::Killed,
        (Some(c), _) => End::Finished(c),
        (None, s) => End::Finished(128 + s.unwrap_or(0)),
    };
    (
        end,
        std::fs::read_to_string(out.path()).unwrap_or_default(),
        std::fs::read_to_string(err.path()).unwrap_or_default(),
    )
}

fn record_layers(store: &Path, name: &str) -> Vec<String> {
    let p = store
        .join("images")
        .join(format!("{}.json", name.replace('/', "%2F")));
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let diff_ids: Vec<Digest> = rec["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| Digest::parse(l["diff_id"].as_str().unwrap()).unwrap())
        .collect();
    // Layer directories are named by chain ID.
    Digest::chain_ids(&diff_ids)
        .iter()
        .map(|c| c.hex().to_string())
        .collect()
}

fn world() -> World {
    let s = scratch();
    let layout = s.path().join("layout");
    build_layout(&layout);
    let store = s.path().join("ref-store");
    let mut w = World {
        layout,
        reference: Reference {
            layers: BTreeMap::new(),
            image_layers: BTreeMap::new(),
            rootfs: BTreeMap::new(),
        },
        s,
    };
    for tag in ["x", "y"] {
        cli_ok(&store, &["pull", &source(&w, tag), "--name", tag]);
        let names = record_layers(&store, tag);
        for n in &names {
            w.reference
                .layers
                .insert(n.clone(), tree(&store.join("layers").join(n)));
        }
        w.reference.image_layers.insert(tag.into(), names);
        let b = w.s.path().join(format!("ref-bundle-{tag}"));
        cli_ok(&store, &["bundle", tag, b.to_str().unwrap(), "--copy"]);
        w.reference
            .rootfs
            .insert(tag.into(), tree(&b.join("rootfs")));
        std::fs::remove_dir_all(&b).unwrap();
    }
    w
}

/// The store invariants after a kill: list works and names only images whose
/// layers are all present; every visible layer directory is complete; every
/// blob matches its name; nothing is mounted below the store.
fn check_store(w: &World, store: &Path, ctx: &str) -> Vec<String> {
    let (ok, listed, err) = cli(store, &["list"]);
    assert!(ok, "{ctx}: `list` failed: {err}");
    let mut problems = Vec::new();
    for line in listed.lines() {
        let name = line.split('\t').next().unwrap_or("");
        let tag = name.trim_end_matches(":latest");
        let Some(want) = w.reference.image_layers.get(tag) else {
            problems.push(format!("unexpected image {name:?}"));
            continue;
        };
        for l in want {
            if !store.join("layers").join(l).is_dir() {
                problems.push(format!("image {name} is listed but layer {l} is missing"));
            }
        }
    }
    let layers = store.join("layers");
    if let Ok(rd) = std::fs::read_dir(&layers) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                continue;
            }
            match w.reference.layers.get(&name) {
                None => problems.push(format!("unknown entry layers/{name}")),
                Some(want) => {
                    if let Some(d) = diff(want, &tree(&e.path())) {
                        problems.push(format!("visible layer {name} is incomplete: {d}"));
                    }
                }
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(store.join("blobs/sha256")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let got = berth_image::digest::Digest::of(&std::fs::read(e.path()).unwrap());
            if got.hex() != name {
                problems.push(format!("blob {name} holds content with digest {got}"));
            }
        }
    }
    let m = common::mounts_below(store);
    if !m.is_empty() {
        problems.push(format!("mounts below the store: {m:?}"));
    }
    problems
}

/// Pull `tag` again, then compare its layers (and, with `bundle`, a
/// `bundle --copy` rootfs) with the reference.
fn repull_and_verify(w: &World, store: &Path, tag: &str, bundle: bool, ctx: &str) {
    let (ok, _, err) = cli(store, &["pull", &source(w, tag), "--name", tag]);
    assert!(ok, "{ctx}: the pull after the kill failed: {err}");
    for l in &w.reference.image_layers[tag] {
        let p = store.join("layers").join(l);
        assert!(p.is_dir(), "{ctx}: layer {l} missing after a good pull");
        if let Some(d) = diff(&w.reference.layers[l], &tree(&p)) {
            panic!("{ctx}: layer {l} of {tag} after the new pull: {d}");
        }
    }
    if !bundle {
        return;
    }
    let b = store.with_extension("bundle");
    let (ok, _, err) = cli(store, &["bundle", tag, b.to_str().unwrap(), "--copy"]);
    assert!(ok, "{ctx}: bundle --copy failed: {err}");
    if let Some(d) = diff(&w.reference.rootfs[tag], &tree(&b.join("rootfs"))) {
        panic!("{ctx}: bundle --copy rootfs of {tag}: {d}");
    }
    std::fs::remove_dir_all(&b).unwrap();
}

fn assert_no_temp_left(store: &Path, ctx: &str) {
    let tmp_layers: Vec<_> = std::fs::read_dir(store.join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(tmp_layers.is_empty(), "{ctx}: gc left {tmp_layers:?}");
    let tmp: Vec<_> = std::fs::read_dir(store.join("tmp"))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        tmp.is_empty(),
        "{ctx}: gc left {} entries in tmp/",
        tmp.len()
    );
}

fn measure(mut f: impl FnMut() -> Duration) -> Duration {
    let mut v: Vec<Duration> = (0..3).map(|_| f()).collect();
    v.sort();
    v[1]
}

#[test]
fn pull_killed_at_a_sweep_of_delays() {
    let _s = serial();
    let w = world();
    let pull_cmd = |store: &Path| {
        let mut c = berth_image();
        c.arg("--store")
            .arg(store)
            .args(["pull", &source(&w, "x"), "--name", "x"])
            .stdin(Stdio::null());
        c
    };
    let mut k = 0;
    let d = measure(|| {
        k += 1;
        let store = w.s.path().join(format!("m{k}"));
        let t = Instant::now();
        let (end, _, err) = run_bounded(pull_cmd(&store), None);
        assert_eq!(end, End::Finished(0), "pull: {err}");
        let el = t.elapsed();
        std::fs::remove_dir_all(&store).unwrap();
        el
    });
    eprintln!("pull of the 4-layer image into an empty store takes {d:?}");
    let mut ends = Vec::new();
    let mut sweep = Sweep::new(d);
    while let Some((i, delay)) = sweep.next_delay() {
        let store = w.s.path().join(format!("s{i}"));
        let (end, _, err) = run_bounded(pull_cmd(&store), Some(delay));
        let ctx = format!("pull killed after {delay:?} ({end:?}, stderr {err:?})");
        if let End::Finished(c) = end {
            assert_eq!(c, 0, "{ctx}: pull failed on its own");
        }
        let problems = check_store(&w, &store, &ctx);
        assert!(problems.is_empty(), "{ctx}:\n{}", problems.join("\n"));
        repull_and_verify(&w, &store, "x", i % 4 == 0, &ctx);
        cli_ok(&store, &["gc"]);
        assert_no_temp_left(&store, &ctx);
        std::fs::remove_dir_all(&store).unwrap();
        sweep.record(end);
        ends.push(end);
    }
    tally("pull sweep", &ends);
    assert!(
        ends.iter().filter(|e| **e == End::Killed).count() >= ends.len() / 4,
        "too few kills landed inside the pull: {ends:?}"
    );
}

/// A store with "x" (kept) and "y" (removed, its layers garbage) before gc:
/// pulled once into `gc-template`, then copied with `cp -a` (which keeps the
/// whiteout devices and the opaque xattr).
fn gc_store(w: &World, store: &Path) {
    let template = w.s.path().join("gc-template");
    if !template.exists() {
        cli_ok(&template, &["pull", &source(w, "x"), "--name", "x"]);
        cli_ok(&template, &["pull", &source(w, "y"), "--name", "y"]);
        cli_ok(&template, &["rmi", "y"]);
    }
    common::run(Command::new("cp").arg("-a").arg(&template).arg(store));
}

fn gc_duration(w: &World) -> Duration {
    let mut k = 0;
    measure(|| {
        k += 1;
        let store = w.s.path().join(format!("gm{k}"));
        gc_store(w, &store);
        let t = Instant::now();
        assert_eq!(cli_ok(&store, &["gc"]).trim(), "removed 4 blobs, 2 layers");
        let el = t.elapsed();
        std::fs::remove_dir_all(&store).unwrap();
        el
    })
}

/// gc killed at any point: the image still referenced is untouched and can be
/// bundled, and a second gc completes.
#[test]
fn gc_killed_at_a_sweep_of_delays_keeps_referenced_images_intact() {
    let _s = serial();
    let w = world();
    let d = gc_duration(&w);
    eprintln!("gc of a removed 2-layer image (6000 files) takes {d:?}");
    let mut ends = Vec::new();
    let mut sweep = Sweep::new(d);
    while let Some((i, delay)) = sweep.next_delay() {
        let store = w.s.path().join(format!("g{i}"));
        gc_store(&w, &store);
        let mut c = berth_image();
        c.arg("--store").arg(&store).arg("gc").stdin(Stdio::null());
        let (end, _, err) = run_bounded(c, Some(delay));
        let ctx = format!("gc killed after {delay:?} ({end:?}, stderr {err:?})");
        if let End::Finished(c) = end {
            assert_eq!(c, 0, "{ctx}: gc failed on its own");
        }
        let (ok, listed, err) = cli(&store, &["list"]);
        assert!(ok, "{ctx}: list failed: {err}");
        assert!(listed.starts_with("x\t"), "{ctx}: list: {listed}");
        for l in &w.reference.image_layers["x"] {
            let p = store.join("layers").join(l);
            if let Some(d) = diff(&w.reference.layers[l], &tree(&p)) {
                panic!("{ctx}: layer {l} of the kept image: {d}");
            }
        }
        repull_and_verify(&w, &store, "x", i % 4 == 0, &ctx);
        cli_ok(&store, &["gc"]);
        assert_no_temp_left(&store, &ctx);
        let layers = std::fs::read_dir(store.join("layers")).unwrap().count();
        assert_eq!(layers, 4, "{ctx}: layers after the second gc");
        std::fs::remove_dir_all(&store).unwrap();
        sweep.record(end);
        ends.push(end);
    }
    tally("gc sweep (kept image)", &ends);
}

/// gc killed while it removes an unreferenced layer directory: the directory
/// must not stay visible half-removed, since a later pull of an image with that
/// layer reuses whatever `layers/<chain_id>` holds.
#[test]
fn gc_killed_at_a_sweep_of_delays_leaves_no_half_removed_layer() {
    let _s = serial();
    let w = world();
    let d = gc_duration(&w);
    let mut ends = Vec::new();
    let mut sweep = Sweep::new(d);
    while let Some((i, delay)) = sweep.next_delay() {
        let store = w.s.path().join(format!("h{i}"));
        gc_store(&w, &store);
        let mut c = berth_image();
        c.arg("--store").arg(&store).arg("gc").stdin(Stdio::null());
        let (end, _, err) = run_bounded(c, Some(delay));
        let ctx = format!("gc killed after {delay:?} ({end:?}, stderr {err:?})");
        let problems = check_store(&w, &store, &ctx);
        assert!(problems.is_empty(), "{ctx}:\n{}", problems.join("\n"));
        repull_and_verify(&w, &store, "y", i % 4 == 0, &ctx);
        std::fs::remove_dir_all(&store).unwrap();
        sweep.record(end);
        ends.push(end);
    }
    tally("gc sweep (removed image)", &ends);
}
