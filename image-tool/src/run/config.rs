//! The edits `create` makes to the bundle's config.json for docker's run
//! flags: command, environment, user, working directory, mounts, resources,
//! capabilities, devices, read-only root, privileged mode, init.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde_json::{json, Value};

use super::{volumes, ContainerRecord, MountRecord, Net, RunOptions};
use crate::image::ImageConfig;
use crate::store::Store;

/// What `apply` settled that the record keeps.
pub(super) struct Applied {
    pub command: Vec<String>,
    pub stop_signal: String,
    pub labels: BTreeMap<String, String>,
    pub mounts: Vec<MountRecord>,
}

/// Where the init (`--init`) is mounted, as docker did: /dev is the
/// container's own tmpfs, so nothing is added to its writable layer.
pub(super) const INIT_PATH: &str = "/dev/init";

/// Environment variable naming the init binary for `--init`.
pub const ENV_INIT: &str = "BERTH_INIT";

/// Static inits from Debian packages, in order of preference.
const INIT_CANDIDATES: &[&str] = &[
    "/usr/bin/tini-static",
    "/usr/libexec/podman/catatonit",
    "/usr/bin/catatonit",
];

fn find_init() -> Result<PathBuf> {
    if let Ok(p) = std::env::var(ENV_INIT) {
        if Path::new(&p).is_file() {
            return Ok(p.into());
        }
        bail!("--init: {ENV_INIT}={p} is not a file");
    }
    INIT_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--init: no static init found (install Debian's tini, which ships /usr/bin/tini-static, or catatonit; or set {ENV_INIT})"
            )
        })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `capability` as the spec spells it (`net_admin` -> `CAP_NET_ADMIN`).
fn cap_name(c: &str) -> Result<String> {
    let up = c.to_ascii_uppercase();
    let name = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    match name.parse::<caps::Capability>() {
        Ok(_) => Ok(name),
        Err(_) => bail!("unknown capability {c:?}"),
    }
}

/// "All capabilities" (`--privileged`, `--cap-add ALL`): every one in this
/// process's bounding set, as docker grants the daemon's own (a capability
/// the runtime does not hold cannot be given; this host's root, for one,
/// lacks CAP_SYS_RESOURCE).
fn all_caps() -> Vec<String> {
    let bounding = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    let mut known: Vec<caps::Capability> = caps::all().into_iter().collect();
    known.sort_by_key(|c| c.index());
    known
        .into_iter()
        .filter(|c| bounding & c.bitmask() != 0)
        .map(|c| c.to_string())
        .collect()
}

fn capabilities(opts: &RunOptions) -> Result<Vec<String>> {
    if opts.privileged {
        return Ok(all_caps());
    }
    let mut caps: Vec<String> = crate::config_gen::DEFAULT_CAPS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let all = |v: &[String]| v.iter().any(|c| c.eq_ignore_ascii_case("all"));
    // docker: drops apply first, then adds (so `--cap-drop ALL --cap-add X`
    // leaves exactly X).
    if all(&opts.cap_drop) {
        caps.clear();
    }
    for c in opts
        .cap_drop
        .iter()
        .filter(|c| !c.eq_ignore_ascii_case("all"))
    {
        let n = cap_name(c).with_context(|| format!("--cap-drop {c}"))?;
        caps.retain(|x| *x != n);
    }
    if all(&opts.cap_add) {
        return Ok(all_caps());
    }
    for c in &opts.cap_add {
        let n = cap_name(c).with_context(|| format!("--cap-add {c}"))?;
        if !caps.contains(&n) {
            caps.push(n);
        }
    }
    Ok(caps)
}

/// docker's size syntax: a number with an optional b, k, m or g suffix.
pub(super) fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mul) = match t.chars().last() {
        Some('b') => (&t[..t.len() - 1], 1i64),
        Some('k') => (&t[..t.len() - 1], 1 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t.as_str(), 1),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)
        .ok_or_else(|| anyhow::anyhow!("invalid size {s:?} (e.g. 512m, 1g)"))?;
    Ok((n * mul as f64) as i64)
}

