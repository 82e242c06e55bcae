//! Which `berth` binary to run and where its state lives, from the runtime
//! options containerd passes with Create (`containerd.runc.v1.Options`:
//! `BinaryName`, `Root`), saved in the bundle for the `delete` action that runs
//! after a shim died.

use std::path::{Path, PathBuf};

use containerd_shim::api::Options;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};

/// `<root>/<namespace>` is berth's `--root`, like the runc shim's
/// `/run/containerd/runc/<namespace>`.
pub const DEFAULT_ROOT: &str = "/run/containerd/berth";
const DEFAULT_BINARY: &str = "berth";
const SAVED_FILE: &str = "berth-shim.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuntimeOptions {
    /// The berth executable (resolved path, or a bare name searched in PATH).
    pub binary: PathBuf,
    /// berth's `--root`, namespace included.
    pub root: PathBuf,
}

impl RuntimeOptions {
    /// Options from the request's `Any`, with defaults for what is not set.
    pub fn from_request(options: Option<&Any>, namespace: &str) -> Result<Self> {
        let mut opts = Options::new();
        if let Some(any) = options.filter(|a| a.type_url.ends_with("containerd.runc.v1.Options")) {
            opts = Options::parse_from_bytes(&any.value).context("decode runtime options")?;
        }
        Ok(Self::new(&opts.binary_name, &opts.root, namespace))
    }

    pub fn new(binary_name: &str, root: &str, namespace: &str) -> Self {
        let root = if root.is_empty() { DEFAULT_ROOT } else { root };
        RuntimeOptions {
            binary: resolve_binary(binary_name),
            root: Path::new(root).join(namespace),
        }
    }

    pub fn save(&self, bundle: &Path) -> Result<()> {
        let json = serde_json::to_vec(self)?;
        std::fs::write(bundle.join(SAVED_FILE), json).context("save runtime options")
    }

    /// The options saved by Create, or the defaults when there are none.
    pub fn load(bundle: &Path, namespace: &str) -> Self {
        std::fs::read(bundle.join(SAVED_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| Self::new("", "", namespace))
    }
}

/// `name` (default `berth`) as a path: as given when it has a slash, else the
/// file of that name next to the shim executable, else the first in PATH.
pub fn resolve_binary(name: &str) -> PathBuf {
    let name = if name.is_empty() {
        DEFAULT_BINARY
    } else {
        name
    };
    if name.contains('/') {
        return PathBuf::from(name);
    }
    let beside_shim = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)));
    let in_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    beside_shim
        .into_iter()
        .chain(in_path)
        .find(|p| is_executable(p))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_put_the_namespace_under_the_root() {
        let o = RuntimeOptions::new("", "", "k8s.io");
        assert_eq!(o.root, PathBuf::from("/run/containerd/berth/k8s.io"));
        let o = RuntimeOptions::new("/opt/berth", "/tmp/r", "default");
        assert_eq!(o.binary, PathBuf::from("/opt/berth"));
        assert_eq!(o.root, PathBuf::from("/tmp/r/default"));
    }

    #[test]
    fn request_options_are_decoded() {
        let mut opts = Options::new();
        opts.binary_name = "/usr/local/bin/berth".into();
        opts.root = "/tmp/state".into();
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: opts.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let o = RuntimeOptions::from_request(Some(&any), "ns").unwrap();
        assert_eq!(o.binary, PathBuf::from("/usr/local/bin/berth"));
        assert_eq!(o.root, PathBuf::from("/tmp/state/ns"));
        let other = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: vec![1, 2, 3],
            ..Default::default()
        };
        assert_eq!(
            RuntimeOptions::from_request(Some(&other), "ns")
                .unwrap()
                .root,
            PathBuf::from("/run/containerd/berth/ns")
        );
    }

    #[test]
    fn saved_options_round_trip() {
        let dir = std::env::temp_dir().join(format!("berth-shim-opts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let o = RuntimeOptions::new("/x/berth", "/y", "ns");
        o.save(&dir).unwrap();
        assert_eq!(RuntimeOptions::load(&dir, "other"), o);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            RuntimeOptions::load(&dir, "ns").root,
            PathBuf::from("/run/containerd/berth/ns")
        );
    }
}
