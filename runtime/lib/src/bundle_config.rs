//! Loading and validating config.json before anything touches the system.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// Lowest and highest runtime-spec versions accepted (1.0.0 through 1.3.x).
pub const MIN_VERSION: (u64, u64) = (1, 0);
pub const MAX_VERSION: (u64, u64) = (1, 3);

/// Parse config.json text. Errors name the JSON path of the offending field.
pub fn parse(text: &str) -> Result<Spec> {
    // The plain deserializer first: it is the only code a valid config runs
    // through (the path-tracking one is a second, larger copy of the serde
    // code, and paging it in would cost every `create` time and memory).
    let mut spec: Spec = match serde_json::from_str(text) {
        Ok(s) => s,
        Err(_) => parse_lenient(text)?,
    };
    check_version(spec.version())?;
    explicit_zero_pids_limit(text, &mut spec);
    Ok(spec)
}

/// `linux.resources.pids.limit: 0` written out means "no new task" (runc's
/// head writes pids.max 1, as systemd cannot take 0), while a missing limit
/// leaves pids.max alone; the typed config cannot tell the two apart.
fn explicit_zero_pids_limit(text: &str, spec: &mut Spec) {
    let zero = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.pids().as_ref())
        .is_some_and(|p| p.limit() == 0);
    if !zero {
        return;
    }
    let written = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .is_some_and(|v| v.pointer("/linux/resources/pids/limit").is_some());
    if !written {
        return;
    }
    if let Some(r) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.resources_mut().as_mut())
    {
        let mut pids = oci_spec::runtime::LinuxPids::default();
        pids.set_limit(1);
        r.set_pids(Some(pids));
    }
}

/// What runc reads that the typed config would refuse, made readable: unknown
/// capability names are dropped (with runc's warning) and scheduler flags
/// under the runtime spec's names (`SCHED_FLAG_RESET_ON_FORK`,
/// `SCHED_FLAG_DL_OVERRUN`) take the names the typed config knows.
pub fn normalize_process(process: &mut serde_json::Value) {
    if let Some(c) = process.get_mut("capabilities") {
        crate::capabilities::drop_unknown(c);
    }
    if let Some(flags) = process
        .pointer_mut("/scheduler/flags")
        .and_then(|f| f.as_array_mut())
    {
        for f in flags {
            let renamed = match f.as_str() {
                Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
                Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
                _ => continue,
            };
            *f = serde_json::Value::String(renamed.into());
        }
    }
}

/// The slow path for a config the typed parser refused: unknown capability
/// names are dropped with runc's warning (they are not an error), then the
/// config is parsed again; anything else still wrong is reported by field.
#[cold]
fn parse_lenient(text: &str) -> Result<Spec> {
    let mut v: serde_json::Value = serde_json::from_str(text).map_err(|_| parse_error(text))?;
    if let Some(p) = v.get_mut("process") {
        normalize_process(p);
    }
    let cleaned = v.to_string();
    serde_json::from_str(&cleaned).map_err(|_| parse_error(&cleaned))
}

/// Re-parse an invalid config with path tracking, for an error naming the field.
#[cold]
fn parse_error(text: &str) -> Error {
    let de = &mut serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Spec>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." || path == "?" || inner.is_syntax() || inner.is_eof() {
            Error::Config(format!("invalid JSON: {inner}"))
        } else if path.starts_with("linux.memoryPolicy") {
            // runc's words, which its clients and tests match.
            let what = if path.contains(".flags") {
                "invalid memory policy flag"
            } else if path.ends_with(".mode") || inner.to_string().contains("`mode`") {
                "invalid memory policy mode"
            } else {
                "invalid memory policy"
            };
            Error::Config(format!("{what}: field {path}: {inner}"))
        } else {
            Error::Config(format!("field {path}: {inner}"))
        }
    }) {
        Err(e) => e,
        Ok(_) => Error::Config("invalid config".into()),
    }
}

/// Load `bundle/config.json`.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    parse(&text)
}

/// Accept ociVersion 1.0.0 – 1.3.x (pre-release suffixes such as `1.0.2-dev` included).
pub fn check_version(v: &str) -> Result<()> {
    let bad = || {
        Error::Config(format!(
            "field ociVersion: unsupported version \"{v}\" (berth accepts 1.0.0 through 1.3.x)"
        ))
    };
    let core = v.split(['-', '+']).next().unwrap_or("");
    let mut parts = core.split('.');
    let major: u64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let minor: u64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let _patch: u64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    if parts.next().is_some() {
        return Err(bad());
    }
    if (major, minor) < MIN_VERSION || (major, minor) > MAX_VERSION {
        return Err(bad());
    }
    Ok(())
}