fn resources(cfg: &mut Value, opts: &RunOptions) -> Result<()> {
    let res = &mut cfg["linux"]["resources"];
    if let Some(m) = &opts.memory {
        let limit = parse_size(m).with_context(|| format!("--memory {m}"))?;
        if limit < 6 << 20 {
            bail!("--memory {m}: the minimum memory limit is 6m");
        }
        // docker's default when --memory-swap is not given: as much swap again.
        res["memory"] = json!({"limit": limit, "swap": limit * 2});
    }
    if let Some(c) = &opts.cpus {
        let n: f64 = c.parse().unwrap_or(-1.0);
        let host = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        if !(n >= 0.01 && n <= host) {
            bail!("--cpus {c}: range of CPUs is from 0.01 to {host}");
        }
        res["cpu"] = json!({"quota": (n * 100_000.0).round() as i64, "period": 100_000});
    }
    if let Some(p) = opts.pids_limit {
        // docker: 0 and -1 mean unlimited.
        if p > 0 {
            res["pids"] = json!({"limit": p});
        }
    }
    Ok(())
}

/// The process arguments: docker's rules for --entrypoint and the command.
fn command(image: &ImageConfig, opts: &RunOptions) -> Result<Vec<String>> {
    let (entry, cmd) = match &opts.entrypoint {
        // --entrypoint replaces the image's Entrypoint and drops its Cmd.
        Some(e) => (
            if e.is_empty() {
                vec![]
            } else {
                vec![e.clone()]
            },
            opts.args.clone(),
        ),
        None => (
            image.config.entrypoint.clone().unwrap_or_default(),
            if opts.args.is_empty() {
                image.config.cmd.clone().unwrap_or_default()
            } else {
                opts.args.clone()
            },
        ),
    };
    let mut args = entry;
    args.extend(cmd);
    if args.is_empty() {
        bail!("no command specified: the image has no Entrypoint or Cmd, give one after the image");
    }
    Ok(args)
}

fn set_env(env: &mut Vec<String>, kv: String) {
    let key = kv.split('=').next().unwrap_or("").to_string();
    env.retain(|e| e.split('=').next() != Some(key.as_str()));
    env.push(kv);
}

/// `KEY=VALUE` as is; a bare `KEY` takes this process's value (and is
/// skipped when it has none), as docker does.
fn env_entry(entry: &str, what: &str) -> Result<Option<String>> {
    let key = entry.split('=').next().unwrap_or("");
    if key.is_empty() || key.contains(char::is_whitespace) {
        bail!("{what}: invalid environment variable {entry:?}");
    }
    if entry.contains('=') {
        return Ok(Some(entry.to_string()));
    }
    Ok(std::env::var(key).ok().map(|v| format!("{key}={v}")))
}

fn environment(cfg: &mut Value, opts: &RunOptions) -> Result<()> {
    let mut env = strings(&cfg["process"]["env"]);
    for f in &opts.env_files {
        let text = fs::read_to_string(f).with_context(|| format!("--env-file {}", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let what = format!("--env-file {} line {}", f.display(), n + 1);
            if let Some(kv) = env_entry(line, &what)? {
                set_env(&mut env, kv);
            }
        }
    }
    for e in &opts.env {
        if let Some(kv) = env_entry(e, &format!("-e {e}"))? {
            set_env(&mut env, kv);
        }
    }
    cfg["process"]["env"] = json!(env);
    Ok(())
}

/// Create `path` (absolute, in the container) below `rootfs` as a directory,
/// resolving every existing component inside the root.
fn mkdir_in_root(rootfs: &Path, path: &str) -> Result<()> {
    let root = rustix::fs::open(rootfs, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .with_context(|| format!("open {}", rootfs.display()))?;
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let mut prefix = String::new();
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if comp == ".." {
            bail!("{path}: '..' is not allowed");
        }
        let parent = if prefix.is_empty() {
            ".".to_string()
        } else {
            prefix.clone()
        };
        prefix = format!("{prefix}/{comp}")
            .trim_start_matches('/')
            .to_string();
        let dir = OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rustix::fs::openat2(&root, &prefix, dir, Mode::empty(), how) {
            Ok(_) => continue,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e).with_context(|| format!("{path}: open /{prefix}")),
        }
        let p = rustix::fs::openat2(&root, &parent, dir, Mode::empty(), how)
            .with_context(|| format!("{path}: open /{parent}"))?;
        match rustix::fs::mkdirat(&p, comp, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("{path}: create /{prefix}")),
        }
    }
    Ok(())
}

fn check_destination(d: &str, what: &str) -> Result<()> {
    if !d.starts_with('/') || d.split('/').any(|c| c == "..") {
        bail!("{what}: the container path {d:?} must be absolute, without '..'");
    }
    if d == "/" {
        bail!("{what}: cannot mount over /");
    }
    Ok(())
}

