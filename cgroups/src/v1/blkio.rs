//! v1 blkio controller.

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::fs::CgDir;
use crate::stats::{Blkio, BlkioEntry};
use crate::Result;

/// CFQ-era kernels have `blkio.weight`, BFQ ones `blkio.bfq.weight`.
fn weight_files(d: CgDir) -> (&'static str, &'static str) {
    if !d.has("blkio.weight") && d.has("blkio.bfq.weight") {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    }
}

pub(super) fn set(d: CgDir, b: &LinuxBlockIo) -> Result<()> {
    let (weight, weight_device) = weight_files(d);
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        d.write(weight, w, "blockIO.weight")?;
    }
    if let Some(w) = b.leaf_weight().filter(|&w| w != 0) {
        d.write("blkio.leaf_weight", w, "blockIO.leafWeight")?;
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight().filter(|&w| w != 0) {
            d.write(
                weight_device,
                format!("{}:{} {w}", wd.major(), wd.minor()),
                "blockIO.weightDevice",
            )?;
        }
        if let Some(w) = wd.leaf_weight().filter(|&w| w != 0) {
            d.write(
                "blkio.leaf_weight_device",
                format!("{}:{} {w}", wd.major(), wd.minor()),
                "blockIO.weightDevice.leafWeight",
            )?;
        }
    }
    let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str, &str); 4] = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "blockIO.throttleReadBpsDevice",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "blockIO.throttleWriteBpsDevice",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "blockIO.throttleReadIOPSDevice",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "blockIO.throttleWriteIOPSDevice",
        ),
    ];
    for (list, file, resource) in throttles {
        for t in list.iter().flatten() {
            d.write(
                file,
                format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                resource,
            )?;
        }
    }
    Ok(())
}

/// Lines `MAJ:MIN Op value` (and a device-less `Total value`, skipped).
fn entries(d: CgDir, name: &str) -> Result<Vec<BlkioEntry>> {
    if !d.has(name) {
        return Ok(Vec::new());
    }
    let text = d.read(name)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (maj, min) = f.next()?.split_once(':')?;
            let (op, value) = match (f.next()?, f.next()) {
                (op, Some(v)) => (op.to_string(), v.parse().ok()?),
                (v, None) => (String::new(), v.parse().ok()?),
            };
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op,
                value,
            })
        })
        .collect())
}

pub(super) fn stats(d: CgDir, s: &mut Blkio) -> Result<()> {
    // Prefer the scheduler's statistics (CFQ, then BFQ) when they list any
    // device, as runc does; fall back to throttling's.
    let prefix = if !entries(d, "blkio.io_serviced_recursive")?.is_empty() {
        "blkio"
    } else if !entries(d, "blkio.bfq.io_serviced_recursive")?.is_empty() {
        "blkio.bfq"
    } else {
        s.io_service_bytes_recursive = entries(d, "blkio.throttle.io_service_bytes_recursive")?;
        s.io_serviced_recursive = entries(d, "blkio.throttle.io_serviced_recursive")?;
        return Ok(());
    };
    let f = |name: &str| entries(d, &format!("{prefix}.{name}"));
    s.io_service_bytes_recursive = f("io_service_bytes_recursive")?;
    s.io_serviced_recursive = f("io_serviced_recursive")?;
    s.io_queued_recursive = f("io_queued_recursive")?;
    s.io_service_time_recursive = f("io_service_time_recursive")?;
    s.io_wait_time_recursive = f("io_wait_time_recursive")?;
    s.io_merged_recursive = f("io_merged_recursive")?;
    s.io_time_recursive = f("time_recursive")?;
    s.sectors_recursive = f("sectors_recursive")?;
    Ok(())
}
