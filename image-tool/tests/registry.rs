//! Pulling from and pushing to a registry (Debian's docker-registry on 127.0.0.1,
//! anonymous access), resumed downloads, corrupted blobs, OCI archives, progress output.

mod common;

use common::registry::{start_registry, CuttingProxy, RegistryProcess};
use common::{busybox_layout, run, write_image, LayerBuilder, Scratch};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

fn cli(store: &Path, args: &[&str]) -> std::process::Output {
    common::berth_image()
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

fn cli_ok(store: &Path, args: &[&str]) -> String {
    let out = cli(store, args);
    assert!(
        out.status.success(),
        "berth-image {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cli_err(store: &Path, args: &[&str]) -> String {
    let out = cli(store, args);
    assert!(
        !out.status.success(),
        "berth-image {args:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// (uploaded, mounted, skipped) from `push` output.
fn push_counts(out: &str) -> (usize, usize, usize) {
    let num = |marker: &str| -> usize {
        let before = &out[..out
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker:?} in {out:?}"))];
        let word = before.trim_end().rsplit([' ', ',', ':']).next().unwrap();
        word.parse()
            .unwrap_or_else(|_| panic!("bad count before {marker:?} in {out:?}"))
    };
    (num(" blobs uploaded"), num(" mounted"), num(" skipped"))
}

/// Blob upload PUTs for `repo` in the registry's access log.
fn upload_puts(reg: &RegistryProcess, repo: &str) -> usize {
    let needle = format!("\"PUT /v2/{repo}/blobs/uploads/");
    reg.log_text().matches(&needle).count()
}

fn store_is_empty(st: &Path) -> Result<(), String> {
    for sub in ["blobs/sha256", "layers", "images", "tmp"] {
        let n = std::fs::read_dir(st.join(sub))
            .map(|d| d.count())
            .unwrap_or(0);
        if n != 0 {
            return Err(format!("{sub} has {n} entries"));
        }
    }
    Ok(())
}

#[test]
fn pull_from_a_local_registry_by_tag_and_digest() {
    let s = Scratch::new();
    busybox_layout(&s.join("bb"), "1");
    let reg = start_registry(&s, "registry", "");
    run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:1", s.join("bb").display()),
        &format!("docker://{}/test/bb:1", reg.addr),
    ]));
    let st = s.join("store");
    let out = cli_ok(
        &st,
        &[
            "pull",
            "--insecure",
            &format!("docker://{}/test/bb:1", reg.addr),
        ],
    );
    let name = format!("{}/test/bb:1", reg.addr);
    let store = berth_image::Store::open(&st).unwrap();
    let rec = store
        .find_image(&name)
        .unwrap_or_else(|e| panic!("{e}; pull said {out}"));
    assert!(store
        .layer_path(&rec.layers[0].diff_id)
        .join("bin/busybox")
        .is_file());
    // skopeo may convert the manifest; pulling by the digest it serves gives the same image.
    let by_digest = cli_ok(
        &st,
        &[
            "pull",
            "--insecure",
            &format!("docker://{}/test/bb@{}", reg.addr, rec.manifest_digest),
        ],
    );
    assert!(
        by_digest.contains(&rec.manifest_digest.to_string()),
        "{by_digest}"
    );
    // An unknown tag is a clear error.
    let err = cli_err(
        &st,
        &[
            "pull",
            "--insecure",
            &format!("docker://{}/test/bb:nope", reg.addr),
        ],
    );
    assert!(err.contains("404"), "{err}");
}

#[test]
fn push_round_trip_and_shared_layers_are_uploaded_once() {
    let s = Scratch::new();
    let reg = start_registry(&s, "registry", "");
    let st = s.join("store");
    busybox_layout(&s.join("bb"), "1");
    let bb = format!("oci:{}:1", s.join("bb").display());
    cli_ok(&st, &["pull", &bb, "--name", "bb:1"]);
    let store = berth_image::Store::open(&st).unwrap();
    let rec = store.find_image("bb:1").unwrap();

    let target = format!("docker://{}/test/bb:1", reg.addr);
    let out = cli_ok(&st, &["push", "bb:1", &target, "--insecure"]);
    assert_eq!(push_counts(&out), (2, 0, 0), "{out}");
    assert!(out.contains(&rec.manifest_digest.to_string()), "{out}");
    assert_eq!(upload_puts(&reg, "test/bb"), 2);
    // Pushing again uploads nothing.
    let out = cli_ok(&st, &["push", "bb:1", &target, "--insecure"]);
    assert_eq!(push_counts(&out), (0, 0, 2), "{out}");
    assert_eq!(upload_puts(&reg, "test/bb"), 2);

    // skopeo sees the same manifest and layer.
    let inspect: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &target,
    ])))
    .unwrap();
    assert_eq!(inspect["Digest"], rec.manifest_digest.to_string());
    assert_eq!(
        inspect["Layers"],
        serde_json::json!([rec.layers[0].digest.to_string()])
    );

    // Pulled back into a fresh store: same digests, same files.
    let st2 = s.join("store2");
    cli_ok(&st2, &["pull", "--insecure", &target, "--name", "back"]);
    let store2 = berth_image::Store::open(&st2).unwrap();
    let back = store2.find_image("back").unwrap();
    assert_eq!(back.manifest_digest, rec.manifest_digest);
    assert_eq!(back.config_digest, rec.config_digest);
    assert_eq!(back.layers, rec.layers);
    let bin = |s: &berth_image::Store| {
        std::fs::read(s.layer_path(&rec.layers[0].diff_id).join("bin/busybox")).unwrap()
    };
    assert!(bin(&store) == bin(&store2));

    // Two images sharing their base layer: the second push uploads only its own blobs.
    let layout = s.join("shared");
    let base = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/base", &"base layer content\n".repeat(1000))
        .finish();
    let top = LayerBuilder::new().file("etc/top", "top layer\n").finish();
    write_image(
        &layout,
        "a",
        std::slice::from_ref(&base),
        serde_json::json!({"Cmd": ["/a"]}),
    );
    write_image(
        &layout,
        "b",
        &[base, top],
        serde_json::json!({"Cmd": ["/b"]}),
    );
    for t in ["a", "b"] {
        cli_ok(
            &st,
            &[
                "pull",
                &format!("oci:{}:{t}", layout.display()),
                "--name",
                t,
            ],
        );
    }
    let (a, b) = (
        store.find_image("a").unwrap(),
        store.find_image("b").unwrap(),
    );
    assert_eq!(a.layers[0], b.layers[0]);
    let out = cli_ok(
        &st,
        &[
            "push",
            "a",
            &format!("docker://{}/test/shared:a", reg.addr),
            "--insecure",
        ],
    );
    assert_eq!(push_counts(&out), (2, 0, 0), "{out}");
    assert_eq!(upload_puts(&reg, "test/shared"), 2);
    let out = cli_ok(
        &st,
        &[
            "push",
            "b",
            &format!("docker://{}/test/shared:b", reg.addr),
            "--insecure",
        ],
    );
    assert_eq!(push_counts(&out), (2, 0, 1), "{out}");
    // The registry saw exactly two more uploads: b's config and its top layer.
    assert_eq!(upload_puts(&reg, "test/shared"), 4);
    let uploads_of = |d: &berth_image::Digest| {
        reg.log_text()
            .lines()
            .filter(|l| l.contains("\"PUT /v2/") && l.contains(&format!("digest={d}")))
            .count()
    };
    assert_eq!(uploads_of(&b.layers[0].digest), 1);
    assert_eq!(uploads_of(&b.layers[1].digest), 1);

    // Into another repository, mounting the blobs the registry has in test/shared.
    let other = format!("docker://{}/test/other:b", reg.addr);
    let out = cli_ok(
        &st,
        &[
            "push",
            "b",
            &other,
            "--insecure",
            "--mount-from",
            "test/shared",
        ],
    );
    assert_eq!(push_counts(&out), (0, 3, 0), "{out}");
    assert_eq!(upload_puts(&reg, "test/other"), 0);
    cli_ok(&st2, &["pull", "--insecure", &other, "--name", "b"]);
    assert_eq!(
        store2.find_image("b").unwrap().manifest_digest,
        b.manifest_digest
    );
    assert_eq!(
        std::fs::read_to_string(store2.layer_path(&b.chain_ids()[1]).join("etc/top")).unwrap(),
        "top layer\n"
    );

    // Bad targets are clear errors.
    let err = cli_err(&st, &["push", "bb:1", "oci:/tmp/x", "--insecure"]);
    assert!(err.contains("docker://HOST/REPO"), "{err}");
    let err = cli_err(&st, &["push", "nope:1", &target, "--insecure"]);
    assert!(err.contains("image not found"), "{err}");
    let err = cli_err(
        &st,
        &["push", "bb:1", "docker://example.com/x:1", "--insecure"],
    );
    assert!(err.contains("loopback"), "{err}");
}

