//! Builds OCI bundles: a busybox rootfs with the `runtimetest` checker and a config.json.

use berth_spec_defaults::{CapabilitySet, Defaults};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Directories every rootfs gets (mount points and working directories used by cases).
const ROOTFS_DIRS: &[&str] = &[
    "bin", "proc", "sys", "dev", "tmp", "etc", "hostdir", "mnt", "work", "var",
];

/// A rootfs built once per run; bundles hard-link its files.
pub struct Template {
    pub dir: PathBuf,
}

impl Template {
    pub fn build(dir: PathBuf, busybox: &Path, runtimetest: &Path) -> Result<Self, String> {
        for d in ROOTFS_DIRS {
            fs::create_dir_all(dir.join(d))
                .map_err(|e| format!("create {}: {e}", dir.join(d).display()))?;
        }
        fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))
            .map_err(|e| e.to_string())?;
        copy_exec(busybox, &dir.join("bin/busybox"))?;
        copy_exec(runtimetest, &dir.join("runtimetest"))?;
        let list = Command::new(busybox)
            .arg("--list")
            .output()
            .map_err(|e| format!("run {} --list: {e}", busybox.display()))?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                symlink("busybox", dir.join("bin").join(applet))
                    .map_err(|e| format!("symlink {applet}: {e}"))?;
            }
        }
        fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n",
        )
        .map_err(|e| e.to_string())?;
        fs::write(dir.join("etc/group"), "root:x:0:\nuser:x:1000:\n").map_err(|e| e.to_string())?;
        Ok(Template { dir })
    }

    /// Recreates the template under `dest`, hard-linking regular files.
    pub fn instantiate(&self, dest: &Path) -> Result<(), String> {
        link_tree(&self.dir, dest).map_err(|e| format!("populate {}: {e}", dest.display()))
    }
}

fn copy_exec(src: &Path, dst: &Path) -> Result<(), String> {
    fs::copy(src, dst).map_err(|e| format!("copy {} to {}: {e}", src.display(), dst.display()))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())
}

fn link_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dst)?;
    fs::set_permissions(dst, fs::metadata(src)?.permissions())?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        let to = dst.join(entry.file_name());
        if ft.is_dir() {
            link_tree(&entry.path(), &to)?;
        } else if ft.is_symlink() {
            symlink(fs::read_link(entry.path())?, &to)?;
        } else {
            fs::hard_link(entry.path(), &to)?;
        }
    }
    Ok(())
}

/// One bundle directory: `config.json`, `rootfs/`, and `host/` (bind-mounted at /hostdir
/// so the runner can see what the container and hooks did).
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    pub fn new(template: &Template, dir: PathBuf, host_ns: &str) -> Result<Self, String> {
        template.instantiate(&dir.join("rootfs"))?;
        fs::create_dir_all(dir.join("host")).map_err(|e| e.to_string())?;
        fs::set_permissions(dir.join("host"), fs::Permissions::from_mode(0o777))
            .map_err(|e| e.to_string())?;
        let config = default_config(&dir.join("host"), host_ns);
        Ok(Bundle { dir, config })
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The host side of the container's /hostdir.
    pub fn host(&self) -> PathBuf {
        self.dir.join("host")
    }

    /// Writes config.json into the bundle and a copy at /config.json in the rootfs.
    pub fn write(&self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&self.config).map_err(|e| e.to_string())?;
        self.write_raw(&text)
    }

    pub fn write_raw(&self, text: &str) -> Result<(), String> {
        fs::write(self.dir.join("config.json"), text)
            .map_err(|e| format!("write config.json: {e}"))?;
        let copy = self.rootfs().join("config.json");
        if self.rootfs().is_dir() {
            fs::write(&copy, text).map_err(|e| format!("write {}: {e}", copy.display()))?;
        }
        Ok(())
    }

    pub fn set_args(&mut self, args: &[&str]) {
        self.config["process"]["args"] = json!(args);
    }

    /// Replaces the namespace list with the given types (each new).
    pub fn set_namespaces(&mut self, types: &[&str]) {
        self.config["linux"]["namespaces"] =
            Value::Array(types.iter().map(|t| json!({ "type": t })).collect());
        if !types.contains(&"uts") {
            let obj = self.config.as_object_mut().expect("config is an object");
            obj.remove("hostname");
            obj.remove("domainname");
        }
    }

    pub fn push_mount(&mut self, mount: Value) {
        self.config["mounts"]
            .as_array_mut()
            .expect("mounts is an array")
            .push(mount);
    }

    pub fn push_env(&mut self, entry: &str) {
        self.config["process"]["env"]
            .as_array_mut()
            .expect("env is an array")
            .push(json!(entry));
    }

    /// What the container wrote to stdout (bundle/stdout.log).
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

/// The `runc spec` defaults, with what every case relies on: no terminal,
/// the `runtimetest` checker as the process, the runner's namespace ids in
/// its environment, and the bundle's host/ directory bind-mounted at
/// /hostdir.
fn default_config(host: &Path, host_ns: &str) -> Value {
    let mut config = Defaults {
        hostname: "conformance",
        terminal: false,
        // The oldest 1.0 release, so that any runtime accepts the bundle.
        // No cgroup namespace on any host, so every case starts from the
        // same namespaces; cases that need one ask for it.
        cgroup_namespace: false,
        // Every set filled, so the checker sees each one applied.
        capability_sets: &[
            CapabilitySet::Bounding,
            CapabilitySet::Effective,
            CapabilitySet::Permitted,
            CapabilitySet::Inheritable,
            CapabilitySet::Ambient,
        ],
        ..Defaults::runc("1.0.2")
    }
    .build();
    config["process"]["args"] = json!(["/runtimetest", "all"]);
    config["process"]["env"] = json!([
        berth_spec_defaults::DEFAULT_PATH,
        format!("{}={host_ns}", crate::HOST_NS_ENV),
    ]);
    config["mounts"]
        .as_array_mut()
        .expect("the defaults have mounts")
        .push(json!({ "destination": "/hostdir", "type": "bind",
                      "source": host.display().to_string(), "options": ["rbind", "rw"] }));
    config
}

#[cfg(test)]
mod tests {
    /// The base config.json, recorded before the runtime defaults moved to a
    /// shared crate: every case starts from exactly the same bundle.
    #[test]
    fn base_config_matches_the_recorded_file() {
        let got = super::default_config(std::path::Path::new("/bundle/host"), "host-ns");
        let got = serde_json::to_string_pretty(&got).unwrap();
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/base-config.json");
        assert_eq!(got, std::fs::read_to_string(&fixture).unwrap());
    }
}
