//! `berth-image commit`.

use anyhow::Result;
use berth_image::store::Store;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CommitArgs {
    dir: PathBuf,
    name: String,
}

pub fn run(store: impl FnOnce() -> Result<Store>, a: &CommitArgs) -> Result<()> {
    // A container (name or id) commits its bundle, as docker commit does.
    // (a path with a '/' is never a container name).
    let container = a
        .dir
        .to_str()
        .and_then(|c| berth_image::run::bundle_dir(&store().ok()?, c).ok());
    let dir = container.unwrap_or_else(|| a.dir.clone());
    let rec = berth_image::commit::commit(&dir, &a.name)?;
    println!("{} {}", rec.name, rec.manifest_digest);
    Ok(())
}