/// `-v` values: `HOST:CTR[:OPTS]` (HOST absolute) or `NAME:CTR[:OPTS]`; an
/// empty named volume is filled from the image first.
fn volume_mounts(store: &Store, rootfs: &Path, opts: &RunOptions) -> Result<Vec<MountRecord>> {
    let mut out = Vec::new();
    for v in &opts.volumes {
        let what = format!("-v {v}");
        let parts: Vec<&str> = v.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, m] => (*s, *d, *m),
            _ => bail!("{what}: expected HOST-DIR:CONTAINER-DIR[:ro] or NAME:CONTAINER-DIR[:ro]"),
        };
        check_destination(dst, &what)?;
        let mut rw = true;
        for o in mode.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => rw = false,
                "rw" => rw = true,
                "z" | "Z" => {}
                _ => bail!("{what}: unknown option {o:?} (ro or rw)"),
            }
        }
        if src.starts_with('/') {
            // docker creates a missing host directory for -v.
            if !Path::new(src).exists() {
                fs::create_dir_all(src).with_context(|| format!("{what}: create {src}"))?;
            }
            out.push(MountRecord {
                kind: "bind".into(),
                name: None,
                source: src.into(),
                destination: dst.into(),
                rw,
            });
        } else {
            volumes::validate_name(src).with_context(|| what.clone())?;
            let path = volumes::ensure(store, src)?;
            let empty = fs::read_dir(&path)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if empty {
                super::cp::fill_from_image(rootfs, dst, &path).with_context(|| what.clone())?;
            }
            out.push(MountRecord {
                kind: "volume".into(),
                name: Some(src.into()),
                source: path.display().to_string(),
                destination: dst.into(),
                rw,
            });
        }
    }
    for t in &opts.tmpfs {
        let (dst, o) = t.split_once(':').unwrap_or((t.as_str(), ""));
        check_destination(dst, &format!("--tmpfs {t}"))?;
        out.push(MountRecord {
            kind: "tmpfs".into(),
            name: None,
            source: o.into(),
            destination: dst.into(),
            rw: !o.split(',').any(|x| x == "ro"),
        });
    }
    Ok(out)
}

fn mount_json(m: &MountRecord) -> Value {
    match m.kind.as_str() {
        "tmpfs" => {
            // docker's defaults for --tmpfs, then the given options.
            let mut o = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
            o.extend(
                m.source
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(String::from),
            );
            json!({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": o})
        }
        _ => {
            let mut o = vec!["rbind".to_string(), "rprivate".into()];
            if !m.rw {
                o.push("ro".into());
            }
            json!({"destination": m.destination, "type": "bind", "source": m.source, "options": o})
        }
    }
}

/// A host device node for `--device` / `--privileged`.
fn device_json(host: &Path, ctr: &str, perms: &str) -> Result<(Value, Value)> {
    let md = fs::metadata(host).with_context(|| format!("--device {}", host.display()))?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        bail!("--device {}: not a device node", host.display());
    };
    let rdev = md.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    Ok((
        json!({"path": ctr, "type": typ, "major": major, "minor": minor,
               "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid()}),
        json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": perms}),
    ))
}

fn devices(cfg: &mut Value, opts: &RunOptions) -> Result<()> {
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    for d in &opts.devices {
        let parts: Vec<&str> = d.split(':').collect();
        let perm_ok = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
        let (host, ctr, perms) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, p] if perm_ok(p) => (*h, *h, *p),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] if perm_ok(p) => (*h, *c, *p),
            _ => bail!("--device {d}: expected HOST-DEVICE[:CONTAINER-DEVICE][:PERMISSIONS rwm]"),
        };
        check_destination(ctr, &format!("--device {d}"))?;
        let (n, r) = device_json(Path::new(host), ctr, perms)?;
        nodes.push(n);
        rules.push(r);
    }
    if opts.privileged {
        for e in walkdir_devices(Path::new("/dev")) {
            let p = e.display().to_string();
            if let Ok((n, _)) = device_json(&e, &p, "rwm") {
                nodes.push(n);
            }
        }
        rules = vec![json!({"allow": true, "access": "rwm"})];
    }
    if nodes.is_empty() && rules.is_empty() {
        return Ok(());
    }
    let existing = cfg["linux"]["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut all = existing;
    all.extend(nodes);
    cfg["linux"]["devices"] = json!(all);
    let mut r = cfg["linux"]["resources"]["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    r.extend(rules);
    cfg["linux"]["resources"]["devices"] = json!(r);
    Ok(())
}

/// Device nodes below /dev as docker's --privileged passes them (not the
/// pty, shm, mqueue and console trees the container has its own of).
fn walkdir_devices(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        let name = e.file_name();
        if ["pts", "shm", "mqueue", "console", "ptmx", "fd", "core"]
            .iter()
            .any(|n| name == *n)
        {
            continue;
        }
        if ft.is_dir() {
            out.extend(walkdir_devices(&p));
        } else if ft.is_char_device() || ft.is_block_device() {
            out.push(p);
        }
    }
    out
}

fn privileged(cfg: &mut Value) {
    cfg["linux"]["maskedPaths"] = json!([]);
    cfg["linux"]["readonlyPaths"] = json!([]);
    cfg["process"]["noNewPrivileges"] = json!(false);
    if let Some(mounts) = cfg["mounts"].as_array_mut() {
        for m in mounts {
            if m["type"] == "sysfs" || m["type"] == "cgroup" {
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|x| x != "ro");
                    o.push(json!("rw"));
                }
            }
        }
    }
}

