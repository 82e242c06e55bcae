//! Images as shared read-only layers: a content store, layer unpacking, runtime bundles.

pub mod digest;
mod entry_meta;
pub mod error;
mod fetch;
pub mod fsutil;
pub mod holes;
pub mod image;
pub mod pull;
pub mod source;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use error::{Error, Result};
pub use store::Store;
pub mod build;
pub mod bundle;
pub mod busybox;
pub mod commit;
pub mod config_gen;
pub mod flatten;
pub mod layout;
pub mod lower;
pub mod net;
pub mod overlay;
pub mod progress;
pub mod push;
pub mod registry;
pub mod run;
pub mod sparse;
