//! Checks of the container's filesystem view: root, mounts, /dev, masked and readonly paths.

use crate::procfs::{mount_at, mountinfo, MountInfo};
use crate::tap::{expect_eq, Tap};
use serde_json::Value;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

fn major(dev: u64) -> u64 {
    libc::major(dev) as u64
}

fn minor(dev: u64) -> u64 {
    libc::minor(dev) as u64
}

/// Opening `path` for writing (creating it when absent) must fail with EROFS.
fn write_fails_erofs(path: &str, create: bool) -> Result<(), String> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if create {
        opts.create(true).mode(0o644);
    }
    match opts.open(path) {
        Ok(_) => {
            if create {
                let _ = fs::remove_file(path);
            }
            Err(format!("opening {path} for writing succeeded"))
        }
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => Ok(()),
        Err(e) => Err(format!(
            "opening {path} for writing failed with {e}, not EROFS"
        )),
    }
}

pub fn root_readonly(tap: &mut Tap, config: &Value) {
    let readonly = config["root"]["readonly"].as_bool().unwrap_or(false);
    let mounts = mountinfo();
    let root = mounts.as_ref().ok().and_then(|m| mount_at(m, "/"));
    let Some(root) = root else {
        tap.check(
            "root mount present in mountinfo",
            Err("no mount at /".into()),
        );
        return;
    };
    if readonly {
        tap.check("root.readonly: / mounted ro", flag(&root, "ro", true));
        tap.check(
            "root.readonly: writing / fails with EROFS",
            write_fails_erofs("/.runtimetest-probe", true),
        );
    } else {
        tap.check(
            "root.readonly=false: / mounted rw",
            flag(&root, "ro", false),
        );
    }
}

fn flag(m: &MountInfo, opt: &str, want: bool) -> Result<(), String> {
    if m.has_option(opt) == want {
        Ok(())
    } else {
        Err(format!(
            "{}: option {opt} {} in {:?}",
            m.mount_point,
            if want { "missing" } else { "present" },
            m.mount_options
        ))
    }
}

/// Parses a tmpfs size such as `65536k`, `1m` or `1048576` into bytes.
fn size_bytes(s: &str) -> Option<u64> {
    let (num, mul) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1024),
        'm' | 'M' => (&s[..s.len() - 1], 1024 * 1024),
        'g' | 'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mul)
}

fn check_mount(mounts: &[MountInfo], m: &Value) -> Result<(), String> {
    let dest = m["destination"]
        .as_str()
        .ok_or("mount without destination")?;
    let info = mount_at(mounts, dest).ok_or_else(|| format!("nothing mounted at {dest}"))?;
    let options: Vec<String> = crate::checks::process::strings(&m["options"]);
    let is_bind =
        m["type"].as_str() == Some("bind") || options.iter().any(|o| o == "bind" || o == "rbind");
    if let (false, Some(ty)) = (is_bind, m["type"].as_str()) {
        // A v1 cgroup mount is a tmpfs holding one mount per controller.
        let ok = info.fs_type == ty
            || (ty == "cgroup" && ["tmpfs", "cgroup2"].contains(&info.fs_type.as_str()));
        if !ok {
            return Err(format!("{dest}: type {} instead of {ty}", info.fs_type));
        }
    }
    // A v1 cgroup tree carries the options on the per-controller mounts below the tmpfs.
    let flagged: Vec<MountInfo> = if m["type"].as_str() == Some("cgroup") && info.fs_type == "tmpfs"
    {
        let prefix = format!("{}/", info.mount_point);
        mounts
            .iter()
            .filter(|c| c.mount_point.starts_with(&prefix))
            .cloned()
            .collect()
    } else {
        vec![info.clone()]
    };
    for target in &flagged {
        for opt in ["ro", "nosuid", "nodev", "noexec"] {
            if options.iter().any(|o| o == opt) {
                flag(target, opt, true)?;
            }
        }
        if options.iter().any(|o| o == "rw") {
            flag(target, "ro", false)?;
        }
    }
    if info.fs_type != "tmpfs" {
        return Ok(());
    }
    for opt in &options {
        if let Some(size) = opt.strip_prefix("size=") {
            let got = info.super_option("size").and_then(size_bytes);
            if got != size_bytes(size) {
                return Err(format!(
                    "{dest}: size {:?}, expected {size}",
                    info.super_option("size")
                ));
            }
        }
        if let Some(mode) = opt.strip_prefix("mode=") {
            let want = u32::from_str_radix(mode, 8).map_err(|e| format!("bad mode {mode}: {e}"))?;
            let got = fs::metadata(dest)
                .map_err(|e| format!("stat {dest}: {e}"))?
                .mode()
                & 0o7777;
            expect_eq(
                &format!("{dest} mode"),
                format!("{want:o}"),
                format!("{got:o}"),
            )?;
        }
    }
    Ok(())
}

