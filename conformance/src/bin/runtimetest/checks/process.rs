//! Checks of config.md#process: what the container process itself looks like.

use crate::procfs::status_field;
use crate::tap::{expect_eq, Tap};
use serde_json::Value;
use std::fs;

pub fn args(tap: &mut Tap, process: &Value) {
    let want: Vec<String> = strings(&process["args"]);
    let got = fs::read("/proc/self/cmdline")
        .map(|raw| {
            raw.split(|b| *b == 0)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
        })
        .map(|mut v| {
            if v.last().is_some_and(|s| s.is_empty()) {
                v.pop();
            }
            v
        });
    tap.check(
        "process.args",
        got.map_err(|e| format!("read cmdline: {e}"))
            .and_then(|got| expect_eq("args", want, got)),
    );
}

pub fn env(tap: &mut Tap, process: &Value) {
    let got: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    for entry in strings(&process["env"]) {
        let result = if got.contains(&entry) {
            Ok(())
        } else {
            Err(format!("{entry:?} missing from environment"))
        };
        tap.check(&format!("process.env {entry}"), result);
    }
}

pub fn cwd(tap: &mut Tap, process: &Value) {
    let want = process["cwd"].as_str().unwrap_or("/").to_string();
    let got = std::env::current_dir().map(|p| p.display().to_string());
    tap.check(
        "process.cwd",
        got.map_err(|e| format!("getcwd: {e}"))
            .and_then(|got| expect_eq("cwd", want, got)),
    );
}

pub fn user(tap: &mut Tap, process: &Value) {
    let user = &process["user"];
    let uid = user["uid"].as_u64().unwrap_or(0) as u32;
    let gid = user["gid"].as_u64().unwrap_or(0) as u32;
    // SAFETY: these getters cannot fail.
    let (ruid, euid, rgid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    tap.check("process.user.uid (real)", expect_eq("uid", uid, ruid));
    tap.check("process.user.uid (effective)", expect_eq("euid", uid, euid));
    tap.check("process.user.gid (real)", expect_eq("gid", gid, rgid));
    tap.check("process.user.gid (effective)", expect_eq("egid", gid, egid));
    let groups = supplementary_groups();
    for extra in user["additionalGids"].as_array().into_iter().flatten() {
        let g = extra.as_u64().unwrap_or(u64::MAX) as u32;
        let result = match &groups {
            Ok(gs) if gs.contains(&g) => Ok(()),
            Ok(gs) => Err(format!("gid {g} not in supplementary groups {gs:?}")),
            Err(e) => Err(e.clone()),
        };
        tap.check(&format!("process.user.additionalGids contains {g}"), result);
    }
    if let Some(mask) = user["umask"].as_u64() {
        let got = status_field("Umask")
            .and_then(|v| u32::from_str_radix(&v, 8).map_err(|e| e.to_string()));
        tap.check(
            "process.user.umask",
            got.and_then(|got| expect_eq("umask", format!("{mask:04o}"), format!("{got:04o}"))),
        );
    }
}

fn supplementary_groups() -> Result<Vec<u32>, String> {
    let mut buf = vec![0 as libc::gid_t; 1024];
    // SAFETY: buf has room for 1024 entries.
    let n = unsafe { libc::getgroups(buf.len() as i32, buf.as_mut_ptr()) };
    if n < 0 {
        return Err(format!("getgroups: {}", std::io::Error::last_os_error()));
    }
    buf.truncate(n as usize);
    Ok(buf)
}

const RLIMITS: &[(&str, libc::__rlimit_resource_t)] = &[
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
];

pub fn rlimits(tap: &mut Tap, process: &Value) {
    for limit in process["rlimits"].as_array().into_iter().flatten() {
        let name = limit["type"].as_str().unwrap_or("");
        let desc = format!("process.rlimits {name}");
        let Some((_, resource)) = RLIMITS.iter().find(|(n, _)| *n == name) else {
            tap.check(&desc, Err(format!("unknown rlimit type {name:?}")));
            continue;
        };
        let mut got = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: got is a valid out-pointer.
        let rc = unsafe { libc::getrlimit(*resource, &mut got) };
        let result = if rc != 0 {
            Err(format!("getrlimit: {}", std::io::Error::last_os_error()))
        } else {
            let want = (
                limit["soft"].as_u64().unwrap_or(0),
                limit["hard"].as_u64().unwrap_or(0),
            );
            expect_eq("(soft, hard)", want, (got.rlim_cur, got.rlim_max))
        };
        tap.check(&desc, result);
    }
}

/// A capability's name from its bit number, and back (the caps crate's table).
fn cap_by_bit(bit: u32) -> Option<caps::Capability> {
    caps::all()
        .into_iter()
        .find(|c| u32::from(c.index()) == bit)
}

fn cap_mask(names: &[String], last_cap: u32) -> Result<u64, String> {
    let mut mask = 0u64;
    for name in names {
        let bit = u32::from(
            name.parse::<caps::Capability>()
                .map_err(|_| format!("unknown capability {name:?}"))?
                .index(),
        );
        if bit <= last_cap {
            mask |= 1 << bit;
        }
    }
    Ok(mask)
}

fn cap_names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|b| mask & (1 << b) != 0)
        .map(|b| cap_by_bit(b).map_or("CAP_UNKNOWN".to_string(), |c| c.to_string()))
        .collect()
}

