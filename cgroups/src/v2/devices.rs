//! v2 devices: cgroup v2 has no devices files; access is checked by an eBPF
//! program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup
//! (see [`super::bpf`]). In a fake tree the program is generated (so the rules
//! are validated) but not loaded.

use oci_spec::runtime::LinuxDeviceCgroup;

use super::bpf;
use crate::fs::CgDir;
use crate::Result;

pub(crate) fn set(d: CgDir, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let prog = bpf::device_filter(rules)?;
    if d.create {
        return Ok(());
    }
    let fd = bpf::load(&prog)?;
    bpf::attach_replacing(d.path, &fd)
}
