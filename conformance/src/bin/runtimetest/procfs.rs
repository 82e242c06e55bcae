//! Readers for the /proc files the checks inspect.

use std::fs;

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub mount_point: String,
    pub mount_options: Vec<String>,
    pub optional_fields: Vec<String>,
    pub fs_type: String,
    pub super_options: Vec<String>,
}

impl MountInfo {
    pub fn has_option(&self, opt: &str) -> bool {
        self.mount_options.iter().any(|o| o == opt)
    }

    pub fn super_option(&self, key: &str) -> Option<&str> {
        self.super_options
            .iter()
            .find_map(|o| o.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }
}

/// Decodes the octal escapes (`\040` for space) the kernel uses in mountinfo.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn mountinfo() -> Result<Vec<MountInfo>, String> {
    let text =
        fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("read mountinfo: {e}"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            return Err(format!("malformed mountinfo line: {line}"));
        };
        if sep < 6 || fields.len() < sep + 4 {
            return Err(format!("malformed mountinfo line: {line}"));
        }
        out.push(MountInfo {
            mount_point: unescape(fields[4]),
            mount_options: fields[5].split(',').map(str::to_string).collect(),
            optional_fields: fields[6..sep].iter().map(|s| s.to_string()).collect(),
            fs_type: fields[sep + 1].to_string(),
            super_options: fields[sep + 3].split(',').map(str::to_string).collect(),
        });
    }
    Ok(out)
}

/// The topmost mount at exactly `path` (later lines shadow earlier ones).
pub fn mount_at(mounts: &[MountInfo], path: &str) -> Option<MountInfo> {
    let path = normalize(path);
    mounts.iter().rev().find(|m| m.mount_point == path).cloned()
}

pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// A field of /proc/self/status, e.g. `status_field("CapEff")`.
pub fn status_field(name: &str) -> Result<String, String> {
    let text = fs::read_to_string("/proc/self/status").map_err(|e| format!("read status: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| format!("no {name} line in /proc/self/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_decodes_octal() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\"), "/end\\");
    }

    #[test]
    fn normalize_collapses_slashes_and_dots() {
        assert_eq!(normalize("//a/./b/"), "/a/b");
        assert_eq!(normalize("/"), "/");
    }

    #[test]
    fn own_mountinfo_has_root() {
        let mounts = mountinfo().unwrap();
        assert!(mount_at(&mounts, "/").is_some());
    }

    #[test]
    fn status_field_reads_umask() {
        let v = status_field("Umask").unwrap();
        assert!(u32::from_str_radix(&v, 8).is_ok(), "{v}");
        assert!(status_field("NoSuchField").is_err());
    }
}
