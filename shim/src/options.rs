//! Which `berth` binary to run and where its state lives, from the runtime
//! options containerd passes with Create, saved in the bundle for the `delete`
//! action that runs after a shim died. Two encodings arrive:
//!
//! - `containerd.runc.v1.Options` (`BinaryName`, `Root`): `ctr run
//!   --runc-binary/--runtime-root`;
//! - `runtimeoptions.v1.Options` (`TypeUrl`, `ConfigPath`, `ConfigBody`): what
//!   containerd 1.6's CRI plugin sends for a runtime type other than
//!   `io.containerd.runc.*`. It keeps only those keys of the runtime's
//!   `options` table, so `BinaryName` and `Root` are read from the TOML file
//!   named by `ConfigPath` (or from `ConfigBody` when containerd sent the text).

use std::path::{Path, PathBuf};

use containerd_shim::api::Options;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

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
    /// `SystemdCgroup`: berth runs with `--systemd-cgroup`.
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// `CriuWorkPath`: CRIU's work files and logs of a restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criu_work_path: Option<PathBuf>,
}

impl RuntimeOptions {
    /// Options from the request's `Any`, with defaults for what is not set.
    pub fn from_request(options: Option<&Any>, namespace: &str) -> Result<Self> {
        let Some(any) = options else {
            return Ok(Self::new("", "", namespace));
        };
        if any.type_url.ends_with("containerd.runc.v1.Options") {
            let opts = Options::parse_from_bytes(&any.value).context("decode runtime options")?;
            let mut o = Self::new(&opts.binary_name, &opts.root, namespace);
            o.systemd_cgroup = opts.systemd_cgroup;
            o.criu_work_path =
                (!opts.criu_work_path.is_empty()).then(|| PathBuf::from(&opts.criu_work_path));
            return Ok(o);
        }
        if any.type_url.ends_with("runtimeoptions.v1.Options") {
            let cri = CriOptions::decode(&any.value).context("decode runtimeoptions.v1.Options")?;
            let text = match (&cri.config_body, cri.config_path.as_str()) {
                (body, _) if !body.is_empty() => String::from_utf8(body.clone())
                    .map_err(|_| Error::invalid("runtime options ConfigBody is not UTF-8"))?,
                (_, "") => return Ok(Self::new("", "", namespace)),
                (_, path) => std::fs::read_to_string(path)
                    .context(format_args!("read runtime options file {path}"))?,
            };
            let what = match cri.config_path.as_str() {
                "" => "runtime options ConfigBody".to_string(),
                path => format!("runtime options file {path}"),
            };
            let keys = parse_toml_strings(&text, &["BinaryName", "Root"]).context(&what)?;
            let mut o = Self::new(&keys[0], &keys[1], namespace);
            o.systemd_cgroup = parse_toml_bool(&text, "SystemdCgroup").context(what)?;
            return Ok(o);
        }
        // Options meant for another shim: the runc shim ignores foreign ones too.
        log::warn!("ignoring runtime options of type {}", any.type_url);
        Ok(Self::new("", "", namespace))
    }

    pub fn new(binary_name: &str, root: &str, namespace: &str) -> Self {
        let root = if root.is_empty() { DEFAULT_ROOT } else { root };
        RuntimeOptions {
            binary: resolve_binary(binary_name),
            root: Path::new(root).join(namespace),
            systemd_cgroup: false,
            criu_work_path: None,
        }
    }

    pub fn save(&self, bundle: &Path) -> Result<()> {
        let json = serde_json::to_vec(self)?;
        std::fs::write(bundle.join(SAVED_FILE), json).context("save runtime options")
    }

    /// The options saved by Create; `None` when there is no saved file (no
    /// container was created from this bundle, or it was deleted already).
    /// An unreadable file gives the defaults.
    pub fn load(bundle: &Path, namespace: &str) -> Option<Self> {
        let bytes = std::fs::read(bundle.join(SAVED_FILE)).ok()?;
        Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| Self::new("", "", namespace)))
    }

    /// Marks the bundle's container as deleted (see `load`).
    pub fn forget(bundle: &Path) {
        let _ = std::fs::remove_file(bundle.join(SAVED_FILE));
    }
}

/// `runtimeoptions.v1.Options` (containerd's `pkg/runtimeoptions/v1`):
/// `type_url` = 1, `config_path` = 2, `config_body` = 3 (containerd 1.7+).
#[derive(Debug, Default, PartialEq)]
struct CriOptions {
    type_url: String,
    config_path: String,
    config_body: Vec<u8>,
}

