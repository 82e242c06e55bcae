//! Runtime `config.json` generation from an image configuration, following the image-spec
//! conversion rules, on top of the defaults `runc spec` gives.

use crate::error::{invalid, Error, IoContext, Result};
use crate::image::ImageConfig;
use berth_spec_defaults::{Defaults, ENGINE_EXTRA_MASKED_PATHS, RUNC_CAPABILITY_SETS};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

pub use berth_spec_defaults::DEFAULT_PATH;

/// The runtime-spec version of the generated configuration.
pub const OCI_VERSION: &str = "1.2.0";

/// Capabilities a container gets by default (the set containerd and Docker grant).
pub const DEFAULT_CAPS: &[&str] = berth_spec_defaults::ENGINE_CAPABILITIES;

/// The defaults docker and podman start a container from, on top of
/// `runc spec`'s: no terminal, a writable root, their default capabilities,
/// the RAPL energy counters (`/sys/devices/virtual/powercap`) masked too, and
/// a cgroup namespace exactly where the host is cgroup v2 alone (their
/// `--cgroupns` default: `private` on v2, `host` on v1 and hybrid hosts).
pub fn engine_defaults(cgroup_namespace: bool) -> Defaults<'static> {
    Defaults {
        hostname: "berth",
        terminal: false,
        readonly_root: false,
        capabilities: DEFAULT_CAPS,
        capability_sets: RUNC_CAPABILITY_SETS,
        cgroup_namespace,
        extra_masked_paths: ENGINE_EXTRA_MASKED_PATHS,
        ..Defaults::runc(OCI_VERSION)
    }
}

/// Whether containers on this host get a cgroup namespace by default (the
/// host is cgroup v2 alone).
pub fn host_wants_cgroup_namespace() -> bool {
    berth_cgroups::detect().ok() == Some(berth_cgroups::Mode::Unified)
}

/// The resolved identity of the container process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<String>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Read a file of the image root, resolving symlinks as if `rootfs` were `/`.
fn read_in_root(rootfs: &Path, path: &str) -> Result<Option<String>> {
    let root = rustix::fs::open(
        rootfs,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", rootfs.display()))?;
    match rustix::fs::openat2(
        &root,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => {
            let mut s = String::new();
            std::fs::File::from(fd)
                .take(16 << 20)
                .read_to_string(&mut s)
                .ctx(|| format!("read /{path} of the image"))?;
            Ok(Some(s))
        }
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e).ctx(|| format!("open /{path} of the image")),
    }
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 6 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].into(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].into(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].into(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolve the image `User` (`user`, `uid`, `user:group`, `uid:gid`, ...) with the image's
/// /etc/passwd and /etc/group.
pub fn resolve_user(user: &str, rootfs: &Path) -> Result<ResolvedUser> {
    let passwd = parse_passwd(&read_in_root(rootfs, "etc/passwd")?.unwrap_or_default());
    let groups = parse_group(&read_in_root(rootfs, "etc/group")?.unwrap_or_default());
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = if user_part.is_empty() {
        passwd.iter().find(|p| p.uid == 0)
    } else if let Ok(uid) = user_part.parse::<u32>() {
        passwd.iter().find(|p| p.uid == uid)
    } else {
        Some(passwd.iter().find(|p| p.name == user_part).ok_or_else(|| {
            invalid(format!(
                "user {user_part:?} not found in the image's /etc/passwd"
            ))
        })?)
    };
    let uid = match (user_part.parse::<u32>(), entry) {
        (Ok(uid), _) => uid,
        (Err(_), Some(e)) => e.uid,
        (Err(_), None) => 0,
    };
    let gid = match group_part {
        Some(g) if !g.is_empty() => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                groups
                    .iter()
                    .find(|e| e.name == g)
                    .ok_or_else(|| {
                        invalid(format!("group {g:?} not found in the image's /etc/group"))
                    })?
                    .gid
            }
        },
        _ => entry.map(|e| e.gid).unwrap_or(0),
    };
    let mut additional_gids = Vec::new();
    if let (Some(e), None) = (entry, group_part) {
        for g in &groups {
            if g.members.contains(&e.name) && g.gid != gid && !additional_gids.contains(&g.gid) {
                additional_gids.push(g.gid);
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: entry.map(|e| e.home.clone()),
    })
}

/// The process arguments: Entrypoint + (args if given, else Cmd).
pub fn process_args(config: &ImageConfig, args: Option<&[String]>) -> Result<Vec<String>> {
    let mut out: Vec<String> = config.config.entrypoint.clone().unwrap_or_default();
    match args {
        Some(a) if !a.is_empty() => out.extend(a.iter().cloned()),
        _ => out.extend(config.config.cmd.clone().unwrap_or_default()),
    }
    if out.is_empty() {
        return Err(invalid(
            "the image has no Entrypoint or Cmd; give the command after --",
        ));
    }
    Ok(out)
}

/// Annotations derived from the image config (labels and `org.opencontainers.image.*`).
pub fn annotations(config: &ImageConfig) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    let c = &config.config;
    if let Some(labels) = &c.labels {
        a.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            a.insert(format!("org.opencontainers.image.{k}"), v);
        }
    };
    let keys = |m: &Option<BTreeMap<String, Value>>| {
        m.as_ref()
            .map(|m| m.keys().cloned().collect::<Vec<_>>().join(","))
    };
    put("os", Some(config.os.clone()));
    put("architecture", Some(config.architecture.clone()));
    put("variant", config.variant.clone());
    put("author", config.author.clone());
    put("created", config.created.clone());
    put("stopSignal", c.stop_signal.clone());
    put("exposedPorts", keys(&c.exposed_ports));
    put("volumes", keys(&c.volumes));
    a
}

/// Build the runtime configuration for an image whose root filesystem is at `rootfs`,
/// with a cgroup namespace where this host's containers get one.
pub fn runtime_config(
    config: &ImageConfig,
    rootfs: &Path,
    args: Option<&[String]>,
) -> Result<Value> {
    runtime_config_on(config, rootfs, args, host_wants_cgroup_namespace())
}

/// [`runtime_config`] with the cgroup namespace choice made by the caller.
pub fn runtime_config_on(
    config: &ImageConfig,
    rootfs: &Path,
    args: Option<&[String]>,
    cgroup_namespace: bool,
) -> Result<Value> {
    let args = process_args(config, args)?;
    let user = resolve_user(config.config.user.as_deref().unwrap_or(""), rootfs)?;
    let mut env: Vec<String> = config.config.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.into());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home.as_deref().unwrap_or("/")));
    }
    let cwd = config
        .config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(invalid(format!("image WorkingDir {cwd:?} is not absolute")));
    }
    let mut user_json = json!({"uid": user.uid, "gid": user.gid});
    if !user.additional_gids.is_empty() {
        user_json["additionalGids"] = json!(user.additional_gids);
    }
    let mut spec = engine_defaults(cgroup_namespace).build();
    let process = &mut spec["process"];
    process["user"] = user_json;
    process["args"] = json!(args);
    process["env"] = json!(env);
    process["cwd"] = json!(cwd);
    spec["annotations"] = json!(annotations(config));
    Ok(spec)
}

/// Make sure the generated JSON is a valid runtime spec.
pub fn check(config: &Value) -> Result<()> {
    serde_json::from_value::<oci_spec::runtime::Spec>(config.clone())
        .map(|_| ())
        .map_err(|source| Error::Json {
            path: "generated config.json".into(),
            source,
        })
}
