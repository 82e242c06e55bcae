//! sha256 digests and readers/writers that compute them while streaming.

use crate::error::{invalid, Error, Result};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parse `sha256:<hex>`; other algorithms are rejected.
    pub fn parse(s: &str) -> Result<Self> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| {
            invalid(format!(
                "unsupported digest {s:?} (only sha256 is supported)"
            ))
        })?;
        Self::from_hex(hex).map_err(|_| invalid(format!("malformed digest {s:?}")))
    }

    /// Build from 64 lowercase hex characters.
    pub fn from_hex(hex: &str) -> Result<Self> {
        if hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Digest(hex.to_string()))
        } else {
            Err(invalid(format!("malformed sha256 hex {hex:?}")))
        }
    }

    /// Digest of a byte slice.
    pub fn of(data: &[u8]) -> Self {
        Digest(hex::encode(Sha256::digest(data)))
    }

    /// The chain ID of a layer stack, bottom first (image-spec, "ChainID"): the first
    /// layer's diff_id, then `sha256(parent chain ID + " " + diff_id)` for each layer
    /// above it. One per layer.
    pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
        let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let next = match out.last() {
                None => d.clone(),
                Some(parent) => Digest::of(format!("{parent} {d}").as_bytes()),
            };
            out.push(next);
        }
        out
    }

    /// The 64 hex characters.
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// Fail with a clear error unless `actual` equals `self`.
    pub fn verify(&self, actual: &Digest, what: &str) -> Result<()> {
        if self == actual {
            Ok(())
        } else {
            Err(Error::DigestMismatch {
                what: what.to_string(),
                expected: self.to_string(),
                actual: actual.to_string(),
            })
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Read the rest of the stream (so trailing padding is hashed too) and return digest and size.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest(hex::encode(self.hasher.finalize())), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn finish(self) -> (W, Digest, u64) {
        (
            self.inner,
            Digest(hex::encode(self.hasher.finalize())),
            self.count,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_bad_digests() {
        assert!(Digest::parse("sha512:abcd").is_err());
        assert!(Digest::parse("sha256:ABCD").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha256:{}/..", "a".repeat(62))).is_err());
        let d = Digest::of(b"hello");
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        assert_eq!(
            d.hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let chain = Digest::chain_ids(&[a.clone(), b, a.clone()]);
        assert_eq!(chain[0], a, "the bottom layer's chain ID is its diff_id");
        // printf '%s %s' sha256:<a> sha256:<b> | sha256sum
        assert_eq!(
            chain[1].hex(),
            "51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676"
        );
        assert_eq!(
            chain[2].hex(),
            "1472d34251a00ac55ede7b25cbe3c166a4229eae731490bfdeb83bc00f598be1"
        );
    }
}
