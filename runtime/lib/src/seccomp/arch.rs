//! Architectures a filter can see, their audit tokens and syscall tables.
//!
//! The kernel hands a filter `seccomp_data.arch` (an `AUDIT_ARCH_*` value) and
//! `seccomp_data.nr`. x32 shares `AUDIT_ARCH_X86_64` with x86_64 and marks its
//! syscall numbers with bit 30 (`__X32_SYSCALL_BIT`), so one audit token can
//! carry two ABIs.

use oci_spec::runtime::Arch;

use super::syscall_table;

pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub(crate) const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub(crate) const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A syscall ABI this runtime has a syscall table for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Abi {
    X86_64,
    X32,
    X86,
    Aarch64,
}

impl Abi {
    pub(crate) fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
        }
    }

    /// Arguments are compared on both 32-bit halves only for 64-bit ABIs;
    /// for 32-bit ABIs (x86, x32) only the low word, as libseccomp does.
    pub(crate) fn is_64bit(self) -> bool {
        matches!(self, Abi::X86_64 | Abi::Aarch64)
    }

    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Abi::X86_64 => syscall_table::X86_64,
            Abi::X32 => syscall_table::X32,
            Abi::X86 => syscall_table::X86,
            Abi::Aarch64 => syscall_table::AARCH64,
        }
    }

    /// The syscall number of `name` in this ABI, if the ABI has that syscall.
    pub(crate) fn syscall_nr(self, name: &str) -> Option<u32> {
        let table = self.table();
        table
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| table[i].1)
    }
}

/// How an architecture named in a profile relates to this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArchSupport {
    /// Syscalls of this ABI can reach the filter and are compiled.
    Abi(Abi),
    /// The architecture can execute on this host but there is no syscall
    /// table for it (32-bit ARM on aarch64): its syscalls get the default action.
    NoTable,
    /// The architecture cannot execute on this host: the kernel never
    /// presents its audit token, so rules for it are dead code and skipped.
    Foreign,
}

/// The host's own ABI (libseccomp always adds it to a filter).
pub(crate) fn native_abi() -> Option<Abi> {
    if cfg!(target_arch = "x86_64") {
        Some(Abi::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(Abi::Aarch64)
    } else {
        None
    }
}

pub(crate) fn classify(arch: Arch) -> ArchSupport {
    let x86_host = cfg!(target_arch = "x86_64");
    let arm_host = cfg!(target_arch = "aarch64");
    match arch {
        Arch::ScmpArchNative => native_abi().map_or(ArchSupport::Foreign, ArchSupport::Abi),
        Arch::ScmpArchX86_64 if x86_host => ArchSupport::Abi(Abi::X86_64),
        Arch::ScmpArchX32 if x86_host => ArchSupport::Abi(Abi::X32),
        Arch::ScmpArchX86 if x86_host => ArchSupport::Abi(Abi::X86),
        Arch::ScmpArchAarch64 if arm_host => ArchSupport::Abi(Abi::Aarch64),
        Arch::ScmpArchArm if arm_host => ArchSupport::NoTable,
        _ => ArchSupport::Foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_unique() {
        for abi in [Abi::X86_64, Abi::X32, Abi::X86, Abi::Aarch64] {
            let t = abi.table();
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0), "{abi:?} not sorted");
        }
    }

    #[test]
    fn known_numbers() {
        assert_eq!(Abi::X86_64.syscall_nr("read"), Some(0));
        assert_eq!(Abi::X86_64.syscall_nr("clone3"), Some(435));
        assert_eq!(Abi::X86_64.syscall_nr("file_setattr"), Some(469));
        assert_eq!(Abi::X86.syscall_nr("read"), Some(3));
        assert_eq!(Abi::X32.syscall_nr("read"), Some(X32_SYSCALL_BIT));
        assert_eq!(Abi::X32.syscall_nr("execve"), Some(X32_SYSCALL_BIT | 520));
        assert_eq!(Abi::Aarch64.syscall_nr("openat"), Some(56));
        assert_eq!(Abi::Aarch64.syscall_nr("open"), None);
        assert_eq!(Abi::X86_64.syscall_nr("no_such_syscall"), None);
    }
}
