//! `process.rlimits`.

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use crate::error::{Error, Result};

fn resource(t: PosixRlimitType) -> Resource {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => Resource::RLIMIT_CPU,
        RlimitFsize => Resource::RLIMIT_FSIZE,
        RlimitData => Resource::RLIMIT_DATA,
        RlimitStack => Resource::RLIMIT_STACK,
        RlimitCore => Resource::RLIMIT_CORE,
        RlimitRss => Resource::RLIMIT_RSS,
        RlimitNproc => Resource::RLIMIT_NPROC,
        RlimitNofile => Resource::RLIMIT_NOFILE,
        RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        RlimitAs => Resource::RLIMIT_AS,
        RlimitLocks => Resource::RLIMIT_LOCKS,
        RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        RlimitNice => Resource::RLIMIT_NICE,
        RlimitRtprio => Resource::RLIMIT_RTPRIO,
        RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

pub fn apply(limits: &[PosixRlimit]) -> Result<()> {
    for (i, l) in limits.iter().enumerate() {
        if let Err(errno) = setrlimit(resource(l.typ()), l.soft(), l.hard()) {
            let err = std::io::Error::from(errno);
            return Err(Error::Config(format!(
                "field process.rlimits[{i}] ({:?} soft {} hard {}): {err}{}",
                l.typ(),
                l.soft(),
                l.hard(),
                raise_hint(resource(l.typ()), l.hard(), &err)
            )));
        }
    }
    Ok(())
}

/// Why setrlimit said EPERM: a hard limit above the current one needs
/// CAP_SYS_RESOURCE on the host, which a rootless container never has.
fn raise_hint(res: Resource, hard: u64, err: &std::io::Error) -> String {
    if err.raw_os_error() != Some(libc::EPERM) {
        return String::new();
    }
    let cur_max = match getrlimit(res) {
        Ok((_, max)) if hard > max => max,
        _ => return String::new(),
    };
    format!(
        " (the hard limit may not be raised above the current {} without CAP_SYS_RESOURCE \
         on the host, which a rootless container never has)",
        cur_max
    )
}
