//! Named volumes (`-v NAME:/path`): directories kept under the store,
//! `STORE/volumes/<name>/_data`, outliving the containers that use them;
//! listed with `volume ls` and removed with `volume rm` (refused while a
//! container uses one).

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::store::Store;

fn volumes_dir(store: &Store) -> PathBuf {
    store.root().join("volumes")
}

/// docker's volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok {
        bail!("invalid volume name {name:?}: use letters, digits, '_', '.', '-' (a host path must be absolute)");
    }
    Ok(())
}

/// The data directory of volume `name`, made when missing.
pub fn ensure(store: &Store, name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    let data = volumes_dir(store).join(name).join("_data");
    fs::create_dir_all(&data).with_context(|| format!("create volume {}", data.display()))?;
    Ok(data)
}

/// Every volume, by name.
pub fn list(store: &Store) -> Result<Vec<String>> {
    let mut out: Vec<String> = match fs::read_dir(volumes_dir(store)) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).context("read the volumes directory"),
    };
    out.sort();
    Ok(out)
}

/// Remove volume `name`, unless a container (running or not) uses it.
pub fn remove(store: &Store, name: &str) -> Result<()> {
    validate_name(name)?;
    let dir = volumes_dir(store).join(name);
    if !dir.exists() {
        bail!("no such volume: {name}");
    }
    let users: Vec<String> = super::list(store)?
        .into_iter()
        .filter(|c| c.mounts.iter().any(|m| m.name.as_deref() == Some(name)))
        .map(|c| c.name)
        .collect();
    if !users.is_empty() {
        bail!(
            "volume {name} is in use by container(s) {}",
            users.join(", ")
        );
    }
    fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))
}
