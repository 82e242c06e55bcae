//! `runc spec --rootless`: the default configuration made runnable by an
//! unprivileged user (runc's `specconv.ToRootless`).

use serde_json::{json, Value};

/// What runc's `spec --rootless` changes: no network namespace, a user
/// namespace mapping the caller's `uid` and `gid` to 0, /sys bind-mounted
/// read-only instead of a new sysfs, no `uid=`/`gid=` mount options (those
/// ids are not mapped) and no `linux.resources`.
///
/// `spec` is a configuration from [`crate::Defaults::build`] (an object with
/// `linux.namespaces` and `mounts`); parts it lacks are left alone.
pub fn to_rootless(spec: &mut Value, uid: u32, gid: u32) {
    if let Some(linux) = spec.get_mut("linux").and_then(Value::as_object_mut) {
        linux.remove("resources");
        let mut namespaces: Vec<Value> = linux
            .get("namespaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
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
    }
    let mounts = spec.get_mut("mounts").and_then(Value::as_array_mut);
    for m in mounts.into_iter().flatten() {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
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
