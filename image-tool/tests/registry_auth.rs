//! Registry authentication: htpasswd basic auth and bearer tokens (a JWT token server
//! signing with a self-signed certificate that docker-registry trusts).

mod common;

use common::registry::{start_registry, TokenServer};
use common::{busybox_layout, Scratch};
use std::path::Path;
use std::process::Command;

fn cli(store: &Path, args: &[&str], creds: Option<&str>) -> std::process::Output {
    let mut cmd = common::berth_image();
    cmd.arg("--store").arg(store).args(args);
    cmd.env_remove("BERTH_REGISTRY_CREDS");
    if let Some(c) = creds {
        cmd.env("BERTH_REGISTRY_CREDS", c);
    }
    cmd.output().unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_store_empty(st: &Path, ctx: &str) {
    for sub in ["blobs/sha256", "layers", "images", "tmp"] {
        let n = std::fs::read_dir(st.join(sub))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(n, 0, "{ctx}: {sub} has {n} entries");
    }
}

/// Exercise pushes and pulls against a registry that wants `user:pw`.
fn push_and_pull_with_auth(s: &Scratch, addr: &str) {
    let st = s.join("store");
    busybox_layout(&s.join("bb"), "1");
    ok(cli(
        &st,
        &[
            "pull",
            &format!("oci:{}:1", s.join("bb").display()),
            "--name",
            "bb:1",
        ],
        None,
    ));
    let store = berth_image::Store::open(&st).unwrap();
    let rec = store.find_image("bb:1").unwrap();
    let target = format!("docker://{addr}/team/bb:1");

    // No credentials, wrong ones: clear errors.
    let e = err(cli(&st, &["push", "bb:1", &target, "--insecure"], None));
    assert!(e.contains("--creds"), "{e}");
    let e = err(cli(
        &st,
        &[
            "push",
            "bb:1",
            &target,
            "--insecure",
            "--creds",
            "alice:wrong",
        ],
        None,
    ));
    assert!(e.contains("credentials rejected"), "{e}");

    // Right credentials (flag or environment).
    let out = ok(cli(
        &st,
        &[
            "push",
            "bb:1",
            &target,
            "--insecure",
            "--creds",
            "alice:s3cret",
        ],
        None,
    ));
    assert!(out.contains("2 blobs uploaded"), "{out}");
    let st2 = s.join("store2");
    ok(cli(
        &st2,
        &["pull", "--insecure", &target, "--name", "back"],
        Some("alice:s3cret"),
    ));
    let back = berth_image::Store::open(&st2)
        .unwrap()
        .find_image("back")
        .unwrap();
    assert_eq!(back.manifest_digest, rec.manifest_digest);
    assert_eq!(back.layers, rec.layers);

    // Failed pulls leave nothing in the store.
    for (creds, want) in [
        (Some("alice:wrong"), "credentials rejected"),
        (Some("mallory:s3cret"), "credentials rejected"),
        (None, "--creds"),
    ] {
        let st3 = s.join("store3");
        let e = err(cli(&st3, &["pull", "--insecure", &target], creds));
        assert!(e.contains(want), "{creds:?}: {e}");
        assert!(e.contains("401"), "{creds:?}: {e}");
        assert_store_empty(&st3, &format!("pull with {creds:?}"));
        std::fs::remove_dir_all(&st3).unwrap();
    }
}

#[test]
fn basic_auth_with_htpasswd() {
    let s = Scratch::new();
    let htpasswd = s.join("htpasswd");
    let out = match Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
    {
        Ok(o) if o.status.success() => o.stdout,
        _ => {
            berth_testsupport::skip(
                "htpasswd",
                "htpasswd (apache2-utils) is not installed; run scripts/install-deps.sh",
            );
            return;
        }
    };
    std::fs::write(&htpasswd, out).unwrap();
    let reg = start_registry(
        &s,
        "registry",
        &format!(
            "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
            htpasswd.display()
        ),
    );
    push_and_pull_with_auth(&s, &reg.addr);
}

#[test]
fn bearer_token_auth() {
    let s = Scratch::new();
    let tokens = TokenServer::start(&s.path, "alice", "s3cret");
    let reg = start_registry(&s, "registry", &tokens.registry_config());
    push_and_pull_with_auth(&s, &reg.addr);
    let requests = tokens.requests.lock().unwrap().clone();
    let params: Vec<String> = requests
        .iter()
        .flat_map(|q| q.split('&').map(common::registry::url_decode))
        .collect();
    let has = |p: &str| params.iter().any(|x| x == p);
    assert!(has("service=berth-test-registry"), "{requests:?}");
    // The registry's challenge lists the actions in no fixed order.
    assert!(
        has("scope=repository:team/bb:pull,push") || has("scope=repository:team/bb:push,pull"),
        "push scope: {requests:?}"
    );
    assert!(
        has("scope=repository:team/bb:pull"),
        "pull scope: {requests:?}"
    );
}
