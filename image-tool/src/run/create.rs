//! `create`: the container's directory, its name, a bundle with its own R/W
//! layer, the config edits for the options, its record.

use std::fs;
use std::os::unix::fs::symlink;

use anyhow::{bail, Context, Result};

use super::{
    config, container_dir, containers_dir, names_dir, network, now, random_hex, remove_files, save,
    validate_container_name, ContainerRecord, Net, RunOptions,
};
use crate::bundle::{self, BundleOptions};
use crate::image::{parse_json, ImageConfig};
use crate::net::NetworkConfig;
use crate::store::{ImageRecord, Store};

/// Make the container. On error nothing is left.
pub fn create(store: &Store, image: &ImageRecord, opts: &RunOptions) -> Result<ContainerRecord> {
    let id = random_hex(32);
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => id[..12].to_string(),
    };
    validate_container_name(&name)?;
    if opts.detach && opts.tty {
        bail!("-t with -d is not supported: a detached container's output goes to its log (berth-image logs)");
    }
    if opts.detach && opts.interactive {
        bail!("-i with -d is not supported: there is no attach to a detached container's stdin");
    }
    // Check everything that needs no container first.
    let ports = opts
        .publish
        .iter()
        .map(|p| crate::net::ports::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let network = match (&opts.net, &opts.network) {
        (Net::Bridge, Some(n)) => {
            n.validate()?;
            Some(n.clone())
        }
        (Net::Bridge, None) => Some(NetworkConfig::from_env()?),
        _ => None,
    };
    if !ports.is_empty() && opts.net != Net::Bridge {
        bail!(
            "-p publishes ports of the bridge network; it cannot be used with --net {}",
            opts.net
        );
    }
    if let Net::Container(other) = &opts.net {
        super::load(store, other).with_context(|| format!("--net container:{other}"))?;
    }
    let runtime = if opts.runtime.as_os_str().is_empty() {
        super::default_runtime()
    } else {
        opts.runtime.clone()
    };
    fs::create_dir_all(names_dir(store))
        .with_context(|| format!("create {}", names_dir(store).display()))?;
    let cdir = container_dir(store, &id);
    fs::create_dir(&cdir).with_context(|| format!("create {}", cdir.display()))?;
    let link = names_dir(store).join(&name);
    if let Err(e) = symlink(&id, &link) {
        let _ = fs::remove_dir_all(&cdir);
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            bail!("a container named {name} already exists (berth-image rm {name})");
        }
        return Err(e).with_context(|| format!("create {}", link.display()));
    }
    // docker's default host name: the short id.
    let hostname = opts
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let mut rec = ContainerRecord {
        id: id.clone(),
        name: name.clone(),
        image: image.name.clone(),
        command: Vec::new(),
        created: now(),
        rm: opts.rm,
        tty: opts.tty,
        interactive: opts.interactive,
        net: opts.net.clone(),
        network,
        ports,
        hostname,
        runtime,
        stop_signal: String::new(),
        labels: Default::default(),
        mounts: Vec::new(),
    };
    let made = populate(store, image, opts, &mut rec);
    if let Err(e) = made {
        let _ = remove_files(store, &rec);
        return Err(e);
    }
    Ok(rec)
}

fn populate(
    store: &Store,
    image: &ImageRecord,
    opts: &RunOptions,
    rec: &mut ContainerRecord,
) -> Result<()> {
    let cdir = container_dir(store, &rec.id);
    let bdir = cdir.join("bundle");
    let bopts = BundleOptions {
        copy: false,
        args: None,
    };
    // The image's own Entrypoint/Cmd is replaced below; a bundle needs some.
    let image_config: ImageConfig = parse_json(
        &store.read_blob(&image.config_digest)?,
        &format!("config {}", image.config_digest),
    )?;
    let mut bundle_args = None;
    if crate::config_gen::process_args(&image_config, None).is_err() {
        bundle_args = Some(vec!["true".to_string()]);
    }
    bundle::create(
        store,
        image,
        &bdir,
        &BundleOptions {
            args: bundle_args,
            ..bopts
        },
    )?;
    let cfg_path = bdir.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(
        &fs::read(&cfg_path).with_context(|| format!("read {}", cfg_path.display()))?,
    )?;
    let applied = config::apply(
        store,
        &mut cfg,
        &image_config,
        &bdir.join("rootfs"),
        opts,
        rec,
    )?;
    rec.command = applied.command;
    rec.stop_signal = applied.stop_signal;
    rec.labels = applied.labels;
    rec.mounts = applied.mounts;
    network::prepare_config(store, &mut cfg, rec)?;
    crate::config_gen::check(&cfg)?;
    fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)
        .with_context(|| format!("write {}", cfg_path.display()))?;
    fs::create_dir_all(containers_dir(store).join(".runtime"))?;
    save(store, rec)
}
