//! berth: a runc-compatible OCI runtime.
//!
//! The library turns an OCI bundle into a running container. The command line
//! (package `berth`, `runtime/src/cli/`) is a thin layer over [`container`];
//! this crate depends on neither clap nor anyhow.

pub mod bundle_config;
pub mod capabilities;
pub mod cgroup_verbs;
pub mod channel;
pub mod checkpoint;
pub mod container;
pub mod criu;
pub mod device_rules;
pub mod env;
pub mod error;
pub mod exe_seal;
pub mod exec;
pub mod features;
pub mod hooks;
pub mod init;
pub mod logging;
pub mod namespaces;
pub mod pidfd;
pub mod procattrs;
pub mod program;
pub mod restore;
pub mod rlimits;
pub mod rootfs;
pub mod rootless;
pub mod safe_proc;
pub mod seccomp;
pub mod signal;
pub mod state;
pub mod sys;
pub mod terminal;
pub mod user;

pub use error::{Error, Result};

/// The OCI runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = "1.3.0";