pub fn mounts(tap: &mut Tap, config: &Value) {
    let all = match mountinfo() {
        Ok(m) => m,
        Err(e) => {
            tap.check("mounts", Err(e));
            return;
        }
    };
    for m in config["mounts"].as_array().into_iter().flatten() {
        let desc = format!("mounts {}", m["destination"].as_str().unwrap_or("?"));
        tap.check(&desc, check_mount(&all, m));
    }
}

const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn char_device(path: &str, maj: u64, min: u64) -> Result<(), String> {
    let meta = fs::metadata(path).map_err(|e| format!("stat {path}: {e}"))?;
    if !meta.file_type().is_char_device() {
        return Err(format!("{path} is not a character device"));
    }
    expect_eq(path, (maj, min), (major(meta.rdev()), minor(meta.rdev())))
}

pub fn default_devices(tap: &mut Tap) {
    for (path, maj, min) in DEFAULT_DEVICES {
        tap.check(
            &format!("default device {path} is c {maj}:{min}"),
            char_device(path, *maj, *min),
        );
    }
    let ptmx = match fs::symlink_metadata("/dev/ptmx") {
        Ok(m) if m.file_type().is_symlink() => fs::read_link("/dev/ptmx")
            .map_err(|e| e.to_string())
            .and_then(|t| {
                let t = t.display().to_string();
                if t == "pts/ptmx" || t == "/dev/pts/ptmx" {
                    Ok(())
                } else {
                    Err(format!("/dev/ptmx points to {t}"))
                }
            }),
        Ok(_) => char_device("/dev/ptmx", 5, 2),
        Err(e) => Err(format!("lstat /dev/ptmx: {e}")),
    };
    tap.check("/dev/ptmx is pts/ptmx", ptmx);
}

pub fn dev_symlinks(tap: &mut Tap) {
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let got = fs::read_link(link)
            .map(|t| t.display().to_string())
            .map_err(|e| format!("readlink {link}: {e}"));
        tap.check(
            &format!("symlink {link} -> {target}"),
            got.and_then(|g| expect_eq(link, target.to_string(), g)),
        );
    }
}

fn check_device(dev: &Value) -> Result<(), String> {
    let path = dev["path"].as_str().ok_or("device without path")?;
    let meta = fs::symlink_metadata(path).map_err(|e| format!("lstat {path}: {e}"))?;
    let ft = meta.file_type();
    let ty = dev["type"].as_str().unwrap_or("");
    let type_ok = match ty {
        "c" | "u" => ft.is_char_device(),
        "b" => ft.is_block_device(),
        "p" => ft.is_fifo(),
        _ => return Err(format!("unknown device type {ty:?}")),
    };
    if !type_ok {
        return Err(format!("{path}: not of type {ty}"));
    }
    if ty != "p" {
        let want = (
            dev["major"].as_u64().unwrap_or(0),
            dev["minor"].as_u64().unwrap_or(0),
        );
        expect_eq(
            &format!("{path} major:minor"),
            want,
            (major(meta.rdev()), minor(meta.rdev())),
        )?;
    }
    if let Some(mode) = dev["fileMode"].as_u64() {
        expect_eq(
            &format!("{path} mode"),
            format!("{:o}", mode & 0o7777),
            format!("{:o}", meta.mode() & 0o7777),
        )?;
    }
    if let Some(uid) = dev["uid"].as_u64() {
        expect_eq(&format!("{path} uid"), uid as u32, meta.uid())?;
    }
    if let Some(gid) = dev["gid"].as_u64() {
        expect_eq(&format!("{path} gid"), gid as u32, meta.gid())?;
    }
    Ok(())
}

