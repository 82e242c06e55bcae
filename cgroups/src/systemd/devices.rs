//! OCI device rules as systemd's `DevicePolicy` and `DeviceAllow` (what runc's
//! systemd driver sends).
//!
//! The rules are first evaluated in order the way the v1 devices controller
//! would (an emulator: a default plus exceptions); systemd can only express an
//! allow list, so:
//! * default deny (the normal container case) -> `DevicePolicy=strict` and the
//!   allowed devices as `DeviceAllow` entries (`/dev/char/M:m`, `char-M` for a
//!   whole major, `char-*` for every character device; the same with `block`);
//! * default allow without exceptions -> `DevicePolicy=auto`, no entries;
//! * default allow with denied exceptions -> a deny-all `strict` list, as runc
//!   does: berth's own device filter (the eBPF program on v2, `devices.*` files
//!   on v1), written after the unit's properties, is what then holds.
//!
//! Rules with a wildcard major and a fixed minor cannot be written for systemd
//! and are left out of its list; the runtime's own filter still applies them.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::properties::{Property, Value};
use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Char,
    Block,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Exception {
    kind: Kind,
    major: Option<i64>,
    minor: Option<i64>,
    /// A subset of "rwm", in that order.
    access: String,
}

/// The v1 devices controller's model: a default and exceptions to it.
#[derive(Debug, Default)]
struct Emulator {
    default_allow: bool,
    exceptions: Vec<Exception>,
}

fn merge(a: &str, b: &str) -> String {
    "rwm"
        .chars()
        .filter(|c| a.contains(*c) || b.contains(*c))
        .collect()
}

fn remove(a: &str, b: &str) -> String {
    a.chars().filter(|c| !b.contains(*c)).collect()
}

impl Emulator {
    fn apply(&mut self, rule: &LinuxDeviceCgroup) -> Result<()> {
        // Validates the access string and gives the cgroup syntax.
        if crate::shared::device_rule(rule)?.is_none() {
            return Ok(()); // FIFOs have no cgroup meaning
        }
        let access = match rule.access().as_deref() {
            None | Some("") => "rwm".to_string(),
            Some(a) => merge(a, ""),
        };
        let kind = match rule.typ().unwrap_or_default() {
            LinuxDeviceType::A => {
                // "a" resets the controller whatever its numbers: allow or deny all.
                self.default_allow = rule.allow();
                self.exceptions.clear();
                return Ok(());
            }
            LinuxDeviceType::B => Kind::Block,
            _ => Kind::Char,
        };
        let exception = Exception {
            kind,
            major: rule.major().filter(|&m| m >= 0),
            minor: rule.minor().filter(|&m| m >= 0),
            access,
        };
        if rule.allow() != self.default_allow {
            self.add(exception);
        } else {
            self.subtract(&exception);
        }
        Ok(())
    }

    fn add(&mut self, e: Exception) {
        match self.exceptions.iter_mut().find(|x| same_device(x, &e)) {
            Some(x) => x.access = merge(&x.access, &e.access),
            None => self.exceptions.push(e),
        }
    }

    /// Like the kernel, only an exception for exactly the same devices loses access.
    fn subtract(&mut self, e: &Exception) {
        for x in self.exceptions.iter_mut().filter(|x| same_device(x, e)) {
            x.access = remove(&x.access, &e.access);
        }
        self.exceptions.retain(|x| !x.access.is_empty());
    }
}

fn same_device(a: &Exception, b: &Exception) -> bool {
    a.kind == b.kind && a.major == b.major && a.minor == b.minor
}

/// `DevicePolicy` and `DeviceAllow` for `rules` (DeviceAllow is emptied first,
/// so that an update replaces the list instead of extending it).
pub fn device_properties(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Property>> {
    let mut emu = Emulator::default();
    for r in rules {
        emu.apply(r)?;
    }
    let reset = Property::new("DeviceAllow", Value::DeviceAllow(Vec::new()));
    if emu.default_allow {
        let policy = if emu.exceptions.is_empty() {
            "auto"
        } else {
            "strict"
        };
        return Ok(vec![
            Property::new("DevicePolicy", Value::Str(policy.into())),
            reset,
        ]);
    }
    let mut allow = Vec::new();
    for e in &emu.exceptions {
        let group = match e.kind {
            Kind::Char => "char",
            Kind::Block => "block",
        };
        let path = match (e.major, e.minor) {
            (Some(major), Some(minor)) => format!("/dev/{group}/{major}:{minor}"),
            (Some(major), None) => format!("{group}-{major}"),
            (None, None) => format!("{group}-*"),
            (None, Some(_)) => continue,
        };
        allow.push((path, e.access.clone()));
    }
    Ok(vec![
        Property::new("DevicePolicy", Value::Str("strict".into())),
        reset,
        Property::new("DeviceAllow", Value::DeviceAllow(allow)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(json: &str) -> Vec<Property> {
        device_properties(&serde_json::from_str::<Vec<LinuxDeviceCgroup>>(json).unwrap()).unwrap()
    }

    fn allow_list(p: &[Property]) -> Vec<(String, String)> {
        match &p.last().unwrap().value {
            Value::DeviceAllow(v) => v.clone(),
            v => panic!("unexpected {v:?}"),
        }
    }

    #[test]
    fn deny_all_then_allows_is_a_strict_list() {
        let p = props(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":136,"access":"rw"},
                {"allow":true,"type":"b","access":"m"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"r"},
                {"allow":true,"type":"b","major":7,"minor":1,"access":"wr"},
                {"allow":false,"type":"b","major":7,"minor":1,"access":"w"},
                {"allow":true,"type":"c","minor":5,"access":"r"},
                {"allow":true,"type":"p","access":"r"}]"#,
        );
        assert_eq!(
            p[0],
            Property::new("DevicePolicy", Value::Str("strict".into()))
        );
        assert_eq!(
            p[1],
            Property::new("DeviceAllow", Value::DeviceAllow(vec![]))
        );
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            allow_list(&p),
            vec![
                s("/dev/char/1:3", "rwm"),
                s("char-136", "rw"),
                s("block-*", "m"),
                s("/dev/block/7:1", "r"),
            ]
        );
    }

    #[test]
    fn allow_all_is_auto_and_a_blacklist_is_deny_all() {
        let p = props(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"a"}]"#);
        assert_eq!(p[0].value, Value::Str("auto".into()));
        assert_eq!(p.len(), 2);
        let p = props(
            r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":3,"access":"rwm"}]"#,
        );
        assert_eq!(p[0].value, Value::Str("strict".into()));
        assert_eq!(p.len(), 2, "no DeviceAllow entries: {p:?}");
        // A later deny-all forgets earlier exceptions.
        let p = props(
            r#"[{"allow":true,"type":"c","major":1,"minor":3,"access":"r"},{"allow":false,"access":"rwm"}]"#,
        );
        assert_eq!(allow_list(&p), vec![]);
    }

    #[test]
    fn bad_access_is_an_error() {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":true,"type":"c","major":1,"minor":3,"access":"rwx"}]"#,
        )
        .unwrap();
        assert!(device_properties(&rules).is_err());
    }
}
