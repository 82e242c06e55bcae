use super::*;

fn parses(spec: &Value) {
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone())
        .unwrap_or_else(|e| panic!("not a runtime spec: {e}\n{spec:#}"));
}

fn namespace_types(spec: &Value) -> Vec<&str> {
    spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect()
}

#[test]
fn runc_defaults_are_runcs_example() {
    let s = Defaults::runc("1.2.0").build();
    parses(&s);
    assert_eq!(s["ociVersion"], "1.2.0");
    assert_eq!(s["hostname"], "runc");
    assert_eq!(s["process"]["terminal"], true);
    assert_eq!(s["process"]["args"], json!(["sh"]));
    assert_eq!(s["root"], json!({"path": "rootfs", "readonly": true}));
    let caps = s["process"]["capabilities"].as_object().unwrap();
    let mut sets: Vec<&str> = caps.keys().map(String::as_str).collect();
    sets.sort_unstable();
    assert_eq!(sets, ["bounding", "effective", "permitted"]);
    for set in caps.values() {
        assert_eq!(set, &json!(RUNC_CAPABILITIES));
    }
    assert_eq!(namespace_types(&s), NAMESPACES);
    assert_eq!(s["linux"]["maskedPaths"], json!(MASKED_PATHS));
    assert_eq!(s["linux"]["readonlyPaths"], json!(READONLY_PATHS));
    assert_eq!(
        s["linux"]["resources"]["devices"],
        json!([{"allow": false, "access": "rwm"}])
    );
    let dests: Vec<&str> = s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup"
        ]
    );
}

#[test]
fn knobs_change_only_their_field() {
    let base = Defaults::runc("1.2.0").build();
    let s = Defaults {
        hostname: "h",
        terminal: false,
        readonly_root: false,
        capabilities: ENGINE_CAPABILITIES,
        capability_sets: &[CapabilitySet::Inheritable, CapabilitySet::Ambient],
        cgroup_namespace: true,
        extra_masked_paths: ENGINE_EXTRA_MASKED_PATHS,
        ..Defaults::runc("1.0.2")
    }
    .build();
    parses(&s);
    assert_eq!(s["ociVersion"], "1.0.2");
    assert_eq!(s["hostname"], "h");
    assert_eq!(s["process"]["terminal"], false);
    assert_eq!(s["root"]["readonly"], false);
    assert_eq!(
        s["process"]["capabilities"],
        json!({"inheritable": ENGINE_CAPABILITIES, "ambient": ENGINE_CAPABILITIES})
    );
    assert_eq!(namespace_types(&s).last(), Some(&"cgroup"));
    assert_eq!(namespace_types(&s).len(), NAMESPACES.len() + 1);
    let masked = s["linux"]["maskedPaths"].as_array().unwrap();
    assert_eq!(masked.len(), MASKED_PATHS.len() + 1);
    assert_eq!(masked.last().unwrap(), "/sys/devices/virtual/powercap");
    assert_eq!(s["mounts"], base["mounts"]);
    assert_eq!(s["process"]["rlimits"], base["process"]["rlimits"]);
    assert_eq!(s["linux"]["resources"], base["linux"]["resources"]);
    assert_eq!(s["linux"]["readonlyPaths"], base["linux"]["readonlyPaths"]);
}

#[test]
fn rootless_follows_runc() {
    for cgroup_namespace in [false, true] {
        let mut s = Defaults {
            cgroup_namespace,
            ..Defaults::runc("1.2.0")
        }
        .build();
        to_rootless(&mut s, 1234, 5678);
        parses(&s);
        assert!(s["linux"].get("resources").is_none());
        let ns = namespace_types(&s);
        assert!(!ns.contains(&"network"));
        assert_eq!(ns.last(), Some(&"user"));
        assert_eq!(ns.iter().filter(|t| **t == "user").count(), 1);
        assert_eq!(ns.contains(&"cgroup"), cgroup_namespace);
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

#[test]
fn rootless_leaves_a_spec_without_linux_or_mounts_alone() {
    let mut s = json!({"ociVersion": "1.2.0"});
    to_rootless(&mut s, 1, 1);
    assert_eq!(s, json!({"ociVersion": "1.2.0"}));
}
