//! v1 devices controller: the OCI rules in order, allow rules to `devices.allow`
//! and deny rules to `devices.deny` (runc's v1 semantics: the last matching rule wins).

use oci_spec::runtime::LinuxDeviceCgroup;

use crate::fs::CgDir;
use crate::shared::device_rule;
use crate::Result;

pub(super) fn set(d: CgDir, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    // The kernel takes each write(2) as one rule: each file is opened once.
    let mut allow = d.writer("devices.allow");
    let mut deny = d.writer("devices.deny");
    for (i, rule) in rules.iter().enumerate() {
        let Some(line) = device_rule(rule)? else {
            continue;
        };
        let file = if rule.allow() { &mut allow } else { &mut deny };
        file.write(&line, &format!("linux.resources.devices[{i}]"))?;
    }
    Ok(())
}
