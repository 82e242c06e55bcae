//! Bundles: overlay and copied root filesystems, config.json generation, unbundle,
//! many-layer images, and running a bundle with runc.

mod common;

use berth_image::bundle::{self, BundleOptions};
use berth_image::config_gen::{resolve_user, runtime_config, runtime_config_on, ResolvedUser};
use berth_image::image::ImageConfig;
use berth_image::overlay::{self, OverlaySpec};
use berth_image::pull::{pull, PullOptions};
use berth_image::source::SourceRef;
use berth_image::store::ImageRecord;
use berth_image::Store;
use common::{busybox_layout, run, write_image, LayerBuilder, Scratch};
use std::path::Path;
use std::process::Command;

fn pull_tag(store: &Store, layout: &Path, tag: &str) -> ImageRecord {
    let src = SourceRef::OciDir {
        path: layout.to_path_buf(),
        tag: Some(tag.into()),
    };
    pull(store, &src, &PullOptions::default()).unwrap()
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:\napp:x:1000:\nstaff:x:50:\nextra:x:60:root,app\n";

fn etc_layer() -> Vec<u8> {
    LayerBuilder::new()
        .dir("etc/", 0o755)
        .file("etc/passwd", PASSWD)
        .file("etc/group", GROUP)
        .finish()
}

#[test]
fn overlay_bundle_shares_layers_and_unbundle_cleans_up() {
    let s = Scratch::new();
    busybox_layout(&s.join("bb"), "1");
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull_tag(&store, &s.join("bb"), "1");
    let dir = s.join("bundle");
    let opts = BundleOptions {
        args: Some(vec!["echo".into(), "hi".into()]),
        ..Default::default()
    };
    bundle::create(&store, &rec, &dir, &opts).unwrap();
    let rootfs = dir.join("rootfs");
    assert!(overlay::is_mountpoint(&rootfs));
    let spec = oci_spec::runtime::Spec::load(dir.join("config.json")).unwrap();
    assert_eq!(spec.version(), "1.2.0");
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.args().as_ref().unwrap(), &["echo", "hi"]);
    assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("rootfs"));
    let ns: Vec<_> = spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    // pid, network, ipc, uts, mount, and cgroup where the host is v2 alone.
    let cgroup_ns = berth_image::config_gen::host_wants_cgroup_namespace();
    assert_eq!(ns.len(), 5 + usize::from(cgroup_ns));
    let dests: Vec<_> = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.destination().clone())
        .collect();
    for d in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ] {
        assert!(dests.iter().any(|p| p == Path::new(d)), "missing mount {d}");
    }
    // Writes land in the bundle's own layer; the shared layer is untouched.
    std::fs::write(rootfs.join("etc/passwd"), "changed\n").unwrap();
    std::fs::remove_file(rootfs.join("bin/ls")).unwrap();
    let layer = store.layer_path(&rec.layers[0].diff_id);
    assert_eq!(
        std::fs::read_to_string(layer.join("etc/passwd")).unwrap(),
        berth_image::busybox::PASSWD
    );
    assert!(std::fs::symlink_metadata(layer.join("bin/ls")).is_ok());
    assert_eq!(
        std::fs::read_to_string(dir.join(".berth/upper/etc/passwd")).unwrap(),
        "changed\n"
    );
    // A second bundle of the same image sees the pristine image.
    let dir2 = s.join("bundle2");
    bundle::create(&store, &rec, &dir2, &BundleOptions::default()).unwrap();
    assert!(std::fs::symlink_metadata(dir2.join("rootfs/bin/ls")).is_ok());
    // gc keeps the layers of live bundles even when the image record is gone.
    store.remove_image(&rec.name).unwrap();
    store.gc().unwrap();
    assert!(layer.is_dir());
    bundle::remove(&dir).unwrap();
    bundle::remove(&dir2).unwrap();
    assert!(!dir.exists() && !dir2.exists());
    assert!(!overlay::is_mountpoint(&rootfs));
    store.gc().unwrap();
    assert!(
        !layer.exists(),
        "after unbundle nothing references the layer"
    );
}

