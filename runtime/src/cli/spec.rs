//! `berth spec`: write a default config.json, as `runc spec` does.

use std::path::Path;

use berth_spec_defaults::{CapabilitySet, Defaults};
use serde_json::Value;

pub fn default_spec(rootless: bool) -> Value {
    // As runc: a cgroup namespace only where the host is cgroup v2 alone
    // (runc's own tests add one on v1 hosts, and a duplicate is an error).
    let cgroup_namespace = berth_cgroups::detect().ok() == Some(berth_cgroups::Mode::Unified);
    let rootless = rootless.then(|| {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    });
    spec_for(cgroup_namespace, rootless)
}

/// The default spec for a host with (or without) cgroup v2 alone, made
/// rootless for the given host uid and gid.
fn spec_for(cgroup_namespace: bool, rootless: Option<(u32, u32)>) -> Value {
    let mut s = Defaults {
        hostname: "berth",
        // berth spec has always also written the ambient set, which runc's
        // example leaves out; kept so its output stays as it was.
        capability_sets: &[
            CapabilitySet::Bounding,
            CapabilitySet::Effective,
            CapabilitySet::Permitted,
            CapabilitySet::Ambient,
        ],
        cgroup_namespace,
        ..Defaults::runc(berth_runtime::OCI_VERSION)
    }
    .build();
    if let Some((uid, gid)) = rootless {
        berth_spec_defaults::to_rootless(&mut s, uid, gid);
    }
    s
}

pub fn run(bundle: &Path, rootless: bool) -> anyhow::Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        anyhow::bail!("File {} exists. Remove it first", path.display());
    }
    let text = serde_json::to_string_pretty(&default_spec(rootless))?;
    std::fs::write(&path, text + "\n")
        .map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_spec_parses_and_validates_version() {
        for rootless in [false, true] {
            let text = super::default_spec(rootless).to_string();
            berth_runtime::bundle_config::parse(&text).unwrap();
        }
    }

    /// The output `berth spec` wrote before the defaults moved to a shared
    /// crate (recorded from the binary on a v1 and a v2 host, as root and
    /// as uid 1000): it stays byte for byte the same.
    #[test]
    fn output_matches_the_recorded_files() {
        let cases = [
            (false, None, "cgroup-v1.json"),
            (true, None, "cgroup-v2.json"),
            (false, Some((1000, 1000)), "rootless-cgroup-v1-uid1000.json"),
            (true, Some((0, 0)), "rootless-cgroup-v2-uid0.json"),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec");
        for (cgroup_namespace, rootless, file) in cases {
            let want = std::fs::read_to_string(dir.join(file)).unwrap();
            let got = super::spec_for(cgroup_namespace, rootless);
            let got = serde_json::to_string_pretty(&got).unwrap() + "\n";
            assert_eq!(got, want, "{file}");
        }
    }
}
