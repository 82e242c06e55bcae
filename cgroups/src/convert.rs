//! Conversions of v1-style OCI values to cgroup v2 interface values.
//! The chosen formulas and a table of examples are in cgroups/README.md.

use crate::{CgroupError, Result};

/// `cpu.shares` (v1, 2..=262144, default 1024) to `cpu.weight` (v2, 1..=10000,
/// default 100). This is the quadratic-in-log2 mapping adopted by newer runc and
/// crun releases. Unlike the older linear formula `1 + (shares - 2) * 9999 /
/// 262142`, which maps the default 1024 to 39, it maps minimum, default and
/// maximum exactly. 0 means unset and returns 0.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    10f64.powf(exponent).ceil() as u64
}

/// The older linear mapping (runc < 1.3, crun < 1.23), kept for reference and tests.
pub fn cpu_shares_to_weight_linear(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2)) * 9999 / 262_142
}

/// `blkio.weight` (10..=1000) to `io.weight` (1..=10000), as runc and crun do.
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10)) * 9999 / 990
}

/// OCI `memory.swap` (memory+swap, v1 semantics) to `memory.swap.max` (swap only).
/// Returns `None` when nothing should be written, `Some(-1)` for "max".
pub fn memory_swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<i64>> {
    let (swap, limit) = (swap.unwrap_or(0), limit.unwrap_or(0));
    // Unlimited memory with swap unset means unlimited swap as well (v1 behaviour).
    if limit == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    match swap {
        0 => Ok(None),
        -1 => Ok(Some(-1)),
        s if s < -1 => Err(CgroupError::Invalid(format!(
            "memory.swap: invalid value {s}"
        ))),
        s => {
            if limit == 0 || limit == -1 {
                return Err(CgroupError::Invalid(
                    "memory.swap: a swap limit needs a memory limit on cgroup v2".into(),
                ));
            }
            if s < limit {
                return Err(CgroupError::Invalid(format!(
                    "memory.swap ({s}) must be >= memory.limit ({limit}): it counts memory plus swap"
                )));
            }
            Ok(Some(s - limit))
        }
    }
}

/// `-1` (or any negative) as "max", others as the number.
pub(crate) fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight_fits_min_default_max() {
        assert_eq!(cpu_shares_to_weight(0), 0);
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(1024), 100);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
        let table: Vec<u64> = [2, 128, 512, 1024, 2048, 4096, 65536, 262144]
            .iter()
            .map(|&s| cpu_shares_to_weight(s))
            .collect();
        // The table in cgroups/README.md.
        for (shares, weight) in [
            (10, 4),
            (128, 21),
            (512, 59),
            (2048, 174),
            (4096, 303),
            (65536, 3023),
        ] {
            assert_eq!(cpu_shares_to_weight(shares), weight, "shares {shares}");
        }
        // The mapping is monotonic.
        assert!(table.windows(2).all(|w| w[0] < w[1]), "{table:?}");
    }

    #[test]
    fn linear_shares_formula() {
        assert_eq!(cpu_shares_to_weight_linear(2), 1);
        assert_eq!(cpu_shares_to_weight_linear(1024), 39);
        assert_eq!(cpu_shares_to_weight_linear(262_144), 10_000);
    }

    #[test]
    fn blkio_weight_conversion() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(memory_swap_to_v2(None, None).unwrap(), None);
        assert_eq!(memory_swap_to_v2(Some(300), Some(100)).unwrap(), Some(200));
        assert_eq!(memory_swap_to_v2(Some(100), Some(100)).unwrap(), Some(0));
        assert_eq!(memory_swap_to_v2(None, Some(-1)).unwrap(), Some(-1));
        assert_eq!(memory_swap_to_v2(Some(-1), Some(100)).unwrap(), Some(-1));
        assert!(memory_swap_to_v2(Some(50), Some(100)).is_err());
        assert!(memory_swap_to_v2(Some(50), None).is_err());
    }
}
