//! The error type shared by the library.

use std::path::PathBuf;

/// Everything that can go wrong while handling images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("unsafe layer entry {entry:?}: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    #[error("image not found: {0}")]
    ImageNotFound(String),
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("bundle {}: {reason}", path.display())]
    Bundle { path: PathBuf, reason: String },
    #[error(
        "layer {layer}: unpacked it is larger than the limit of {limit} bytes (--max-layer-size)"
    )]
    LayerTooLarge { layer: String, limit: u64 },
    #[error("layer entry {entry:?}: bad GNU sparse file: {reason}")]
    BadSparse { entry: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach a human-readable context to I/O errors.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Io {
            context: context(),
            source: e.into(),
        })
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

pub(crate) fn unsafe_entry(entry: &str, reason: impl Into<String>) -> Error {
    Error::UnsafeEntry {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}