impl CriOptions {
    fn decode(bytes: &[u8]) -> Result<Self> {
        use containerd_shim::protos::protobuf::CodedInputStream;
        let bad = |e: containerd_shim::protos::protobuf::Error| Error::invalid(e.to_string());
        let mut input = CodedInputStream::from_bytes(bytes);
        let mut opts = CriOptions::default();
        while let Some(tag) = input.read_raw_tag_or_eof().map_err(bad)? {
            match tag {
                // (field << 3) | wire type 2 (length-delimited)
                0x0a => opts.type_url = input.read_string().map_err(bad)?,
                0x12 => opts.config_path = input.read_string().map_err(bad)?,
                0x1a => opts.config_body = input.read_bytes().map_err(bad)?,
                _ => containerd_shim::protos::protobuf::rt::skip_field_for_tag(tag, &mut input)
                    .map_err(bad)?,
            }
        }
        Ok(opts)
    }
}

/// The values of the top-level string keys `wanted` of a TOML document (empty
/// when absent). Keys inside tables and keys of other types are skipped; a line
/// that is not TOML-like, or a wanted key whose value is not a string, is an
/// error naming the line.
fn parse_toml_strings(text: &str, wanted: &[&str]) -> Result<Vec<String>> {
    let mut values = vec![String::new(); wanted.len()];
    let mut top_level = true;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            top_level = false;
            continue;
        }
        let bad = |why: &str| Error::invalid(format!("line {}: {why}: {raw:?}", n + 1));
        let Some((key, value)) = line.split_once('=') else {
            return Err(bad("expected key = value"));
        };
        let key = key.trim();
        let key = key
            .strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .unwrap_or(key);
        let Some(slot) = wanted.iter().position(|w| *w == key) else {
            continue;
        };
        if !top_level {
            continue;
        }
        values[slot] = toml_string(value.trim()).ok_or_else(|| bad("expected a string"))?;
    }
    Ok(values)
}

/// The top-level boolean `key` of a TOML document (false when absent); any
/// other value is an error naming the line.
fn parse_toml_bool(text: &str, key: &str) -> Result<bool> {
    let mut top_level = true;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            top_level = false;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if !top_level || k.trim().trim_matches('"') != key {
            continue;
        }
        let v = v.split('#').next().unwrap_or("").trim();
        return match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Error::invalid(format!(
                "line {}: {key} must be true or false: {raw:?}",
                n + 1
            ))),
        };
    }
    Ok(false)
}

/// A TOML basic (`"..."`, with escapes) or literal (`'...'`) string, optionally
/// followed by a comment.
fn toml_string(v: &str) -> Option<String> {
    if let Some(rest) = v.strip_prefix('\'') {
        let end = rest.find('\'')?;
        return trailing_ok(&rest[end + 1..]).then(|| rest[..end].to_string());
    }
    let mut chars = v.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return trailing_ok(&v[i + 2..]).then_some(out),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'u' | 'U' => {
                        let len = if e == 'u' { 4 } else { 8 };
                        let hex: String = (0..len)
                            .map_while(|_| chars.next().map(|(_, h)| h))
                            .collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    _ => return None,
                }
            }
            c => out.push(c),
        }
    }
    None
}