/// The rootfs directory of a bundle (relative `root.path` is relative to the bundle).
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Config("field root: missing (required on Linux)".into()))?;
    let p = root.path();
    if p.as_os_str().is_empty() {
        return Err(Error::Config("field root.path: empty".into()));
    }
    let full = if p.is_absolute() {
        p.clone()
    } else {
        bundle.join(p)
    };
    match std::fs::metadata(&full) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::Config(format!(
                "field root.path: {} is not a directory",
                full.display()
            )))
        }
        Err(e) => {
            return Err(Error::Config(format!(
                "field root.path: {}: {e}",
                full.display()
            )))
        }
    }
    std::fs::canonicalize(&full)
        .map_err(|e| Error::Config(format!("field root.path: {}: {e}", full.display())))
}

/// Check everything `create` relies on, before any state, mount or process exists.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let rootfs = rootfs_path(spec, bundle)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Config("field process: missing (required by create/run)".into()))?;
    match process.args() {
        Some(a) if !a.is_empty() => {}
        _ => {
            return Err(Error::Config(
                "field process.args: must contain at least one element".into(),
            ))
        }
    }
    if !process.cwd().is_absolute() {
        return Err(Error::Config(format!(
            "field process.cwd: {} is not an absolute path",
            process.cwd().display()
        )));
    }
    if process.terminal().unwrap_or(false) && process.console_size().is_some() {
        // fine: consoleSize only applies with a terminal
    } else if process.console_size().is_some() {
        return Err(Error::Config(
            "field process.consoleSize: set while process.terminal is false".into(),
        ));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(Error::Config(format!(
                "field mounts[{i}].destination: {} is not an absolute path",
                m.destination().display()
            )));
        }
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::Config("field linux: missing (required on Linux)".into()))?;
    let mut seen = HashSet::new();
    let have = |t: LinuxNamespaceType| linux.namespaces().iter().flatten().any(|n| n.typ() == t);
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(Error::Config(format!(
                "field linux.namespaces[{i}]: duplicate namespace type {:?}",
                ns.typ()
            )));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(Error::Config(format!(
                    "field linux.namespaces[{i}].path: {} is not absolute",
                    p.display()
                )));
            }
            if let Err(e) = std::fs::metadata(p) {
                return Err(Error::Config(format!(
                    "field linux.namespaces[{i}].path: {}: {e}",
                    p.display()
                )));
            }
        }
    }
    if !have(LinuxNamespaceType::Mount) {
        // The container then shares the runtime's mount namespace: what would
        // change that namespace's own mounts is refused.
        if spec
            .root()
            .as_ref()
            .is_some_and(|r| r.readonly() == Some(true))
        {
            return Err(Error::Config(
                "field root.readonly: a read-only root needs a mount namespace (without one, the root is a directory of the runtime's own mounts)".into(),
            ));
        }
        if linux.rootfs_propagation().is_some() {
            return Err(Error::Config(
                "field linux.rootfsPropagation: needs a mount namespace (without one it would change the runtime's own mounts)".into(),
            ));
        }
    }
    let userns = have(LinuxNamespaceType::User);
    if !userns
        && (linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty()))
    {
        return Err(Error::Config(
            "field linux.uidMappings: set without a user namespace".into(),
        ));
    }
    let new_user = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    if new_user && linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
        return Err(Error::Config(
            "field linux.uidMappings: a new user namespace needs uid mappings".into(),
        ));
    }
    if spec.hostname().is_some() && !have(LinuxNamespaceType::Uts) {
        return Err(Error::Config(
            "field hostname: set without a UTS namespace".into(),
        ));
    }
    if spec.domainname().is_some() && !have(LinuxNamespaceType::Uts) {
        return Err(Error::Config(
            "field domainname: set without a UTS namespace".into(),
        ));
    }
    if linux.time_offsets().is_some()
        && !linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none())
    {
        return Err(Error::Config(
            "field linux.timeOffsets: set without a new time namespace".into(),
        ));
    }
    crate::rootfs::idmap::check(spec)?;
    if let Some(p) = linux.rootfs_propagation() {
        crate::rootfs::propagation_flag(p)?;
    }
    for (k, _) in linux.sysctl().iter().flatten() {
        crate::rootfs::sysctl::check_namespaced(k, linux)?;
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() {
            return Err(Error::Config(format!(
                "field linux.devices[{i}].path: {} is not absolute",
                d.path().display()
            )));
        }
    }
    Ok(rootfs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for ok in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.3.0", "1.3.9"] {
            check_version(ok).unwrap();
        }
        for bad in [
            "", "1", "1.4.0", "2.0.0", "0.9.9", "9.9.9", "1.a.0", "1.0.0.0",
        ] {
            let e = check_version(bad).unwrap_err().to_string();
            assert!(e.contains("ociVersion"), "{e}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            parse(r#"{"ociVersion":"1.0.0","process":{"user":{"uid":"zero","gid":0},"cwd":"/"}}"#)
                .unwrap_err();
        assert!(e.to_string().contains("process.user.uid"), "{e}");
        let e = parse("{not json").unwrap_err();
        assert!(e.to_string().contains("invalid JSON"), "{e}");
        let e = parse(r#"{"ociVersion":"7.0.0"}"#).unwrap_err();
        assert!(e.to_string().contains("7.0.0"), "{e}");
    }
}
