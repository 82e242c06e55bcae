//! Pulling from and pushing to registries over the OCI distribution API (anonymous, basic
//! and bearer token auth).

use crate::digest::Digest;
use crate::error::{invalid, Error, IoContext, Result};
use crate::source::LayoutFiles;
use std::io::Read;
use std::path::Path;
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
    /// `scheme://host`
    origin: String,
    base: String,
    agent: ureq::Agent,
    creds: Option<Credentials>,
    auth: Mutex<Option<String>>,
}

pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

fn http_err(what: &str, e: impl std::fmt::Display) -> Error {
    invalid(format!("registry request {what} failed: {e}"))
}

/// The body of a request; files are reopened when a request is retried after authenticating.
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path, u64, Option<&'a crate::progress::Bar>),
}

/// The outcome of a request that reached the registry.
enum Reply {
    Ok(Box<ureq::Response>),
    /// An HTTP error status with the (trimmed) response body.
    Status(u16, String),
}

/// What `push` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushStats {
    /// Blobs sent to the registry.
    pub uploaded: usize,
    /// Blobs the registry already had.
    pub skipped: usize,
    /// Blobs mounted from another repository of the same registry.
    pub mounted: usize,
    /// Bytes sent in blob uploads.
    pub bytes: u64,
    /// The digest the registry reported for the manifest.
    pub manifest_digest: Option<Digest>,
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
            origin: format!("{scheme}://{}", r.host),
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

    /// Send a request with the current authorization; on 401 obtain a new one from the
    /// challenge and retry once. Transport and auth failures are errors; HTTP error
    /// statuses are returned as [`Reply::Status`].
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body,
    ) -> Result<Reply> {
        for attempt in 0..2 {
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let sent_auth = self.auth.lock().unwrap().clone();
            if let Some(auth) = &sent_auth {
                req = req.set("Authorization", auth);
            }
            let result = match body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::File(path, size, bar) => {
                    let f = std::fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
                    let req = req.set("Content-Length", &size.to_string());
                    match bar {
                        Some(bar) => {
                            bar.phase("upload", *size);
                            req.send(bar.reader(f))
                        }
                        None => req.send(f),
                    }
                }
            };
            match result {
                Ok(resp) => return Ok(Reply::Ok(Box::new(resp))),
                Err(ureq::Error::Status(401, resp)) => {
                    let challenge = resp.header("www-authenticate").unwrap_or("").to_string();
                    let text = resp.into_string().unwrap_or_default();
                    if attempt == 1 || (sent_auth.is_some() && sent_auth == self.basic()) {
                        return Err(invalid(format!(
                            "registry {} refused access to {} ({method} {}): HTTP 401 {}{}",
                            self.r.host,
                            self.r.repo,
                            url.strip_prefix(&self.origin).unwrap_or(url),
                            text.trim(),
                            if self.creds.is_some() {
                                " (credentials rejected)"
                            } else {
                                " (no credentials given; use --creds USER:PASSWORD)"
                            }
                        )));
                    }
                    let auth = self.authorize(&challenge)?;
                    *self.auth.lock().unwrap() = Some(auth);
                }
                Err(ureq::Error::Status(code, resp)) => {
                    let text = resp.into_string().unwrap_or_default();
                    return Ok(Reply::Status(code, text.trim().to_string()));
                }
                Err(e) => return Err(http_err(&format!("{method} {url}"), e)),
            }
        }
        unreachable!("the second attempt returns")
    }

    /// GET that turns error statuses into errors.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<ureq::Response> {
        let url = format!("{}/{path}", self.base);
        match self.send("GET", &url, headers, &Body::Empty)? {
            Reply::Ok(r) => Ok(*r),
            Reply::Status(code, text) => Err(http_err(
                &format!("GET {url}"),
                format!("HTTP {code}: {text}"),
            )),
        }
    }

    fn authorize(&self, challenge: &str) -> Result<String> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return self.basic().ok_or_else(|| {
                invalid(format!(
                    "registry {} requires authentication for {} (HTTP 401, {challenge}); \
                     no credentials given (--creds USER:PASSWORD)",
                    self.r.host, self.r.repo
                ))
            });
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(invalid(format!(
                "unsupported registry auth challenge {challenge:?}"
            )));
        }
        let params = parse_challenge(params);
        let param = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let realm = param("realm").ok_or_else(|| invalid("bearer challenge without realm"))?;
        let mut req = self.agent.get(&realm);
        if let Some(service) = param("service") {
            req = req.query("service", &service);
        }
        let scope = param("scope").unwrap_or_else(|| format!("repository:{}:pull", self.r.repo));
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            req = req.query("scope", s);
        }
        if let Some(b) = self.basic() {
            req = req.set("Authorization", &b);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                return Err(invalid(format!(
                    "token server {realm} refused a token for {scope:?}: HTTP {code} {}{}",
                    text.trim(),
                    if self.creds.is_some() {
                        " (credentials rejected)"
                    } else {
                        " (no credentials given; use --creds USER:PASSWORD)"
                    }
                )));
            }
            Err(e) => return Err(http_err(&realm, e)),
        };
        let mut body = Vec::new();
        resp.into_reader()
            .take(1 << 20)
            .read_to_end(&mut body)
            .map_err(|e| http_err(&realm, e))?;
        let v: serde_json::Value = crate::image::parse_json(&body, "token response")?;
        let token = v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid(format!("token response from {realm} has no token")))?;
        Ok(format!("Bearer {token}"))
    }

    /// Fetch a manifest or index by tag or digest: (bytes, media type, digest).
    pub fn manifest(&self, reference: &str) -> Result<(Vec<u8>, String, Digest)> {
        let resp = self.get(
            &format!("manifests/{reference}"),
            &[("Accept", MANIFEST_ACCEPT)],
        )?;
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

    /// Does the repository have blob `d`?
    pub fn has_blob(&self, d: &Digest) -> Result<bool> {
        let url = format!("{}/blobs/{d}", self.base);
        match self.send("HEAD", &url, &[], &Body::Empty)? {
            Reply::Ok(_) => Ok(true),
            Reply::Status(404, _) => Ok(false),
            Reply::Status(code, text) => Err(http_err(
                &format!("HEAD {url}"),
                format!("HTTP {code}: {text}"),
            )),
        }
    }

    /// Resolve a `Location` header against the registry.
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.origin)
        } else {
            format!("{}/{location}", self.base)
        }
    }

    /// Upload blob `d` (the file `path` of `size` bytes): POST an upload session, then
    /// PUT the whole blob. With `mount_from`, first ask the registry to mount the blob from
    /// that repository. Returns true if the blob was mounted instead of uploaded.
    pub fn upload_blob(
        &self,
        d: &Digest,
        path: &Path,
        size: u64,
        mount_from: Option<&str>,
        bar: Option<&crate::progress::Bar>,
    ) -> Result<bool> {
        let mut url = format!("{}/blobs/uploads/", self.base);
        if let Some(from) = mount_from {
            url = format!("{url}?mount={d}&from={from}");
        }
        let resp = match self.send("POST", &url, &[("Content-Length", "0")], &Body::Empty)? {
            Reply::Ok(r) => r,
            Reply::Status(code, text) => {
                return Err(http_err(
                    &format!("POST {url}"),
                    format!("HTTP {code}: {text}"),
                ))
            }
        };
        if resp.status() == 201 {
            return Ok(true);
        }
        let location = resp.header("location").ok_or_else(|| {
            invalid(format!(
                "registry answered the upload request for {d} without a Location"
            ))
        })?;
        let location = self.absolute(location);
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={d}");
        match self.send(
            "PUT",
            &put,
            &[("Content-Type", "application/octet-stream")],
            &Body::File(path, size, bar),
        )? {
            Reply::Ok(_) => Ok(false),
            Reply::Status(code, text) => Err(invalid(format!(
                "registry {} rejected blob {d}: HTTP {code} {text}",
                self.r.host
            ))),
        }
    }

    /// Store a manifest under `reference` (a tag); returns the digest the registry reports.
    pub fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        data: &[u8],
    ) -> Result<Option<Digest>> {
        let url = format!("{}/manifests/{reference}", self.base);
        match self.send(
            "PUT",
            &url,
            &[("Content-Type", media_type)],
            &Body::Bytes(data),
        )? {
            Reply::Ok(r) => Ok(r
                .header("docker-content-digest")
                .and_then(|d| Digest::parse(d).ok())),
            Reply::Status(code, text) => Err(invalid(format!(
                "registry {} rejected the manifest for {}:{reference}: HTTP {code} {text}",
                self.r.host, self.r.repo
            ))),
        }
    }

    /// Open blob `d` starting at byte `offset` with a Range request. `None` if the registry
    /// ignored the range (answered with the whole blob).
    pub fn open_blob_at(
        &self,
        d: &Digest,
        offset: u64,
    ) -> Result<Option<Box<dyn Read + Send + '_>>> {
        let range = format!("bytes={offset}-");
        let resp = self.get(&format!("blobs/{d}"), &[("Range", &range)])?;
        if resp.status() != 206 {
            return Ok(None);
        }
        let starts_right = resp
            .header("content-range")
            .and_then(|v| v.strip_prefix("bytes "))
            .and_then(|v| v.split_once('-'))
            .and_then(|(start, _)| start.trim().parse::<u64>().ok())
            == Some(offset);
        if !starts_right {
            return Ok(None);
        }
        Ok(Some(resp.into_reader()))
    }
}

/// Split `k="v",k2="v, with comma"` into pairs.
fn parse_challenge(params: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.push((key, value.to_string()));
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

impl LayoutFiles for Registry {
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>> {
        Err(invalid(format!("registries have no file {path:?}")))
    }

    fn open_blob(&self, d: &Digest) -> Result<Box<dyn Read + Send + '_>> {
        Ok(self.get(&format!("blobs/{d}"), &[])?.into_reader())
    }

    fn open_blob_at(&self, d: &Digest, offset: u64) -> Result<Option<Box<dyn Read + Send + '_>>> {
        Registry::open_blob_at(self, d, offset)
    }

    fn resumable(&self) -> bool {
        true
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
