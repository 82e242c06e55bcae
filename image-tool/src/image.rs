//! The OCI image JSON documents this crate reads and writes.
//!
//! These types are written here rather than taken from the `oci-spec` crate's `image`
//! module (0.10, read in its source and checked by serializing with it), because the
//! bytes this crate writes are hashed into the digests it stores and pushes, and
//! oci-spec cannot write them stably:
//!
//! - `annotations` of `Descriptor`, `ImageManifest` and `ImageIndex`, and `Labels` of
//!   the run config, are `HashMap`s, and `ExposedPorts`/`Volumes` go through a
//!   `HashMap` when serialized outside the crate's own tests: the order of the keys
//!   follows the map's random seed. One docker v2 schema 2 manifest with four
//!   annotations, parsed and serialized 50 times in one process, gave 19 different
//!   byte strings (so 19 digests); an image config with three labels and three
//!   ports gave 25. `commit` rewrites a stored manifest, annotations included, and
//!   its digest has to be reproducible. Here maps are `BTreeMap`s (sorted keys).
//! - `Descriptor` serializes `annotations` before `platform`; here `platform` comes
//!   first. `export` into an existing layout rewrites its index.json, and entries
//!   with both (an index another tool wrote) would change bytes (pinned below).
//! - `ImageConfiguration` keeps only the fields it models: docker's `Healthcheck`,
//!   `Shell`, `OnBuild`, `container_config`, `docker_version` are dropped on a round
//!   trip, and `architecture`/`os` are required. Configs are therefore edited here as
//!   `serde_json::Value` (all fields kept) and read through [`ImageConfig`], which
//!   takes missing fields as empty.
//!
//! docker's media types (`MediaType::Other`) and field names would have fit; the
//! map order and the dropped fields do not. Should a later oci-spec serialize maps in
//! a stable order and keep unknown fields, these types can go.

use crate::digest::Digest;
use crate::error::{invalid, Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parse `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
            }),
            _ => Err(invalid(format!(
                "invalid platform {s:?}, expected os/arch[/variant]"
            ))),
        }
    }

    /// The platform of this machine.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
        }
    }

    /// Does a manifest for platform `other` fit this request?
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    pub fn new(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(MEDIA_INDEX.into()),
            manifests,
            annotations: BTreeMap::new(),
        }
    }
}

/// Is this media type (or a document without one that has `manifests`) an index?
pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_INDEX || media_type == MEDIA_DOCKER_LIST
}

/// Parse JSON naming `what` in the error.
pub fn parse_json<T: serde::de::DeserializeOwned>(data: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(data).map_err(|source| Error::Json {
        path: what.to_string(),
        source,
    })
}

/// The parts of an image configuration this crate interprets; the full JSON is kept too.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A docker v2 schema 2 manifest (docker's media types) with several annotations,
    /// keys in sorted order, as `commit` rewrites one.
    const DOCKER_MANIFEST: &str = concat!(
        r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","#,
        r#""config":{"mediaType":"application/vnd.docker.container.image.v1+json","#,
        r#""digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":10},"#,
        r#""layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","#,
        r#""digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":20}],"#,
        r#""annotations":{"a.one":"1","b.two":"2","c.three":"3","d.four":"4"}}"#
    );

    #[test]
    fn a_docker_manifest_with_annotations_is_written_back_byte_for_byte() {
        for _ in 0..50 {
            let m: Manifest = parse_json(DOCKER_MANIFEST.as_bytes(), "manifest").unwrap();
            assert_eq!(m.media_type.as_deref(), Some(MEDIA_DOCKER_MANIFEST));
            assert_eq!(serde_json::to_string(&m).unwrap(), DOCKER_MANIFEST);
        }
    }

    #[test]
    fn annotations_are_written_in_sorted_order_whatever_order_they_came_in() {
        let shuffled = DOCKER_MANIFEST.replace(
            r#"{"a.one":"1","b.two":"2","c.three":"3","d.four":"4"}"#,
            r#"{"d.four":"4","b.two":"2","a.one":"1","c.three":"3"}"#,
        );
        let m: Manifest = parse_json(shuffled.as_bytes(), "manifest").unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), DOCKER_MANIFEST);
    }

    #[test]
    fn an_index_entry_keeps_platform_before_annotations_and_omits_empty_fields() {
        let entry = concat!(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
            r#""digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":30,"#,
            r#""platform":{"architecture":"arm","os":"linux","variant":"v7"},"#,
            r#""annotations":{"org.opencontainers.image.ref.name":"v1"}}"#
        );
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{entry}]}}"#
        );
        let parsed: Index = parse_json(index.as_bytes(), "index").unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), index);

        let mut bare: Descriptor = parse_json(entry.as_bytes(), "descriptor").unwrap();
        bare.platform = None;
        bare.annotations.clear();
        assert_eq!(
            serde_json::to_string(&Index::new(vec![bare])).unwrap(),
            concat!(
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","#,
                r#""manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
                r#""digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":30}]}"#
            )
        );
    }

    #[test]
    fn a_config_without_platform_fields_is_read_with_empty_ones() {
        let c: ImageConfig =
            parse_json(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#, "config").unwrap();
        assert_eq!((c.architecture.as_str(), c.os.as_str()), ("", ""));
    }
}