pub fn capabilities(tap: &mut Tap, process: &Value) {
    let last_cap = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            caps::all()
                .into_iter()
                .map(|c| u32::from(c.index()))
                .max()
                .unwrap_or(0)
        });
    let caps = &process["capabilities"];
    for (set, field) in [
        ("bounding", "CapBnd"),
        ("effective", "CapEff"),
        ("inheritable", "CapInh"),
        ("permitted", "CapPrm"),
        ("ambient", "CapAmb"),
    ] {
        let desc = format!("process.capabilities.{set}");
        let mut want = cap_mask(&strings(&caps[set]), last_cap);
        if set == "ambient" {
            // The kernel keeps an ambient capability only while it is permitted and inheritable.
            let both = cap_mask(&strings(&caps["permitted"]), last_cap)
                .and_then(|p| Ok(p & cap_mask(&strings(&caps["inheritable"]), last_cap)?));
            want = want.and_then(|a| Ok(a & both?));
        }
        let got = status_field(field)
            .and_then(|v| u64::from_str_radix(&v, 16).map_err(|e| e.to_string()));
        let result = want.and_then(|want| {
            let got = got?;
            if want == got {
                Ok(())
            } else {
                Err(format!(
                    "{field}: expected {:?}, got {:?}",
                    cap_names(want),
                    cap_names(got)
                ))
            }
        });
        tap.check(&desc, result);
    }
}

pub fn no_new_privileges(tap: &mut Tap, process: &Value) {
    let want = if process["noNewPrivileges"].as_bool().unwrap_or(false) {
        "1"
    } else {
        "0"
    };
    tap.check(
        "process.noNewPrivileges",
        status_field("NoNewPrivs").and_then(|got| expect_eq("NoNewPrivs", want.to_string(), got)),
    );
}

pub fn oom_score_adj(tap: &mut Tap, process: &Value) {
    let Some(want) = process["oomScoreAdj"].as_i64() else {
        tap.skip("process.oomScoreAdj", "not set in config");
        return;
    };
    let got = fs::read_to_string("/proc/self/oom_score_adj")
        .map_err(|e| format!("read oom_score_adj: {e}"))
        .and_then(|s| s.trim().parse::<i64>().map_err(|e| e.to_string()));
    tap.check(
        "process.oomScoreAdj",
        got.and_then(|got| expect_eq("oom_score_adj", want, got)),
    );
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// runtime-linux.md: only fds 0, 1 and 2 are open in the process (probed with
/// fcntl, which opens nothing itself).
pub fn only_stdio(tap: &mut Tap) {
    let mut extra = Vec::new();
    for fd in 3..4096 {
        // SAFETY: F_GETFD on any number only reads the fd table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            let what = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            extra.push(format!("{fd} -> {what}"));
        }
    }
    tap.check(
        "only stdin, stdout and stderr are open",
        if extra.is_empty() {
            Ok(())
        } else {
            Err(format!("extra fds: {}", extra.join(", ")))
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_mask_maps_names_to_bits() {
        let names = vec!["CAP_CHOWN".to_string(), "CAP_KILL".to_string()];
        assert_eq!(cap_mask(&names, 40), Ok((1 << 0) | (1 << 5)));
        assert!(cap_mask(&["CAP_BOGUS".to_string()], 40).is_err());
        // Capabilities the kernel does not know are ignored.
        assert_eq!(cap_mask(&["CAP_CHECKPOINT_RESTORE".to_string()], 39), Ok(0));
        assert_eq!(cap_names(1 << 5), vec!["CAP_KILL"]);
    }
}
