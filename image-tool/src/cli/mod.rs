//! The `berth-image` command line: one file per verb (or group of related verbs),
//! each with its arguments and a `run` over the library; this file holds the global
//! options and the dispatch.

mod build_busybox;
mod bundle;
mod commit;
mod export;
mod images;
mod pull;
mod push;

use anyhow::{Context, Result};
use berth_image::image::Platform;
use berth_image::registry::Credentials;
use berth_image::store::{Store, DEFAULT_STORE};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "berth-image",
    version,
    about = "Turn OCI images into runtime bundles"
)]
pub struct Cli {
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
    Pull(pull::PullArgs),
    /// Push a stored image to a registry (docker://HOST/REPO[:TAG]).
    Push(push::PushArgs),
    /// List stored images.
    List,
    /// Show a container (docker's document) or a stored image.
    Inspect(images::InspectArgs),
    /// Remove an image record (content is freed by `gc`).
    Rmi(images::RmiArgs),
    /// Remove blobs and layers no image or bundle references.
    Gc,
    /// Create a runtime bundle (config.json + rootfs) for an image.
    Bundle(bundle::BundleArgs),
    /// Unmount and remove a bundle.
    Unbundle(bundle::UnbundleArgs),
    /// Turn a bundle's (or a container's) writable layer into a new image.
    Commit(commit::CommitArgs),
    /// Write a stored image to an OCI layout (oci:DIR[:TAG]) or archive (oci-archive:FILE[:TAG]).
    Export(export::ExportArgs),
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
    BuildBusybox(build_busybox::BuildBusyboxArgs),
}

impl Cli {
    /// The content store the global options name (created if missing).
    fn open_store(&self) -> Result<Store> {
        Store::open(&self.store)
            .map(|s| s.with_layer_size_limit(self.max_layer_size))
            .with_context(|| format!("open store {}", self.store.display()))
    }
}

/// Run the parsed command line. Verbs whose arguments can be wrong check them before
/// opening (and so creating) the store.
pub fn run(cli: &Cli) -> Result<()> {
    let store = || cli.open_store();
    match &cli.cmd {
        Cmd::Pull(a) => pull::run(store, a),
        Cmd::Push(a) => push::run(store, a),
        Cmd::List => images::list(&store()?),
        Cmd::Inspect(a) => images::inspect(&store()?, a),
        Cmd::Rmi(a) => images::rmi(&store()?, a),
        Cmd::Gc => images::gc(&store()?),
        Cmd::Bundle(a) => bundle::run(&store()?, a),
        Cmd::Unbundle(a) => bundle::unbundle(a),
        Cmd::Commit(a) => commit::run(store, a),
        Cmd::Export(a) => export::run(store, a),
        Cmd::Container(c) => {
            let code = berth_image::run::cli::dispatch(&store()?, c)?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Cmd::Checkpoint(a) => {
            berth_image::run::checkpoint::checkpoint(&store()?, a)?;
            Ok(())
        }
        Cmd::Restore(a) => {
            berth_image::run::checkpoint::restore(&store()?, a)?;
            Ok(())
        }
        Cmd::Build(b) => Ok(berth_image::build::cli::run(&store()?, b)?),
        Cmd::BuildBusybox(a) => build_busybox::run(a),
    }
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

/// `--platform os/arch[/variant]`, or this machine's.
fn platform_arg(p: &Option<String>) -> Result<Platform> {
    Ok(match p {
        Some(s) => Platform::parse(s)?,
        None => Platform::host(),
    })
}

/// `--creds USER:PASSWORD`.
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
