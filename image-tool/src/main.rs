//! `berth-image`: turn OCI images into runtime bundles.

use anyhow::{bail, Context, Result};
use berth_image::bundle::{self, BundleOptions};
use berth_image::image::Platform;
use berth_image::pull::{pull, PullOptions};
use berth_image::registry::Credentials;
use berth_image::source::SourceRef;
use berth_image::store::{ImageRecord, Store, DEFAULT_STORE};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "berth-image",
    version,
    about = "Turn OCI images into runtime bundles"
)]
struct Cli {
    /// Content store directory.
    #[arg(long, global = true, default_value = DEFAULT_STORE)]
    store: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Import an image (oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF]).
    Pull {
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
    },
    /// List stored images.
    List,
    /// Show a stored image.
    Inspect {
        image: String,
        #[arg(long, value_parser = ["json", "text"], default_value = "text")]
        format: String,
    },
    /// Remove an image record (content is freed by `gc`).
    Rm { image: String },
    /// Remove blobs and layers no image or bundle references.
    Gc,
    /// Create a runtime bundle (config.json + rootfs) for an image.
    Bundle {
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
    },
    /// Unmount and remove a bundle.
    Unbundle { dir: PathBuf },
    /// Turn a bundle's writable layer into a new image.
    Commit { dir: PathBuf, name: String },
    /// Write a stored image to an OCI layout (oci:DIR[:TAG]).
    Export { image: String, target: String },
    /// Build a small image from the host's busybox into an OCI layout (oci:DIR:TAG).
    BuildBusybox {
        target: String,
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
    },
}

fn platform_arg(p: &Option<String>) -> Result<Platform> {
    Ok(match p {
        Some(s) => Platform::parse(s)?,
        None => Platform::host(),
    })
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

fn run(cli: Cli) -> Result<()> {
    let store =
        || Store::open(&cli.store).with_context(|| format!("open store {}", cli.store.display()));
    match &cli.cmd {
        Cmd::Pull {
            reference,
            name,
            platform,
            insecure,
            creds,
        } => {
            let src = match SourceRef::parse(reference) {
                Some(r) => r?,
                None => bail!("unknown reference {reference:?}: expected oci:, oci-archive:, docker-archive: or docker://"),
            };
            let credentials = match creds {
                Some(c) => {
                    let (user, password) =
                        c.split_once(':').context("--creds must be USER:PASSWORD")?;
                    Some(Credentials {
                        user: user.into(),
                        password: password.into(),
                    })
                }
                None => None,
            };
            let opts = PullOptions {
                platform: platform_arg(platform)?,
                name: name.clone(),
                insecure: *insecure,
                credentials,
            };
            let rec = pull(&store()?, &src, &opts)?;
            println!("{} {}", rec.name, rec.manifest_digest);
        }
        Cmd::List => {
            for rec in store()?.list_images()? {
                println!(
                    "{}\t{}\t{}\t{} layers",
                    rec.name,
                    rec.manifest_digest,
                    rec.platform,
                    rec.layers.len()
                );
            }
        }
        Cmd::Inspect { image, format } => {
            let store = store()?;
            let rec = store.find_image(image)?;
            if format == "json" {
                let config: serde_json::Value =
                    serde_json::from_slice(&store.read_blob(&rec.config_digest)?)?;
                let out = serde_json::json!({"record": rec, "config": config});
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_record(&rec);
            }
        }
        Cmd::Rm { image } => {
            let rec = store()?.remove_image(image)?;
            println!("removed {}", rec.name);
        }
        Cmd::Gc => {
            let stats = store()?.gc()?;
            println!("removed {} blobs, {} layers", stats.blobs, stats.layers);
        }
        Cmd::Bundle {
            image,
            dir,
            copy,
            platform,
            args,
        } => {
            let store = store()?;
            let rec = match SourceRef::parse(image) {
                Some(src) => {
                    let opts = PullOptions {
                        platform: platform_arg(platform)?,
                        ..Default::default()
                    };
                    pull(&store, &src?, &opts)?
                }
                None => store.find_image(image)?,
            };
            let opts = BundleOptions {
                copy: *copy,
                args: (!args.is_empty()).then(|| args.clone()),
            };
            bundle::create(&store, &rec, dir, &opts)?;
        }
        Cmd::Unbundle { dir } => bundle::remove(dir)?,
        Cmd::Commit { dir, name } => {
            let rec = berth_image::commit::commit(dir, name)?;
            println!("{} {}", rec.name, rec.manifest_digest);
        }
        Cmd::Export { image, target } => {
            let Some(Ok(SourceRef::OciDir { path, tag })) = SourceRef::parse(target) else {
                bail!("export target must be oci:DIR[:TAG], got {target:?}");
            };
            let store = store()?;
            let rec = store.find_image(image)?;
            let tag = tag.unwrap_or_else(|| {
                rec.name
                    .rsplit_once(':')
                    .map(|(_, t)| t.to_string())
                    .unwrap_or("latest".into())
            });
            berth_image::commit::export(&store, &rec, &path, &tag)?;
        }
        Cmd::BuildBusybox { target, busybox } => {
            let Some(Ok(SourceRef::OciDir { path, tag })) = SourceRef::parse(target) else {
                bail!("build-busybox target must be oci:DIR[:TAG], got {target:?}");
            };
            let digest = berth_image::busybox::build_busybox(
                busybox,
                &path,
                tag.as_deref().unwrap_or("latest"),
            )?;
            println!("{digest}");
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("berth-image: {e:#}");
        std::process::exit(1);
    }
}
