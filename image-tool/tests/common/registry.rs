//! A private docker-registry on 127.0.0.1, a cutting proxy and a JWT token server.

use super::Scratch;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A registry process killed on drop.
pub struct RegistryProcess {
    child: Child,
    pub addr: String,
    /// The registry's combined access/application log.
    pub log: PathBuf,
    pub data: PathBuf,
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RegistryProcess {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The file holding blob `hex` in the registry's filesystem storage.
    pub fn blob_file(&self, hex: &str) -> PathBuf {
        self.data
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start Debian's docker-registry; `extra` is appended to its YAML config (e.g. `auth:`).
pub fn start_registry(s: &Scratch, name: &str, extra: &str) -> RegistryProcess {
    let addr = format!("127.0.0.1:{}", free_port());
    let data = s.join(&format!("{name}-data"));
    let config = s.join(&format!("{name}.yml"));
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{extra}",
            data.display()
        ),
    )
    .unwrap();
    let log = s.join(&format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("docker-registry is installed (scripts/install-deps.sh)");
    let reg = RegistryProcess {
        child,
        addr,
        log,
        data,
    };
    wait_listening(&reg.addr);
    reg
}

/// A TCP proxy in front of a registry that can cut one blob download after a number of
/// body bytes; it records every request head it forwards.
pub struct CuttingProxy {
    pub addr: String,
    /// Request heads seen, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    /// Cut the next GET whose path contains this string ...
    pub cut_path: Arc<Mutex<Option<String>>>,
    /// ... after this many body bytes.
    pub cut_after: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return None,
        }
        if head.len() > 64 << 10 {
            return None;
        }
    }
    Some(head)
}

impl CuttingProxy {
    pub fn start(upstream: &str) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let proxy = CuttingProxy {
            addr,
            requests: Arc::default(),
            cut_path: Arc::default(),
            cut_after: Arc::default(),
            stop: Arc::default(),
        };
        let (requests, cut_path, cut_after, stop) = (
            proxy.requests.clone(),
            proxy.cut_path.clone(),
            proxy.cut_after.clone(),
            proxy.stop.clone(),
        );
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let (requests, cut_path, cut_after, upstream) = (
                    requests.clone(),
                    cut_path.clone(),
                    cut_after.clone(),
                    upstream.clone(),
                );
                std::thread::spawn(move || {
                    let _ = proxy_one(client, &upstream, &requests, &cut_path, &cut_after);
                });
            }
        });
        proxy
    }
}

/// Forward one request (made `Connection: close`) and its response.
fn proxy_one(
    mut client: TcpStream,
    upstream: &str,
    requests: &Mutex<Vec<String>>,
    cut_path: &Mutex<Option<String>>,
    cut_after: &AtomicU64,
) -> std::io::Result<()> {
    let Some(head) = read_head(&mut client) else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    requests.lock().unwrap().push(text.clone());
    let request_line = text.lines().next().unwrap_or("").to_string();
    let cut = {
        let mut c = cut_path.lock().unwrap();
        match &*c {
            Some(p) if request_line.starts_with("GET ") && request_line.contains(p.as_str()) => {
                *c = None;
                Some(cut_after.load(Ordering::SeqCst))
            }
            _ => None,
        }
    };
    let mut forwarded = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(forwarded.as_bytes())?;
    // Request bodies (uploads) are not proxied: this proxy is for pulls.
    match cut {
        None => {
            std::io::copy(&mut up, &mut client)?;
        }
        Some(n) => {
            let head = read_head(&mut up).unwrap_or_default();
            client.write_all(&head)?;
            std::io::copy(&mut (&mut up).take(n), &mut client)?;
            client.flush()?;
        }
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// A token server for docker-registry's `auth: token:` that signs RS256 JWTs with a
/// self-signed certificate (made with the openssl CLI).
pub struct TokenServer {
    pub realm: String,
    pub cert: PathBuf,
    /// Query strings of token requests, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    addr: String,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

pub const TOKEN_SERVICE: &str = "berth-test-registry";
pub const TOKEN_ISSUER: &str = "berth-test-issuer";

fn b64url(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// Decode `%XX` and `+` of a query string component.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TokenServer {
    /// Accepts `user`:`password` (basic auth on the token request) and grants what is asked.
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        super::run(Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=berth-test-token",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]));
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in", cert.to_str().unwrap()])
            .output()
            .unwrap()
            .stdout;
        assert!(!der.is_empty(), "openssl x509 -outform DER failed");
        let x5c = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&der)
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = TokenServer {
            realm: format!("http://{addr}/token"),
            cert,
            requests: Arc::default(),
            stop: Arc::default(),
            addr,
        };
        let expected = {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        };
        let (requests, stop, user) = (
            server.requests.clone(),
            server.stop.clone(),
            user.to_string(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut c) = conn else { continue };
                let Some(head) = read_head(&mut c) else {
                    continue;
                };
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split(' ').nth(1).unwrap_or("").to_string();
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                requests.lock().unwrap().push(query.to_string());
                let authorized = head.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("authorization") && v.trim() == expected
                    })
                });
                let reply = if authorized {
                    let mut access = Vec::new();
                    for kv in query.split('&') {
                        if let Some(scope) = kv.strip_prefix("scope=") {
                            let scope = url_decode(scope);
                            let parts: Vec<&str> = scope.splitn(3, ':').collect();
                            if let [kind, name, actions] = parts.as_slice() {
                                access.push(serde_json::json!({
                                    "type": kind, "name": name,
                                    "actions": actions.split(',').collect::<Vec<_>>(),
                                }));
                            }
                        }
                    }
                    let token = sign_jwt(&key, &x5c, &user, access);
                    let body = serde_json::json!({"token": token}).to_string();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    let body = r#"{"details":"wrong user name or password"}"#;
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = c.write_all(reply.as_bytes());
            }
        });
        server
    }

    /// The `auth:` section for docker-registry's config.
    pub fn registry_config(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            self.realm,
            self.cert.display()
        )
    }
}

fn sign_jwt(key: &Path, x5c: &str, user: &str, access: Vec<serde_json::Value>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER, "sub": user, "aud": TOKEN_SERVICE,
        "exp": now + 600, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", key.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl dgst -sign failed");
    format!("{signing_input}.{}", b64url(&out.stdout))
}
