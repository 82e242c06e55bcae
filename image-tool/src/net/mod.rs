//! Container networking: each container gets its own network namespace,
//! attached to a bridge of this tool's with an address from the tool's subnet,
//! outbound NAT and published ports, all made by Debian's CNI plugins
//! (`bridge` + `host-local`, `portmap`, `firewall`) executed with the CNI
//! protocol ([`cni`]).
//!
//! The small API: [`attach`] pins a new network namespace, runs CNI ADD and
//! returns an [`Attached`] (holding the attachment's lock for as long as its
//! owner lives); [`Attached::detach`] runs CNI DEL and unpins it. Everything
//! lives under the content store:
//!
//! ```text
//! STORE/net/attachments/<id>.json  the attachment: network, netns, CNI result, ports
//! STORE/net/attachments/<id>.lock  flock held by the process that owns it
//! STORE/net/netns/<id>             the pinned network namespace
//! STORE/net/ipam/<network>/        host-local's address allocations
//! ```
//!
//! Running a bundle on the network (what `run` does, and what any other
//! container runner can do):
//!
//! ```text
//! let attached = net::attach(store, &AttachRequest { id, name, hostname,
//!     network: NetworkConfig::from_env()?, ports: vec![], hosts_file: None })?;
//! // config.json: {"type": "network", "path": attached.attachment.netns}
//! // ... run the container ...
//! attached.detach(store)?;
//! ```
//!
//! An attachment whose lock is free and whose namespace no process is in was
//! left by a crash: [`cleanup_stale`] (run before every new attachment) tears
//! it down, so no veth, iptables rule or address allocation outlives it.

pub mod cni;
pub mod hosts;
pub mod netns;
pub mod ports;

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use ports::{PortMapping, Protocol};

use crate::store::Store;

/// The name of the container's interface.
pub const IFNAME: &str = "eth0";

/// Production defaults (like docker's docker0 and 172.17.0.0/16).
pub const DEFAULT_NETWORK: &str = "berth";
pub const DEFAULT_BRIDGE: &str = "berth0";
pub const DEFAULT_SUBNET: &str = "10.77.0.0/16";

/// Environment variables overriding the defaults.
pub const ENV_NETWORK: &str = "BERTH_NETWORK";
pub const ENV_BRIDGE: &str = "BERTH_BRIDGE";
pub const ENV_SUBNET: &str = "BERTH_SUBNET";
pub const ENV_CNI_PATH: &str = "BERTH_CNI_PATH";

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("CNI plugin {plugin} ({command}): {msg}")]
    Plugin {
        plugin: String,
        command: String,
        msg: String,
    },
}

/// The network a container is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The CNI network name (also in the iptables comments the plugins write).
    pub name: String,
    /// The bridge device.
    pub bridge: String,
    /// IPv4 subnet in CIDR form; the first address is the bridge's (gateway).
    pub subnet: String,
    /// Directory of the CNI plugin executables.
    pub plugin_dir: PathBuf,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            name: DEFAULT_NETWORK.into(),
            bridge: DEFAULT_BRIDGE.into(),
            subnet: DEFAULT_SUBNET.into(),
            plugin_dir: cni::DEFAULT_PLUGIN_DIR.into(),
        }
    }
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (8..=30).contains(&len).then_some((ip, len))
}

impl NetworkConfig {
    /// The defaults with the `BERTH_NETWORK`, `BERTH_BRIDGE`, `BERTH_SUBNET`
    /// and `BERTH_CNI_PATH` overrides, checked.
    pub fn from_env() -> Result<NetworkConfig, NetError> {
        let mut c = NetworkConfig::default();
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = var(ENV_NETWORK) {
            c.name = v;
        }
        if let Some(v) = var(ENV_BRIDGE) {
            c.bridge = v;
        }
        if let Some(v) = var(ENV_SUBNET) {
            c.subnet = v;
        }
        if let Some(v) = var(ENV_CNI_PATH) {
            c.plugin_dir = v.into();
        }
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), NetError> {
        let ok_name = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok_name {
            return Err(NetError::Config(format!(
                "network name {:?}: use up to 64 letters, digits, '_', '.', '-'",
                self.name
            )));
        }
        let ok_bridge = !self.bridge.is_empty()
            && self.bridge.len() <= 15
            && self
                .bridge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok_bridge {
            return Err(NetError::Config(format!(
                "bridge name {:?}: use up to 15 letters, digits, '_', '.', '-'",
                self.bridge
            )));
        }
        if parse_cidr(&self.subnet).is_none() {
            return Err(NetError::Config(format!(
                "subnet {:?}: expected an IPv4 CIDR such as 10.77.0.0/16 (prefix 8-30)",
                self.subnet
            )));
        }
        Ok(())
    }

