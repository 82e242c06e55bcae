//! `linux.resources.unified`: raw v2 interface files, written as given.

use std::collections::HashMap;
use std::path::Path;

use crate::fs::CgDir;
use crate::{CgroupError, Result};

pub(crate) fn set(
    mount: &Path,
    dir: &Path,
    fake: bool,
    files: &HashMap<String, String>,
) -> Result<()> {
    let d = CgDir::new(dir, fake);
    let mut keys: Vec<&String> = files.keys().collect();
    keys.sort();
    for key in keys {
        let Some((controller, _)) = key.split_once('.') else {
            return Err(invalid(key));
        };
        if controller.is_empty() || key.contains('/') || key.contains('\0') {
            return Err(invalid(key));
        }
        // The controller may not be enabled for this cgroup yet.
        if controller != "cgroup" && !d.has(key) && super::controller_available(mount, controller) {
            super::enable_controllers(mount, dir, &[controller], fake)?;
        }
        if !d.has(key) && !fake {
            return Err(CgroupError::Unsupported(format!(
                "linux.resources.unified[{key:?}]: {} does not exist (is the {controller} controller available?)",
                d.file(key).display()
            )));
        }
        d.write(
            key,
            &files[key],
            &format!("linux.resources.unified[{key:?}]"),
        )?;
    }
    Ok(())
}

fn invalid(key: &str) -> CgroupError {
    CgroupError::Invalid(format!(
        "linux.resources.unified: invalid key {key:?} (expected a file name like \"memory.high\")"
    ))
}
