//! config-linux.md: default devices, linux.devices, /dev symlinks, masked and readonly
//! paths, sysctl, rootfs propagation, cgroup membership.

use crate::suite::{Case, CaseResult, Ctx};
use serde_json::json;
use std::fs;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            section: "config-linux.md#default-devices",
            desc: "null zero full random urandom tty ptmx",
            run: default_devices,
        },
        Case {
            section: "config-linux.md#default-devices",
            desc: "without a /dev tmpfs, the defaults replace what the rootfs has at their paths",
            run: default_devices_without_dev_tmpfs,
        },
        Case {
            section: "config-linux.md#devices",
            desc: "char, block and fifo devices with mode/uid/gid",
            run: linux_devices,
        },
        Case {
            section: "config-linux.md#devices",
            desc: "a listed device is created but not allowed by a deny-all device cgroup",
            run: listed_device_stays_denied,
        },
        Case {
            section: "runtime-linux.md#dev-symbolic-links",
            desc: "/dev/fd, stdin, stdout, stderr",
            run: dev_symlinks,
        },
        Case {
            section: "config-linux.md#masked-paths",
            desc: "default masked paths",
            run: masked_default,
        },
        Case {
            section: "config-linux.md#masked-paths",
            desc: "masked file and directory in the rootfs",
            run: masked_custom,
        },
        Case {
            section: "config-linux.md#readonly-paths",
            desc: "default readonly paths",
            run: readonly_default,
        },
        Case {
            section: "config-linux.md#readonly-paths",
            desc: "readonly file and directory in the rootfs",
            run: readonly_custom,
        },
        Case {
            section: "config-linux.md#sysctl",
            desc: "sysctl values are applied",
            run: sysctl,
        },
        Case {
            section: "config-linux.md#rootfs-mount-propagation",
            desc: "rootfsPropagation private",
            run: |c| propagation(c, "private"),
        },
        Case {
            section: "config-linux.md#rootfs-mount-propagation",
            desc: "rootfsPropagation slave",
            run: |c| propagation(c, "slave"),
        },
        Case {
            section: "config-linux.md#rootfs-mount-propagation",
            desc: "rootfsPropagation shared",
            run: |c| propagation(c, "shared"),
        },
        Case {
            section: "config-linux.md#rootfs-mount-propagation",
            desc: "rootfsPropagation unbindable",
            run: |c| propagation(c, "unbindable"),
        },
        Case {
            section: "config-linux.md#rootfs-mount-propagation",
            desc: "rootfsPropagation rshared",
            run: |c| propagation(c, "rshared"),
        },
        Case {
            section: "config-linux.md#rootfs-mount-propagation",
            desc: "rootfsPropagation rslave",
            run: |c| propagation(c, "rslave"),
        },
        Case {
            section: "config-linux.md#cgroups-path",
            desc: "process is in linux.cgroupsPath",
            run: cgroups_path,
        },
    ]
}

fn default_devices(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    ctx.run_checks(&mut b, &id, &["default-devices"])
}

fn default_devices_without_dev_tmpfs(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    if let Some(m) = b.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/dev");
    }
    let dev = b.rootfs().join("dev");
    fs::create_dir_all(&dev).map_err(|e| e.to_string())?;
    for name in ["null", "zero", "tty"] {
        fs::write(dev.join(name), "not a device").map_err(|e| e.to_string())?;
    }
    ctx.run_checks(&mut b, &id, &["default-devices"])
}

fn linux_devices(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["linux"]["devices"] = json!([
        { "path": "/dev/conf-char", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 1000, "gid": 1001 },
        { "path": "/dev/conf-block", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 0, "gid": 6 },
        { "path": "/dev/conf-fifo", "type": "p", "fileMode": 0o620, "uid": 1002, "gid": 1003 },
    ]);
    ctx.run_checks(&mut b, &id, &["linux-devices"])
}

/// linux.devices makes nodes; linux.resources.devices decides access. With
/// CAP_SYSLOG only the device cgroup can refuse /dev/kmsg.
fn listed_device_stays_denied(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["linux"]["devices"] = json!([
        { "path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644, "uid": 0, "gid": 0 },
    ]);
    b.config["linux"]["resources"]["devices"] = json!([{ "allow": false, "access": "rwm" }]);
    for set in ["bounding", "effective", "permitted"] {
        if let Some(caps) = b.config["process"]["capabilities"][set].as_array_mut() {
            caps.push(json!("CAP_SYSLOG"));
        }
    }
    ctx.run_checks(&mut b, &id, &["open-denied:/dev/kmsg"])
}

fn dev_symlinks(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    ctx.run_checks(&mut b, &id, &["dev-symlinks"])
}

fn masked_default(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    ctx.run_checks(&mut b, &id, &["masked-paths"])
}

fn masked_custom(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let root = b.rootfs();
    fs::create_dir_all(root.join("secret-dir")).map_err(|e| e.to_string())?;
    fs::write(root.join("secret-dir/key"), "secret").map_err(|e| e.to_string())?;
    fs::write(root.join("secret-file"), "secret").map_err(|e| e.to_string())?;
    b.config["linux"]["maskedPaths"] = json!(["/secret-dir", "/secret-file", "/does-not-exist"]);
    ctx.run_checks(&mut b, &id, &["masked-paths", "absent:/secret-dir/key"])
}

fn readonly_default(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    ctx.run_checks(&mut b, &id, &["readonly-paths"])
}

fn readonly_custom(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let root = b.rootfs();
    fs::create_dir_all(root.join("ro-dir")).map_err(|e| e.to_string())?;
    fs::write(root.join("ro-dir/data"), "data").map_err(|e| e.to_string())?;
    fs::write(root.join("ro-file"), "data").map_err(|e| e.to_string())?;
    b.config["root"]["readonly"] = json!(false);
    b.config["linux"]["readonlyPaths"] = json!(["/ro-dir", "/ro-file"]);
    ctx.run_checks(&mut b, &id, &["readonly-paths", "erofs:/ro-dir/new-file"])
}

fn sysctl(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["linux"]["sysctl"] =
        json!({ "net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1" });
    ctx.run_checks(&mut b, &id, &["sysctl"])
}

fn propagation(ctx: &Ctx, mode: &str) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    b.config["linux"]["rootfsPropagation"] = json!(mode);
    ctx.run_checks(&mut b, &id, &["rootfs-propagation"])
}

/// Removes the (empty) parent cgroup the case made the runtime create, in every hierarchy.
struct CgroupParent(String);

impl Drop for CgroupParent {
    fn drop(&mut self) {
        let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        for h in hierarchies.flatten() {
            let _ = fs::remove_dir(h.path().join(&self.0));
        }
    }
}

fn cgroups_path(ctx: &Ctx) -> CaseResult {
    let (mut b, id) = ctx.bundle()?;
    let parent = CgroupParent(format!("berth-conformance-{}", ctx.tag));
    b.config["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", parent.0));
    let result = ctx.run_checks(&mut b, &id, &["cgroups"]);
    // The container guard inside run_checks has deleted the container by now.
    drop(parent);
    result
}
