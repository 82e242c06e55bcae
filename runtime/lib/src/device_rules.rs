//! The device rules berth adds to `linux.resources.devices`, as runc does: the
//! spec's default devices, ptys and /dev/console stay usable whatever the config
//! denies. Devices listed in `linux.devices` are only created: whether the
//! container may use them is `linux.resources.devices`'s to say (a node made
//! for a deny-all config stays unusable, as with runc and crun).

use oci_spec::runtime::{Linux, LinuxDeviceCgroup, LinuxResources};
use serde_json::json;

fn rule(typ: &str, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
    serde_json::from_value(
        json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": access}),
    )
    .expect("static device rule")
}

pub fn default_allowed() -> Vec<LinuxDeviceCgroup> {
    vec![
        rule("c", None, None, "m"),
        rule("b", None, None, "m"),
        rule("c", Some(1), Some(3), "rwm"),
        rule("c", Some(1), Some(8), "rwm"),
        rule("c", Some(1), Some(7), "rwm"),
        rule("c", Some(5), Some(0), "rwm"),
        rule("c", Some(1), Some(5), "rwm"),
        rule("c", Some(1), Some(9), "rwm"),
        rule("c", Some(5), Some(1), "rwm"),
        rule("c", Some(136), None, "rwm"),
        rule("c", Some(5), Some(2), "rwm"),
    ]
}

/// The resources to apply, with the device rules completed. `None` when the
/// config has no resources block.
pub fn resources_to_apply(linux: &Linux) -> Option<LinuxResources> {
    let mut res = linux.resources().clone()?;
    if let Some(mut all) = res.devices().clone() {
        all.extend(default_allowed());
        res.set_devices(Some(all));
    }
    Some(res)
}
