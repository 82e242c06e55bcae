//! `berth-image`: turn OCI images into runtime bundles.

use anyhow::{bail, Context, Result};
use berth_image::bundle::{self, BundleOptions};
use berth_image::image::Platform;
use berth_image::progress::Progress;
use berth_image::pull::{pull, PullOptions};
use berth_image::push::{push, PushOptions};
use berth_image::registry::{Credentials, Registry};
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
    /// Refuse layers larger than this unpacked (the uncompressed tar, and the sum of its
    /// file sizes), e.g. 20G; bytes, or K, M, G, T (powers of 1024). Default: no limit.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    max_layer_size: Option<u64>,
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
    /// Push a stored image to a registry (docker://HOST/REPO[:TAG]).
    Push {
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
    },
    /// List stored images.
    List,
    /// Show a container (docker's document) or a stored image.
    Inspect {
        image: String,
        #[arg(long, value_parser = ["json", "text"], default_value = "text")]
        format: String,
    },
    /// Remove an image record (content is freed by `gc`).
    Rmi { image: String },
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
    /// Turn a bundle's (or a container's) writable layer into a new image.
    Commit { dir: PathBuf, name: String },
    /// Write a stored image to an OCI layout (oci:DIR[:TAG]) or archive (oci-archive:FILE[:TAG]).
    Export { image: String, target: String },
    /// Container verbs (run, create, start, stop, ps, exec, ...).
    #[command(flatten)]
    Container(berth_image::run::cli::ContainerCmd),
    /// Checkpoint running containers with CRIU (stopping them unless -R).
    Checkpoint(berth_image::run::checkpoint::CheckpointArgs),
    /// Restore containers from their checkpoints.
    Restore(berth_image::run::checkpoint::RestoreArgs),
    /// Build an image from a Dockerfile (docker build).
    Build(berth_image::build::cli::BuildCommand),
    /// Build a small image from the host's busybox into an OCI layout (oci:DIR:TAG).
    BuildBusybox {
        target: String,
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
    },
}

/// `123`, `4K`, `4M`, `20G`, `1T` (powers of 1024; a trailing `B` or `iB` is allowed).
fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown unit in size {s:?} (use K, M, G or T)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("size {s:?} is not a number with an optional K, M, G or T"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

fn platform_arg(p: &Option<String>) -> Result<Platform> {
    Ok(match p {
        Some(s) => Platform::parse(s)?,
        None => Platform::host(),
    })
}

fn creds_arg(creds: &Option<String>) -> Result<Option<Credentials>> {
    Ok(match creds {
        Some(c) => {
            let (user, password) = c.split_once(':').context("--creds must be USER:PASSWORD")?;
            Some(Credentials {
                user: user.into(),
                password: password.into(),
            })
        }
        None => None,
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
    let store = || {
        Store::open(&cli.store)
            .map(|s| s.with_layer_size_limit(cli.max_layer_size))
            .with_context(|| format!("open store {}", cli.store.display()))
    };
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
            let opts = PullOptions {
                platform: platform_arg(platform)?,
                name: name.clone(),
                insecure: *insecure,
                credentials: creds_arg(creds)?,
                progress: Progress::stderr(),
            };
            let rec = pull(&store()?, &src, &opts)?;
            println!("{} {}", rec.name, rec.manifest_digest);
        }
        Cmd::Push {
            image,
            target,
            insecure,
            creds,
            mount_from,
        } => {
            let Some(Ok(SourceRef::Registry(r))) = SourceRef::parse(target) else {
                bail!("push target must be docker://HOST/REPO[:TAG], got {target:?}");
            };
            let store = store()?;
            let rec = store.find_image(image)?;
            let registry = Registry::connect(&r, *insecure, creds_arg(creds)?)?;
            let opts = PushOptions {
                mount_from: mount_from.clone(),
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
            if berth_image::run::resolve(&store, image).is_ok() {
                let doc = berth_image::run::inspect(&store, image)?;
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(());
            }
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
        Cmd::Rmi { image } => {
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
                        progress: Progress::stderr(),
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
            // A container (name or id) commits its bundle, as docker commit does.
            // (a path with a '/' is never a container name).
            let container = dir
                .to_str()
                .and_then(|c| berth_image::run::bundle_dir(&store().ok()?, c).ok());
            let dir = container.unwrap_or_else(|| dir.clone());
            let rec = berth_image::commit::commit(&dir, name)?;
            println!("{} {}", rec.name, rec.manifest_digest);
        }
        Cmd::Export { image, target } => {
            let (path, tag, archive) = match SourceRef::parse(target) {
                Some(Ok(SourceRef::OciDir { path, tag })) => (path, tag, false),
                Some(Ok(SourceRef::OciArchive { path, tag })) => (path, tag, true),
                _ => bail!(
                    "export target must be oci:DIR[:TAG] or oci-archive:FILE[:TAG], got {target:?}"
                ),
            };
            let store = store()?;
            let rec = store.find_image(image)?;
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
        }
        Cmd::Container(c) => {
            let code = berth_image::run::cli::dispatch(&store()?, c)?;
            if code != 0 {
                std::process::exit(code);
            }
        }
        Cmd::Checkpoint(a) => {
            berth_image::run::checkpoint::checkpoint(&store()?, a)?;
        }
        Cmd::Restore(a) => {
            berth_image::run::checkpoint::restore(&store()?, a)?;
        }
        Cmd::Build(b) => berth_image::build::cli::run(&store()?, b)?,
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

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("20g"), Ok(20 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert!(parse_size("4X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
