//! The five capability sets of `process.capabilities`.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::LinuxCapabilities;

use crate::error::{Error, Result};

fn to_set(
    names: Option<&HashSet<oci_spec::runtime::Capability>>,
    field: &str,
) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in names.into_iter().flatten() {
        let name = c.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        match Capability::from_str(&name) {
            Ok(cap) => {
                out.insert(cap);
            }
            Err(_) => {
                return Err(Error::Config(format!(
                    "field process.capabilities.{field}: unknown capability {name}"
                )))
            }
        }
    }
    Ok(out)
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
    Ok(Sets {
        bounding: to_set(c.bounding().as_ref(), "bounding")?,
        effective: to_set(c.effective().as_ref(), "effective")?,
        permitted: to_set(c.permitted().as_ref(), "permitted")?,
        inheritable: to_set(c.inheritable().as_ref(), "inheritable")?,
        ambient: to_set(c.ambient().as_ref(), "ambient")?,
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
    caps::clear(None, CapSet::Ambient).ok();
    for cap in &s.ambient {
        // Ambient capabilities must be permitted and inheritable; the kernel refuses others.
        if s.permitted.contains(cap) && s.inheritable.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap).map_err(|e| err("ambient", e))?;
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
