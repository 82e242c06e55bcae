//! File-by-file description and comparison of two directory trees: type, mode, owner,
//! size, content hash, extended attributes, mtime to the nanosecond, link targets,
//! hardlink groups, device numbers and the layout of data and holes.

use sha2::Digest as _;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Everything compared about one path of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Regular files and symlinks.
    pub size: u64,
    /// sha256 of a regular file's content.
    pub hash: Option<String>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub mtime: (i64, i64),
    pub link: Option<Vec<u8>>,
    /// (major, minor) of a device node.
    pub rdev: Option<(u32, u32)>,
    /// The first path (in sort order) of the hardlink group this file belongs to,
    /// counting only names inside the tree; `None` for a file with one name here.
    pub hardlink_group: Option<String>,
    /// Data extents `(offset, length)` of a regular file (SEEK_DATA/SEEK_HOLE).
    pub data_map: Option<Vec<(u64, u64)>>,
}

/// A tree: relative path (`""` for the root) to node.
pub type Tree = BTreeMap<String, Node>;

/// One difference between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub field: &'static str,
    pub left: String,
    pub right: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {}: {} != {}",
            self.path, self.field, self.left, self.right
        )
    }
}

/// Extended attributes that are the mechanism of a mount, not content of the image.
fn ignored_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name == "security.selinux"
}

fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names[..]) else {
        return out;
    };
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if ignored_xattr(&name) {
            continue;
        }
        let mut value = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..]) {
            value.truncate(len);
            out.insert(name, value);
        }
    }
    out
}

fn hash_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path:?}: {e}"));
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// Data extents of a regular file, from SEEK_DATA/SEEK_HOLE.
pub fn data_map(path: &Path) -> Vec<(u64, u64)> {
    use rustix::fs::{seek, SeekFrom};
    let f = std::fs::File::open(path).unwrap();
    let size = f.metadata().unwrap().len();
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let Ok(data) = seek(&f, SeekFrom::Data(pos)) else {
            break; // ENXIO: only a hole remains
        };
        let hole = seek(&f, SeekFrom::Hole(data)).unwrap();
        out.push((data, hole - data));
        pos = hole;
    }
    out
}

/// Describe every path below `root` (the root included, as `""`).
pub fn scan(root: &Path) -> Tree {
    let mut tree = Tree::new();
    let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    walk(root, "", &mut tree, &mut inodes);
    for mut names in inodes.into_values().filter(|n| n.len() > 1) {
        names.sort();
        for n in &names {
            tree.get_mut(n).unwrap().hardlink_group = Some(names[0].clone());
        }
    }
    tree
}

fn walk(root: &Path, rel: &str, tree: &mut Tree, inodes: &mut HashMap<(u64, u64), Vec<String>>) {
    let path = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let m = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {path:?}: {e}"));
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_file() {
        "file"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    };
    let node = Node {
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: if ft.is_file() || ft.is_symlink() {
            m.size()
        } else {
            0
        },
        hash: ft.is_file().then(|| hash_file(&path)),
        xattrs: xattrs(&path),
        mtime: (m.mtime(), m.mtime_nsec()),
        link: ft.is_symlink().then(|| {
            std::fs::read_link(&path)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec()
        }),
        rdev: (ft.is_char_device() || ft.is_block_device())
            .then(|| (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()))),
        hardlink_group: None,
        data_map: ft.is_file().then(|| data_map(&path)),
    };
    if !ft.is_dir() && m.nlink() > 1 {
        inodes
            .entry((m.dev(), m.ino()))
            .or_default()
            .push(rel.to_string());
    }
    tree.insert(rel.to_string(), node);
    if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let child = if rel.is_empty() {
                String::from_utf8_lossy(name.as_bytes()).into_owned()
            } else {
                format!("{rel}/{}", String::from_utf8_lossy(name.as_bytes()))
            };
            walk(root, &child, tree, inodes);
        }
    }
}

/// Which fields [`compare`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// Compare the data/hole layout of regular files.
    pub data_map: bool,
}

fn show_bytes(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

/// Every difference between `left` and `right`, path by path.
pub fn compare(left: &Tree, right: &Tree, fields: Fields) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut diff = |path: &str, field: &'static str, l: String, r: String| {
        out.push(Difference {
            path: path.to_string(),
            field,
            left: l,
            right: r,
        })
    };
    for (path, r) in right {
        let Some(l) = left.get(path) else {
            diff(path, "presence", "absent".into(), r.kind.into());
            continue;
        };
        if l.kind != r.kind {
            diff(path, "type", l.kind.into(), r.kind.into());
            continue;
        }
        if l.mode != r.mode {
            diff(
                path,
                "mode",
                format!("{:o}", l.mode),
                format!("{:o}", r.mode),
            );
        }
        if (l.uid, l.gid) != (r.uid, r.gid) {
            diff(
                path,
                "owner",
                format!("{}:{}", l.uid, l.gid),
                format!("{}:{}", r.uid, r.gid),
            );
        }
        if l.size != r.size {
            diff(path, "size", l.size.to_string(), r.size.to_string());
        }
        if l.hash != r.hash {
            diff(
                path,
                "content",
                format!("{:?}", l.hash),
                format!("{:?}", r.hash),
            );
        }
        if l.xattrs != r.xattrs {
            let show = |x: &BTreeMap<String, Vec<u8>>| {
                x.iter()
                    .map(|(k, v)| format!("{k}={}", show_bytes(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            diff(path, "xattrs", show(&l.xattrs), show(&r.xattrs));
        }
        if l.mtime != r.mtime {
            diff(
                path,
                "mtime",
                format!("{}.{:09}", l.mtime.0, l.mtime.1),
                format!("{}.{:09}", r.mtime.0, r.mtime.1),
            );
        }
        if l.link != r.link {
            let show = |x: &Option<Vec<u8>>| x.as_deref().map(show_bytes).unwrap_or_default();
            diff(path, "link target", show(&l.link), show(&r.link));
        }
        if l.rdev != r.rdev {
            diff(
                path,
                "device",
                format!("{:?}", l.rdev),
                format!("{:?}", r.rdev),
            );
        }
        if l.hardlink_group != r.hardlink_group {
            diff(
                path,
                "hardlink group",
                format!("{:?}", l.hardlink_group),
                format!("{:?}", r.hardlink_group),
            );
        }
        if fields.data_map && l.data_map != r.data_map {
            diff(
                path,
                "data map",
                format!("{:?}", l.data_map),
                format!("{:?}", r.data_map),
            );
        }
    }
    for (path, l) in left {
        if !right.contains_key(path) {
            diff(path, "presence", l.kind.into(), "absent".into());
        }
    }
    out
}

/// Is `name` below (or equal to) `prefix` in a tree's path space?
pub fn below(name: &str, prefix: &str) -> bool {
    name == prefix || name.starts_with(&format!("{prefix}/"))
}
