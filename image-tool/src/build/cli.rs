//! The `build` verb's command line (docker build's flags).

use super::{build, BuildOptions};
use crate::run::Net;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// `berth-image build`: build an image from a Dockerfile.
#[derive(Debug, clap::Args)]
pub struct BuildCommand {
    /// Name of the image (NAME[:TAG], default tag latest); may be repeated.
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile; - reads standard input).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// A build argument (K=V, or K to take the value of this environment's K).
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,
    /// Build this stage (and what it needs) instead of the last one.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Do not use the layer cache (results are still cached for later builds).
    #[arg(long)]
    pub no_cache: bool,
    /// Network of RUN steps: default (the bridge network, as `run`'s
    /// default: BERTH_NETWORK, BERTH_BRIDGE, BERTH_SUBNET), none or host.
    #[arg(long, default_value = "default", value_parser = network)]
    pub network: Net,
    /// The OCI runtime of RUN steps (default: berth next to this program).
    #[arg(long)]
    pub runtime: Option<PathBuf>,
    /// The build context directory.
    pub context: PathBuf,
}

/// A network mode of docker build (`--network`, `RUN --network=`):
/// `default` is the bridge network `run` attaches containers to.
pub fn network(mode: &str) -> Result<Net, String> {
    match mode {
        "default" => Ok(Net::Bridge),
        "none" => Ok(Net::None),
        "host" => Ok(Net::Host),
        _ => Err("expected default, none or host".into()),
    }
}

/// Parse `--build-arg` values: `K=V`, or `K` from the environment (left out when unset).
pub fn build_args(list: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for a in list {
        match a.split_once('=') {
            Some(("", _)) => bail!("--build-arg {a:?}: the name is empty"),
            Some((k, v)) => out.push((k.to_string(), v.to_string())),
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.push((a.clone(), v));
                }
            }
        }
    }
    Ok(out)
}

/// Run the verb: progress on stdout, RUN steps with no standard input.
pub fn run(store: &Store, cmd: &BuildCommand) -> Result<()> {
    let opts = BuildOptions {
        context: cmd.context.clone(),
        dockerfile: cmd.file.clone(),
        tags: cmd.tags.clone(),
        build_args: build_args(&cmd.build_args)?,
        target: cmd.target.clone(),
        no_cache: cmd.no_cache,
        runtime: cmd
            .runtime
            .clone()
            .unwrap_or_else(crate::run::default_runtime),
        network: cmd.network.clone(),
        interrupt: super::interrupt::Interrupt::on_signals()
            .context("handle SIGINT, SIGTERM and SIGHUP")?,
    };
    let reads_stdin = cmd.file.as_deref() == Some(std::path::Path::new("-"));
    if !reads_stdin {
        // RUN steps get no input, as in docker build.
        let null = std::fs::File::open("/dev/null").context("open /dev/null")?;
        rustix::stdio::dup2_stdin(&null).context("stdin from /dev/null")?;
    }
    let mut out = std::io::stdout();
    build(store, &opts, &mut out)?;
    Ok(())
}
