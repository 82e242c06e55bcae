//! `berth-image push`.

use super::creds_arg;
use anyhow::{bail, Result};
use berth_image::progress::Progress;
use berth_image::push::{push, PushOptions};
use berth_image::registry::Registry;
use berth_image::source::SourceRef;
use berth_image::store::Store;

#[derive(clap::Args)]
pub struct PushArgs {
    image: String,
    target: String,
    /// Allow plain http to a registry on the loopback interface.
    #[arg(long)]
    insecure: bool,
    /// Registry credentials USER:PASSWORD (also from BERTH_REGISTRY_CREDS).
    #[arg(long, env = "BERTH_REGISTRY_CREDS", hide_env_values = true)]
    creds: Option<String>,
    /// Ask the registry to mount missing blobs from this repository (same registry).
    #[arg(long, value_name = "REPO")]
    mount_from: Option<String>,
}

pub fn run(store: impl FnOnce() -> Result<Store>, a: &PushArgs) -> Result<()> {
    let target = &a.target;
    let Some(Ok(SourceRef::Registry(r))) = SourceRef::parse(target) else {
        bail!("push target must be docker://HOST/REPO[:TAG], got {target:?}");
    };
    let store = store()?;
    let rec = store.find_image(&a.image)?;
    let registry = Registry::connect(&r, a.insecure, creds_arg(&a.creds)?)?;
    let opts = PushOptions {
        mount_from: a.mount_from.clone(),
        progress: Progress::stderr(),
    };
    let stats = push(&store, &rec, &registry, &r.reference, &opts)?;
    println!(
        "pushed {} to {}: {} blobs uploaded ({} bytes), {} mounted, {} skipped (already present), manifest {}",
        rec.name,
        r.default_name(),
        stats.uploaded,
        stats.bytes,
        stats.mounted,
        stats.skipped,
        stats
            .manifest_digest
            .as_ref()
            .unwrap_or(&rec.manifest_digest)
    );
    Ok(())
}
