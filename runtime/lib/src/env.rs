//! The environment a container process is started with, prepared as runc
//! does: every entry is `NAME=VALUE`, a repeated name keeps its last value
//! (in the position of that last occurrence), and `HOME` comes from the
//! container's `/etc/passwd` for the process user when `process.env` lacks it
//! or sets it empty (`/` when the user has no entry).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use crate::error::{Error, Result};

/// Where the user database is read, inside the container's root.
const PASSWD: &str = "/etc/passwd";
/// A passwd file larger than this is not read (it is no user database).
const PASSWD_LIMIT: u64 = 16 << 20;

/// `env` deduplicated (last value wins) with `HOME` filled in for `uid`.
/// `None` (no `process.env` at all) stays empty, as with runc.
pub fn prepare(env: Option<&[String]>, uid: u32) -> Result<Vec<String>> {
    let Some(env) = env else {
        return Ok(Vec::new());
    };
    let mut out = dedup(env)?;
    let has_home = out
        .iter()
        .any(|kv| kv.strip_prefix("HOME=").is_some_and(|v| !v.is_empty()));
    out.retain(|kv| kv != "HOME=");
    if !has_home {
        out.push(format!("HOME={}", home_of(uid)));
    }
    Ok(out)
}

/// Validate every entry and keep the last occurrence of each name.
fn dedup(env: &[String]) -> Result<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(env.len());
    for (i, kv) in env.iter().enumerate().rev() {
        let name = match kv.find('=') {
            Some(0) => {
                return Err(Error::Config(format!(
                "field process.env[{i}]: invalid environment variable {kv:?}: name cannot be empty"
            )))
            }
            Some(n) => &kv[..n],
            None => {
                return Err(Error::Config(format!(
                    "field process.env[{i}]: invalid environment variable {kv:?}: missing '='"
                )))
            }
        };
        if kv.contains('\0') {
            return Err(Error::Config(format!(
                "field process.env[{i}]: invalid environment variable {name:?}: contains nul byte (\\x00)"
            )));
        }
        if seen.insert(name) {
            out.push(kv.clone());
        }
    }
    out.reverse();
    Ok(out)
}

/// The home directory of `uid` in the container's passwd file, `/` when the
/// file or the entry is missing or unreadable. The file is opened without
/// blocking and must be a regular file: an image can put anything there.
fn home_of(uid: u32) -> String {
    read_passwd()
        .and_then(|text| home_in(&text, uid))
        .unwrap_or_else(|| "/".to_string())
}

fn read_passwd() -> Option<String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(PASSWD)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    f.take(PASSWD_LIMIT).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The home field of the first `name:pw:uid:gid:gecos:home:shell` line for `uid`.
fn home_in(passwd: &str, uid: u32) -> Option<String> {
    field_of(passwd, uid, 5)
}

/// Field `index` of the first passwd line for `uid`.
fn field_of(passwd: &str, uid: u32, index: usize) -> Option<String> {
    passwd
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2].trim().parse::<u32>().ok() == Some(uid))
                .then(|| f[index].to_string())
        })
}

/// The name of `uid` in the passwd file of the current root (the host's, for
/// the command line), read from the file as runc's user package does. Not
/// through libc's getpwuid: berth is a static binary, and glibc's NSS would
/// load the modules nsswitch.conf names (`systemd`) into it with dlopen,
/// which a static executable cannot do safely.
pub fn user_name(uid: u32) -> Option<String> {
    read_passwd().and_then(|text| field_of(&text, uid, 0))
}

/// The `PATH` a program name is looked up in: the prepared env's, else runc's default.
pub fn path_of(env: &[String]) -> &str {
    env.iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// The search path when `process.env` has no `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn user_names_come_from_the_passwd_text() {
        let text = "# comment\nroot:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\nshort:x:7\n";
        assert_eq!(field_of(text, 1000, 0).as_deref(), Some("bob"));
        assert_eq!(field_of(text, 0, 5).as_deref(), Some("/root"));
        assert_eq!(field_of(text, 7, 0), None);
        assert_eq!(field_of(text, 42, 0), None);
    }

    #[test]
    fn last_value_wins_in_its_position() {
        let out = dedup(&v(&["A=1", "B=2", "A=3"])).unwrap();
        assert_eq!(out, v(&["B=2", "A=3"]));
    }

    #[test]
    fn malformed_entries_are_refused() {
        assert!(dedup(&v(&["NOEQUALS"]))
            .unwrap_err()
            .to_string()
            .contains("missing '='"));
        assert!(dedup(&v(&["=x"]))
            .unwrap_err()
            .to_string()
            .contains("name cannot be empty"));
    }

    #[test]
    fn home_lookup() {
        let pw =
            "root:x:0:0:root:/root:/bin/sh\n# comment\nu:x:1000:1000::/home/u:/bin/sh\nshort:x:7\n";
        assert_eq!(home_in(pw, 0).as_deref(), Some("/root"));
        assert_eq!(home_in(pw, 1000).as_deref(), Some("/home/u"));
        assert_eq!(home_in(pw, 7), None);
        assert_eq!(home_in(pw, 2000), None);
    }
}
