//! Test pieces shared by the runtime's integration tests and the conformance
//! suite. Nothing here knows about berth: the conformance suite drives any
//! runc-compatible runtime.

pub mod faults;
pub mod scratch;
pub mod seccomp_agent;
pub mod skip;
pub use scratch::ScratchDir;
pub use skip::skip;
