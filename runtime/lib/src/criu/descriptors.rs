//! `descriptors.json` in the image directory: what the container init's
//! stdin, stdout and stderr were at dump (`pipe:[INODE]`, `/dev/null`, ...),
//! as runc writes it. A restore hands the pipes among them over to the new
//! stdio (CRIU's `inherit_fd`, keyed by those names), so the restored
//! container writes to whoever restored it.

use std::path::Path;

use crate::error::{Context, Error, Result};

pub const FILE: &str = "descriptors.json";

/// Record the init's fds 0-2 (as /proc shows them now) in `image_dir`.
pub fn save(image_dir: &Path, init_pid: i32) -> Result<()> {
    let fds: Vec<String> = (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{init_pid}/fd/{fd}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let json = serde_json::to_vec(&fds).map_err(|e| Error::Other(format!("encode {FILE}: {e}")))?;
    let path = image_dir.join(FILE);
    crate::sys::write_atomic(&path, &json)
}

/// The recorded stdio names; fails with a message naming the file when it is
/// missing (the directory is then no checkpoint of a container).
pub fn load(image_dir: &Path) -> Result<Vec<String>> {
    let path = image_dir.join(FILE);
    let text = std::fs::read(&path).ctx(|| {
        format!(
            "read {} (is {} a checkpoint made by berth or runc?)",
            path.display(),
            image_dir.display()
        )
    })?;
    serde_json::from_slice(&text).map_err(|e| Error::Other(format!("{}: {e}", path.display())))
}

/// (key, fd) pairs for CRIU's `inherit_fd`: each pipe among the recorded
/// stdio is replaced by the same fd number of the restoring process.
pub fn inherited_pipes(names: &[String]) -> Vec<(String, i32)> {
    names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.contains("pipe:"))
        .map(|(i, n)| (n.clone(), i as i32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pipes_are_inherited() {
        let names = vec![
            "/dev/null".to_string(),
            "pipe:[123]".to_string(),
            "pipe:[124]".to_string(),
        ];
        assert_eq!(
            inherited_pipes(&names),
            vec![("pipe:[123]".to_string(), 1), ("pipe:[124]".to_string(), 2)]
        );
    }
}