/// A signal name or number as `kill` takes it; checked.
pub(super) fn signal_name(s: &str) -> Result<String> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n.to_string());
        }
        bail!("invalid signal {s:?}");
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    const KNOWN: &[&str] = &[
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    if KNOWN.contains(&name.as_str())
        || name.starts_with("SIGRTMIN")
        || name.starts_with("SIGRTMAX")
    {
        Ok(name)
    } else {
        bail!("invalid signal {s:?}")
    }
}

/// Apply the options to `cfg` (the bundle's config.json).
pub(super) fn apply(
    store: &Store,
    cfg: &mut Value,
    image: &ImageConfig,
    rootfs: &Path,
    opts: &RunOptions,
    rec: &ContainerRecord,
) -> Result<Applied> {
    let mut args = command(image, opts)?;
    environment(cfg, opts)?;
    if let Some(w) = &opts.workdir {
        if !w.starts_with('/') {
            bail!("-w {w}: the working directory must be an absolute path");
        }
        // docker creates a missing working directory.
        mkdir_in_root(rootfs, w).with_context(|| format!("-w {w}"))?;
        cfg["process"]["cwd"] = json!(w);
    }
    if let Some(u) = &opts.user {
        let user = crate::config_gen::resolve_user(u, rootfs).with_context(|| format!("-u {u}"))?;
        let mut j = json!({"uid": user.uid, "gid": user.gid});
        if !user.additional_gids.is_empty() {
            j["additionalGids"] = json!(user.additional_gids);
        }
        cfg["process"]["user"] = j;
    }
    cfg["process"]["terminal"] = json!(rec.tty);
    cfg["hostname"] = json!(rec.hostname);
    resources(cfg, opts)?;
    let caps = capabilities(opts)?;
    cfg["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps,
    });
    if opts.read_only {
        cfg["root"]["readonly"] = json!(true);
    }
    if opts.privileged {
        privileged(cfg);
    }
    devices(cfg, opts)?;
    let mounts = volume_mounts(store, rootfs, opts)?;
    if let Some(list) = cfg["mounts"].as_array_mut() {
        // A user mount on a default one's destination replaces it.
        list.retain(|d| {
            !mounts
                .iter()
                .any(|m| d["destination"] == json!(m.destination))
        });
        list.extend(mounts.iter().map(mount_json));
    }
    if opts.init {
        let init = find_init()?;
        if let Some(list) = cfg["mounts"].as_array_mut() {
            list.push(json!({"destination": INIT_PATH, "type": "bind",
                             "source": init, "options": ["bind", "ro", "nosuid", "nodev"]}));
        }
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    cfg["process"]["args"] = json!(args);
    let stop_signal = match &opts.stop_signal {
        Some(s) => signal_name(s).with_context(|| format!("--stop-signal {s}"))?,
        None => image
            .config
            .stop_signal
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "SIGTERM".into()),
    };
    let mut labels: BTreeMap<String, String> = image.config.labels.clone().unwrap_or_default();
    for l in &opts.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            bail!("--label {l:?}: expected KEY=VALUE");
        }
        labels.insert(k.to_string(), v.to_string());
    }
    if rec.net == Net::Host && opts.hostname.is_none() {
        if let Ok(h) = fs::read_to_string("/proc/sys/kernel/hostname") {
            cfg["hostname"] = json!(h.trim());
        }
    }
    Ok(Applied {
        command: args,
        stop_signal,
        labels,
        mounts,
    })
}