#[test]
fn config_follows_the_image_spec_conversion() {
    let s = Scratch::new();
    let run_config = serde_json::json!({
        "User": "app:staff",
        "Entrypoint": ["/bin/echo"],
        "Cmd": ["default"],
        "Env": ["FOO=bar", "PATH=/custom/bin"],
        "WorkingDir": "/srv",
        "Labels": {"com.example.team": "storage"},
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "Volumes": {"/data": {}},
        "StopSignal": "SIGQUIT"
    });
    write_image(&s.join("img"), "t", &[etc_layer()], run_config);
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull_tag(&store, &s.join("img"), "t");
    let dir = s.join("b");
    let opts = BundleOptions {
        args: Some(vec!["override".into()]),
        ..Default::default()
    };
    bundle::create(&store, &rec, &dir, &opts).unwrap();
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let p = &spec["process"];
    assert_eq!(p["args"], serde_json::json!(["/bin/echo", "override"]));
    assert_eq!(p["user"], serde_json::json!({"uid": 1000, "gid": 50}));
    assert_eq!(p["cwd"], "/srv");
    assert_eq!(
        p["env"],
        serde_json::json!(["FOO=bar", "PATH=/custom/bin", "HOME=/home/app"])
    );
    let a = &spec["annotations"];
    assert_eq!(a["com.example.team"], "storage");
    assert_eq!(a["org.opencontainers.image.exposedPorts"], "53/udp,80/tcp");
    assert_eq!(a["org.opencontainers.image.stopSignal"], "SIGQUIT");
    assert_eq!(a["org.opencontainers.image.volumes"], "/data");
    assert_eq!(a["org.opencontainers.image.architecture"], "amd64");
    assert_eq!(spec["root"]["readonly"], false);
    bundle::remove(&dir).unwrap();
}

#[test]
fn users_resolve_through_the_image_files_only() {
    let s = Scratch::new();
    let root = s.join("rootfs");
    std::fs::create_dir_all(root.join("real")).unwrap();
    std::fs::write(root.join("real/passwd"), PASSWD).unwrap();
    std::fs::write(root.join("real/group"), GROUP).unwrap();
    // Absolute symlinks resolve inside the image root, not on the host.
    std::os::unix::fs::symlink("/../../../real", root.join("etc")).unwrap();
    let u = |spec: &str| resolve_user(spec, &root).unwrap();
    let app = ResolvedUser {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![60],
        home: Some("/home/app".into()),
    };
    assert_eq!(u("app"), app);
    assert_eq!(u("1000"), app);
    assert_eq!(u("app:50").gid, 50);
    assert_eq!(u("1000:staff").additional_gids, Vec::<u32>::new());
    assert_eq!(u("4242").uid, 4242);
    assert_eq!(u("4242").gid, 0);
    assert_eq!(u("").uid, 0);
    assert!(resolve_user("nobody-here", &root)
        .unwrap_err()
        .to_string()
        .contains("nobody-here"));
    assert!(resolve_user("app:nogroup", &root).is_err());
    // No Entrypoint/Cmd and no args is an error.
    let cfg = ImageConfig::default();
    assert!(runtime_config(&cfg, &root, None).is_err());
}

#[test]
fn copy_bundle_flattens_layers_with_whiteouts() {
    let s = Scratch::new();
    let l1 = LayerBuilder::new()
        .dir("d/", 0o755)
        .file("d/a", "a")
        .file("d/b", "b")
        .dir("o/", 0o755)
        .file("o/old", "old")
        .file("gone", "g")
        .finish();
    let l2 = LayerBuilder::new()
        .dir("d/", 0o700)
        .whiteout("d/.wh.a")
        .whiteout(".wh.gone")
        .dir("o/", 0o755)
        .whiteout("o/.wh..wh..opq")
        .file("o/new", "new")
        .finish();
    write_image(
        &s.join("img"),
        "t",
        &[l1, l2],
        serde_json::json!({"Cmd": ["/x"]}),
    );
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull_tag(&store, &s.join("img"), "t");
    let dir = s.join("b");
    let opts = BundleOptions {
        copy: true,
        ..Default::default()
    };
    bundle::create(&store, &rec, &dir, &opts).unwrap();
    let r = dir.join("rootfs");
    assert!(!overlay::is_mountpoint(&r));
    assert!(!r.join("d/a").exists() && r.join("d/b").exists() && !r.join("gone").exists());
    assert!(!r.join("o/old").exists() && r.join("o/new").exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(r.join("d")).unwrap().permissions().mode() & 0o777,
        0o700
    );
    bundle::remove(&dir).unwrap();
    assert!(!dir.exists());
}

#[test]
fn bundle_errors_leave_nothing_behind() {
    let s = Scratch::new();
    write_image(
        &s.join("img"),
        "t",
        &[etc_layer()],
        serde_json::json!({"User": "ghost", "Cmd": ["/x"]}),
    );
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull_tag(&store, &s.join("img"), "t");
    let dir = s.join("b");
    let err = bundle::create(&store, &rec, &dir, &BundleOptions::default()).unwrap_err();
    assert!(err.to_string().contains("ghost"), "{err}");
    assert!(!dir.exists());
    assert!(common::mounts_below(&s.path).is_empty());
    // A non-empty target directory is refused and kept as it was.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep"), "k").unwrap();
    assert!(bundle::create(&store, &rec, &dir, &BundleOptions::default()).is_err());
    assert!(dir.join("keep").exists());
    assert!(bundle::remove(&dir).is_err(), "not a bundle");
}

fn many_layers(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            LayerBuilder::new()
                .dir("l/", 0o755)
                .file(&format!("l/{i}"), &i.to_string())
                .finish()
        })
        .collect()
}

