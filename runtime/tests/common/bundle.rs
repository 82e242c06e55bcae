//! Bundles: a busybox rootfs and a `berth spec` config edited as JSON.

use super::*;

/// A config.json being edited, plus the bundle directory it belongs to.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    /// A bundle at `dir`: rootfs with /bin/busybox and its applets, the config
    /// from `berth spec`, edited: no terminal, writable root, the test's tag in
    /// process.env, `host` bind-mounted read-write at /host.
    pub fn create(dir: &Path, host: &Path, tag: &str) -> Bundle {
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("copy /bin/busybox (install busybox-static)");
        for applet in busybox_applets() {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
        for d in ["proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        let out = Command::new(berth_bin())
            .args(["spec", "--bundle"])
            .arg(dir)
            .output()
            .expect("run berth spec");
        assert!(
            out.status.success(),
            "berth spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let mut config: Value = serde_json::from_str(&text).unwrap();
        config["process"]["terminal"] = json!(false);
        config["root"]["readonly"] = json!(false);
        config["process"]["args"] = json!(["true"]);
        config["process"]["env"] = json!(["PATH=/bin", format!("{TAG_VAR}={tag}")]);
        config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/host", "type": "bind", "source": host, "options": ["rbind", "rw"]}));
        let b = Bundle {
            dir: dir.to_path_buf(),
            config,
        };
        b.save();
        b
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Bundle {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// process.args = `sh -c script`.
    pub fn sh(&mut self, script: &str) -> &mut Bundle {
        self.args(&["sh", "-c", script])
    }

    /// Set a value by JSON pointer, creating missing objects on the way.
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Bundle {
        let mut cur = &mut self.config;
        let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                cur[*p] = value;
                break;
            }
            if cur.get(*p).is_none() || cur[*p].is_null() {
                cur[*p] = json!({});
            }
            cur = &mut cur[*p];
        }
        self
    }

    /// Drop the `typ` namespace ("pid", "network", ...) from linux.namespaces:
    /// the container then shares the host's.
    pub fn without_namespace(&mut self, typ: &str) -> &mut Bundle {
        if let Some(ns) = self.config["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != typ);
        }
        self
    }

    /// Drop the mount at `destination` from the config (e.g. "/dev": the
    /// rootfs's own directory is then used as it is).
    pub fn without_mount(&mut self, destination: &str) -> &mut Bundle {
        if let Some(m) = self.config["mounts"].as_array_mut() {
            m.retain(|m| m["destination"] != destination);
        }
        self
    }

    pub fn add_mount(&mut self, m: Value) -> &mut Bundle {
        self.config["mounts"].as_array_mut().unwrap().push(m);
        self
    }

    /// Write config.json.
    pub fn save(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }
}

fn busybox_applets() -> Vec<String> {
    let out = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty() && !l.contains('/'))
        .collect()
}
