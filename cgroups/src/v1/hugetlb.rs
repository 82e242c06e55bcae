//! v1 hugetlb controller. On hybrid hosts where hugetlb is not mounted as a v1
//! hierarchy but is available in the v2 mount, the limits go there.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::fs::CgDir;
use crate::stats::{hugepage_sizes, Hugetlb};
use crate::{v2, CgroupError, Result};

pub(super) fn set(
    v1: Option<CgDir>,
    unified: Option<&(PathBuf, PathBuf)>,
    limits: &[LinuxHugepageLimit],
) -> Result<()> {
    if let Some(d) = v1 {
        for l in limits {
            let size = l.page_size();
            let resource = format!("hugepageLimits[{size}]");
            d.write(
                &format!("hugetlb.{size}.limit_in_bytes"),
                l.limit(),
                &resource,
            )?;
            let rsvd = format!("hugetlb.{size}.rsvd.limit_in_bytes");
            if d.has(&rsvd) {
                d.write(&rsvd, l.limit(), &resource)?;
            }
        }
        return Ok(());
    }
    match unified {
        Some((mount, dir)) if v2::controller_available(mount, "hugetlb") => {
            v2::enable_controllers(mount, dir, &["hugetlb"], false)?;
            v2::hugetlb::set(CgDir::new(dir, false), limits)
        }
        _ => Err(CgroupError::Unsupported(
            "linux.resources.hugepageLimits needs the hugetlb cgroup controller, which is not available on this host"
                .into(),
        )),
    }
}

pub(super) fn stats(
    v1: Option<CgDir>,
    unified: Option<&(PathBuf, PathBuf)>,
    out: &mut BTreeMap<String, Hugetlb>,
) -> Result<()> {
    if let Some(d) = v1 {
        for size in hugepage_sizes() {
            let f = |k: &str| d.read_u64_or_zero(&format!("hugetlb.{size}.{k}"));
            let entry = Hugetlb {
                usage: f("usage_in_bytes")?,
                max: f("max_usage_in_bytes")?,
                failcnt: f("failcnt")?,
            };
            out.insert(size, entry);
        }
    } else if let Some((_, dir)) = unified {
        let d = CgDir::new(dir, false);
        if d.has(&format!(
            "hugetlb.{}.current",
            hugepage_sizes().first().map_or("2MB", |s| s.as_str())
        )) {
            v2::hugetlb::stats(d, out)?;
        }
    }
    Ok(())
}