    /// The network configuration list handed to the plugins.
    pub fn conflist(&self, store: &Store) -> cni::ConfList {
        cni::ConfList {
            value: json!({
                "cniVersion": cni::CNI_VERSION,
                "name": self.name,
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": self.bridge,
                        "isGateway": true,
                        "ipMasq": true,
                        "hairpinMode": true,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": self.subnet}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                            "dataDir": ipam_dir(store),
                        }
                    },
                    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
                    {"type": "firewall", "backend": "iptables"}
                ]
            }),
        }
    }
}

/// What [`attach`] is asked for.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    /// Unique id (the CNI container id; also names the netns pin).
    pub id: String,
    /// The name peers reach it by.
    pub name: String,
    pub hostname: String,
    pub network: NetworkConfig,
    pub ports: Vec<PortMapping>,
    /// A file kept up to date as the container's /etc/hosts.
    pub hosts_file: Option<PathBuf>,
}

/// An attachment's record (`STORE/net/attachments/<id>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub network: NetworkConfig,
    pub netns: PathBuf,
    pub ports: Vec<PortMapping>,
    pub hosts_file: Option<PathBuf>,
    /// The CNI ADD result (None until ADD succeeded).
    pub result: Option<Value>,
    pub ip: Option<String>,
    pub prefix_len: Option<u8>,
    pub gateway: Option<String>,
    pub mac: Option<String>,
}

impl Attachment {
    fn invocation(&self) -> cni::Invocation<'_> {
        let ports: Vec<Value> = self.ports.iter().map(PortMapping::cni).collect();
        // A pin that no longer holds a namespace (after a reboot) is given
        // to the plugins as no namespace at all: DEL then releases what
        // lives outside it (address, port mappings) instead of failing on
        // the path.
        let netns = if netns::identity(&self.netns).is_some() {
            self.netns.as_path()
        } else {
            Path::new("")
        };
        cni::Invocation {
            container_id: &self.id,
            netns,
            ifname: IFNAME,
            runtime_config: json!({"portMappings": ports}),
        }
    }

    /// Fill ip, gateway and mac from the CNI result.
    fn take_result(&mut self, result: Value) {
        let ifaces = result["interfaces"].as_array().cloned().unwrap_or_default();
        if let Some(ip) = result["ips"].as_array().and_then(|a| {
            a.iter()
                .find(|i| i["address"].as_str().is_some_and(|s| !s.contains(':')))
        }) {
            if let Some((addr, len)) = ip["address"].as_str().and_then(|s| s.split_once('/')) {
                self.ip = Some(addr.to_string());
                self.prefix_len = len.parse().ok();
            }
            self.gateway = ip["gateway"].as_str().map(String::from);
            if let Some(i) = ip["interface"].as_u64() {
                self.mac = ifaces
                    .get(i as usize)
                    .and_then(|f| f["mac"].as_str())
                    .map(String::from);
            }
        }
        self.result = Some(result);
    }
}

fn net_dir(store: &Store) -> PathBuf {
    store.root().join("net")
}

fn attachments_dir(store: &Store) -> PathBuf {
    net_dir(store).join("attachments")
}

/// host-local's `dataDir`: address allocations, one file per address.
pub fn ipam_dir(store: &Store) -> PathBuf {
    net_dir(store).join("ipam")
}

/// Where the network namespace of attachment `id` is pinned.
pub fn netns_path(store: &Store, id: &str) -> PathBuf {
    net_dir(store).join("netns").join(id)
}

fn record_path(store: &Store, id: &str) -> PathBuf {
    attachments_dir(store).join(format!("{id}.json"))
}

fn lock_path(store: &Store, id: &str) -> PathBuf {
    attachments_dir(store).join(format!("{id}.lock"))
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> NetError {
    move |e| NetError::Io(what, e)
}

fn save(store: &Store, a: &Attachment) -> Result<(), NetError> {
    let p = record_path(store, &a.id);
    let tmp = p.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(a).expect("JSON serializes"))
        .map_err(io(format!("write {}", tmp.display())))?;
    fs::rename(&tmp, &p).map_err(io(format!("rename {}", tmp.display())))
}

fn load(path: &Path) -> Option<Attachment> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// The attachment of `id`, if there is one.
pub fn find(store: &Store, id: &str) -> Option<Attachment> {
    load(&record_path(store, id))
}

