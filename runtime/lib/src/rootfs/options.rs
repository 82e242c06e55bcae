//! runc's mount option table: flags, propagation, recursive attributes and data.

use nix::mount::MsFlags;

use crate::error::Result;

/// mount_setattr(2) attribute bits.
pub const MOUNT_ATTR_RDONLY: u64 = 0x01;
pub const MOUNT_ATTR_NOSUID: u64 = 0x02;
pub const MOUNT_ATTR_NODEV: u64 = 0x04;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x08;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x00;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// Recursive attributes (`rro`, `rnosuid`, …) applied with mount_setattr(AT_RECURSIVE).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecAttr {
    pub set: u64,
    pub clr: u64,
}

/// How a mount is idmapped (`idmap`: the mount itself; `ridmap`: with
/// every submount of an rbind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idmap {
    Plain,
    Recursive,
}

/// A parsed `mounts[].options` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Flags explicitly cleared (`rw`, `suid`, `dev`, `exec`, …).
    pub cleared: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub rec: RecAttr,
    /// `tmpcopyup`: a new tmpfs starts with a copy of what it covers.
    pub copy_up: bool,
    /// `idmap` / `ridmap`.
    pub idmap: Option<Idmap>,
    /// Everything else, joined with commas, passed as mount data.
    pub data: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            rec: RecAttr::default(),
            copy_up: false,
            idmap: None,
            data: String::new(),
        }
    }
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

fn flag(name: &str) -> Option<(bool, MsFlags)> {
    use MsFlags as F;
    Some(match name {
        "async" => (false, F::MS_SYNCHRONOUS),
        "atime" => (false, F::MS_NOATIME),
        "bind" => (true, F::MS_BIND),
        "defaults" => (true, F::empty()),
        "dev" => (false, F::MS_NODEV),
        "diratime" => (false, F::MS_NODIRATIME),
        "dirsync" => (true, F::MS_DIRSYNC),
        "exec" => (false, F::MS_NOEXEC),
        "iversion" => (true, F::MS_I_VERSION),
        "lazytime" => (true, F::MS_LAZYTIME),
        "loud" => (false, F::MS_SILENT),
        "mand" => (true, F::MS_MANDLOCK),
        "noatime" => (true, F::MS_NOATIME),
        "nodev" => (true, F::MS_NODEV),
        "nodiratime" => (true, F::MS_NODIRATIME),
        "noexec" => (true, F::MS_NOEXEC),
        "noiversion" => (false, F::MS_I_VERSION),
        "nolazytime" => (false, F::MS_LAZYTIME),
        "nomand" => (false, F::MS_MANDLOCK),
        "norelatime" => (false, F::MS_RELATIME),
        "nostrictatime" => (false, F::MS_STRICTATIME),
        "nosuid" => (true, F::MS_NOSUID),
        "nosymfollow" => (true, F::from_bits_retain(256)),
        "symfollow" => (false, F::from_bits_retain(256)),
        "rbind" => (true, F::MS_BIND | F::MS_REC),
        "relatime" => (true, F::MS_RELATIME),
        "remount" => (true, F::MS_REMOUNT),
        "ro" => (true, F::MS_RDONLY),
        "rw" => (false, F::MS_RDONLY),
        "silent" => (true, F::MS_SILENT),
        "strictatime" => (true, F::MS_STRICTATIME),
        "suid" => (false, F::MS_NOSUID),
        "sync" => (true, F::MS_SYNCHRONOUS),
        _ => return None,
    })
}

fn propagation(name: &str) -> Option<MsFlags> {
    use MsFlags as F;
    Some(match name {
        "private" => F::MS_PRIVATE,
        "rprivate" => F::MS_PRIVATE | F::MS_REC,
        "shared" => F::MS_SHARED,
        "rshared" => F::MS_SHARED | F::MS_REC,
        "slave" => F::MS_SLAVE,
        "rslave" => F::MS_SLAVE | F::MS_REC,
        "unbindable" => F::MS_UNBINDABLE,
        "runbindable" => F::MS_UNBINDABLE | F::MS_REC,
        _ => return None,
    })
}