#[test]
fn export_to_an_oci_archive_read_by_skopeo() {
    let s = Scratch::new();
    let st = s.join("store");
    busybox_layout(&s.join("bb"), "1");
    cli_ok(
        &st,
        &[
            "pull",
            &format!("oci:{}:1", s.join("bb").display()),
            "--name",
            "bb:1",
        ],
    );
    let store = berth_image::Store::open(&st).unwrap();
    let rec = store.find_image("bb:1").unwrap();
    let archive = s.join("bb.tar");
    let a = archive.display().to_string();
    cli_ok(&st, &["export", "bb:1", &format!("oci-archive:{a}:v1")]);
    let inspect: serde_json::Value = serde_json::from_str(&run(
        Command::new("skopeo").args(["inspect", &format!("oci-archive:{a}:v1")])
    ))
    .unwrap();
    assert_eq!(inspect["Digest"], rec.manifest_digest.to_string());
    // skopeo copies it into a layout, and berth-image reads both back to the same image.
    run(Command::new("skopeo").args([
        "copy",
        &format!("oci-archive:{a}:v1"),
        &format!("oci:{}:c", s.join("copied").display()),
    ]));
    let st2 = s.join("store2");
    cli_ok(
        &st2,
        &["pull", &format!("oci-archive:{a}:v1"), "--name", "x"],
    );
    cli_ok(
        &st2,
        &[
            "pull",
            &format!("oci:{}:c", s.join("copied").display()),
            "--name",
            "y",
        ],
    );
    let store2 = berth_image::Store::open(&st2).unwrap();
    assert_eq!(
        store2.find_image("x").unwrap().manifest_digest,
        rec.manifest_digest
    );
    assert_eq!(store2.find_image("y").unwrap().layers, rec.layers);
    // Without a tag the image's own tag is used; a missing directory is a clear error
    // that leaves no file behind.
    let a2 = s.join("bb2.tar").display().to_string();
    cli_ok(&st, &["export", "bb:1", &format!("oci-archive:{a2}")]);
    run(Command::new("skopeo").args(["inspect", &format!("oci-archive:{a2}:1")]));
    let err = cli_err(
        &st,
        &[
            "export",
            "bb:1",
            &format!("oci-archive:{}/no/such/x.tar", s.path.display()),
        ],
    );
    assert!(err.contains("no/such"), "{err}");
    let err = cli_err(&st, &["export", "bb:1", "docker://127.0.0.1:1/x:1"]);
    assert!(err.contains("oci-archive:FILE"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(&s.path)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Push the busybox image to `repo` of `reg` with skopeo; returns the layer digest and size.
fn seed(s: &Scratch, reg: &RegistryProcess, repo: &str) -> (String, u64) {
    busybox_layout(&s.join("bb"), "1");
    run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:1", s.join("bb").display()),
        &format!("docker://{}/{repo}", reg.addr),
    ]));
    let raw: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/{repo}", reg.addr),
    ])))
    .unwrap();
    let layer = &raw["layers"][0];
    (
        layer["digest"].as_str().unwrap().to_string(),
        layer["size"].as_u64().unwrap(),
    )
}

