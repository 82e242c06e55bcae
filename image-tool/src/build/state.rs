//! A stage's state while it is built: its layers, its image configuration (the
//! OCI/Docker config JSON that becomes the image's), the ARGs it declared, and
//! the settings instructions change (ENV, LABEL, CMD, ...).

use super::words::Vars;
use crate::store::LayerRecord;
use serde_json::{json, Map, Value};

pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

#[derive(Debug, Clone)]
pub struct State {
    pub layers: Vec<LayerRecord>,
    /// The whole image config document (architecture, os, config, rootfs, history).
    pub config: Value,
    /// ARGs declared in this stage that have a value, in order.
    pub args: Vec<(String, String)>,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

impl State {
    /// An empty filesystem (`FROM scratch`).
    pub fn scratch() -> State {
        let p = crate::image::Platform::host();
        State {
            layers: Vec::new(),
            config: json!({
                "architecture": p.architecture,
                "os": p.os,
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }),
            args: Vec::new(),
            cmd_set: false,
        }
    }

    /// The state of an image: its layers and config.
    pub fn image(layers: Vec<LayerRecord>, mut config: Value) -> State {
        if !config["config"].is_object() {
            config["config"] = json!({});
        }
        if !config["history"].is_array() {
            config["history"] = json!([]);
        }
        State {
            layers,
            config,
            args: Vec::new(),
            cmd_set: false,
        }
    }

    /// The `config` section (Env, Cmd, ...).
    pub fn settings(&mut self) -> &mut Map<String, Value> {
        self.config["config"]
            .as_object_mut()
            .expect("config section is an object")
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.config["config"].get(key).filter(|v| !v.is_null())
    }

    fn strings(&self, key: &str) -> Vec<String> {
        self.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn env(&self) -> Vec<String> {
        self.strings("Env")
    }

    pub fn shell(&self) -> Vec<String> {
        let s = self.strings("Shell");
        if s.is_empty() {
            DEFAULT_SHELL.iter().map(|s| s.to_string()).collect()
        } else {
            s
        }
    }

    pub fn workdir(&self) -> String {
        self.get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    pub fn user(&self) -> String {
        self.get("User")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    /// Set (or replace) an environment variable.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        let item = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
        {
            Some(e) => *e = item,
            None => env.push(item),
        }
        self.settings().insert("Env".into(), json!(env));
    }

    /// Insert into a map-valued setting (Labels, ExposedPorts, Volumes).
    pub fn insert_map(&mut self, key: &str, k: &str, v: Value) {
        let s = self.settings();
        if !s.get(key).is_some_and(Value::is_object) {
            s.insert(key.into(), json!({}));
        }
        s[key].as_object_mut().expect("object").insert(k.into(), v);
    }

    /// Variables for word expansion: declared ARGs, overridden by ENV.
    pub fn vars(&self) -> Vars {
        let mut v: Vars = self.args.iter().cloned().collect();
        for e in self.env() {
            if let Some((k, val)) = e.split_once('=') {
                v.insert(k.into(), val.into());
            }
        }
        v
    }

    /// The environment of a RUN: ENV plus declared ARGs that ENV does not set.
    pub fn run_env(&self) -> Vec<String> {
        let mut env = self.env();
        for (k, v) in &self.args {
            if !env
                .iter()
                .any(|e| e.split_once('=').map(|(n, _)| n) == Some(k))
            {
                env.push(format!("{k}={v}"));
            }
        }
        env
    }

    /// Record a history entry for an instruction.
    pub fn history(&mut self, created: &str, created_by: &str, empty_layer: bool) {
        let mut h =
            json!({"created": created, "created_by": created_by, "comment": "berth-image build"});
        if empty_layer {
            h["empty_layer"] = json!(true);
        }
        if let Some(a) = self.config["history"].as_array_mut() {
            a.push(h);
        }
    }

    pub fn push_layer(&mut self, layer: LayerRecord) {
        self.layers.push(layer);
        self.sync_rootfs();
    }

    /// `rootfs.diff_ids` from the layers.
    pub fn sync_rootfs(&mut self) {
        let ids: Vec<String> = self.layers.iter().map(|l| l.diff_id.to_string()).collect();
        self.config["rootfs"] = json!({"type": "layers", "diff_ids": ids});
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_replaces_and_args_yield_to_env() {
        let mut s = State::scratch();
        s.set_env("A", "1");
        s.set_env("B", "2");
        s.set_env("A", "3");
        assert_eq!(s.env(), vec!["A=3", "B=2"]);
        s.args = vec![("A".into(), "arg".into()), ("C".into(), "c".into())];
        assert_eq!(s.vars()["A"], "3");
        assert_eq!(s.vars()["C"], "c");
        assert_eq!(s.run_env(), vec!["A=3", "B=2", "C=c"]);
    }

    #[test]
    fn defaults() {
        let s = State::scratch();
        assert_eq!(s.shell(), vec!["/bin/sh", "-c"]);
        assert_eq!(s.workdir(), "/");
        assert_eq!(s.user(), "");
    }
}
