//! v2 hugetlb controller.

use std::collections::BTreeMap;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::convert::max_or;
use crate::fs::{keyed, CgDir};
use crate::stats::{hugepage_sizes, Hugetlb};
use crate::Result;

pub(crate) fn set(d: CgDir, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for l in limits {
        let size = l.page_size();
        let resource = format!("hugepageLimits[{size}]");
        d.write(&format!("hugetlb.{size}.max"), max_or(l.limit()), &resource)?;
        let rsvd = format!("hugetlb.{size}.rsvd.max");
        if d.has(&rsvd) {
            d.write(&rsvd, max_or(l.limit()), &resource)?;
        }
    }
    Ok(())
}

pub(crate) fn stats(d: CgDir, out: &mut BTreeMap<String, Hugetlb>) -> Result<()> {
    for size in hugepage_sizes() {
        let current = format!("hugetlb.{size}.current");
        if !d.has(&current) {
            continue;
        }
        let usage = d.read_u64(&current)?;
        let failcnt = keyed(&d.read_keyed(&format!("hugetlb.{size}.events"))?, "max");
        out.insert(
            size,
            Hugetlb {
                usage,
                max: 0,
                failcnt,
            },
        );
    }
    Ok(())
}
