//! The verbs over stored image records: `list`, `inspect`, `rmi` and `gc`.

use anyhow::Result;
use berth_image::store::{ImageRecord, Store};

#[derive(clap::Args)]
pub struct InspectArgs {
    image: String,
    #[arg(long, value_parser = ["json", "text"], default_value = "text")]
    format: String,
}

#[derive(clap::Args)]
pub struct RmiArgs {
    image: String,
}

pub fn list(store: &Store) -> Result<()> {
    for rec in store.list_images()? {
        println!(
            "{}\t{}\t{}\t{} layers",
            rec.name,
            rec.manifest_digest,
            rec.platform,
            rec.layers.len()
        );
    }
    Ok(())
}

/// A container's document (as docker inspects it) when `image` names a container,
/// else the stored image's record.
pub fn inspect(store: &Store, a: &InspectArgs) -> Result<()> {
    let image = &a.image;
    if berth_image::run::resolve(store, image).is_ok() {
        let doc = berth_image::run::inspect(store, image)?;
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let rec = store.find_image(image)?;
    if a.format == "json" {
        let config: serde_json::Value =
            serde_json::from_slice(&store.read_blob(&rec.config_digest)?)?;
        let out = serde_json::json!({"record": rec, "config": config});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_record(&rec);
    }
    Ok(())
}

fn print_record(rec: &ImageRecord) {
    println!("name:     {}", rec.name);
    println!("manifest: {}", rec.manifest_digest);
    println!("config:   {}", rec.config_digest);
    println!("platform: {}", rec.platform);
    for l in &rec.layers {
        println!(
            "layer:    {} {} ({} bytes, diff_id {})",
            l.digest, l.media_type, l.size, l.diff_id
        );
    }
}

pub fn rmi(store: &Store, a: &RmiArgs) -> Result<()> {
    let rec = store.remove_image(&a.image)?;
    println!("removed {}", rec.name);
    Ok(())
}

pub fn gc(store: &Store) -> Result<()> {
    let stats = store.gc()?;
    println!("removed {} blobs, {} layers", stats.blobs, stats.layers);
    Ok(())
}
