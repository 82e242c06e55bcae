//! The metadata of one layer tar entry: header fields with the PAX records that
//! override them (owner, mtime with nanoseconds, xattrs, GNU sparse maps and names).

use crate::error::{unsafe_entry, Error, IoContext, Result};
use crate::sparse::{SparseFormat, SparseRecords};
use rustix::fs::Timespec;
use std::io::Read;

/// Metadata of one entry, PAX overrides applied.
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Set for a GNU sparse entry in PAX form.
    pub sparse: Option<SparseFormat>,
    /// The real name of a GNU sparse entry (`GNU.sparse.name`).
    pub real_name: Option<Vec<u8>>,
}

/// Parse a PAX time, `[-]SECONDS[.FRACTION]`, keeping nanoseconds (digits beyond the
/// ninth are dropped, as GNU tar and Go's archive/tar do).
pub(crate) fn parse_pax_time(v: &str) -> Option<Timespec> {
    let (negative, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    Some(if !negative {
        Timespec {
            tv_sec: secs,
            tv_nsec: nanos as _,
        }
    } else if nanos == 0 {
        Timespec {
            tv_sec: -secs,
            tv_nsec: 0,
        }
    } else {
        Timespec {
            tv_sec: -secs - 1,
            tv_nsec: (1_000_000_000 - nanos) as _,
        }
    })
}

impl Meta {
    pub fn read<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta> {
        let h = entry.header();
        let num = |r: std::io::Result<u64>, what: &str| {
            r.map_err(|e| unsafe_entry(name, format!("bad {what} field: {e}")))
        };
        let mut meta = Meta {
            mode: num(h.mode().map(u64::from), "mode")? as u32 & 0o7777,
            uid: 0,
            gid: 0,
            mtime: Timespec {
                tv_sec: num(h.mtime(), "mtime")? as i64,
                tv_nsec: 0,
            },
            xattrs: Vec::new(),
            sparse: None,
            real_name: None,
        };
        let (mut uid, mut gid) = (num(h.uid(), "uid")?, num(h.gid(), "gid")?);
        let mut sparse = SparseRecords::default();
        if let Some(exts) = entry
            .pax_extensions()
            .ctx(|| format!("{name}: read PAX header"))?
        {
            for ext in exts {
                let ext = ext.ctx(|| format!("{name}: read PAX record"))?;
                let key = ext.key().unwrap_or("");
                let parse_u64 = || ext.value().ok().and_then(|v| v.parse::<u64>().ok());
                if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                    meta.xattrs
                        .push((attr.to_string(), ext.value_bytes().to_vec()));
                } else if key == "uid" {
                    uid = parse_u64().ok_or_else(|| unsafe_entry(name, "bad PAX uid"))?;
                } else if key == "gid" {
                    gid = parse_u64().ok_or_else(|| unsafe_entry(name, "bad PAX gid"))?;
                } else if key == "mtime" {
                    meta.mtime = ext
                        .value()
                        .ok()
                        .and_then(parse_pax_time)
                        .ok_or_else(|| unsafe_entry(name, "bad PAX mtime"))?;
                } else {
                    sparse.take(key, ext.value_bytes());
                }
            }
        }
        // An owner must fit in 32 bits and not be -1, chown's "leave unchanged" (rustix
        // asserts against it); truncating would pick another owner (2^32 became root).
        let id = |v: u64, what: &str| {
            u32::try_from(v)
                .ok()
                .filter(|v| *v != u32::MAX)
                .ok_or_else(|| unsafe_entry(name, format!("{what} {v} is out of range")))
        };
        meta.uid = id(uid, "uid")?;
        meta.gid = id(gid, "gid")?;
        for (attr, _) in &meta.xattrs {
            if attr.starts_with("trusted.overlay.") {
                return Err(unsafe_entry(
                    name,
                    format!("layer sets overlayfs xattr {attr}"),
                ));
            }
        }
        meta.sparse = sparse.format().map_err(|reason| Error::BadSparse {
            entry: name.to_string(),
            reason,
        })?;
        if meta.sparse.is_some() {
            meta.real_name = sparse.name;
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = |v| parse_pax_time(v).map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(
            t("1700000000.123456789"),
            Some((1_700_000_000, 123_456_789))
        );
        assert_eq!(t("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(t("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(t("1.0000000019"), Some((1, 1)));
        assert_eq!(t("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(t("-3"), Some((-3, 0)));
        for bad in ["", ".5", "1.2.3", "x", "1e9", "--1"] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }
}
