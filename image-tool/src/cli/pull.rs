//! `berth-image pull`.

use super::{creds_arg, platform_arg};
use anyhow::{bail, Result};
use berth_image::progress::Progress;
use berth_image::pull::{pull, PullOptions};
use berth_image::source::SourceRef;
use berth_image::store::Store;

#[derive(clap::Args)]
pub struct PullArgs {
    reference: String,
    /// Name in the store (default: derived from the reference).
    #[arg(long)]
    name: Option<String>,
    /// os/arch[/variant] to select from an image index.
    #[arg(long)]
    platform: Option<String>,
    /// Allow plain http to a registry on the loopback interface.
    #[arg(long)]
    insecure: bool,
    /// Registry credentials USER:PASSWORD (also from BERTH_REGISTRY_CREDS).
    #[arg(long, env = "BERTH_REGISTRY_CREDS", hide_env_values = true)]
    creds: Option<String>,
}

pub fn run(store: impl FnOnce() -> Result<Store>, a: &PullArgs) -> Result<()> {
    let reference = &a.reference;
    let src = match SourceRef::parse(reference) {
        Some(r) => r?,
        None => bail!("unknown reference {reference:?}: expected oci:, oci-archive:, docker-archive: or docker://"),
    };
    let opts = PullOptions {
        platform: platform_arg(&a.platform)?,
        name: a.name.clone(),
        insecure: a.insecure,
        credentials: creds_arg(&a.creds)?,
        progress: Progress::stderr(),
    };
    let rec = pull(&store()?, &src, &opts)?;
    println!("{} {}", rec.name, rec.manifest_digest);
    Ok(())
}
