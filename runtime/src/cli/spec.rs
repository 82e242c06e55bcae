//! `berth spec`: write a default config.json, as `runc spec` does.

use std::path::Path;

use serde_json::{json, Value};

pub fn default_spec(rootless: bool) -> Value {
    // As runc: a cgroup namespace only where the host is cgroup v2 alone
    // (runc's own tests add one on v1 hosts, and a duplicate is an error).
    let cgroup_namespace = berth_cgroups::detect().ok() == Some(berth_cgroups::Mode::Unified);
    let rootless = rootless.then(|| {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    });
    spec_for(cgroup_namespace, rootless)
}

/// The default spec for a host with (or without) cgroup v2 alone, made
/// rootless for the given host uid and gid.
fn spec_for(cgroup_namespace: bool, rootless: Option<(u32, u32)>) -> Value {
    let mut s = json!({
        "ociVersion": berth_runtime::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if cgroup_namespace {
        s["linux"]["namespaces"]
            .as_array_mut()
            .expect("array")
            .push(json!({"type": "cgroup"}));
    }
    if let Some((uid, gid)) = rootless {
        to_rootless(&mut s, uid, gid);
    }
    s
}

/// What runc's `spec --rootless` changes (specconv.ToRootless): no network
/// namespace, a user namespace mapping the caller's uid and gid to 0, /sys
/// bind-mounted read-only instead of a new sysfs, no `uid=`/`gid=` mount
/// options (those ids are not mapped) and no `linux.resources`.
fn to_rootless(s: &mut Value, uid: u32, gid: u32) {
    let linux = s["linux"].as_object_mut().expect("object");
    linux.remove("resources");
    let mut namespaces: Vec<Value> = linux["namespaces"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|n| n["type"] != "network" && n["type"] != "user")
        .cloned()
        .collect();
    namespaces.push(json!({"type": "user"}));
    linux.insert("namespaces".into(), Value::Array(namespaces));
    linux.insert(
        "uidMappings".into(),
        json!([{"containerID": 0, "hostID": uid, "size": 1}]),
    );
    linux.insert(
        "gidMappings".into(),
        json!([{"containerID": 0, "hostID": gid, "size": 1}]),
    );
    for m in s["mounts"].as_array_mut().expect("array") {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            continue;
        }
        if let Some(opts) = m.get_mut("options").and_then(Value::as_array_mut) {
            opts.retain(|o| {
                let o = o.as_str().unwrap_or("");
                !o.starts_with("uid=") && !o.starts_with("gid=")
            });
        }
    }
}

pub fn run(bundle: &Path, rootless: bool) -> anyhow::Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        anyhow::bail!("File {} exists. Remove it first", path.display());
    }
    let text = serde_json::to_string_pretty(&default_spec(rootless))?;
    std::fs::write(&path, text + "\n")
        .map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_spec_parses_and_validates_version() {
        for rootless in [false, true] {
            let text = super::default_spec(rootless).to_string();
            berth_runtime::spec::parse(&text).unwrap();
        }
    }

    /// The output `berth spec` wrote before the defaults moved to a shared
    /// crate (recorded from the binary on a v1 and a v2 host, as root and
    /// as uid 1000): it stays byte for byte the same.
    #[test]
    fn output_matches_the_recorded_files() {
        let cases = [
            (false, None, "cgroup-v1.json"),
            (true, None, "cgroup-v2.json"),
            (false, Some((1000, 1000)), "rootless-cgroup-v1-uid1000.json"),
            (true, Some((0, 0)), "rootless-cgroup-v2-uid0.json"),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec");
        for (cgroup_namespace, rootless, file) in cases {
            let want = std::fs::read_to_string(dir.join(file)).unwrap();
            let got = super::spec_for(cgroup_namespace, rootless);
            let got = serde_json::to_string_pretty(&got).unwrap() + "\n";
            assert_eq!(got, want, "{file}");
        }
    }

    #[test]
    fn rootless_follows_runc() {
        let mut s = super::default_spec(false);
        super::to_rootless(&mut s, 1234, 5678);
        assert!(s["linux"].get("resources").is_none());
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(!ns.contains(&"network"));
        assert_eq!(ns.last(), Some(&"user"));
        assert_eq!(ns.iter().filter(|t| **t == "user").count(), 1);
        assert_eq!(s["linux"]["uidMappings"][0]["hostID"], 1234);
        assert_eq!(s["linux"]["gidMappings"][0]["hostID"], 5678);
        assert_eq!(s["linux"]["gidMappings"][0]["containerID"], 0);
        let mounts = s["mounts"].as_array().unwrap();
        let sys = mounts.iter().find(|m| m["destination"] == "/sys").unwrap();
        assert_eq!(sys["type"], "none");
        assert_eq!(sys["options"][0], "rbind");
        assert!(sys["options"].as_array().unwrap().contains(&"ro".into()));
        for m in mounts {
            for o in m["options"].as_array().into_iter().flatten() {
                let o = o.as_str().unwrap();
                assert!(!o.starts_with("gid=") && !o.starts_with("uid="), "{o}");
            }
        }
    }
}
