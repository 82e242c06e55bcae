//! A scratch directory under the system's temporary directory, named by the
//! test process and a tag, with helpers to fill sub-directories with files
//! (e.g. fake cgroup interface files); removed on drop, also when a test fails.

use std::path::{Path, PathBuf};

pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A fresh, empty directory; `tag` tells apart the tests of one process.
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("berth-scratch-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        ScratchDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The sub-directory `sub` (made if missing) with `files` written in it.
    pub fn dir(&self, sub: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = self.0.join(sub);
        std::fs::create_dir_all(&d).expect("create scratch sub-directory");
        for (name, text) in files {
            std::fs::write(d.join(name), text).expect("write scratch file");
        }
        d
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
