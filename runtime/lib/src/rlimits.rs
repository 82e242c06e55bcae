//! `process.rlimits`.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use crate::error::{Error, Result};

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn apply(limits: &[PosixRlimit]) -> Result<()> {
    for (i, l) in limits.iter().enumerate() {
        let r = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: valid rlimit struct.
        if unsafe { libc::setrlimit(resource(l.typ()), &r) } != 0 {
            let err = std::io::Error::last_os_error();
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
fn raise_hint(res: libc::__rlimit_resource_t, hard: u64, err: &std::io::Error) -> String {
    if err.raw_os_error() != Some(libc::EPERM) {
        return String::new();
    }
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out pointer.
    if unsafe { libc::getrlimit(res, &mut cur) } != 0 || hard <= cur.rlim_max {
        return String::new();
    }
    format!(
        " (the hard limit may not be raised above the current {} without CAP_SYS_RESOURCE \
         on the host, which a rootless container never has)",
        cur.rlim_max
    )
}
