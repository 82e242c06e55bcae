//! `/etc/hosts` and `/etc/resolv.conf` of containers. Containers on one
//! network find each other by name through their hosts files: each running
//! container's file lists every container attached to its network, and is
//! rewritten in place (it is bind-mounted, so the inode must stay) whenever
//! one is attached, detached or renamed.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::{Attachment, NetError};

const LOCALHOST: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// `names` of one entry: the hostname first, then the name when it differs.
fn names(hostname: &str, name: &str) -> String {
    if hostname.is_empty() || hostname == name {
        name.to_string()
    } else {
        format!("{hostname} {name}")
    }
}

/// The hosts file of a container with no address of its own on a network
/// (`--net none`): localhost and its hostname on loopback.
pub fn render_loopback(hostname: &str, name: &str) -> String {
    format!("{LOCALHOST}127.0.1.1\t{}\n", names(hostname, name))
}

/// The hosts file of `me`: localhost, itself, then its peers by address.
pub fn render(me: &Attachment, peers: &[Attachment]) -> String {
    let mut s = LOCALHOST.to_string();
    if let Some(ip) = &me.ip {
        s.push_str(&format!("{ip}\t{}\n", names(&me.hostname, &me.name)));
    }
    for p in peers.iter().filter(|p| p.id != me.id) {
        if let Some(ip) = &p.ip {
            s.push_str(&format!("{ip}\t{}\n", names(&p.hostname, &p.name)));
        }
    }
    s
}

/// Write `content` into the existing file at `path` (same inode), or create it.
pub fn write_in_place(path: &Path, content: &str) -> Result<(), NetError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| NetError::Io(format!("open {}", path.display()), e))?;
    f.write_all(content.as_bytes())
        .map_err(|e| NetError::Io(format!("write {}", path.display()), e))
}

/// The host's resolv.conf for a container in its own network namespace:
/// nameservers on the host's loopback are unreachable from there and are
/// dropped (docker does the same); with none left, none is written.
pub fn resolv_conf_for_container(host: &str) -> String {
    host.lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            !(w.next() == Some("nameserver")
                && w.next().is_some_and(|ip| {
                    ip.parse::<std::net::IpAddr>()
                        .map(|a| a.is_loopback())
                        .unwrap_or(false)
                }))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_nameservers_are_dropped() {
        let host = "search example\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver ::1\noptions edns0\n";
        assert_eq!(
            resolv_conf_for_container(host),
            "search example\nnameserver 192.0.2.1\noptions edns0\n"
        );
    }
}