/// Recursive attribute options: (set?, attr). Atime ones also clear MOUNT_ATTR__ATIME.
fn recursive(name: &str) -> Option<(bool, u64)> {
    Some(match name {
        "rro" => (true, MOUNT_ATTR_RDONLY),
        "rrw" => (false, MOUNT_ATTR_RDONLY),
        "rnosuid" => (true, MOUNT_ATTR_NOSUID),
        "rsuid" => (false, MOUNT_ATTR_NOSUID),
        "rnodev" => (true, MOUNT_ATTR_NODEV),
        "rdev" => (false, MOUNT_ATTR_NODEV),
        "rnoexec" => (true, MOUNT_ATTR_NOEXEC),
        "rexec" => (false, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (true, MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (false, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (true, MOUNT_ATTR_RELATIME | (1 << 63)),
        "rnorelatime" => (false, MOUNT_ATTR_RELATIME | (1 << 63)),
        "rnoatime" => (true, MOUNT_ATTR_NOATIME | (1 << 63)),
        "ratime" => (false, MOUNT_ATTR_NOATIME | (1 << 63)),
        "rstrictatime" => (true, MOUNT_ATTR_STRICTATIME | (1 << 63)),
        "rnostrictatime" => (false, MOUNT_ATTR_STRICTATIME | (1 << 63)),
        "rnosymfollow" => (true, MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (false, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// The option names berth understands (reported by `berth features`).
pub fn known_options() -> Vec<&'static str> {
    vec![
        "async",
        "atime",
        "bind",
        "defaults",
        "dev",
        "diratime",
        "dirsync",
        "exec",
        "iversion",
        "lazytime",
        "loud",
        "mand",
        "noatime",
        "nodev",
        "nodiratime",
        "noexec",
        "noiversion",
        "nolazytime",
        "nomand",
        "norelatime",
        "nostrictatime",
        "nosuid",
        "nosymfollow",
        "private",
        "rprivate",
        "rbind",
        "relatime",
        "remount",
        "ro",
        "rw",
        "rshared",
        "rslave",
        "runbindable",
        "shared",
        "silent",
        "slave",
        "strictatime",
        "suid",
        "symfollow",
        "sync",
        "unbindable",
        "rro",
        "rrw",
        "rnosuid",
        "rsuid",
        "rnodev",
        "rdev",
        "rnoexec",
        "rexec",
        "rnodiratime",
        "rdiratime",
        "rrelatime",
        "rnorelatime",
        "rnoatime",
        "ratime",
        "rstrictatime",
        "rnostrictatime",
        "rnosymfollow",
        "rsymfollow",
        "tmpcopyup",
        "idmap",
        "ridmap",
    ]
}

pub fn parse(options: &[String]) -> Result<MountOptions> {
    let mut o = MountOptions::default();
    let mut data = Vec::new();
    for opt in options {
        if let Some((set, f)) = flag(opt) {
            if set {
                o.flags |= f;
                o.cleared &= !f;
            } else {
                o.flags &= !f;
                o.cleared |= f;
            }
        } else if let Some(p) = propagation(opt) {
            o.propagation.push(p);
        } else if let Some((set, attr)) = recursive(opt) {
            let atime = attr & (1 << 63) != 0;
            let attr = attr & !(1 << 63);
            if atime {
                o.rec.clr |= MOUNT_ATTR__ATIME;
                if set {
                    o.rec.set = (o.rec.set & !MOUNT_ATTR__ATIME) | attr;
                }
            } else if set {
                o.rec.set |= attr;
                o.rec.clr &= !attr;
            } else {
                o.rec.clr |= attr;
                o.rec.set &= !attr;
            }
        } else if opt == "idmap" {
            o.idmap = Some(Idmap::Plain);
        } else if opt == "ridmap" {
            o.idmap = Some(Idmap::Recursive);
        } else if opt == "tmpcopyup" {
            o.copy_up = true;
        } else {
            data.push(opt.as_str());
        }
    }
    o.data = data.join(",");
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> MountOptions {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn table() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        let o = p(&["rbind", "ro", "rslave"]);
        assert!(o.is_bind() && o.flags.contains(MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        let o = p(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
        let o = p(&["rro", "rnoatime", "rnosuid"]);
        assert_eq!(
            o.rec.set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME | MOUNT_ATTR_NOSUID
        );
        assert_eq!(o.rec.clr, MOUNT_ATTR__ATIME);
        assert_eq!(p(&["rbind", "ridmap"]).idmap, Some(Idmap::Recursive));
    }
}
