//! Pulling from registries over the OCI distribution API (anonymous, basic and bearer auth).

use crate::digest::Digest;
use crate::error::{invalid, Error, Result};
use crate::source::LayoutFiles;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

/// `docker://HOST/REPO[:TAG|@sha256:...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    pub host: String,
    pub repo: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

impl RegistryRef {
    /// Parse the part after `docker://`.
    pub fn parse(s: &str) -> Result<RegistryRef> {
        let bad = |reason: &str| Error::InvalidReference {
            reference: format!("docker://{s}"),
            reason: reason.into(),
        };
        let (name, reference) = if let Some((n, d)) = s.split_once('@') {
            Digest::parse(d).map_err(|_| bad("malformed digest"))?;
            (n, d.to_string())
        } else {
            match s.rsplit_once(':') {
                Some((n, t)) if !t.contains('/') => (n, t.to_string()),
                _ => (s, "latest".to_string()),
            }
        };
        let (host, repo) = match name.split_once('/') {
            Some((h, r)) if h.contains('.') || h.contains(':') || h == "localhost" => {
                (h.to_string(), r.to_string())
            }
            _ if name.contains('/') => ("registry-1.docker.io".to_string(), name.to_string()),
            _ => (
                "registry-1.docker.io".to_string(),
                format!("library/{name}"),
            ),
        };
        let repo_ok = !repo.is_empty()
            && repo.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        let ref_ok = !reference.is_empty()
            && reference.len() <= 128
            && reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
        if host.is_empty() || !repo_ok || !ref_ok {
            return Err(bad("expected docker://HOST/REPO[:TAG|@sha256:HEX]"));
        }
        Ok(RegistryRef {
            host,
            repo,
            reference,
        })
    }

    /// The default image name in the store.
    pub fn default_name(&self) -> String {
        let sep = if self.reference.starts_with("sha256:") {
            "@"
        } else {
            ":"
        };
        format!("{}/{}{sep}{}", self.host, self.repo, self.reference)
    }

    fn is_loopback(&self) -> bool {
        let host = self
            .host
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&self.host);
        matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.starts_with("127.")
    }
}

/// Registry credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// A connection to one repository of a registry.
pub struct Registry {
    r: RegistryRef,
    base: String,
    agent: ureq::Agent,
    creds: Option<Credentials>,
    auth: Mutex<Option<String>>,
}

pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

fn http_err(what: &str, e: impl std::fmt::Display) -> Error {
    invalid(format!("registry request {what} failed: {e}"))
}