fn trailing_ok(rest: &str) -> bool {
    let rest = rest.trim();
    rest.is_empty() || rest.starts_with('#')
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
        opts.systemd_cgroup = true;
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: opts.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let o = RuntimeOptions::from_request(Some(&any), "ns").unwrap();
        assert_eq!(o.binary, PathBuf::from("/usr/local/bin/berth"));
        assert_eq!(o.root, PathBuf::from("/tmp/state/ns"));
        assert!(o.systemd_cgroup);
        let other = Any {
            type_url: "io.containerd.other.v1.Options".into(),
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

    /// `runtimeoptions.v1.Options` as containerd's CRI plugin marshals it.
    fn cri_any(type_url: &str, config_path: &str, config_body: &[u8]) -> Any {
        use containerd_shim::protos::protobuf::CodedOutputStream;
        let mut value = Vec::new();
        {
            let mut out = CodedOutputStream::vec(&mut value);
            out.write_string(1, type_url).unwrap();
            out.write_string(2, config_path).unwrap();
            if !config_body.is_empty() {
                out.write_bytes(3, config_body).unwrap();
            }
            out.write_uint32(9, 7).unwrap(); // a field from a newer containerd
            out.flush().unwrap();
        }
        Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value,
            ..Default::default()
        }
    }

    #[test]
    fn cri_runtime_options_are_read_from_the_config_file() {
        let dir = std::env::temp_dir().join(format!("berth-shim-criopts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("berth.toml");
        std::fs::write(
            &file,
            "# berth shim options\nBinaryName = \"/opt/b\\u0065rth\" # comment\n\
             Root = '/var/run/berth-cri'\nSystemdCgroup = false\n\
             [other]\nRoot = \"/not/this\"\n",
        )
        .unwrap();
        let any = cri_any(
            "io.containerd.berth.v1.Options",
            file.to_str().unwrap(),
            b"",
        );
        let decoded = CriOptions::decode(&any.value).unwrap();
        assert_eq!(decoded.type_url, "io.containerd.berth.v1.Options");
        assert_eq!(decoded.config_path, file.to_str().unwrap());
        let o = RuntimeOptions::from_request(Some(&any), "k8s.io").unwrap();
        assert_eq!(o.binary, PathBuf::from("/opt/berth"));
        assert_eq!(o.root, PathBuf::from("/var/run/berth-cri/k8s.io"));
        assert!(!o.systemd_cgroup);

        // containerd's SystemdCgroup option.
        let any = cri_any(
            "",
            "",
            b"SystemdCgroup = true # systemd node\n[x]\nSystemdCgroup = 1\n",
        );
        assert!(
            RuntimeOptions::from_request(Some(&any), "ns")
                .unwrap()
                .systemd_cgroup
        );
        let any = cri_any("", "", b"SystemdCgroup = \"yes\"\n");
        let e = RuntimeOptions::from_request(Some(&any), "ns").unwrap_err();
        assert!(
            e.to_string()
                .contains("SystemdCgroup must be true or false"),
            "{e}"
        );

        // The text sent inline wins over the file.
        let any = cri_any("", file.to_str().unwrap(), b"Root = \"/inline\"\n");
        let o = RuntimeOptions::from_request(Some(&any), "ns").unwrap();
        assert_eq!(o.root, PathBuf::from("/inline/ns"));

        // No file named: defaults (what an `options` table without ConfigPath gives).
        let o = RuntimeOptions::from_request(Some(&cri_any("", "", b"")), "ns").unwrap();
        assert_eq!(o.root, PathBuf::from("/run/containerd/berth/ns"));

        // Errors name the problem.
        std::fs::write(&file, "Root = 5\n").unwrap();
        let any = cri_any("", file.to_str().unwrap(), b"");
        let e = RuntimeOptions::from_request(Some(&any), "ns").unwrap_err();
        assert!(e.to_string().contains("expected a string"), "{e}");
        assert!(e.to_string().contains("berth.toml"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        let e = RuntimeOptions::from_request(Some(&any), "ns").unwrap_err();
        assert!(e.to_string().contains("read runtime options file"), "{e}");
        let garbage = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: vec![0x12, 0x40, b'x'],
            ..Default::default()
        };
        assert!(RuntimeOptions::from_request(Some(&garbage), "ns").is_err());
    }

    #[test]
    fn toml_strings() {
        assert_eq!(
            toml_string(r#""a\"b\\c\tz""#).as_deref(),
            Some("a\"b\\c\tz")
        );
        assert_eq!(toml_string("'C:\\x' # c").as_deref(), Some("C:\\x"));
        assert_eq!(toml_string(r#""unterminated"#), None);
        assert_eq!(toml_string(r#""a" junk"#), None);
        assert_eq!(toml_string("true"), None);
        let e = parse_toml_strings("Root\n", &["Root"]).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn saved_options_round_trip() {
        let dir = std::env::temp_dir().join(format!("berth-shim-opts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let o = RuntimeOptions::new("/x/berth", "/y", "ns");
        o.save(&dir).unwrap();
        assert_eq!(RuntimeOptions::load(&dir, "other"), Some(o));
        std::fs::write(dir.join(SAVED_FILE), "{").unwrap();
        assert_eq!(
            RuntimeOptions::load(&dir, "ns").unwrap().root,
            PathBuf::from("/run/containerd/berth/ns")
        );
        RuntimeOptions::forget(&dir);
        assert_eq!(RuntimeOptions::load(&dir, "ns"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
