//! The options of `checkpoint` and `restore` that go to CRIU (runc's flags).

use std::path::PathBuf;

use rust_criu::rust_criu_protobuf::rpc::{Criu_cg_mode, Criu_opts};

use super::CriuError;

/// `--manage-cgroups-mode`: how CRIU dumps and restores the cgroups of the
/// tree. Unset is CRIU's default (soft).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupsMode {
    Soft,
    Full,
    Strict,
    Ignore,
}

impl std::str::FromStr for CgroupsMode {
    type Err = CriuError;
    fn from_str(s: &str) -> Result<Self, CriuError> {
        Ok(match s {
            "soft" => CgroupsMode::Soft,
            "full" => CgroupsMode::Full,
            "strict" => CgroupsMode::Strict,
            "ignore" => CgroupsMode::Ignore,
            other => {
                return Err(CriuError::Invalid(format!(
                    "--manage-cgroups-mode \"{other}\": expected soft, full, strict or ignore"
                )))
            }
        })
    }
}

impl CgroupsMode {
    fn rpc(mode: Option<CgroupsMode>) -> Criu_cg_mode {
        match mode {
            None => Criu_cg_mode::DEFAULT,
            Some(CgroupsMode::Soft) => Criu_cg_mode::SOFT,
            Some(CgroupsMode::Full) => Criu_cg_mode::FULL,
            Some(CgroupsMode::Strict) => Criu_cg_mode::STRICT,
            Some(CgroupsMode::Ignore) => Criu_cg_mode::IGNORE,
        }
    }
}

/// `--empty-ns NAME`: namespaces CRIU creates empty instead of restoring. runc
/// always adds the network namespace (it leaves network configuration to the
/// hooks), and accepts only `network` here; berth does the same.
pub fn empty_ns_mask(names: &[String]) -> Result<u32, CriuError> {
    let mut mask = libc::CLONE_NEWNET as u32;
    for n in names {
        match n.as_str() {
            "network" => mask |= libc::CLONE_NEWNET as u32,
            other => {
                return Err(CriuError::Invalid(format!(
                    "--empty-ns: namespace \"{other}\" is not supported (only network)"
                )))
            }
        }
    }
    Ok(mask)
}

/// The flags `checkpoint` and `restore` share.
#[derive(Debug, Clone, Default)]
pub struct CriuFlags {
    /// `--image-path`: CRIU's image directory.
    pub image_path: PathBuf,
    /// `--work-path`: logs and work files (default: the image directory).
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub cgroups_mode: Option<CgroupsMode>,
    /// `--empty-ns` names.
    pub empty_ns: Vec<String>,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
}

impl CriuFlags {
    /// The request options these flags set (`images_dir_fd` and the rest are
    /// the caller's).
    pub fn apply(&self, o: &mut Criu_opts) -> Result<(), CriuError> {
        o.set_log_level(4);
        o.set_manage_cgroups(true);
        o.set_manage_cgroups_mode(CgroupsMode::rpc(self.cgroups_mode));
        o.set_notify_scripts(true);
        o.set_shell_job(self.shell_job);
        o.set_tcp_established(self.tcp_established);
        o.set_ext_unix_sk(self.ext_unix_sk);
        o.set_file_locks(self.file_locks);
        o.set_empty_ns(empty_ns_mask(&self.empty_ns)?);
        o.set_orphan_pts_master(true);
        o.set_auto_dedup(self.auto_dedup);
        o.set_lazy_pages(self.lazy_pages);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_modes_parse_and_name_bad_values() {
        assert_eq!(
            "ignore".parse::<CgroupsMode>().unwrap(),
            CgroupsMode::Ignore
        );
        let e = "loose".parse::<CgroupsMode>().unwrap_err().to_string();
        assert!(e.contains("\"loose\"") && e.contains("soft"), "{e}");
    }

    #[test]
    fn network_is_always_an_empty_namespace() {
        let net = libc::CLONE_NEWNET as u32;
        assert_eq!(empty_ns_mask(&[]).unwrap(), net);
        assert_eq!(empty_ns_mask(&["network".into()]).unwrap(), net);
        assert!(empty_ns_mask(&["pid".into()]).is_err());
    }
}
