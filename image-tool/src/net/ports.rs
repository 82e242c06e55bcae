//! Published ports: `-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]` and
//! `-p CTRPORT[/proto]` (a free host port is chosen), as docker parses them.

use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use super::NetError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address it is published on (`None`: all addresses).
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// docker's `PORTS` column and `port` output: `0.0.0.0:8080->80/tcp`.
    pub fn host_side(&self) -> String {
        let ip = self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        format!("{ip}:{}", self.host_port)
    }

    pub fn container_side(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol)
    }

    /// The entry of the portmap plugin's `runtimeConfig.portMappings`.
    pub fn cni(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol.to_string(),
        });
        if let Some(ip) = self.host_ip {
            v["hostIP"] = serde_json::json!(ip.to_string());
        }
        v
    }
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}->{}", self.host_side(), self.container_side())
    }
}

fn port(s: &str, spec: &str) -> Result<u16, NetError> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(NetError::Config(format!(
            "-p {spec}: {s:?} is not a port number (1-65535)"
        ))),
    }
}

/// A free port on the host for `protocol`, chosen by the kernel.
fn free_port(protocol: Protocol, spec: &str) -> Result<u16, NetError> {
    let got = match protocol {
        Protocol::Tcp => TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).and_then(|l| l.local_addr()),
        Protocol::Udp => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).and_then(|s| s.local_addr()),
    };
    got.map(|a| a.port())
        .map_err(|e| NetError::Io(format!("-p {spec}: find a free host port"), e))
}

/// Parse one `-p` value.
pub fn parse(spec: &str) -> Result<PortMapping, NetError> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, "tcp")) => (r, Protocol::Tcp),
        Some((r, "udp")) => (r, Protocol::Udp),
        Some((_, p)) => {
            return Err(NetError::Config(format!(
                "-p {spec}: unknown protocol {p:?} (tcp or udp)"
            )))
        }
        None => (spec, Protocol::Tcp),
    };
    // An IPv6 host address is written in brackets: [::1]:8080:80.
    let (host_ip, rest) = match rest.strip_prefix('[') {
        Some(r) => {
            let (ip, after) = r.split_once("]:").ok_or_else(|| {
                NetError::Config(format!("-p {spec}: expected [IPV6]:HOSTPORT:CTRPORT"))
            })?;
            (Some(ip.to_string()), after.to_string())
        }
        None => {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.len() {
                3 => (
                    Some(parts[0].to_string()),
                    format!("{}:{}", parts[1], parts[2]),
                ),
                1 | 2 => (None, rest.to_string()),
                _ => {
                    return Err(NetError::Config(format!(
                        "-p {spec}: expected [HOSTIP:]HOSTPORT:CTRPORT[/PROTO]"
                    )))
                }
            }
        }
    };
    let host_ip = match host_ip.filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse::<IpAddr>()
                .map_err(|_| NetError::Config(format!("-p {spec}: {s:?} is not an IP address")))?,
        ),
        None => None,
    };
    let (host_port, container_port) = match rest.split_once(':') {
        Some(("", c)) => (free_port(protocol, spec)?, port(c, spec)?),
        Some((h, c)) => (port(h, spec)?, port(c, spec)?),
        None => (free_port(protocol, spec)?, port(&rest, spec)?),
    };
    Ok(PortMapping {
        host_ip,
        host_port,
        container_port,
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_forms() {
        let p = parse("8080:80").unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.protocol),
            (8080, 80, Protocol::Tcp)
        );
        assert_eq!(p.to_string(), "0.0.0.0:8080->80/tcp");
        let p = parse("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(p.to_string(), "127.0.0.1:5353->53/udp");
        let p = parse("[::1]:8443:443").unwrap();
        assert_eq!(p.to_string(), "::1:8443->443/tcp");
        let p = parse("80").unwrap();
        assert!(p.host_port > 0);
        assert_eq!(p.container_port, 80);
    }

    #[test]
    fn refuses_bad_values() {
        for bad in [
            "",
            "x:80",
            "80:0",
            "1:2:3:4",
            "80/sctp",
            "999999:80",
            "nope:80:80",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
