//! config-linux.md#namespaces: new namespaces of each type, joining by path, UTS names,
//! user namespaces with id mappings.

use crate::suite::{skip, Case, CaseResult, Ctx};
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            section: "config-linux.md#namespaces",
            desc: "new pid namespace (process is pid 1)",
            run: |c| only(c, "pid"),
        },
        Case {
            section: "config-linux.md#namespaces",
            desc: "new network namespace",
            run: |c| only(c, "network"),
        },
        Case {
            section: "config-linux.md#namespaces",
            desc: "new ipc namespace",
            run: |c| only(c, "ipc"),
        },
        Case {
            section: "config-linux.md#namespaces",
            desc: "new uts namespace",
            run: |c| only(c, "uts"),
        },
        Case {
            section: "config-linux.md#namespaces",
            desc: "new mount namespace, others inherited",
            run: |c| only(c, "mount"),
        },
        Case {
            section: "config-linux.md#namespaces",
            desc: "new cgroup namespace",
            run: |c| only(c, "cgroup"),
        },
        Case {
            section: "config-linux.md#namespaces",
            desc: "no mount namespace: the runtime's is kept, chrooted into the rootfs, no mount left after delete",
            run: no_mount_namespace,
        },
        Case {
            section: "config-linux.md#namespaces",
            desc: "join a network namespace by path",
            run: join_netns,
        },
        Case {
            section: "config.md#hostname",
            desc: "hostname in a new uts namespace",
            run: hostname,
        },
        Case {
            section: "config.md#domainname",
            desc: "domainname in a new uts namespace",
            run: domainname,
        },
        Case {
            section: "config-linux.md#user-namespace-mappings",
            desc: "user namespace with uid/gid mappings",
            run: userns,
        },
    ]
}

/// Runs the namespace check with a new mount namespace plus `extra` (the other types inherited).
fn only(ctx: &Ctx, extra: &str) -> CaseResult {
    if !Path::new("/proc/self/ns").join(ns_file(extra)).exists() {
        return skip(format!("kernel has no {extra} namespaces"));
    }
    let (mut b, id) = ctx.bundle()?;
    let types: Vec<&str> = if extra == "mount" {
        vec!["mount"]
    } else {
        vec!["mount", extra]
    };
    b.set_namespaces(&types);
    if extra != "network" {
        // Without a private network namespace sysfs cannot be mounted fresh: bind the host's.
        for m in b.config["mounts"]
            .as_array_mut()
            .expect("mounts")
            .iter_mut()
        {
            if m["destination"] == "/sys" {
                *m = json!({ "destination": "/sys", "type": "bind", "source": "/sys",
                             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] });
            }
        }
    }
    ctx.run_checks(&mut b, &id, &["namespaces"])
}

fn no_mount_namespace(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.set_namespaces(&["pid", "network", "ipc", "uts"]);
    b.config["root"]["readonly"] = json!(false);
    if let Some(l) = b.config["linux"].as_object_mut() {
        l.remove("rootfsPropagation");
    }
    let result = ctx.run_checks(
        &mut b,
        &id,
        &["namespaces", "file:/etc/group=root:x:0:\nuser:x:1000:"],
    );
    let rootfs = b.rootfs().display().to_string();
    let left: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.starts_with(&format!("{rootfs}/")))
        .map(str::to_string)
        .collect();
    result?;
    crate::suite::ensure(
        left.is_empty(),
        format!("mounts left in the runtime's namespace: {left:?}"),
    )
}

fn ns_file(spec_type: &str) -> &str {
    match spec_type {
        "network" => "net",
        "mount" => "mnt",
        other => other,
    }
}

/// A named network namespace made with `ip netns add`, deleted when dropped.
struct NetNs(String);

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .output();
    }
}

fn join_netns(ctx: &Ctx) -> CaseResult {
    let name = format!("{}-netns", ctx.tag);
    match Command::new("ip").args(["netns", "add", &name]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return skip(format!(
                "ip netns add failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return skip(format!("cannot run ip: {e}")),
    }
    let _ns = NetNs(name.clone());
    let path = format!("/run/netns/{name}");
    let inode = std::fs::metadata(&path)
        .map_err(|e| format!("stat {path}: {e}"))?
        .ino();
    let (mut b, id) = ctx.bundle()?;
    for ns in b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .iter_mut()
    {
        if ns["type"] == "network" {
            ns["path"] = json!(path);
        }
    }
    b.push_env(&format!("{}=net={inode}", crate::EXPECT_NS_ENV));
    ctx.run_checks(&mut b, &id, &["namespaces"])
}

fn hostname(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["hostname"] = json!("conformance-host");
    ctx.run_checks(&mut b, &id, &["hostname", "namespaces"])
}

fn domainname(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["domainname"] = json!("conformance.example");
    ctx.run_checks(&mut b, &id, &["domainname"])
}

fn userns(ctx: &Ctx) -> CaseResult {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        return skip("user namespaces are disabled (user.max_user_namespaces=0)");
    }
    let (mut b, id) = ctx.bundle()?;
    let namespaces = ["pid", "network", "ipc", "uts", "mount", "user"];
    b.set_namespaces(&namespaces);
    b.config["hostname"] = json!("conformance");
    b.config["linux"]["uidMappings"] =
        json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    b.config["linux"]["gidMappings"] =
        json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
    // A user namespace cannot mount a v1 cgroup hierarchy; the rest of the defaults stay.
    b.config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .retain(|m| m["destination"] != "/sys/fs/cgroup");
    ctx.run_checks(&mut b, &id, &["id-mappings", "namespaces", "user"])
}