pub fn linux_devices(tap: &mut Tap, linux: &Value) {
    let Some(devs) = linux["devices"].as_array() else {
        tap.skip("linux.devices", "none in config");
        return;
    };
    for dev in devs {
        tap.check(
            &format!("linux.devices {}", dev["path"].as_str().unwrap_or("?")),
            check_device(dev),
        );
    }
}

fn check_masked(path: &str, mounts: &[MountInfo]) -> Result<(), String> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("stat {path}: {e}")),
    };
    if meta.is_dir() {
        let entries = fs::read_dir(path)
            .map_err(|e| format!("readdir {path}: {e}"))?
            .count();
        if entries != 0 {
            return Err(format!("{path} is a directory with {entries} entries"));
        }
        let m = mount_at(mounts, path).ok_or_else(|| format!("{path}: no mount covers it"))?;
        return flag(&m, "ro", true);
    }
    if meta.file_type().is_char_device() && (major(meta.rdev()), minor(meta.rdev())) == (1, 3) {
        return Ok(());
    }
    let mut buf = Vec::new();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(|e| format!("read {path}: {e}"))?;
    if buf.is_empty() {
        Ok(())
    } else {
        Err(format!("reading {path} returned {} bytes", buf.len()))
    }
}

pub fn masked_paths(tap: &mut Tap, linux: &Value) {
    let mounts = mountinfo().unwrap_or_default();
    for path in crate::checks::process::strings(&linux["maskedPaths"]) {
        tap.check(
            &format!("linux.maskedPaths {path}"),
            check_masked(&path, &mounts),
        );
    }
}

/// The first regular file with a write permission bit under `dir`, at most `depth` levels down.
fn writable_file_under(dir: &std::path::Path, depth: u32) -> Option<std::path::PathBuf> {
    let mut subdirs = Vec::new();
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_file() {
            if entry.metadata().is_ok_and(|m| m.mode() & 0o222 != 0) {
                return Some(entry.path());
            }
        } else if ft.is_dir() {
            subdirs.push(entry.path());
        }
    }
    if depth == 0 {
        return None;
    }
    subdirs
        .iter()
        .find_map(|d| writable_file_under(d, depth - 1))
}

fn check_readonly(path: &str, mounts: &[MountInfo]) -> Result<(), String> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("stat {path}: {e}")),
    };
    if !meta.is_dir() {
        return write_fails_erofs(path, false);
    }
    let m = mount_at(mounts, path).ok_or_else(|| format!("{path}: no mount covers it"))?;
    flag(&m, "ro", true)?;
    match writable_file_under(std::path::Path::new(path), 3) {
        Some(file) => write_fails_erofs(&file.display().to_string(), false),
        // Pseudo filesystems refuse to create unknown names before checking for a read-only mount.
        None => match write_fails_erofs(&format!("{path}/.runtimetest-probe"), true) {
            Err(e) if !e.contains("succeeded") => Ok(()),
            other => other,
        },
    }
}

pub fn readonly_paths(tap: &mut Tap, linux: &Value) {
    let mounts = mountinfo().unwrap_or_default();
    for path in crate::checks::process::strings(&linux["readonlyPaths"]) {
        tap.check(
            &format!("linux.readonlyPaths {path}"),
            check_readonly(&path, &mounts),
        );
    }
}

