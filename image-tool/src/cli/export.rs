//! `berth-image export`.

use anyhow::{bail, Result};
use berth_image::source::SourceRef;
use berth_image::store::Store;

#[derive(clap::Args)]
pub struct ExportArgs {
    image: String,
    target: String,
}

pub fn run(store: impl FnOnce() -> Result<Store>, a: &ExportArgs) -> Result<()> {
    let target = &a.target;
    let (path, tag, archive) = match SourceRef::parse(target) {
        Some(Ok(SourceRef::OciDir { path, tag })) => (path, tag, false),
        Some(Ok(SourceRef::OciArchive { path, tag })) => (path, tag, true),
        _ => bail!("export target must be oci:DIR[:TAG] or oci-archive:FILE[:TAG], got {target:?}"),
    };
    let store = store()?;
    let rec = store.find_image(&a.image)?;
    let tag = tag.unwrap_or_else(|| {
        rec.name
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map(|(_, t)| t.to_string())
            .unwrap_or("latest".into())
    });
    if archive {
        berth_image::commit::export_archive(&store, &rec, &path, &tag)?;
    } else {
        berth_image::commit::export(&store, &rec, &path, &tag)?;
    }
    Ok(())
}
