//! v2 io controller.

use oci_spec::runtime::LinuxBlockIo;

use crate::convert::blkio_weight_to_io_weight;
use crate::fs::CgDir;
use crate::stats::{Blkio, BlkioEntry};
use crate::{CgroupError, Result};

pub(crate) fn set(d: CgDir, b: &LinuxBlockIo) -> Result<()> {
    let leaf = b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device()
            .iter()
            .flatten()
            .any(|w| w.leaf_weight().is_some_and(|l| l != 0));
    if leaf {
        return Err(CgroupError::Unsupported(
            "linux.resources.blockIO.leafWeight is not supported on cgroup v2".into(),
        ));
    }
    // With the BFQ scheduler io.bfq.weight takes v1's 1..1000 range directly.
    let bfq = d.has("io.bfq.weight");
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        if bfq {
            d.write("io.bfq.weight", w, "blockIO.weight (as io.bfq.weight)")?;
        } else {
            d.write(
                "io.weight",
                blkio_weight_to_io_weight(w),
                "blockIO.weight (as io.weight)",
            )?;
        }
    }
    for wd in b.weight_device().iter().flatten() {
        let Some(w) = wd.weight().filter(|&w| w != 0) else {
            continue;
        };
        let dev = format!("{}:{}", wd.major(), wd.minor());
        if bfq {
            d.write(
                "io.bfq.weight",
                format!("{dev} {w}"),
                "blockIO.weightDevice (as io.bfq.weight)",
            )?;
        } else {
            let v = blkio_weight_to_io_weight(w);
            d.write(
                "io.weight",
                format!("{dev} {v}"),
                "blockIO.weightDevice (as io.weight)",
            )?;
        }
    }
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "rbps",
            "blockIO.throttleReadBpsDevice",
        ),
        (
            b.throttle_write_bps_device(),
            "wbps",
            "blockIO.throttleWriteBpsDevice",
        ),
        (
            b.throttle_read_iops_device(),
            "riops",
            "blockIO.throttleReadIOPSDevice",
        ),
        (
            b.throttle_write_iops_device(),
            "wiops",
            "blockIO.throttleWriteIOPSDevice",
        ),
    ];
    for (list, key, resource) in throttles {
        for t in list.iter().flatten() {
            // v1 uses 0 to remove a limit; v2 spells that "max".
            let rate = if t.rate() == 0 {
                "max".to_string()
            } else {
                t.rate().to_string()
            };
            d.write(
                "io.max",
                format!("{}:{} {key}={rate}", t.major(), t.minor()),
                resource,
            )?;
        }
    }
    Ok(())
}

/// `io.stat`: `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`.
pub(crate) fn stats(d: CgDir, s: &mut Blkio) -> Result<()> {
    if !d.has("io.stat") {
        return Ok(());
    }
    for line in d.read("io.stat")?.lines() {
        let mut f = line.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|dev| dev.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut s.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut s.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut s.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut s.io_serviced_recursive, "Read"),
                "wios" => (&mut s.io_serviced_recursive, "Write"),
                "dios" => (&mut s.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    Ok(())
}