impl Registry {
    /// `insecure` allows plain http, only for loopback registries.
    pub fn connect(
        r: &RegistryRef,
        insecure: bool,
        creds: Option<Credentials>,
    ) -> Result<Registry> {
        if insecure && !r.is_loopback() {
            return Err(invalid(format!(
                "--insecure (plain http) is only allowed for loopback registries, not {}",
                r.host
            )));
        }
        let scheme = if insecure { "http" } else { "https" };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(300))
            .redirects(5)
            .build();
        Ok(Registry {
            base: format!("{scheme}://{}/v2/{}", r.host, r.repo),
            r: r.clone(),
            agent,
            creds,
            auth: Mutex::new(None),
        })
    }

    fn basic(&self) -> Option<String> {
        use base64::Engine;
        self.creds.as_ref().map(|c| {
            let raw = format!("{}:{}", c.user, c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        })
    }

    /// GET with the current authorization; on 401 obtain one from the challenge and retry.
    fn get(&self, path: &str, accept: Option<&str>) -> Result<ureq::Response> {
        let url = format!("{}/{path}", self.base);
        for attempt in 0..2 {
            let mut req = self.agent.get(&url);
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if let Some(auth) = self.auth.lock().unwrap().clone() {
                req = req.set("Authorization", &auth);
            }
            match req.call() {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if attempt == 0 => {
                    let challenge = resp.header("www-authenticate").unwrap_or("").to_string();
                    let auth = self.authorize(&challenge)?;
                    *self.auth.lock().unwrap() = Some(auth);
                }
                Err(ureq::Error::Status(code, resp)) => {
                    let body = resp.into_string().unwrap_or_default();
                    return Err(http_err(&url, format!("HTTP {code}: {}", body.trim())));
                }
                Err(e) => return Err(http_err(&url, e)),
            }
        }
        Err(http_err(&url, "still unauthorized after authenticating"))
    }

    fn authorize(&self, challenge: &str) -> Result<String> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return self.basic().ok_or_else(|| {
                invalid(format!(
                    "registry {} needs credentials (--creds USER:PASSWORD)",
                    self.r.host
                ))
            });
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(invalid(format!(
                "unsupported registry auth challenge {challenge:?}"
            )));
        }
        let param = |k: &str| {
            params.split(',').find_map(|kv| {
                let (key, v) = kv.trim().split_once('=')?;
                (key == k).then(|| v.trim_matches('"').to_string())
            })
        };
        let realm = param("realm").ok_or_else(|| invalid("bearer challenge without realm"))?;
        let mut req = self.agent.get(&realm);
        if let Some(service) = param("service") {
            req = req.query("service", &service);
        }
        let scope = param("scope").unwrap_or_else(|| format!("repository:{}:pull", self.r.repo));
        req = req.query("scope", &scope);
        if let Some(b) = self.basic() {
            req = req.set("Authorization", &b);
        }
        let resp = req.call().map_err(|e| http_err(&realm, e))?;
        let body = resp.into_string().map_err(|e| http_err(&realm, e))?;
        let v: serde_json::Value = crate::image::parse_json(body.as_bytes(), "token response")?;
        let token = v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .ok_or_else(|| invalid("token response has no token"))?;
        Ok(format!("Bearer {token}"))
    }

    /// Fetch a manifest or index by tag or digest: (bytes, media type, digest).
    pub fn manifest(&self, reference: &str) -> Result<(Vec<u8>, String, Digest)> {
        let resp = self.get(&format!("manifests/{reference}"), Some(MANIFEST_ACCEPT))?;
        let media = resp.content_type().to_string();
        let mut data = Vec::new();
        resp.into_reader()
            .take(16 << 20)
            .read_to_end(&mut data)
            .map_err(|e| http_err("manifest", e))?;
        let digest = Digest::of(&data);
        if let Ok(want) = Digest::parse(reference) {
            want.verify(&digest, "manifest")?;
        }
        Ok((data, media, digest))
    }

    pub fn reference(&self) -> &RegistryRef {
        &self.r
    }
}

impl LayoutFiles for Registry {
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>> {
        Err(invalid(format!("registries have no file {path:?}")))
    }

    fn open_blob(&self, d: &Digest) -> Result<Box<dyn Read + Send + '_>> {
        Ok(self.get(&format!("blobs/{d}"), None)?.into_reader())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_registry_refs() {
        let r = RegistryRef::parse("127.0.0.1:5000/test/bb:1").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str(), r.reference.as_str()),
            ("127.0.0.1:5000", "test/bb", "1")
        );
        let r = RegistryRef::parse("busybox").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str(), r.reference.as_str()),
            ("registry-1.docker.io", "library/busybox", "latest")
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = RegistryRef::parse(&format!("localhost:5000/x@{d}")).unwrap();
        assert_eq!(r.reference, d);
        assert!(RegistryRef::parse("localhost:5000/UPPER:1").is_err());
        assert!(RegistryRef::parse("localhost:5000/x@sha256:zz").is_err());
        assert!(RegistryRef::connect_check("example.com/x:1"));
    }

    impl RegistryRef {
        fn connect_check(s: &str) -> bool {
            let r = RegistryRef::parse(s).unwrap();
            Registry::connect(&r, true, None).is_err() && Registry::connect(&r, false, None).is_ok()
        }
    }
}