pub fn rootfs_propagation(tap: &mut Tap, linux: &Value) {
    let Some(want) = linux["rootfsPropagation"].as_str() else {
        tap.skip("linux.rootfsPropagation", "not set in config");
        return;
    };
    let result =
        mountinfo().and_then(|m| mount_at(&m, "/").ok_or_else(|| "no mount at /".to_string()));
    let result = result.and_then(|root| {
        let has = |p: &str| root.optional_fields.iter().any(|f| f.starts_with(p));
        let ok = match want {
            "shared" | "rshared" => has("shared:"),
            // A slave of a mount without peers is private, so only "does not propagate out" is certain.
            "slave" | "rslave" => !has("shared:"),
            "private" | "rprivate" => !has("shared:") && !has("master:") && !has("unbindable"),
            "unbindable" | "runbindable" => has("unbindable"),
            other => return Err(format!("unknown propagation {other:?}")),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "/ has propagation fields {:?}",
                root.optional_fields
            ))
        }
    });
    tap.check(&format!("linux.rootfsPropagation {want}"), result);
}

/// `path=CONTENT`: the file exists inside the container with exactly this content.
pub fn file_content(tap: &mut Tap, spec: &str) {
    let (path, want) = spec.split_once('=').unwrap_or((spec, ""));
    let got = fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"));
    tap.check(
        &format!("{path} contains {want:?}"),
        got.and_then(|g| expect_eq(path, want.to_string(), g.trim_end().to_string())),
    );
}

/// The path must not exist inside the container.
pub fn absent(tap: &mut Tap, path: &str) {
    let result = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("lstat {path}: {e}")),
        Ok(_) => Err(format!("{path} exists")),
    };
    tap.check(&format!("{path} absent"), result);
}

/// Opening the device at the path for reading must fail with EPERM (the
/// device cgroup's answer): the node exists, access is denied.
pub fn open_denied(tap: &mut Tap, path: &str) {
    let result = match fs::symlink_metadata(path) {
        Err(e) => Err(format!("lstat {path}: {e} (the node should exist)")),
        Ok(_) => match fs::File::open(path) {
            Ok(_) => Err(format!("{path} opened")),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
            Err(e) => Err(format!("open {path}: {e} (expected EPERM)")),
        },
    };
    tap.check(&format!("opening {path} is denied (EPERM)"), result);
}

/// Creating a file at the path must fail with EROFS.
pub fn erofs(tap: &mut Tap, path: &str) {
    tap.check(
        &format!("writing {path} fails with EROFS"),
        write_fails_erofs(path, true),
    );
}

/// Something is mounted exactly at the path.
pub fn mounted(tap: &mut Tap, path: &str) {
    let result = mountinfo().and_then(|m| {
        mount_at(&m, path)
            .map(|_| ())
            .ok_or_else(|| format!("nothing mounted at {path}"))
    });
    tap.check(&format!("{path} is a mount point"), result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_sizes_parse() {
        assert_eq!(size_bytes("65536k"), Some(64 * 1024 * 1024));
        assert_eq!(size_bytes("1m"), Some(1024 * 1024));
        assert_eq!(size_bytes("4096"), Some(4096));
        assert_eq!(size_bytes("x"), None);
    }

    #[test]
    fn mount_flags_are_compared() {
        let m = MountInfo {
            mount_point: "/x".into(),
            mount_options: vec!["ro".into(), "nosuid".into()],
            optional_fields: vec![],
            fs_type: "tmpfs".into(),
            super_options: vec!["size=1024k".into()],
        };
        assert!(flag(&m, "ro", true).is_ok());
        assert!(flag(&m, "nodev", true).is_err());
        assert!(flag(&m, "ro", false).is_err());
        assert_eq!(m.super_option("size"), Some("1024k"));
    }
}
