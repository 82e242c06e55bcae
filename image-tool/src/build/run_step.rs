//! RUN: the command runs in a berth container on the stage's layers, made
//! and run by the `run` module exactly as `berth-image run` does it (create,
//! then an attached start: its network attached for the run, `berth run`);
//! what it changed, less the runtime's mount stubs, becomes the step's layer.

use super::cache;
use super::instruction::CommandForm;
use super::output::image_blobs;
use super::state::State;
use super::steps::{command_args, Builder, INTERRUPTED};
use super::stubs::MountStubs;
use crate::commit::commit_unmounted_upper;
use crate::run::{self, Net, RunOptions};
use crate::store::{ImageRecord, LayerRecord, Store};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

impl Builder<'_> {
    pub(super) fn run(
        &mut self,
        st: &mut State,
        form: &CommandForm,
        network: Option<&str>,
    ) -> Result<()> {
        let args = command_args(st, form);
        // `--network` of RUN; `default` is the build's network.
        let net = match network {
            None | Some("default") => self.opts.network.clone(),
            Some(o) => super::cli::network(o).map_err(|e| anyhow!("--network={o}: {e}"))?,
        };
        let arg_env: Vec<String> = st
            .args
            .iter()
            .filter(|(k, _)| !super::PROXY_ARGS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let created_by = if arg_env.is_empty() {
            format!("RUN {}", args.join(" "))
        } else {
            format!(
                "RUN |{} {} {}",
                arg_env.len(),
                arg_env.join(" "),
                args.join(" ")
            )
        };
        let mut env = st.run_env();
        for p in super::PROXY_ARGS {
            if let Some(v) = self.build_args.get(*p) {
                env.push(format!("{p}={v}"));
            }
        }
        let key = cache::key(&[
            b"RUN",
            cache::state_id(&st.layers, &st.config).as_bytes(),
            serde_json::to_string(&args)?.as_bytes(),
            serde_json::to_string(&env)?.as_bytes(),
            format!("{net:?}").as_bytes(),
        ]);
        if self.use_cache(st, &key, &created_by) {
            return Ok(());
        }
        let layer = self.run_container(st, args, env, net)?;
        self.made(st, &key, Some(layer), &created_by)
    }

    /// Run `args` in a container on the stage's layers, made and started as
    /// `berth-image run` makes and starts one (attached, no standard input),
    /// and commit what it changed.
    fn run_container(
        &mut self,
        st: &State,
        args: Vec<String>,
        env: Vec<String>,
        net: Net,
    ) -> Result<LayerRecord> {
        let (image, command) = self.step_image(st, args, env)?;
        let opts = RunOptions {
            name: Some(format!("build-{}", hex::encode(rand_bytes()))),
            net,
            runtime: self.opts.runtime.clone(),
            labels: vec![format!("{BUILDER_LABEL}={}", std::process::id())],
            ..RunOptions::default()
        };
        let _ = self.out.flush();
        let rec = run::create(self.store, &image, &opts)?;
        let _container = ContainerGuard {
            store: self.store,
            id: &rec.id,
        };
        let bundle = run::bundle_dir(self.store, &rec.id)?;
        let rootfs = bundle.join("rootfs");
        let spec_path = bundle.join("config.json");
        let spec: Value = serde_json::from_slice(
            &std::fs::read(&spec_path).with_context(|| format!("read {}", spec_path.display()))?,
        )?;
        let stubs = MountStubs::find(&rootfs, &spec)?;
        let start = run::StartOptions {
            attach: true,
            interactive: false,
        };
        let code = self.start_killable(&rec.id, &start)?;
        if self.opts.interrupt.is_set() {
            bail!(INTERRUPTED);
        }
        if code != 0 {
            bail!("the command {command} returned a non-zero code: {code}");
        }
        crate::overlay::unmount(&rootfs)?;
        let upper = bundle.join(crate::bundle::STATE_DIR).join("upper");
        stubs.remove_from(&upper)?;
        Ok(commit_unmounted_upper(self.store, &st.layers, &upper)?)
    }

    /// `run::start`, killing the container if the build is interrupted
    /// meanwhile.
    fn start_killable(&self, id: &str, start: &run::StartOptions) -> Result<i32> {
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    if self.opts.interrupt.is_set() && run::kill(self.store, id, "KILL").is_ok() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let code = run::start(self.store, id, start);
            done.store(true, Ordering::SeqCst);
            code
        })
    }

    /// The image a RUN step's container is made from: the stage's layers and
    /// config, with the step's command (no Entrypoint) and environment.
    /// Returns it with the command as JSON (for messages).
    fn step_image(
        &mut self,
        st: &State,
        args: Vec<String>,
        env: Vec<String>,
    ) -> Result<(ImageRecord, Value)> {
        let mut config = st.config.clone();
        config["config"]["Env"] = json!(env);
        config["config"]["Cmd"] = json!(args);
        if let Some(c) = config["config"].as_object_mut() {
            c.remove("Entrypoint");
        }
        let image = image_blobs(self.store, &config, &st.layers, "build-step")?;
        Ok((image, config["config"]["Cmd"].clone()))
    }
}

/// The label of a RUN step's container: the pid of the build that runs it.
const BUILDER_LABEL: &str = "org.berth.build.pid";

/// Remove the RUN containers of builds that were killed (their pid is gone):
/// `rm -f` kills a container still running and tears its network down.
pub(super) fn sweep_stale_containers(store: &Store) {
    let Ok(list) = run::list(store) else {
        return;
    };
    for rec in list {
        let Some(pid) = rec.labels.get(BUILDER_LABEL) else {
            continue;
        };
        if pid.parse::<u32>().is_err() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = run::rm(store, &rec.id, true);
    }
}

fn rand_bytes() -> [u8; 6] {
    let mut b = [0u8; 6];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64
            ^ u64::from(std::process::id());
        b.copy_from_slice(&t.to_le_bytes()[..6]);
    }
    b
}

/// Removes a RUN step's container (and its writable layer) when dropped.
struct ContainerGuard<'a> {
    store: &'a Store,
    id: &'a str,
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        if run::load(self.store, self.id).is_ok() {
            let _ = run::rm(self.store, self.id, true);
        }
    }
}
