//! The shim's error: a gRPC status code plus a message, which is what containerd
//! sees (`errdefs.FromGRPC` turns the code back into NotFound, AlreadyExists, ...).

use std::fmt;

use containerd_shim::protos::ttrpc::{self, get_status, Code};

#[derive(Debug)]
pub struct Error {
    code: Code,
    msg: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        Error {
            code,
            msg: msg.into(),
        }
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(Code::NOT_FOUND, msg)
    }
    pub fn already_exists(msg: impl Into<String>) -> Self {
        Self::new(Code::ALREADY_EXISTS, msg)
    }
    pub fn failed_precondition(msg: impl Into<String>) -> Self {
        Self::new(Code::FAILED_PRECONDITION, msg)
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(Code::INVALID_ARGUMENT, msg)
    }
    pub fn unimplemented(msg: impl Into<String>) -> Self {
        Self::new(Code::UNIMPLEMENTED, msg)
    }
    pub fn other(msg: impl Into<String>) -> Self {
        Self::new(Code::UNKNOWN, msg)
    }
    /// Prefixes the message with what was being done.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error {
            code: self.code,
            msg: format!("{what}: {}", self.msg),
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.code == Code::NOT_FOUND
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        ttrpc::Error::RpcStatus(get_status(e.code, e.msg))
    }
}

impl From<Error> for containerd_shim::Error {
    fn from(e: Error) -> Self {
        match e.code {
            Code::NOT_FOUND => containerd_shim::Error::NotFoundError(e.msg),
            Code::FAILED_PRECONDITION => containerd_shim::Error::FailedPreconditionError(e.msg),
            Code::INVALID_ARGUMENT => containerd_shim::Error::InvalidArgument(e.msg),
            _ => containerd_shim::Error::Other(e.msg),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::other(e.to_string())
    }
}

impl From<berth_cgroups::CgroupError> for Error {
    fn from(e: berth_cgroups::CgroupError) -> Self {
        Error::other(e.to_string())
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::other(e.desc())
    }
}

impl From<containerd_shim::Error> for Error {
    fn from(e: containerd_shim::Error) -> Self {
        Error::other(e.to_string())
    }
}

impl From<containerd_shim::protos::protobuf::Error> for Error {
    fn from(e: containerd_shim::protos::protobuf::Error) -> Self {
        Error::other(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::other(e.to_string())
    }
}

/// Attaches context to any error convertible into [`Error`].
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(what))
    }
}
