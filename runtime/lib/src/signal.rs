//! Signal names and numbers as `kill` accepts them (`TERM`, `SIGTERM`, `15`).

use nix::sys::signal::Signal;

use crate::error::{Error, Result};

pub fn parse(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        // 0 only checks that the container is alive (`kill ID 0`).
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::Other(format!("invalid signal number {n}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if let Some(rt) = name.strip_prefix("SIGRTMIN") {
        let base = libc::SIGRTMIN();
        let off: i32 = if rt.is_empty() {
            0
        } else {
            rt.parse()
                .map_err(|_| Error::Other(format!("unknown signal \"{s}\"")))?
        };
        return Ok(base + off);
    }
    if let Some(rt) = name.strip_prefix("SIGRTMAX") {
        let base = libc::SIGRTMAX();
        let off: i32 = if rt.is_empty() {
            0
        } else {
            rt.parse()
                .map_err(|_| Error::Other(format!("unknown signal \"{s}\"")))?
        };
        return Ok(base + off);
    }
    name.parse::<Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::Other(format!("unknown signal \"{s}\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("TERM").unwrap(), 15);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("kill").unwrap(), 9);
        assert_eq!(parse("10").unwrap(), 10);
        assert_eq!(parse("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse("NOPE").is_err());
        // 0 checks that the container is alive (`kill ID 0`, as runc).
        assert_eq!(parse("0").unwrap(), 0);
        assert!(parse("65").is_err());
        assert!(parse("-1").is_err());
    }
}
