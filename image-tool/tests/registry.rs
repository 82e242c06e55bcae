//! Pulling from a registry (Debian's docker-registry on 127.0.0.1, anonymous access).

mod common;

use common::{busybox_layout, run, Scratch};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A registry process killed on drop.
struct RegistryProcess {
    child: Child,
    addr: String,
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(s: &Scratch) -> RegistryProcess {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = s.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            s.join("registry-data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry is installed (apt-get install docker-registry)");
    let reg = RegistryProcess { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&reg.addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "registry did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    reg
}

#[test]
fn pull_from_a_local_registry_by_tag_and_digest() {
    let s = Scratch::new();
    busybox_layout(&s.join("bb"), "1");
    let reg = start_registry(&s);
    run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:1", s.join("bb").display()),
        &format!("docker://{}/test/bb:1", reg.addr),
    ]));
    let st = s.join("store");
    let pull = |r: &str| {
        run(common::berth_image()
            .arg("--store")
            .arg(&st)
            .args(["pull", "--insecure", r]))
    };
    let out = pull(&format!("docker://{}/test/bb:1", reg.addr));
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
    let by_digest = pull(&format!(
        "docker://{}/test/bb@{}",
        reg.addr, rec.manifest_digest
    ));
    assert!(
        by_digest.contains(&rec.manifest_digest.to_string()),
        "{by_digest}"
    );
    // An unknown tag is a clear error.
    let out = common::berth_image()
        .arg("--store")
        .arg(&st)
        .args([
            "pull",
            "--insecure",
            &format!("docker://{}/test/bb:nope", reg.addr),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
