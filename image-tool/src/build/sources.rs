//! What COPY and ADD read: the build context (minus what `.dockerignore`
//! excludes) or another stage's filesystem. Sources are matched with Go's
//! `filepath.Match` per path component, and hashed (paths, types, modes,
//! contents, link targets; not times or owners) for the layer cache.

use super::fsroot::{dir_flags, lstat, names, Root};
use super::pattern::{clean_parts, has_wildcards, path_regex, Ignore};
use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, FileType, OFlags};
use sha2::{Digest as _, Sha256};
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

/// A tree sources are taken from.
pub struct SourceTree<'a> {
    pub root: &'a Root,
    /// `.dockerignore` of the build context; `None` for a stage or image.
    pub ignore: Option<&'a Ignore>,
    /// How errors call this tree ("build context", "stage build").
    pub label: String,
}

/// One source that a COPY/ADD argument matched.
#[derive(Debug, Clone)]
pub struct Matched {
    /// Path below the tree's root (empty for the root itself).
    pub rel: String,
    /// Its last component (the name a copied file gets in a directory).
    pub name: String,
    /// What it is, symlinks followed (inside the tree).
    pub kind: FileType,
}

impl SourceTree<'_> {
    /// Is `rel` left out of the context by `.dockerignore`?
    pub fn ignored(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.is_some_and(|i| i.excludes(rel))
    }

    /// May an ignored directory hold entries an exception brings back?
    fn descend_ignored(&self) -> bool {
        self.ignore.is_some_and(|i| i.has_exceptions())
    }

    /// Expand one source argument.
    pub fn resolve(&self, pattern: &str) -> Result<Vec<Matched>> {
        let parts = clean_parts(pattern);
        let mut out = Vec::new();
        if parts.iter().any(|p| has_wildcards(p)) {
            self.expand(String::new(), &parts, &mut out)?;
            if out.is_empty() {
                bail!(
                    "no source files were specified: {pattern:?} matches nothing in the {}",
                    self.label
                );
            }
        } else {
            let rel = parts.join("/");
            match self.lookup(&rel)? {
                Some(m) => out.push(m),
                None => bail!(
                    "{pattern:?} not found in the {} (or excluded by .dockerignore)",
                    self.label
                ),
            }
        }
        Ok(out)
    }

    fn lookup(&self, rel: &str) -> Result<Option<Matched>> {
        if self.ignored(rel) && !self.descend_ignored() {
            return Ok(None);
        }
        let Some(kind) = self.root.kind(rel)? else {
            return Ok(None);
        };
        if self.ignored(rel) && kind != FileType::Directory {
            return Ok(None);
        }
        Ok(Some(Matched {
            rel: rel.to_string(),
            name: rel.rsplit('/').next().unwrap_or_default().to_string(),
            kind,
        }))
    }

    fn expand(&self, prefix: String, rest: &[&str], out: &mut Vec<Matched>) -> Result<()> {
        let Some((comp, more)) = rest.split_first() else {
            if let Some(m) = self.lookup(&prefix)? {
                out.push(m);
            }
            return Ok(());
        };
        let join = |name: &str| {
            if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            }
        };
        if !has_wildcards(comp) {
            return self.expand(join(comp), more, out);
        }
        let re = path_regex(comp).with_context(|| format!("bad pattern {comp:?}"))?;
        let dir = match self.root.open_in(&prefix, dir_flags()) {
            Ok(d) => d,
            Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("open /{prefix}")),
        };
        for name in names(&dir)? {
            let name = name.to_string_lossy().into_owned();
            if re.is_match(&name) {
                self.expand(join(&name), more, out)?;
            }
        }
        Ok(())
    }

    /// Open a matched source (symlinks followed inside the tree).
    pub fn open(&self, m: &Matched) -> Result<OwnedFd> {
        let flags = if m.kind == FileType::Directory {
            dir_flags()
        } else {
            OFlags::RDONLY
        };
        self.root
            .open_in(&m.rel, flags)
            .with_context(|| format!("open {} in the {}", m.rel, self.label))
    }

    /// Add everything COPY would take from `m` to `h`.
    pub fn hash(&self, m: &Matched, h: &mut Sha256) -> Result<()> {
        h.update(b"source\0");
        h.update(m.rel.as_bytes());
        h.update([0]);
        let fd = self.open(m)?;
        let st = rfs::fstat(&fd).with_context(|| format!("stat {}", m.rel))?;
        hash_meta(h, &st);
        if m.kind == FileType::Directory {
            self.hash_dir(&fd, &m.rel, h)
        } else if m.kind == FileType::RegularFile {
            hash_content(h, File::from(fd)).with_context(|| format!("read {}", m.rel))
        } else {
            Ok(())
        }
    }

    fn hash_dir(&self, dir: &OwnedFd, rel: &str, h: &mut Sha256) -> Result<()> {
        for name in names(dir)? {
            let child = if rel.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", name.to_string_lossy())
            };
            let st = lstat(dir, &name).with_context(|| format!("stat {child}"))?;
            let kind = FileType::from_raw_mode(st.st_mode);
            if self.ignored(&child) && (kind != FileType::Directory || !self.descend_ignored()) {
                continue;
            }
            h.update(name.as_bytes());
            h.update([0]);
            hash_meta(h, &st);
            match kind {
                FileType::Directory => {
                    let sub = rfs::openat(
                        dir,
                        &name,
                        dir_flags() | OFlags::NOFOLLOW,
                        rfs::Mode::empty(),
                    )
                    .with_context(|| format!("open {child}"))?;
                    self.hash_dir(&sub, &child, h)?;
                    h.update(b"\0end\0");
                }
                FileType::RegularFile => {
                    let f = rfs::openat(
                        dir,
                        &name,
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        rfs::Mode::empty(),
                    )
                    .with_context(|| format!("open {child}"))?;
                    hash_content(h, File::from(f)).with_context(|| format!("read {child}"))?;
                }
                FileType::Symlink => {
                    let t = rfs::readlinkat(dir, &name, Vec::new())
                        .with_context(|| format!("readlink {child}"))?;
                    h.update(t.as_bytes());
                }
                _ => h.update(st.st_rdev.to_le_bytes()),
            }
        }
        Ok(())
    }
}

fn hash_meta(h: &mut Sha256, st: &rfs::Stat) {
    h.update(st.st_mode.to_le_bytes());
    h.update([0]);
}

fn hash_content(h: &mut Sha256, mut f: File) -> std::io::Result<()> {
    let mut inner = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        inner.update(&buf[..n]);
    }
    h.update(inner.finalize());
    Ok(())
}

/// `name` as a context path below `rel`.
pub fn child_rel(rel: &str, name: &OsStr) -> String {
    if rel.is_empty() {
        name.to_string_lossy().into_owned()
    } else {
        format!("{rel}/{}", name.to_string_lossy())
    }
}
