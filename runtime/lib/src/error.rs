//! The library's error type. Every variant names what went wrong and where.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json is malformed or asks for something invalid; names the field.
    #[error("config.json: {0}")]
    Config(String),
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container with id \"{0}\" already exists")]
    Exists(String),
    #[error("invalid container id \"{0}\": {1}")]
    InvalidId(String, &'static str),
    /// The operation is not allowed in the container's current state.
    #[error("{0}")]
    WrongState(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {errno}")]
    Sys {
        context: String,
        errno: nix::errno::Errno,
    },
    #[error("{path}: {msg}")]
    Path { path: PathBuf, msg: String },
    /// Not a `#[source]`: the message is already part of this one, and error
    /// chains printed with `{:#}` would repeat it.
    #[error("cgroup: {0}")]
    Cgroup(berth_cgroups::CgroupError),
    /// Checkpoint/restore through CRIU failed. Not a `#[source]`, as for
    /// `Cgroup`.
    #[error("{0}")]
    Criu(crate::criu::CriuError),
    /// runc's words for it, which its clients and tests match.
    #[error("error running {kind} hook #{index}: {path}: {msg}")]
    Hook {
        kind: String,
        index: usize,
        path: String,
        msg: String,
    },
    /// An error reported by the container's init process.
    #[error("{0}")]
    Init(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Attach a context to nix/io failures: `.ctx(|| format!("mount {dest}"))`.
pub trait Context<T> {
    fn ctx<S: Into<String>, F: FnOnce() -> S>(self, f: F) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, nix::errno::Errno> {
    fn ctx<S: Into<String>, F: FnOnce() -> S>(self, f: F) -> Result<T> {
        self.map_err(|errno| Error::Sys {
            context: f().into(),
            errno,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx<S: Into<String>, F: FnOnce() -> S>(self, f: F) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: f().into(),
            source,
        })
    }
}

impl From<crate::criu::CriuError> for Error {
    fn from(e: crate::criu::CriuError) -> Self {
        Error::Criu(e)
    }
}

impl From<berth_cgroups::CgroupError> for Error {
    fn from(e: berth_cgroups::CgroupError) -> Self {
        Error::Cgroup(e)
    }
}
