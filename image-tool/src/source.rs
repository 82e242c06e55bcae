//! Where images come from: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REF]`.

use crate::digest::Digest;
use crate::error::{invalid, Error, IoContext, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A parsed image source reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRef {
    OciDir {
        path: PathBuf,
        tag: Option<String>,
    },
    OciArchive {
        path: PathBuf,
        tag: Option<String>,
    },
    DockerArchive {
        path: PathBuf,
        reference: Option<String>,
    },
    Registry(crate::registry::RegistryRef),
}

fn split_path_tag(rest: &str) -> (PathBuf, Option<String>) {
    match rest.split_once(':') {
        Some((p, t)) if !t.is_empty() => (PathBuf::from(p), Some(t.to_string())),
        Some((p, _)) => (PathBuf::from(p), None),
        None => (PathBuf::from(rest), None),
    }
}

impl SourceRef {
    /// Parse a transport-prefixed reference; `None` if `s` has no known transport prefix.
    pub fn parse(s: &str) -> Option<Result<SourceRef>> {
        let (transport, rest) = s.split_once(':')?;
        let bad = |reason: &str| {
            Err(Error::InvalidReference {
                reference: s.to_string(),
                reason: reason.to_string(),
            })
        };
        if rest.is_empty() {
            return Some(bad("missing path"));
        }
        let (path, tag) = split_path_tag(rest);
        Some(match transport {
            "oci" => Ok(SourceRef::OciDir { path, tag }),
            "oci-archive" => Ok(SourceRef::OciArchive { path, tag }),
            "docker-archive" => {
                // docker-archive:FILE[:name:tag]
                let (p, r) = match rest.split_once(':') {
                    Some((p, r)) if !r.is_empty() => (p, Some(r.to_string())),
                    _ => (rest.trim_end_matches(':'), None),
                };
                Ok(SourceRef::DockerArchive {
                    path: PathBuf::from(p),
                    reference: r,
                })
            }
            "docker" => match rest.strip_prefix("//") {
                Some(r) => crate::registry::RegistryRef::parse(r).map(SourceRef::Registry),
                None => bad("expected docker://HOST/REPO[:TAG]"),
            },
            _ => return None,
        })
    }

    /// The name an image gets when pulled without `--name`.
    pub fn default_name(&self) -> String {
        let base = |p: &Path| {
            let stem = p
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into());
            let stem = stem
                .trim_end_matches(".tar")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>();
            if stem.is_empty() {
                "image".into()
            } else {
                stem
            }
        };
        match self {
            SourceRef::OciDir { path, tag } | SourceRef::OciArchive { path, tag } => {
                format!("{}:{}", base(path), tag.as_deref().unwrap_or("latest"))
            }
            SourceRef::DockerArchive { path, reference } => reference
                .clone()
                .unwrap_or_else(|| format!("{}:latest", base(path))),
            SourceRef::Registry(r) => r.default_name(),
        }
    }
}

/// Read access to the files of an image layout, either a directory or a tar archive.
pub trait LayoutFiles: Sync {
    /// Open a file by its path inside the layout (e.g. `index.json`).
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>>;

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open(path)?
            .read_to_end(&mut buf)
            .ctx(|| format!("read {path}"))?;
        Ok(buf)
    }

    fn open_blob(&self, d: &Digest) -> Result<Box<dyn Read + Send + '_>> {
        self.open(&format!("blobs/sha256/{}", d.hex()))
    }

    /// Open blob `d` from byte `offset` on; `None` when the source cannot (then the
    /// caller starts over with [`LayoutFiles::open_blob`]).
    fn open_blob_at(&self, _d: &Digest, _offset: u64) -> Result<Option<Box<dyn Read + Send + '_>>> {
        Ok(None)
    }

    /// Is a transfer from this source worth resuming (a network source)? Interrupted
    /// transfers from resumable sources keep their partial data in the store.
    fn resumable(&self) -> bool {
        false
    }
}

/// A layout directory on disk. Paths come from digests or fixed names, never from the image.
pub struct DirFiles(pub PathBuf);

impl LayoutFiles for DirFiles {
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>> {
        let p = self.0.join(path);
        let f = File::open(&p).ctx(|| format!("open {}", p.display()))?;
        Ok(Box::new(f))
    }
}

/// A tar archive read in place: an index of member name -> (data offset, size).
pub struct TarFiles {
    path: PathBuf,
    members: HashMap<String, (u64, u64)>,
}

fn normalize_member(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl TarFiles {
    pub fn open(path: &Path) -> Result<TarFiles> {
        let file = File::open(path).ctx(|| format!("open {}", path.display()))?;
        let mut archive = tar::Archive::new(std::io::BufReader::new(file));
        let mut members = HashMap::new();
        let mut links: Vec<(String, String)> = Vec::new();
        for entry in archive
            .entries()
            .ctx(|| format!("read archive {}", path.display()))?
        {
            let entry = entry.ctx(|| format!("read archive {}", path.display()))?;
            let name = normalize_member(&String::from_utf8_lossy(&entry.path_bytes()));
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    members.insert(name, (entry.raw_file_position(), entry.size()));
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(target) = entry.link_name_bytes() {
                        let target = String::from_utf8_lossy(&target).into_owned();
                        let resolved = if entry.header().entry_type() == tar::EntryType::Symlink {
                            let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                            normalize_member(&format!("{dir}/{target}"))
                        } else {
                            normalize_member(&target)
                        };
                        links.push((name, resolved));
                    }
                }
                _ => {}
            }
        }
        // Docker archives link duplicate layers; resolve a few levels of links.
        for _ in 0..8 {
            for (name, target) in &links {
                if let Some(v) = members.get(target).copied() {
                    members.entry(name.clone()).or_insert(v);
                }
            }
        }
        Ok(TarFiles {
            path: path.to_path_buf(),
            members,
        })
    }
}

impl LayoutFiles for TarFiles {
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>> {
        let (offset, size) = *self.members.get(&normalize_member(path)).ok_or_else(|| {
            invalid(format!(
                "{}: archive has no member {path:?}",
                self.path.display()
            ))
        })?;
        let mut f = File::open(&self.path).ctx(|| format!("open {}", self.path.display()))?;
        f.seek(SeekFrom::Start(offset))
            .ctx(|| format!("seek in {}", self.path.display()))?;
        Ok(Box::new(f.take(size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refs() {
        assert_eq!(
            SourceRef::parse("oci:/tmp/x:v1").unwrap().unwrap(),
            SourceRef::OciDir {
                path: "/tmp/x".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            SourceRef::parse("oci-archive:a.tar").unwrap().unwrap(),
            SourceRef::OciArchive {
                path: "a.tar".into(),
                tag: None
            }
        );
        assert_eq!(
            SourceRef::parse("docker-archive:/x.tar:busybox:1.0")
                .unwrap()
                .unwrap(),
            SourceRef::DockerArchive {
                path: "/x.tar".into(),
                reference: Some("busybox:1.0".into())
            }
        );
        assert!(SourceRef::parse("busybox:latest").is_none());
        assert!(SourceRef::parse("docker:x/y:z").unwrap().is_err());
        assert!(SourceRef::parse("docker://localhost:5000/y:z")
            .unwrap()
            .is_ok());
        assert_eq!(
            SourceRef::parse("oci:/a/bb:1")
                .unwrap()
                .unwrap()
                .default_name(),
            "bb:1"
        );
    }
}
