//! `berth-image build-busybox`.

use anyhow::{bail, Result};
use berth_image::source::SourceRef;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BuildBusyboxArgs {
    target: String,
    #[arg(long, default_value = "/bin/busybox")]
    busybox: PathBuf,
}

pub fn run(a: &BuildBusyboxArgs) -> Result<()> {
    let target = &a.target;
    let Some(Ok(SourceRef::OciDir { path, tag })) = SourceRef::parse(target) else {
        bail!("build-busybox target must be oci:DIR[:TAG], got {target:?}");
    };
    let digest =
        berth_image::busybox::build_busybox(&a.busybox, &path, tag.as_deref().unwrap_or("latest"))?;
    println!("{digest}");
    Ok(())
}
