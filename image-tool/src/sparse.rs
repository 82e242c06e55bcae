//! GNU tar's sparse files in PAX headers, formats 0.0, 0.1 and 1.0 (what
//! `tar --sparse --format=pax --sparse-version=...` writes): the real name and size and
//! the map of data extents; the entry's data holds only those extents.
//!
//! The tar crate expands old GNU 'S' entries itself (holes read as zeros, which the
//! unpacker writes back as holes) but passes PAX sparse entries through as plain files
//! named `GNUSparseFile.<pid>/NAME` holding the packed extents (and, for 1.0, the map),
//! so those are read here. The formats are described in GNU tar's manual, "Storing
//! Sparse Files"; Go's archive/tar (used by containerd and umoci) reads the same three.

use std::io::Read;

/// Data extents `(offset, length)` of a sparse file, in order.
pub type Extents = Vec<(u64, u64)>;

/// How a PAX sparse entry gives its map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SparseFormat {
    /// 0.0 and 0.1: the map is in the PAX records.
    Records { real_size: u64, extents: Extents },
    /// 1.0: the map is at the start of the entry's data, in decimal lines, padded to
    /// 512 bytes.
    InData { real_size: u64 },
}

/// The sparse records of one entry's PAX header, collected as they come.
#[derive(Debug, Default)]
pub struct SparseRecords {
    major: Option<String>,
    minor: Option<String>,
    /// `GNU.sparse.name`: the real name (0.1, 1.0).
    pub name: Option<Vec<u8>>,
    size: Option<String>,
    realsize: Option<String>,
    numblocks: Option<String>,
    offsets: Vec<String>,
    numbytes: Vec<String>,
    map: Option<String>,
}

/// At most this many extents (Go's reader refuses maps beyond 1 MiB of text, which is
/// about as many).
const MAX_EXTENTS: u64 = 1 << 17;

fn number(what: &str, v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .map_err(|_| format!("{what} {v:?} is not a number"))
}

impl SparseRecords {
    /// Take a PAX record if it is a sparse one; returns whether it was.
    pub fn take(&mut self, key: &str, value: &[u8]) -> bool {
        let Some(field) = key.strip_prefix("GNU.sparse.") else {
            return false;
        };
        let text = || String::from_utf8_lossy(value).into_owned();
        match field {
            "major" => self.major = Some(text()),
            "minor" => self.minor = Some(text()),
            "name" => self.name = Some(value.to_vec()),
            "size" => self.size = Some(text()),
            "realsize" => self.realsize = Some(text()),
            "numblocks" => self.numblocks = Some(text()),
            "offset" => self.offsets.push(text()),
            "numbytes" => self.numbytes.push(text()),
            "map" => self.map = Some(text()),
            _ => {}
        }
        true
    }

    /// The entry's sparse format, `None` if it is not a sparse entry.
    pub fn format(&self) -> Result<Option<SparseFormat>, String> {
        match (self.major.as_deref(), self.minor.as_deref()) {
            (Some("1"), Some("0")) => {
                let real = self
                    .realsize
                    .as_deref()
                    .ok_or("format 1.0 without GNU.sparse.realsize")?;
                Ok(Some(SparseFormat::InData {
                    real_size: number("GNU.sparse.realsize", real)?,
                }))
            }
            (Some(major), minor) => Err(format!(
                "unsupported format {major}.{}",
                minor.unwrap_or("?")
            )),
            (None, _) => self.records_format(),
        }
    }

    /// Formats 0.1 (`GNU.sparse.map`) and 0.0 (`offset`/`numbytes` pairs).
    fn records_format(&self) -> Result<Option<SparseFormat>, String> {
        let numbers: Vec<u64> = if let Some(map) = &self.map {
            if map.is_empty() {
                Vec::new()
            } else {
                map.split(',')
                    .map(|v| number("GNU.sparse.map entry", v))
                    .collect::<Result<_, _>>()?
            }
        } else if !self.offsets.is_empty() || !self.numbytes.is_empty() {
            if self.offsets.len() != self.numbytes.len() {
                return Err(format!(
                    "{} GNU.sparse.offset but {} GNU.sparse.numbytes records",
                    self.offsets.len(),
                    self.numbytes.len()
                ));
            }
            let mut v = Vec::with_capacity(self.offsets.len() * 2);
            for (o, n) in self.offsets.iter().zip(&self.numbytes) {
                v.push(number("GNU.sparse.offset", o)?);
                v.push(number("GNU.sparse.numbytes", n)?);
            }
            v
        } else if self.size.is_some() || self.numblocks.is_some() {
            Vec::new() // a sparse file with no data at all
        } else {
            return Ok(None);
        };
        if !numbers.len().is_multiple_of(2) {
            return Err("the map has an odd number of values".into());
        }
        if let Some(n) = &self.numblocks {
            let n = number("GNU.sparse.numblocks", n)?;
            if n != numbers.len() as u64 / 2 {
                return Err(format!(
                    "GNU.sparse.numblocks is {n} but the map has {} extents",
                    numbers.len() / 2
                ));
            }
        }
        let size = self
            .size
            .as_deref()
            .ok_or("format 0.x without GNU.sparse.size")?;
        Ok(Some(SparseFormat::Records {
            real_size: number("GNU.sparse.size", size)?,
            extents: numbers.chunks(2).map(|p| (p[0], p[1])).collect(),
        }))
    }
}