#[test]
fn images_with_more_layers_than_one_option_string_holds() {
    let s = Scratch::new();
    write_image(
        &s.join("img"),
        "t",
        &many_layers(120),
        serde_json::json!({"Cmd": ["/x"]}),
    );
    let store = Store::open(s.join("store")).unwrap();
    let rec = pull_tag(&store, &s.join("img"), "t");
    let dir = s.join("b");
    bundle::create(&store, &rec, &dir, &BundleOptions::default()).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.join("rootfs/l")).unwrap().count(),
        120
    );
    bundle::remove(&dir).unwrap();

    // The mount(2) fallback: relative layer names from inside the layers directory.
    let spec = |n: usize, tag: &str| {
        let st = s.join(tag);
        std::fs::create_dir_all(st.join("u")).unwrap();
        std::fs::create_dir_all(st.join("w")).unwrap();
        std::fs::create_dir_all(st.join("m")).unwrap();
        let lower = rec.chain_ids()[..n]
            .iter()
            .rev()
            .map(|c| store.layer_path(c))
            .collect();
        (
            OverlaySpec {
                lower,
                upper: st.join("u"),
                work: st.join("w"),
            },
            st.join("m"),
        )
    };
    let (sp, target) = spec(50, "legacy50");
    let abs_len: usize = sp.lower.iter().map(|p| p.as_os_str().len() + 1).sum();
    assert!(abs_len > 4096, "the absolute paths alone exceed a page");
    let cwd = std::env::current_dir().unwrap();
    overlay::mount_legacy(&sp, &target).unwrap();
    assert_eq!(std::env::current_dir().unwrap(), cwd);
    assert_eq!(std::fs::read_dir(target.join("l")).unwrap().count(), 50);
    overlay::unmount(&target).unwrap();
    let (sp, target) = spec(120, "legacy120");
    let err = overlay::mount_legacy(&sp, &target).unwrap_err();
    assert!(err.to_string().contains("do not fit"), "{err}");
}

#[test]
fn cli_bundle_runs_with_runc() {
    let s = Scratch::new();
    busybox_layout(&s.join("bb"), "1");
    let st = s.join("store");
    let dir = s.join("bundle");
    run(common::berth_image()
        .arg("--store")
        .arg(&st)
        .arg("bundle")
        .arg(format!("oci:{}:1", s.join("bb").display()))
        .arg(&dir)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "echo hello from $(cat /etc/hostname 2>/dev/null || hostname)",
        ]));
    let id = format!("berth-image-test-{}", std::process::id());
    let out = run(Command::new("runc")
        .arg("--root")
        .arg(s.join("runc"))
        .args(["run", "--bundle"])
        .arg(&dir)
        .arg(&id));
    assert_eq!(out.trim(), "hello from berth");
    run(common::berth_image().arg("unbundle").arg(&dir));
    assert!(!dir.exists());
}

fn recorded_image(s: &Scratch) -> (ImageConfig, std::path::PathBuf) {
    let root = s.join("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), PASSWD).unwrap();
    std::fs::write(root.join("etc/group"), GROUP).unwrap();
    let cfg: ImageConfig = serde_json::from_value(serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {
            "User": "app",
            "Entrypoint": ["/bin/echo"],
            "Cmd": ["default"],
            "Env": ["FOO=bar"],
            "WorkingDir": "/srv",
            "Labels": {"com.example.team": "storage"},
            "ExposedPorts": {"80/tcp": {}},
            "StopSignal": "SIGQUIT"
        },
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .unwrap();
    (cfg, root)
}

/// The config.json generated for an image, recorded before the runtime
/// defaults moved to a shared crate: the docker-style defaults (capabilities,
/// masked paths, mounts, namespaces on a host that is not cgroup v2 alone)
/// stay byte for byte the same.
#[test]
fn generated_config_matches_the_recorded_file() {
    let s = Scratch::new();
    let (cfg, root) = recorded_image(&s);
    let got = runtime_config_on(&cfg, &root, None, false).unwrap();
    let got = serde_json::to_string_pretty(&got).unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config-from-image.json");
    assert_eq!(got, std::fs::read_to_string(&fixture).unwrap());
}

/// docker and podman give a container its own cgroup namespace on a host
/// that is cgroup v2 alone (`--cgroupns private`), and share the host's on a
/// v1 or hybrid host.
#[test]
fn cgroup_namespace_only_on_a_cgroup_v2_host() {
    let s = Scratch::new();
    let (cfg, root) = recorded_image(&s);
    let types = |cgroup_namespace| -> Vec<String> {
        let spec = runtime_config_on(&cfg, &root, None, cgroup_namespace).unwrap();
        berth_image::config_gen::check(&spec).unwrap();
        spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(types(false), ["pid", "network", "ipc", "uts", "mount"]);
    assert_eq!(
        types(true),
        ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    );
}