/// Every attachment recorded in the store.
pub fn list(store: &Store) -> Vec<Attachment> {
    let Ok(rd) = fs::read_dir(attachments_dir(store)) else {
        return Vec::new();
    };
    let mut out: Vec<Attachment> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| load(&e.path()))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Lock `path` (created if missing); `wait` false: `None` when another holds it.
fn lock(path: &Path, wait: bool) -> Result<Option<File>, NetError> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(format!("open {}", path.display())))?;
    let op = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&f, op) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
        Err(e) => return Err(NetError::Io(format!("lock {}", path.display()), e.into())),
    }
    // The file may have been unlinked (and replaced) by its previous owner
    // between open and flock: the lock only counts on the current file.
    let same = fs::metadata(path)
        .map(|m| {
            let held = f.metadata().ok();
            held.is_some_and(|h| h.ino() == m.ino() && h.dev() == m.dev())
        })
        .unwrap_or(false);
    if !same {
        return lock(path, wait);
    }
    Ok(Some(f))
}

/// An attachment owned by this process; the lock is held until
/// [`Attached::detach`] (or until the process ends, which makes it stale).
#[derive(Debug)]
pub struct Attached {
    pub attachment: Attachment,
    lock: File,
}

/// Attach a new network namespace to the network (CNI ADD). On error nothing
/// is left.
pub fn attach(store: &Store, req: &AttachRequest) -> Result<Attached, NetError> {
    req.network.validate()?;
    for d in [
        attachments_dir(store),
        net_dir(store).join("netns"),
        ipam_dir(store),
    ] {
        fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())))?;
    }
    let _ = cleanup_stale(store);
    check_port_conflicts(store, req)?;
    req.network
        .conflist(store)
        .check_plugins(&req.network.plugin_dir)?;
    cni::ConfList {
        value: json!({"plugins": [{"type": "loopback"}]}),
    }
    .check_plugins(&req.network.plugin_dir)?;
    let lock = lock(&lock_path(store, &req.id), false)?
        .ok_or_else(|| NetError::Config(format!("{} is already attached to a network", req.id)))?;
    let mut a = Attachment {
        id: req.id.clone(),
        name: req.name.clone(),
        hostname: req.hostname.clone(),
        network: req.network.clone(),
        netns: netns_path(store, &req.id),
        ports: req.ports.clone(),
        hosts_file: req.hosts_file.clone(),
        result: None,
        ip: None,
        prefix_len: None,
        gateway: None,
        mac: None,
    };
    if a.netns.exists() {
        // Left by an owner that died before its record was written.
        teardown(store, &a)?;
    }
    // The record comes first: whatever ADD makes, a later cleanup finds it.
    save(store, &a)?;
    let added = netns::create(&a.netns)
        .and_then(|()| loopback_up(&a))
        .and_then(|()| {
            a.network
                .conflist(store)
                .add(&a.network.plugin_dir, &a.invocation())
        });
    match added {
        Ok(result) => {
            a.take_result(result);
            save(store, &a)?;
        }
        Err(e) => {
            let _ = teardown(store, &a);
            let _ = fs::remove_file(lock_path(store, &a.id));
            return Err(e);
        }
    }
    let attached = Attached {
        attachment: a,
        lock,
    };
    refresh_hosts(store, &attached.attachment.network.name)?;
    Ok(attached)
}

/// Bring `lo` up in the new namespace, with the CNI `loopback` plugin as
/// CRI runtimes do (the bridge plugin only adds eth0; a namespace made with
/// unshare starts with `lo` down). Nothing to undo: `lo` goes with the namespace.
fn loopback_up(a: &Attachment) -> Result<(), NetError> {
    let lo = cni::ConfList {
        value: json!({
            "cniVersion": cni::CNI_VERSION,
            "name": "lo",
            "plugins": [{"type": "loopback"}],
        }),
    };
    let inv = cni::Invocation {
        container_id: &a.id,
        netns: &a.netns,
        ifname: "lo",
        runtime_config: Value::Null,
    };
    lo.add(&a.network.plugin_dir, &inv).map(|_| ())
}

fn check_port_conflicts(store: &Store, req: &AttachRequest) -> Result<(), NetError> {
    for other in list(store) {
        for p in &req.ports {
            if let Some(o) = other.ports.iter().find(|o| {
                o.host_port == p.host_port
                    && o.protocol == p.protocol
                    && (o.host_ip.is_none() || p.host_ip.is_none() || o.host_ip == p.host_ip)
            }) {
                return Err(NetError::Config(format!(
                    "port {}/{} is already published by container {} ({o})",
                    p.host_port, p.protocol, other.name
                )));
            }
        }
    }
    Ok(())
}