/// Read a format 1.0 map from the start of `data`. Returns the extents and the bytes
/// the map took (whole 512-byte blocks).
pub fn read_map(data: &mut impl Read) -> Result<(Extents, u64), String> {
    let mut block = [0u8; 512];
    let mut consumed = 0u64;
    let mut pos = block.len();
    let mut next_number = || -> Result<u64, String> {
        let mut digits = String::new();
        loop {
            if pos == block.len() {
                data.read_exact(&mut block)
                    .map_err(|e| format!("the map ends early: {e}"))?;
                consumed += 512;
                pos = 0;
            }
            let b = block[pos];
            pos += 1;
            match b {
                b'\n' => return number("map entry", &digits),
                b'0'..=b'9' if digits.len() < 20 => digits.push(b as char),
                _ => return Err(format!("the map has a bad byte {b:#04x}")),
            }
        }
    };
    let count = next_number()?;
    if count > MAX_EXTENTS {
        return Err(format!("the map claims {count} extents"));
    }
    let mut extents = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let offset = next_number()?;
        let length = next_number()?;
        extents.push((offset, length));
    }
    Ok((extents, consumed))
}

/// Check that `extents` are in order, do not overlap, end within `real_size` and hold
/// exactly the `stored` bytes of data the entry has.
pub fn validate(extents: &[(u64, u64)], real_size: u64, stored: u64) -> Result<(), String> {
    if extents.len() as u64 > MAX_EXTENTS {
        return Err(format!("the map has {} extents", extents.len()));
    }
    let mut end = 0u64;
    let mut data = 0u64;
    for &(offset, length) in extents {
        if offset < end {
            return Err(format!(
                "extent at {offset} overlaps or precedes the one before"
            ));
        }
        end = offset
            .checked_add(length)
            .ok_or_else(|| format!("extent at {offset} of {length} bytes overflows"))?;
        if end > real_size {
            return Err(format!(
                "extent at {offset} of {length} bytes ends beyond the real size {real_size}"
            ));
        }
        data += length;
    }
    if data != stored {
        return Err(format!(
            "the map lists {data} bytes of data but the entry stores {stored}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(pairs: &[(&str, &str)]) -> SparseRecords {
        let mut r = SparseRecords::default();
        for (k, v) in pairs {
            assert!(r.take(k, v.as_bytes()));
        }
        r
    }

    #[test]
    fn formats_0_0_and_0_1_as_gnu_tar_writes_them() {
        let r = records(&[
            ("GNU.sparse.size", "1048578"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.offset", "598016"),
            ("GNU.sparse.numbytes", "4096"),
            ("GNU.sparse.offset", "1048578"),
            ("GNU.sparse.numbytes", "0"),
        ]);
        let want = SparseFormat::Records {
            real_size: 1048578,
            extents: vec![(598016, 4096), (1048578, 0)],
        };
        assert_eq!(r.format().unwrap(), Some(want.clone()));
        let r = records(&[
            ("GNU.sparse.size", "1048578"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.name", "d/f"),
            ("GNU.sparse.map", "598016,4096,1048578,0"),
        ]);
        assert_eq!(r.format().unwrap(), Some(want));
        assert_eq!(r.name.as_deref(), Some(&b"d/f"[..]));
        assert_eq!(SparseRecords::default().format().unwrap(), None);
    }

    #[test]
    fn format_1_0_map_in_the_data() {
        let r = records(&[
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.realsize", "100"),
        ]);
        assert_eq!(
            r.format().unwrap(),
            Some(SparseFormat::InData { real_size: 100 })
        );
        let mut data = b"2\n0\n10\n90\n10\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(&[b'x'; 20]);
        let mut rd = &data[..];
        let (ext, used) = read_map(&mut rd).unwrap();
        assert_eq!((ext.clone(), used), (vec![(0, 10), (90, 10)], 512));
        validate(&ext, 100, 20).unwrap();
        assert!(validate(&ext, 99, 20).is_err());
        assert!(validate(&ext, 100, 21).is_err());
        assert!(validate(&[(0, 10), (5, 10)], 100, 20).is_err());
        assert!(read_map(&mut &b"1\n0\n"[..]).is_err());
        assert!(read_map(&mut &b"99999999999\n"[..]).is_err());
    }
}
