//! The calling side of the CNI protocol (CNI spec 1.0): each plugin of a
//! network configuration list is executed with the operation in `CNI_*`
//! environment variables and its configuration as JSON on stdin; ADD runs the
//! plugins in order, each given the previous one's result as `prevResult`, DEL
//! runs them in reverse with the cached result of the ADD.
//!
//! Why not a crate: `rust-cni` (the only calling-side crate) reads its
//! configurations from /etc/cni/net.d and its plugins from /opt/cni/bin, keeps no
//! result cache (so DEL cannot pass `prevResult`, which the firewall plugin
//! needs) and has no runtime configuration (`portMappings`); the protocol
//! itself is an exec with a JSON document, done here in a few lines.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::NetError;

/// The CNI spec version of the configurations this tool writes.
pub const CNI_VERSION: &str = "1.0.0";

/// Where Debian's containernetworking-plugins installs the plugins.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/cni";

/// A network configuration list (the `.conflist` format).
#[derive(Debug, Clone)]
pub struct ConfList {
    pub value: Value,
}

/// What the plugins are executed for.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// `runtimeConfig` offered to plugins that declare the capability
    /// (`portMappings`).
    pub runtime_config: Value,
}

impl ConfList {
    pub fn name(&self) -> &str {
        self.value["name"].as_str().unwrap_or("")
    }

    fn plugins(&self) -> Vec<Value> {
        self.value["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The configuration handed to one plugin: its own object plus `name`,
    /// `cniVersion`, `prevResult` and the `runtimeConfig` keys it declared as
    /// capabilities.
    fn plugin_config(&self, plugin: &Value, prev: Option<&Value>, inv: &Invocation) -> Value {
        let mut conf = plugin.clone();
        conf["name"] = json!(self.name());
        conf["cniVersion"] = self.value["cniVersion"].clone();
        if let Some(caps) = plugin["capabilities"].as_object() {
            let mut rc = serde_json::Map::new();
            for (cap, on) in caps {
                if on.as_bool() == Some(true) {
                    if let Some(v) = inv.runtime_config.get(cap) {
                        rc.insert(cap.clone(), v.clone());
                    }
                }
            }
            if !rc.is_empty() {
                conf["runtimeConfig"] = Value::Object(rc);
            }
        }
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        conf
    }

    /// Every plugin of the list is in `dir` (checked before anything is made).
    pub fn check_plugins(&self, dir: &Path) -> Result<(), NetError> {
        for p in self.plugins() {
            plugin_path(dir, p["type"].as_str().unwrap_or(""))?;
        }
        Ok(())
    }

    /// ADD through the whole list; returns the final result.
    pub fn add(&self, dir: &Path, inv: &Invocation) -> Result<Value, NetError> {
        let mut prev: Option<Value> = None;
        for p in self.plugins() {
            let conf = self.plugin_config(&p, prev.as_ref(), inv);
            let out = exec(dir, &p, "ADD", &conf, inv)?;
            prev = Some(out);
        }
        prev.ok_or_else(|| NetError::Config(format!("network {} has no plugins", self.name())))
    }

    /// DEL through the list in reverse, with the ADD's result. Every plugin
    /// is run even when one fails (each removes what it made); the first
    /// error is returned.
    pub fn del(&self, dir: &Path, prev: Option<&Value>, inv: &Invocation) -> Result<(), NetError> {
        let mut first = None;
        for p in self.plugins().iter().rev() {
            let conf = self.plugin_config(p, prev, inv);
            if let Err(e) = exec(dir, p, "DEL", &conf, inv) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

fn plugin_path(dir: &Path, typ: &str) -> Result<PathBuf, NetError> {
    if typ.is_empty() || typ.contains('/') {
        return Err(NetError::Config(format!("invalid CNI plugin type {typ:?}")));
    }
    let p = dir.join(typ);
    if !p.is_file() {
        return Err(NetError::Config(format!(
            "CNI plugin {} not found (Debian package containernetworking-plugins)",
            p.display()
        )));
    }
    Ok(p)
}

/// Execute one plugin; its stdout is the result (ADD) or empty (DEL).
fn exec(
    dir: &Path,
    plugin: &Value,
    command: &str,
    conf: &Value,
    inv: &Invocation,
) -> Result<Value, NetError> {
    let typ = plugin["type"].as_str().unwrap_or("");
    let path = plugin_path(dir, typ)?;
    let mut child = Command::new(&path)
        .env_clear()
        // The plugins run iptables and other host tools.
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_PATH", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError::Io(format!("run {}", path.display()), e))?;
    let input = serde_json::to_vec(conf).expect("JSON serializes");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::Io(format!("wait for {}", path.display()), e))?;
    let parsed: Option<Value> = serde_json::from_slice(&out.stdout).ok();
    if !out.status.success() {
        // A plugin error is a JSON object with code, msg and details.
        let msg = parsed
            .as_ref()
            .and_then(|v| {
                let m = v["msg"].as_str()?;
                Some(match v["details"].as_str() {
                    Some(d) if !d.is_empty() => format!("{m}: {d}"),
                    _ => m.to_string(),
                })
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        return Err(NetError::Plugin {
            plugin: typ.to_string(),
            command: command.to_string(),
            msg,
        });
    }
    if command == "DEL" {
        return Ok(Value::Null);
    }
    parsed.ok_or_else(|| NetError::Plugin {
        plugin: typ.to_string(),
        command: command.to_string(),
        msg: format!(
            "result is not JSON: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        ),
    })
}
