//! Driving CRIU (checkpoint/restore in userspace) the way runc does: one
//! `criu swrk` process per operation, spoken to over its RPC protocol on a
//! socket pair.
//!
//! Why the RPC and not criu's command line: the RPC is what runc, crun and
//! podman use, so the images berth writes are the ones those tools expect, and
//! only the RPC offers what a runtime needs during a restore: notifications at
//! each stage (`setup-namespaces` runs the prestart hooks with the restored
//! init's pid, `post-restore` reports that pid, `orphan-pts-master` hands over
//! the terminal's master fd), fds passed in (`inherit_fd`: the new stdio pipes,
//! an external network namespace) and the restored tree as a sibling of criu,
//! i.e. a child of berth (`rst_sibling`).

pub mod descriptors;
pub mod log;
pub mod mounts;
pub mod namespaces;
pub mod options;
pub mod swrk;

use std::path::PathBuf;

pub use options::{CgroupsMode, CriuFlags};

/// Errors of a CRIU session.
#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    #[error("cannot run criu ({path}): {source}; install CRIU or pass --criu PATH")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("criu {path} is version {found}; berth needs {needed} or newer")]
    TooOld {
        path: PathBuf,
        found: String,
        needed: String,
    },
    #[error("criu is missing features: {0}")]
    MissingFeatures(String),
    /// CRIU answered that the request failed. `log` quotes the last error
    /// lines of its log file, where the reason is (`msg`, CRIU's own message,
    /// is its first error line, often not the one that matters).
    #[error("criu {op} failed{errno}: {}", if log.is_empty() { msg } else { log })]
    Failed {
        op: &'static str,
        errno: String,
        msg: String,
        log: String,
    },
    #[error("criu {op}: {what}")]
    Protocol { op: &'static str, what: String },
    #[error("criu {op}: {context}: {source}")]
    Io {
        op: &'static str,
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The `criu` binary berth runs: `--criu PATH` if given, else `criu` on PATH.
#[derive(Debug, Clone)]
pub struct Criu {
    pub path: PathBuf,
}

impl Default for Criu {
    fn default() -> Self {
        Criu {
            path: PathBuf::from("criu"),
        }
    }
}

impl Criu {
    pub fn new(path: Option<PathBuf>) -> Criu {
        path.map(|path| Criu { path }).unwrap_or_default()
    }
}

/// The CRIU configuration file of a container, as runc chooses it: the
/// `org.criu.config` annotation names one (empty: none), else
/// /etc/criu/runc.conf (CRIU ignores a missing file; tools that tune CRIU for
/// runc write that file, and berth honours it too).
pub fn config_file(
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> Option<String> {
    match annotations.and_then(|a| a.get("org.criu.config")) {
        Some(f) if f.is_empty() => None,
        Some(f) => Some(f.clone()),
        None => Some("/etc/criu/runc.conf".into()),
    }
}

/// The oldest CRIU berth drives: external pid namespaces (`extRootPidNS`)
/// arrived in 3.15, the cgroup2 freezer in 3.14 (runc checks the same).
pub const MIN_VERSION: u32 = 31500;

/// CRIU's version as one number, runc's way: major*10000 + minor*100 +
/// sublevel, and a git build counts as the next minor release.
pub fn version_number(major: i32, minor: i32, sublevel: i32, git: bool) -> u32 {
    let mut v = (major.max(0) * 10000 + minor.max(0) * 100 + sublevel.max(0)) as u32;
    if git {
        v = v - v % 100 + 100;
    }
    v
}

/// "3.15.0" from [`version_number`]'s encoding.
pub fn version_string(v: u32) -> String {
    format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_encode_like_runc() {
        assert_eq!(version_number(4, 2, 1, false), 40201);
        assert_eq!(version_number(3, 17, 0, true), 31800);
        assert_eq!(version_string(31500), "3.15.0");
        assert!(version_number(3, 14, 0, false) < MIN_VERSION);
    }
}