#[test]
fn interrupted_download_resumes_with_a_range_request() {
    let s = Scratch::new();
    let reg = start_registry(&s, "registry", "");
    let (layer, size) = seed(&s, &reg, "test/bb:1");
    assert!(size > 100_000, "layer too small to cut: {size}");
    let proxy = CuttingProxy::start(&reg.addr);
    let cut = size / 2;
    *proxy.cut_path.lock().unwrap() = Some(format!("/blobs/{layer}"));
    proxy.cut_after.store(cut, Ordering::SeqCst);
    let st = s.join("store");
    let src = format!("docker://{}/test/bb:1", proxy.addr);
    let err = cli_err(&st, &["pull", "--insecure", &src, "--name", "bb"]);
    assert!(err.contains("interrupted after"), "{err}");
    let hex = layer.strip_prefix("sha256:").unwrap();
    let partial = st.join("tmp").join(format!("partial-{hex}"));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), cut, "{err}");
    assert!(!st.join("blobs/sha256").join(hex).exists());
    assert_eq!(std::fs::read_dir(st.join("images")).unwrap().count(), 0);

    let before = proxy.requests.lock().unwrap().len();
    cli_ok(&st, &["pull", "--insecure", &src, "--name", "bb"]);
    let requests = proxy.requests.lock().unwrap()[before..].to_vec();
    let blob_gets: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with(&format!("GET /v2/test/bb/blobs/{layer}")))
        .collect();
    assert_eq!(blob_gets.len(), 1, "{requests:#?}");
    assert!(
        blob_gets[0]
            .to_ascii_lowercase()
            .contains(&format!("range: bytes={cut}-")),
        "{}",
        blob_gets[0]
    );
    assert!(!partial.exists());
    let store = berth_image::Store::open(&st).unwrap();
    let rec = store.find_image("bb").unwrap();
    assert!(store
        .layer_path(&rec.layers[0].diff_id)
        .join("bin/busybox")
        .is_file());

    // A partial file with wrong content fails the digest check and is discarded; the
    // next pull starts over and succeeds.
    let st2 = s.join("store2");
    berth_image::Store::open(&st2).unwrap();
    std::fs::write(
        st2.join("tmp").join(format!("partial-{hex}")),
        vec![0x5au8; cut as usize],
    )
    .unwrap();
    let err = cli_err(&st2, &["pull", "--insecure", &src, "--name", "bb"]);
    assert!(err.contains("digest mismatch"), "{err}");
    store_is_empty(&st2).unwrap();
    cli_ok(&st2, &["pull", "--insecure", &src, "--name", "bb"]);
}