/// CNI DEL (with the cached ADD result), unpin the namespace, drop the record.
fn teardown(store: &Store, a: &Attachment) -> Result<(), NetError> {
    let mut first = None;
    if a.netns.exists() || a.result.is_some() {
        let conflist = a.network.conflist(store);
        if let Err(e) = conflist.del(&a.network.plugin_dir, a.result.as_ref(), &a.invocation()) {
            first.get_or_insert(e);
        }
    }
    if let Err(e) = netns::remove(&a.netns) {
        first.get_or_insert(e);
    }
    if first.is_none() {
        let _ = fs::remove_file(record_path(store, &a.id));
    }
    first.map_or(Ok(()), Err)
}

impl Attached {
    /// Tear the attachment down (CNI DEL, unpin) and release it.
    pub fn detach(self, store: &Store) -> Result<(), NetError> {
        let a = find(store, &self.attachment.id).unwrap_or(self.attachment.clone());
        teardown(store, &a)?;
        let _ = fs::remove_file(lock_path(store, &a.id));
        drop(self.lock);
        refresh_hosts(store, &a.network.name)
    }
}

/// Tear down attachments left by owners that are gone (lock free) and whose
/// namespace no process is in. Returns the ids cleaned up.
pub fn cleanup_stale(store: &Store) -> Result<Vec<String>, NetError> {
    let mut cleaned = Vec::new();
    let mut first = None;
    for a in list(store) {
        let Some(_held) = lock(&lock_path(store, &a.id), false)? else {
            continue;
        };
        // Re-read under the lock: the owner may have just removed it.
        let Some(a) = find(store, &a.id) else {
            continue;
        };
        if netns::in_use(&a.netns) {
            continue;
        }
        match teardown(store, &a) {
            Ok(()) => {
                let _ = fs::remove_file(lock_path(store, &a.id));
                cleaned.push(a.id.clone());
            }
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    let networks: std::collections::BTreeSet<String> =
        list(store).into_iter().map(|a| a.network.name).collect();
    for n in networks {
        let _ = refresh_hosts(store, &n);
    }
    match first {
        Some(e) => Err(e),
        None => Ok(cleaned),
    }
}

/// Tear down the attachment `id` whose owner is gone (`rm -f` of a container
/// whose supervisor crashed). An attachment still owned is left alone.
pub fn detach_stale(store: &Store, id: &str) -> Result<bool, NetError> {
    if find(store, id).is_none() {
        return Ok(false);
    }
    let Some(_held) = lock(&lock_path(store, id), false)? else {
        return Ok(false);
    };
    let Some(a) = find(store, id) else {
        return Ok(false);
    };
    teardown(store, &a)?;
    let _ = fs::remove_file(lock_path(store, id));
    refresh_hosts(store, &a.network.name)?;
    Ok(true)
}

/// Change the name an attachment is known by (and the peers' hosts files).
pub fn rename(store: &Store, id: &str, name: &str, hostname: &str) -> Result<(), NetError> {
    let _g = hosts_lock(store)?;
    if let Some(mut a) = find(store, id) {
        a.name = name.to_string();
        a.hostname = hostname.to_string();
        save(store, &a)?;
        let net = a.network.name.clone();
        drop(_g);
        refresh_hosts(store, &net)?;
    }
    Ok(())
}

fn hosts_lock(store: &Store) -> Result<File, NetError> {
    let dir = net_dir(store);
    fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    let p = dir.join("hosts.lock");
    let f = File::create(&p).map_err(io(format!("open {}", p.display())))?;
    rustix::fs::flock(&f, FlockOperation::LockExclusive)
        .map_err(|e| NetError::Io(format!("lock {}", p.display()), e.into()))?;
    Ok(f)
}

/// Rewrite the hosts file of every container attached to `network`.
pub fn refresh_hosts(store: &Store, network: &str) -> Result<(), NetError> {
    let _g = hosts_lock(store)?;
    let peers: Vec<Attachment> = list(store)
        .into_iter()
        .filter(|a| a.network.name == network && a.ip.is_some())
        .collect();
    for a in &peers {
        if let Some(path) = &a.hosts_file {
            if path.parent().is_some_and(Path::exists) {
                hosts::write_in_place(path, &hosts::render(a, &peers))?;
            }
        }
    }
    Ok(())
}
