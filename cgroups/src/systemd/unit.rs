//! `linux.cgroupsPath` for the systemd driver: `slice:prefix:name` names a
//! transient scope unit `prefix-name.scope` in the slice unit `slice`, as runc's
//! and crun's systemd drivers read it. Empty: `system.slice` and
//! `berth-<container id>.scope` (runc makes `runc-<id>.scope`, crun
//! `crun-<id>.scope`: each runtime names its default scopes after itself).
//!
//! systemd nests slices by their names: `a-b-c.slice` lives in `a-b.slice`,
//! which lives in `a.slice`, so the scope's cgroup directory is
//! `/a.slice/a-b.slice/a-b-c.slice/prefix-name.scope`.

use std::path::PathBuf;

use crate::{CgroupError, Result};

/// The slice a scope goes into when `cgroupsPath` names none.
pub const DEFAULT_SLICE: &str = "system.slice";
/// The scope prefix when `cgroupsPath` is empty.
pub const DEFAULT_PREFIX: &str = "berth";

/// A container's systemd unit: the scope and the slice it is placed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeUnit {
    /// The parent slice unit, e.g. `kubepods-besteffort-pod12.slice`.
    pub slice: String,
    /// The scope unit, e.g. `cri-containerd-abc.scope`.
    pub scope: String,
}

impl ScopeUnit {
    /// Parse `cgroupsPath` (None or empty: the defaults) for `container_id`.
    pub fn parse(cgroups_path: Option<&str>, container_id: &str) -> Result<ScopeUnit> {
        let raw = cgroups_path.unwrap_or("");
        let (slice, prefix, name) = if raw.is_empty() {
            (DEFAULT_SLICE, DEFAULT_PREFIX, container_id)
        } else {
            let parts: Vec<&str> = raw.split(':').collect();
            let [slice, prefix, name] = parts[..] else {
                return Err(CgroupError::Invalid(format!(
                    "linux.cgroupsPath {raw:?}: expected \"slice:prefix:name\" for systemd cgroups (--systemd-cgroup)"
                )));
            };
            let slice = if slice.is_empty() {
                DEFAULT_SLICE
            } else {
                slice
            };
            (slice, prefix, name)
        };
        if name.is_empty() {
            return Err(CgroupError::Invalid(format!(
                "linux.cgroupsPath {raw:?}: the name part is empty"
            )));
        }
        if name.ends_with(".slice") {
            return Err(CgroupError::Unsupported(format!(
                "linux.cgroupsPath {raw:?}: a container needs a scope unit, not the slice {name:?}"
            )));
        }
        expand_slice(slice).map_err(|e| prefixed(raw, e))?;
        let scope = format!("{prefix}-{name}.scope");
        check_unit_name(&scope).map_err(|e| prefixed(raw, e))?;
        Ok(ScopeUnit {
            slice: slice.to_string(),
            scope,
        })
    }

    /// The scope's cgroup path below the cgroup root, without the leading `/`
    /// (`a.slice/a-b.slice/prefix-name.scope`).
    pub fn cgroup_path(&self) -> PathBuf {
        let slice = expand_slice(&self.slice).expect("validated by parse");
        PathBuf::from(slice.trim_start_matches('/')).join(&self.scope)
    }
}

fn prefixed(raw: &str, e: CgroupError) -> CgroupError {
    CgroupError::Invalid(format!("linux.cgroupsPath {raw:?}: {e}"))
}

/// The cgroup path of a slice unit: `a-b-c.slice` -> `/a.slice/a-b.slice/a-b-c.slice`,
/// `-.slice` (the root slice) -> `/`.
pub fn expand_slice(slice: &str) -> Result<String> {
    let invalid = || CgroupError::Invalid(format!("invalid slice name {slice:?}"));
    let base = slice.strip_suffix(".slice").ok_or_else(invalid)?;
    if base.is_empty() || slice.contains('/') {
        return Err(invalid());
    }
    check_unit_name(slice)?;
    if base == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for component in base.split('-') {
        // "a--b.slice" and "-a.slice" name no parent.
        if component.is_empty() {
            return Err(invalid());
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(component);
        path.push_str(".slice");
        prefix.push_str(component);
        prefix.push('-');
    }
    Ok(path)
}

/// systemd's unit name rules (`unit_name_is_valid`): at most 255 bytes of
/// ASCII letters, digits and `:-_.\`.
fn check_unit_name(name: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || ":-_.\\".contains(c);
    if name.len() > 255 || !name.chars().all(ok) {
        return Err(CgroupError::Invalid(format!(
            "{name:?} is not a valid systemd unit name (at most 255 of the characters a-z A-Z 0-9 : - _ . \\)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_nest_by_name() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("kubepods-besteffort-pod12.slice").unwrap(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in [
            "",
            ".slice",
            "a",
            "a.scope",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            "a b.slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn slice_prefix_name() {
        let u = ScopeUnit::parse(
            Some("kubepods-besteffort-pod1234.slice:cri-containerd:abc"),
            "ignored",
        )
        .unwrap();
        assert_eq!(u.slice, "kubepods-besteffort-pod1234.slice");
        assert_eq!(u.scope, "cri-containerd-abc.scope");
        assert_eq!(
            u.cgroup_path(),
            PathBuf::from(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-abc.scope"
            )
        );
        // An empty slice is the default one.
        let u = ScopeUnit::parse(Some(":docker:x1"), "c").unwrap();
        assert_eq!(
            u.cgroup_path(),
            PathBuf::from("system.slice/docker-x1.scope")
        );
        let u = ScopeUnit::parse(Some("-.slice:p:n"), "c").unwrap();
        assert_eq!(u.cgroup_path(), PathBuf::from("p-n.scope"));
    }

    #[test]
    fn empty_path_uses_the_defaults() {
        for p in [None, Some("")] {
            let u = ScopeUnit::parse(p, "c1").unwrap();
            assert_eq!(u.slice, "system.slice");
            assert_eq!(u.scope, "berth-c1.scope");
            assert_eq!(
                u.cgroup_path(),
                PathBuf::from("system.slice/berth-c1.scope")
            );
        }
    }

    #[test]
    fn bad_paths_name_the_problem() {
        let e = ScopeUnit::parse(Some("/kubepods/pod1/abc"), "c").unwrap_err();
        assert!(e.to_string().contains("slice:prefix:name"), "{e}");
        let e = ScopeUnit::parse(Some("a:b:c:d"), "c").unwrap_err();
        assert!(e.to_string().contains("slice:prefix:name"), "{e}");
        let e = ScopeUnit::parse(Some("a.slice:p:"), "c").unwrap_err();
        assert!(e.to_string().contains("name part is empty"), "{e}");
        let e = ScopeUnit::parse(Some("bad--slice.slice:p:n"), "c").unwrap_err();
        assert!(e.to_string().contains("invalid slice name"), "{e}");
        let e = ScopeUnit::parse(Some("a.slice:p:b.slice"), "c").unwrap_err();
        assert!(e.to_string().contains("scope unit"), "{e}");
        let e = ScopeUnit::parse(Some("a.slice:p:x/y"), "c").unwrap_err();
        assert!(
            e.to_string().contains("not a valid systemd unit name"),
            "{e}"
        );
        let long = "x".repeat(300);
        assert!(ScopeUnit::parse(Some(&format!("a.slice:p:{long}")), "c").is_err());
    }
}
