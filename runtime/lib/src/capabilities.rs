//! The five capability sets of `process.capabilities`.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::LinuxCapabilities;

use crate::error::{Error, Result};

fn to_set(
    names: Option<&HashSet<oci_spec::runtime::Capability>>,
    supported: &CapsHashSet,
) -> CapsHashSet {
    let mut out = CapsHashSet::new();
    let mut unavailable = Vec::new();
    for c in names.into_iter().flatten() {
        let name = c.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        match Capability::from_str(&name) {
            Ok(cap) if supported.contains(&cap) => {
                out.insert(cap);
            }
            _ => unavailable.push(name),
        }
    }
    if !unavailable.is_empty() {
        warn_ignored(&unavailable);
    }
    out
}

/// runc's warning for capability names it cannot use.
fn warn_ignored(names: &[String]) {
    let mut names = names.to_vec();
    names.sort();
    names.dedup();
    crate::logging::warn(&format!(
        "ignoring unknown or unavailable capabilities: [{}]",
        names.join(" ")
    ));
}

/// Remove the names no capability is known by from the five sets of a
/// `process.capabilities` JSON object, with runc's warning: an unknown name
/// is ignored, not a configuration error.
pub fn drop_unknown(capabilities: &mut serde_json::Value) {
    let mut unknown = Vec::new();
    let Some(obj) = capabilities.as_object_mut() else {
        return;
    };
    for set in [
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    ] {
        if let Some(list) = obj.get_mut(set).and_then(|v| v.as_array_mut()) {
            list.retain(|v| {
                let known =
                    serde_json::from_value::<oci_spec::runtime::Capability>(v.clone()).is_ok();
                if !known {
                    unknown.push(
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    );
                }
                known
            });
        }
    }
    if !unknown.is_empty() {
        warn_ignored(&unknown);
    }
}

/// The parsed sets, ready to apply.
pub struct Sets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

pub fn parse(c: &LinuxCapabilities) -> Result<Sets> {
    // What this kernel knows (probed with prctl: /proc may not be mounted).
    let supported = caps::runtime::thread_all_supported();
    let inheritable = to_set(c.inheritable().as_ref(), &supported);
    let ambient = to_set(c.ambient().as_ref(), &supported);
    Ok(Sets {
        bounding: to_set(c.bounding().as_ref(), &supported),
        effective: to_set(c.effective().as_ref(), &supported),
        permitted: to_set(c.permitted().as_ref(), &supported),
        inheritable,
        ambient,
    })
}

/// Drop every capability not in the bounding set (needs CAP_SETPCAP: do it
/// before changing user).
pub fn apply_bounding(s: &Sets) -> Result<()> {
    for cap in caps::all() {
        if !s.bounding.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false)
        {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| Error::Other(format!("drop {cap} from the bounding set: {e}")))?;
        }
    }
    Ok(())
}

/// Set effective, permitted and inheritable, then raise ambient (after the user change).
pub fn apply_sets(s: &Sets) -> Result<()> {
    let err = |set: &str, e: caps::errors::CapsError| {
        Error::Other(format!("set {set} capabilities: {e}"))
    };
    // Permitted must be a superset of effective while we set them.
    let mut perm = s.permitted.clone();
    perm.extend(s.effective.iter().copied());
    caps::set(
        None,
        CapSet::Effective,
        &perm.intersection(&current_permitted()).copied().collect(),
    )
    .map_err(|e| err("effective", e))?;
    caps::set(None, CapSet::Inheritable, &s.inheritable).map_err(|e| err("inheritable", e))?;
    caps::set(None, CapSet::Permitted, &s.permitted).map_err(|e| err("permitted", e))?;
    caps::set(None, CapSet::Effective, &s.effective).map_err(|e| err("effective", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| err("ambient", e))?;
    // One by one; one the kernel refuses (not permitted or not inheritable)
    // is skipped with a warning, as runc does.
    let mut ambient: Vec<Capability> = s.ambient.iter().copied().collect();
    ambient.sort_by_key(|c| c.index());
    for cap in ambient {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap.index() as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if r != 0 {
            crate::logging::warn(&format!(
                "can't raise ambient capability {cap}: {}",
                crate::sys::errno_text(nix::errno::Errno::last())
            ));
        }
    }
    Ok(())
}

fn current_permitted() -> CapsHashSet {
    caps::read(None, CapSet::Permitted).unwrap_or_default()
}

/// Every capability this kernel knows (for `berth features`).
pub fn known() -> Vec<String> {
    let mut v: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}