#[test]
fn corrupted_blob_from_the_registry_is_rejected_and_nothing_kept() {
    let s = Scratch::new();
    let reg = start_registry(&s, "registry", "");
    let (layer, _) = seed(&s, &reg, "test/bb:1");
    // The registry serves what its storage holds: flip a byte of the layer's data.
    let data_file = reg.blob_file(layer.strip_prefix("sha256:").unwrap());
    let mut data = std::fs::read(&data_file).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    std::fs::write(&data_file, data).unwrap();
    let st = s.join("store");
    let err = cli_err(
        &st,
        &[
            "pull",
            "--insecure",
            &format!("docker://{}/test/bb:1", reg.addr),
        ],
    );
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains(&layer), "{err}");
    store_is_empty(&st).unwrap();
}

#[test]
fn progress_bars_only_on_a_terminal() {
    let s = Scratch::new();
    let reg = start_registry(&s, "registry", "");
    seed(&s, &reg, "test/bb:1");
    let src = format!("docker://{}/test/bb:1", reg.addr);
    // Not a terminal: nothing on stderr.
    let st = s.join("store");
    let out = cli(&st, &["pull", "--insecure", &src]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // On a pseudo-terminal (script(1)): one line per layer with bytes and rate.
    let st2 = s.join("store2");
    let cmd = format!(
        "{} --store {} pull --insecure {src}",
        env!("CARGO_BIN_EXE_berth-image"),
        st2.display()
    );
    let out = Command::new("timeout")
        .args(["-k", "10", "120", "script", "-qec", &cmd, "/dev/null"])
        .env_remove("BERTH_PROGRESS")
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let last = text
        .rsplit("\r\x1b[2K")
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.contains("done") && last.contains("/s") && last.contains(" / "),
        "{text:?}"
    );
}
