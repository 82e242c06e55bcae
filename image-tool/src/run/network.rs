//! A container's network at create and at each start: its namespace in the
//! config, its /etc/hosts, /etc/hostname and /etc/resolv.conf (files of the
//! container directory, bind-mounted), and the CNI attachment of a bridge
//! container for the time it runs.

use std::fs;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::{container_dir, ContainerRecord, Net};
use crate::net::{self, hosts, AttachRequest, Attached};
use crate::store::Store;

const FILES: &[(&str, &str)] = &[
    ("hosts", "/etc/hosts"),
    ("hostname", "/etc/hostname"),
    ("resolv.conf", "/etc/resolv.conf"),
];

fn set_netns(cfg: &mut Value, path: Option<String>) {
    let Some(ns) = cfg["linux"]["namespaces"].as_array_mut() else {
        return;
    };
    ns.retain(|n| n["type"] != "network");
    match path {
        Some(p) => ns.push(json!({"type": "network", "path": p})),
        None => ns.push(json!({"type": "network"})),
    }
}

/// At create: the network namespace and the bind mounts of the network files.
pub(super) fn prepare_config(store: &Store, cfg: &mut Value, rec: &ContainerRecord) -> Result<()> {
    let cdir = container_dir(store, &rec.id);
    match &rec.net {
        Net::Bridge => set_netns(
            cfg,
            Some(net::netns_path(store, &rec.id).display().to_string()),
        ),
        Net::None | Net::Container(_) => set_netns(cfg, None),
        Net::Host => {
            if let Some(ns) = cfg["linux"]["namespaces"].as_array_mut() {
                ns.retain(|n| n["type"] != "network");
            }
        }
    }
    let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = match rec.net {
        Net::Host => resolv,
        _ => hosts::resolv_conf_for_container(&resolv),
    };
    let hostname = cfg["hostname"]
        .as_str()
        .unwrap_or(&rec.hostname)
        .to_string();
    let hosts_text = match rec.net {
        Net::Host => fs::read_to_string("/etc/hosts").unwrap_or_default(),
        _ => hosts::render_loopback(&rec.hostname, &rec.name),
    };
    for (file, text) in [
        ("hosts", hosts_text),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ] {
        let p = cdir.join(file);
        fs::write(&p, text).with_context(|| format!("write {}", p.display()))?;
    }
    if let Some(list) = cfg["mounts"].as_array_mut() {
        for (file, dest) in FILES {
            if list.iter().any(|m| m["destination"] == *dest) {
                continue;
            }
            list.push(json!({"destination": dest, "type": "bind",
                             "source": cdir.join(file), "options": ["rbind", "rprivate"]}));
        }
    }
    Ok(())
}

/// The pid of a running container's init, from the runtime.
fn init_pid(store: &Store, rec: &ContainerRecord) -> Result<i32> {
    let out = super::runtime_cmd(store, &rec.runtime)
        .args(["state", &rec.id])
        .output()
        .with_context(|| format!("run {}", rec.runtime.display()))?;
    let state: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    match (state["status"].as_str(), state["pid"].as_i64()) {
        (Some("running") | Some("paused") | Some("created"), Some(pid)) if pid > 0 => {
            Ok(pid as i32)
        }
        _ => bail!("container {} is not running", rec.name),
    }
}

/// At start: what the container's network needs while it runs. A bridge
/// container is attached (the returned [`Attached`] is detached when it
/// stops); `container:NAME` is pointed at that container's namespace.
pub(super) fn setup(store: &Store, rec: &ContainerRecord) -> Result<Option<Attached>> {
    let cdir = container_dir(store, &rec.id);
    match &rec.net {
        Net::Bridge => {
            let network = rec.network.clone().unwrap_or_default();
            let req = AttachRequest {
                id: rec.id.clone(),
                name: rec.name.clone(),
                hostname: rec.hostname.clone(),
                network,
                ports: rec.ports.clone(),
                hosts_file: Some(cdir.join("hosts")),
            };
            Ok(Some(net::attach(store, &req)?))
        }
        Net::None => {
            hosts::write_in_place(
                &cdir.join("hosts"),
                &hosts::render_loopback(&rec.hostname, &rec.name),
            )?;
            Ok(None)
        }
        Net::Host => Ok(None),
        Net::Container(other) => {
            let target =
                super::load(store, other).with_context(|| format!("--net container:{other}"))?;
            let pid =
                init_pid(store, &target).with_context(|| format!("--net container:{other}"))?;
            let tdir = container_dir(store, &target.id);
            let cfg_path = cdir.join("bundle/config.json");
            let mut cfg: Value = serde_json::from_slice(
                &fs::read(&cfg_path).with_context(|| format!("read {}", cfg_path.display()))?,
            )?;
            set_netns(&mut cfg, Some(format!("/proc/{pid}/ns/net")));
            // It shares the other container's view of names, as docker does.
            if let Some(list) = cfg["mounts"].as_array_mut() {
                for m in list.iter_mut() {
                    for file in ["hosts", "resolv.conf"] {
                        if m["destination"] == format!("/etc/{file}") {
                            m["source"] = json!(tdir.join(file));
                        }
                    }
                }
            }
            fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)
                .with_context(|| format!("write {}", cfg_path.display()))?;
            Ok(None)
        }
    }
}
