//! Checks of config.md#linux and config-linux.md that concern kernel state:
//! namespaces, UTS names, sysctls, cgroup membership, id mappings.

use crate::tap::{expect_eq, Tap};
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

/// Environment variable holding the runner's own namespace inodes: `net=4026531840,uts=...`.
pub const HOST_NS_ENV: &str = "RUNTIMETEST_HOST_NS";
/// Environment variable holding the inodes of namespaces joined by path.
pub const EXPECT_NS_ENV: &str = "RUNTIMETEST_EXPECT_NS";

const NS_TYPES: &[(&str, &str)] = &[
    ("pid", "pid"),
    ("network", "net"),
    ("mount", "mnt"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("user", "user"),
    ("cgroup", "cgroup"),
    ("time", "time"),
];

fn parse_ns_env(name: &str) -> HashMap<String, u64> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

fn ns_inode(file: &str) -> Result<u64, String> {
    fs::metadata(format!("/proc/self/ns/{file}"))
        .map(|m| m.ino())
        .map_err(|e| format!("stat /proc/self/ns/{file}: {e}"))
}

pub fn namespaces(tap: &mut Tap, linux: &Value) {
    let host = parse_ns_env(HOST_NS_ENV);
    let expect = parse_ns_env(EXPECT_NS_ENV);
    let configured: Vec<&Value> = linux["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    for (spec_type, file) in NS_TYPES {
        if !std::path::Path::new(&format!("/proc/self/ns/{file}")).exists() {
            continue;
        }
        let entry = configured
            .iter()
            .find(|n| n["type"].as_str() == Some(spec_type));
        let got = ns_inode(file);
        match entry {
            Some(ns) if ns["path"].as_str().is_some() => {
                let desc = format!("linux.namespaces {spec_type} joined by path");
                match expect.get(*file) {
                    Some(want) => {
                        tap.check(&desc, got.and_then(|got| expect_eq("inode", *want, got)))
                    }
                    None => tap.skip(
                        &desc,
                        &format!("runner passed no expected inode in {EXPECT_NS_ENV}"),
                    ),
                }
            }
            Some(_) => {
                let desc = format!("linux.namespaces {spec_type} is new");
                match host.get(*file) {
                    Some(h) => tap.check(
                        &desc,
                        got.and_then(|got| {
                            if got != *h {
                                Ok(())
                            } else {
                                Err(format!("inode {got} equals the host's"))
                            }
                        }),
                    ),
                    None => tap.skip(
                        &desc,
                        &format!("runner passed no host inode in {HOST_NS_ENV}"),
                    ),
                }
                if *spec_type == "pid" {
                    tap.check(
                        "linux.namespaces pid: process is pid 1",
                        expect_eq("pid", 1, std::process::id()),
                    );
                }
            }
            None => {
                let desc =
                    format!("linux.namespaces {spec_type} not listed: inherited from runtime");
                if let Some(h) = host.get(*file) {
                    tap.check(&desc, got.and_then(|got| expect_eq("inode", *h, got)));
                }
            }
        }
    }
}

fn uname() -> Result<libc::utsname, String> {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid utsname to fill.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err(format!("uname: {}", std::io::Error::last_os_error()));
    }
    Ok(u)
}

fn c_field(field: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = field
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn hostname(tap: &mut Tap, config: &Value) {
    let Some(want) = config["hostname"].as_str() else {
        tap.skip("hostname", "not set in config");
        return;
    };
    tap.check(
        "hostname",
        uname().and_then(|u| expect_eq("hostname", want.to_string(), c_field(&u.nodename))),
    );
}

pub fn domainname(tap: &mut Tap, config: &Value) {
    let Some(want) = config["domainname"].as_str() else {
        tap.skip("domainname", "not set in config");
        return;
    };
    tap.check(
        "domainname",
        uname().and_then(|u| expect_eq("domainname", want.to_string(), c_field(&u.domainname))),
    );
}

pub fn sysctl(tap: &mut Tap, linux: &Value) {
    let Some(map) = linux["sysctl"].as_object() else {
        tap.skip("linux.sysctl", "none in config");
        return;
    };
    for (key, want) in map {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let want = want
            .as_str()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let got = fs::read_to_string(&path)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .map_err(|e| format!("read {path}: {e}"));
        tap.check(
            &format!("linux.sysctl {key}"),
            got.and_then(|got| expect_eq(key, want, got)),
        );
    }
}

pub fn cgroups(tap: &mut Tap, linux: &Value) {
    let Some(path) = linux["cgroupsPath"].as_str() else {
        tap.skip("linux.cgroupsPath", "not set in config");
        return;
    };
    let new_cgroupns = linux["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["type"].as_str() == Some("cgroup") && n["path"].is_null());
    let want = if new_cgroupns {
        "/".to_string()
    } else {
        crate::procfs::normalize(path)
    };
    let result = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("read /proc/self/cgroup: {e}"))
        .and_then(|text| {
            let paths: Vec<String> = text
                .lines()
                .filter_map(|l| l.splitn(3, ':').nth(2).map(str::to_string))
                .collect();
            if paths.contains(&want) {
                Ok(())
            } else {
                Err(format!(
                    "no hierarchy places the process at {want}: {paths:?}"
                ))
            }
        });
    tap.check(&format!("linux.cgroupsPath member of {want}"), result);
}

pub fn id_mappings(tap: &mut Tap, linux: &Value) {
    for (key, file) in [("uidMappings", "uid_map"), ("gidMappings", "gid_map")] {
        let Some(maps) = linux[key].as_array() else {
            tap.skip(&format!("linux.{key}"), "not set in config");
            continue;
        };
        let want: Vec<(u64, u64, u64)> = maps
            .iter()
            .map(|m| {
                (
                    m["containerID"].as_u64().unwrap_or(0),
                    m["hostID"].as_u64().unwrap_or(0),
                    m["size"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let got = fs::read_to_string(format!("/proc/self/{file}"))
            .map_err(|e| format!("read {file}: {e}"))
            .map(|text| {
                text.lines()
                    .filter_map(|l| {
                        let f: Vec<u64> = l
                            .split_whitespace()
                            .filter_map(|x| x.parse().ok())
                            .collect();
                        (f.len() == 3).then(|| (f[0], f[1], f[2]))
                    })
                    .collect::<Vec<_>>()
            });
        tap.check(
            &format!("linux.{key} in /proc/self/{file}"),
            got.and_then(|got| expect_eq(file, want, got)),
        );
    }
}
