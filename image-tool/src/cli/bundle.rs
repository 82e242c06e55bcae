//! `berth-image bundle` and `unbundle`.

use super::platform_arg;
use anyhow::Result;
use berth_image::bundle::{self, BundleOptions};
use berth_image::progress::Progress;
use berth_image::pull::{pull, PullOptions};
use berth_image::source::SourceRef;
use berth_image::store::Store;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BundleArgs {
    /// Stored image name/digest, or a source reference (pulled first).
    image: String,
    dir: PathBuf,
    /// Flatten the layers into a plain directory instead of an overlay mount.
    #[arg(long)]
    copy: bool,
    #[arg(long)]
    platform: Option<String>,
    /// Arguments replacing the image's Cmd.
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(clap::Args)]
pub struct UnbundleArgs {
    dir: PathBuf,
}

pub fn run(store: &Store, a: &BundleArgs) -> Result<()> {
    let rec = match SourceRef::parse(&a.image) {
        Some(src) => {
            let opts = PullOptions {
                platform: platform_arg(&a.platform)?,
                progress: Progress::stderr(),
                ..Default::default()
            };
            pull(store, &src?, &opts)?
        }
        None => store.find_image(&a.image)?,
    };
    let opts = BundleOptions {
        copy: a.copy,
        args: (!a.args.is_empty()).then(|| a.args.clone()),
    };
    bundle::create(store, &rec, &a.dir, &opts)?;
    Ok(())
}

pub fn unbundle(a: &UnbundleArgs) -> Result<()> {
    bundle::remove(&a.dir)?;
    Ok(())
}
