//! What each instruction does to a stage's [`State`]. Settings instructions
//! (ENV, CMD, ...) edit the image config and add a history entry; RUN, COPY,
//! ADD and WORKDIR (of a missing directory) make a layer, through the cache.

use super::cache::{self, CacheEntry};
use super::copy::{copy_all, CopyOptions};
use super::fsroot::Root;
use super::instruction::{CommandForm, CopyArgs, Health, Instruction, VolumeArgs};
use super::mount::WorkMount;
use super::parser::Node;
use super::pattern::{clean_parts, Ignore};
use super::sources::{Matched, SourceTree};
use super::state::State;
use super::words::{self, Vars};
use super::{stage_ref, BuildError, BuildOptions, Stage};
use crate::commit::{commit_unmounted_upper, now_rfc3339};
use crate::image::{Manifest, MEDIA_CONFIG, MEDIA_MANIFEST};
use crate::pull::{descriptor, pull, PullOptions};
use crate::run::{self, Net, RunOptions};
use crate::source::SourceRef;
use crate::store::{ImageRecord, LayerRecord, Store};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

pub(crate) struct Builder<'a> {
    pub store: &'a Store,
    pub opts: &'a BuildOptions,
    pub cache: cache::Cache,
    pub file: String,
    pub escape: char,
    pub context: std::rc::Rc<Root>,
    pub ignore: std::rc::Rc<Ignore>,
    /// Global ARG values (for FROM lines, and ARGs redeclared in a stage).
    pub global: Vars,
    /// Global ARGs declared in the Dockerfile.
    pub global_declared: Vars,
    pub build_args: HashMap<String, String>,
    /// Build args some ARG declared.
    pub used: HashSet<String>,
    pub results: Vec<Option<State>>,
    pub stages_total: usize,
    pub out: &'a mut dyn Write,
}

/// `.dockerignore` rules: `<Dockerfile>.dockerignore` beside the Dockerfile
/// first, else `.dockerignore` in the context.
pub(crate) fn load_ignore(context: &Path, dockerfile: &Path) -> Result<Ignore, String> {
    let mut beside = dockerfile.as_os_str().to_os_string();
    beside.push(".dockerignore");
    for p in [
        std::path::PathBuf::from(beside),
        context.join(".dockerignore"),
    ] {
        match std::fs::read_to_string(&p) {
            Ok(text) => return Ignore::parse(&text).map_err(|e| format!("{}: {e}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("read {}: {e}", p.display())),
        }
    }
    Ok(Ignore::empty())
}

fn short(hex: &str) -> &str {
    &hex[..12.min(hex.len())]
}

/// `ls` the arguments of a command form: exec form as is, shell form through SHELL.
fn command_args(st: &State, form: &CommandForm) -> Vec<String> {
    match form {
        CommandForm::Exec(v) => v.clone(),
        CommandForm::Shell(s) => {
            let mut a = st.shell();
            a.push(s.clone());
            a
        }
    }
}

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

fn check_signal(s: &str) -> Result<()> {
    if s.parse::<u32>().is_ok_and(|n| (1..=64).contains(&n)) {
        return Ok(());
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let rt = name
        .strip_prefix("RTMIN")
        .or_else(|| name.strip_prefix("RTMAX"))
        .is_some_and(|r| r.is_empty() || r[1..].parse::<u32>().is_ok());
    if SIGNALS.contains(&name) || rt {
        Ok(())
    } else {
        bail!("invalid signal: {s}")
    }
}

/// `80`, `80/tcp`, `8000-8002/udp` → the ExposedPorts keys.
fn ports(spec: &str) -> Result<Vec<String>> {
    let (range, proto) = match spec.split_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        bail!("invalid proto: {proto}");
    }
    let port = |s: &str| -> Result<u16> {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| anyhow!("invalid containerPort: {s}"))
    };
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(range)?, port(range)?),
    };
    if hi < lo {
        bail!("invalid port range: {range}");
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// `--chown` → uid:gid, names looked up in the destination's /etc/passwd and
/// /etc/group; a user without a group gets the uid as gid (Docker's reference).
fn resolve_chown(spec: &str, rootfs: &Path) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            crate::spec::resolve_user(user, rootfs)
                .with_context(|| format!("--chown={spec}: unable to find user {user}"))?
                .uid
        }
    };
    let gid = match group {
        None | Some("") => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                crate::spec::resolve_user(&format!("0:{g}"), rootfs)
                    .with_context(|| format!("--chown={spec}: unable to find group {g}"))?
                    .gid
            }
        },
    };
    Ok((uid, gid))
}

fn parse_chmod(s: &str) -> Result<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| anyhow!("--chmod={s}: only octal modes (e.g. 0755) are supported"))
}

/// Join a destination with the working directory; keeps a trailing `/`.
fn absolute_dest(dest: &str, workdir: &str) -> String {
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{workdir}/{dest}")
    };
    format!("/{}", clean_parts(&joined).join("/"))
}

impl Builder<'_> {
    pub fn say(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    fn line_err(&self, node: &Node, e: impl std::fmt::Display) -> BuildError {
        BuildError::Line {
            file: self.file.clone(),
            line: node.line,
            message: e.to_string(),
        }
    }

    fn expand(&self, word: &str, vars: &Vars) -> Result<String> {
        words::expand(word, vars, self.escape).map_err(|e| anyhow!(e))
    }

    /// Build one stage.
    pub fn run_stage(&mut self, stage: &Stage, stages: &[Stage]) -> Result<State, BuildError> {
        let steps = stage.body.len() + 1;
        let prefix = if self.stages_total > 1 {
            format!("[{}/{}] ", stage.index + 1, self.stages_total)
        } else {
            String::new()
        };
        self.say(&format!("{prefix}STEP 1/{steps}: {}", stage.from.original));
        let mut state = self
            .from(stage, stages)
            .map_err(|e| self.line_err(&stage.from, format!("{e:#}")))?;
        for (i, (node, ins)) in stage.body.iter().enumerate() {
            self.say(&format!(
                "{prefix}STEP {}/{steps}: {}",
                i + 2,
                node.original
            ));
            self.step(&mut state, node, ins, stages, stage.index)
                .map_err(|e| self.line_err(node, format!("{e:#}")))?;
        }
        Ok(state)
    }

    /// The state FROM starts with, ONBUILD triggers of the base image run.
    fn from(&mut self, stage: &Stage, stages: &[Stage]) -> Result<State> {
        let image = self.expand(&stage.image, &self.global.clone())?;
        let host = crate::image::Platform::host();
        if let Some(p) = &stage.platform {
            let p = self.expand(p, &self.global.clone())?;
            let want = crate::image::Platform::parse(&p)?;
            if !want.matches(&host) && !host.matches(&want) {
                bail!("only the host platform ({host}) can be built, not {want}");
            }
        }
        if image.eq_ignore_ascii_case("scratch") {
            return Ok(State::scratch());
        }
        let lower = image.to_ascii_lowercase();
        if let Some(j) = stages[..stage.index]
            .iter()
            .position(|s| s.alias.as_deref() == Some(lower.as_str()))
        {
            let parent = self.results[j]
                .as_ref()
                .ok_or_else(|| anyhow!("stage {image} was not built"))?;
            let mut s = State::image(parent.layers.clone(), parent.config.clone());
            s.settings().remove("OnBuild");
            return Ok(s);
        }
        let rec = self.base_image(&image)?;
        if !rec.platform.matches(&host) && !host.matches(&rec.platform) {
            bail!(
                "base image {image} is for {}, not this host ({host})",
                rec.platform
            );
        }
        let config: Value = crate::image::parse_json(
            &self.store.read_blob(&rec.config_digest)?,
            &format!("config of {image}"),
        )?;
        let mut state = State::image(rec.layers.clone(), config);
        state.sync_rootfs();
        let triggers: Vec<String> = state
            .get("OnBuild")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        state.settings().remove("OnBuild");
        if !triggers.is_empty() {
            self.say(&format!("--> Executing {} build triggers", triggers.len()));
        }
        for t in triggers {
            let node = super::parser::node(stage.from.line, stage.from.end_line, &t);
            let ins = super::instruction::from_node(&node, self.escape)
                .map_err(|e| anyhow!("ONBUILD trigger {t:?}: {e}"))?;
            self.say(&format!("--> Trigger: {t}"));
            self.step(&mut state, &node, &ins, stages, stage.index)
                .with_context(|| format!("ONBUILD trigger {t:?}"))?;
        }
        Ok(state)
    }

    /// A base image: from the store, or pulled when it is a source reference.
    fn base_image(&mut self, image: &str) -> Result<ImageRecord> {
        match self.store.find_image(image) {
            Ok(r) => Ok(r),
            Err(e) => match SourceRef::parse(image) {
                Some(src) => Ok(pull(self.store, &src?, &PullOptions::default())?),
                None => Err(anyhow!(
                    "{e} (FROM takes images in the store: berth-image pull or build it first)"
                )),
            },
        }
    }

    fn step(
        &mut self,
        st: &mut State,
        node: &Node,
        ins: &Instruction,
        stages: &[Stage],
        current: usize,
    ) -> Result<()> {
        let now = now_rfc3339();
        let vars = st.vars();
        match ins {
            Instruction::From { .. } => unreachable!("FROM starts a stage"),
            Instruction::Env(pairs) => {
                let mut desc = String::from("ENV");
                let mut set = Vec::new();
                for (k, v) in pairs {
                    let (k, v) = (self.expand(k, &vars)?, self.expand(v, &vars)?);
                    if k.is_empty() {
                        bail!("ENV names can not be blank");
                    }
                    desc.push_str(&format!(" {k}={v}"));
                    set.push((k, v));
                }
                for (k, v) in set {
                    st.set_env(&k, &v);
                }
                st.history(&now, &desc, true);
            }
            Instruction::Label(pairs) => {
                let mut desc = String::from("LABEL");
                for (k, v) in pairs {
                    let (k, v) = (self.expand(k, &vars)?, self.expand(v, &vars)?);
                    if k.is_empty() {
                        bail!("LABEL names can not be blank");
                    }
                    desc.push_str(&format!(" {k}={v}"));
                    st.insert_map("Labels", &k, json!(v));
                }
                st.history(&now, &desc, true);
            }
            Instruction::Arg(list) => {
                for (name, default) in list {
                    let value = match self.build_args.get(name) {
                        Some(v) => Some(v.clone()),
                        None => match default {
                            Some(d) => Some(self.expand(d, &st.vars())?),
                            None => self.global_declared.get(name).cloned().or_else(|| {
                                super::automatic_args()
                                    .into_iter()
                                    .find(|(k, _)| k == name)
                                    .map(|(_, v)| v)
                            }),
                        },
                    };
                    if self.build_args.contains_key(name) {
                        self.used.insert(name.clone());
                    }
                    st.args.retain(|(k, _)| k != name);
                    if let Some(v) = value {
                        st.args.push((name.clone(), v));
                    }
                }
            }
            Instruction::Workdir(p) => {
                let p = self.expand(p, &vars)?;
                let wd = absolute_dest(&p, &st.workdir());
                st.settings().insert("WorkingDir".into(), json!(wd));
                if wd == "/" {
                    st.history(&now, &format!("WORKDIR {wd}"), true);
                } else {
                    self.workdir(st, &wd)?;
                }
            }
            Instruction::User(u) => {
                let u = self.expand(u, &vars)?;
                st.settings().insert("User".into(), json!(u));
                st.history(&now, &format!("USER {u}"), true);
            }
            Instruction::Expose(s) => {
                let ws = words::expand_words(s, &vars, self.escape).map_err(|e| anyhow!(e))?;
                let mut keys = Vec::new();
                for w in ws {
                    keys.extend(ports(&w)?);
                }
                for k in &keys {
                    st.insert_map("ExposedPorts", k, json!({}));
                }
                st.history(&now, &format!("EXPOSE {}", keys.join(" ")), true);
            }
            Instruction::Volume(v) => {
                let paths = match v {
                    VolumeArgs::Json(list) => list
                        .iter()
                        .map(|w| self.expand(w, &vars))
                        .collect::<Result<Vec<_>>>()?,
                    VolumeArgs::Words(s) => {
                        words::expand_words(s, &vars, self.escape).map_err(|e| anyhow!(e))?
                    }
                };
                for p in &paths {
                    if p.trim().is_empty() {
                        bail!("VOLUME specified can not be an empty string");
                    }
                    st.insert_map("Volumes", p, json!({}));
                }
                st.history(&now, &format!("VOLUME {}", json!(paths)), true);
            }
            Instruction::StopSignal(s) => {
                let s = self.expand(s, &vars)?;
                check_signal(&s)?;
                st.settings().insert("StopSignal".into(), json!(s));
                st.history(&now, &format!("STOPSIGNAL {s}"), true);
            }
            Instruction::Cmd(form) => {
                let args = command_args(st, form);
                st.settings().insert("Cmd".into(), json!(args));
                st.cmd_set = true;
                st.history(&now, &format!("CMD {}", json!(args)), true);
            }
            Instruction::Entrypoint(form) => {
                let args = command_args(st, form);
                st.settings().insert("Entrypoint".into(), json!(args));
                if !st.cmd_set {
                    st.settings().remove("Cmd");
                }
                st.history(&now, &format!("ENTRYPOINT {}", json!(args)), true);
            }
            Instruction::Shell(v) => {
                st.settings().insert("Shell".into(), json!(v));
                st.history(&now, &format!("SHELL {}", json!(v)), true);
            }
            Instruction::Healthcheck(h) => {
                st.settings().insert("Healthcheck".into(), health_json(h));
                st.history(&now, &format!("HEALTHCHECK {}", json!(h.test)), true);
            }
            Instruction::Onbuild(t) => {
                let mut list: Vec<Value> = st
                    .get("OnBuild")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                list.push(json!(t));
                st.settings().insert("OnBuild".into(), json!(list));
                st.history(&now, &format!("ONBUILD {t}"), true);
            }
            Instruction::Maintainer(m) => {
                st.config["author"] = json!(m);
                st.history(&now, &format!("MAINTAINER {m}"), true);
            }
            Instruction::Run { command, network } => self.run(st, command, network.as_deref())?,
            Instruction::Copy(c) => self.copy(st, c, false, stages, current, &node.keyword)?,
            Instruction::Add(c) => self.copy(st, c, true, stages, current, &node.keyword)?,
        }
        Ok(())
    }

    /// Use the cached result of `key` (unless --no-cache); true if it was used.
    fn use_cache(&mut self, st: &mut State, key: &str, created_by: &str) -> bool {
        if self.opts.no_cache {
            return false;
        }
        let Some(entry) = self.cache.get(key) else {
            return false;
        };
        match entry.layer {
            Some(l) => {
                self.say(&format!("--> Using cache {}", short(l.diff_id.hex())));
                st.push_layer(l);
                st.history(&entry.created, created_by, false);
            }
            None => {
                self.say("--> Using cache (no file changes)");
                st.history(&entry.created, created_by, true);
            }
        }
        true
    }

    /// Record a step's fresh result in the state and the cache.
    fn made(
        &mut self,
        st: &mut State,
        key: &str,
        layer: Option<LayerRecord>,
        created_by: &str,
    ) -> Result<()> {
        let entry = CacheEntry {
            layer: layer.clone(),
            created: now_rfc3339(),
        };
        self.cache.put(key, &entry)?;
        match layer {
            Some(l) => {
                self.say(&format!("--> {}", short(l.diff_id.hex())));
                st.push_layer(l);
                st.history(&entry.created, created_by, false);
            }
            None => st.history(&entry.created, created_by, true),
        }
        Ok(())
    }

    fn workdir(&mut self, st: &mut State, wd: &str) -> Result<()> {
        let user = st.user();
        let created_by = format!("WORKDIR {wd}");
        let key = cache::key(&[
            b"WORKDIR",
            cache::state_id(&st.layers, &st.config).as_bytes(),
            wd.as_bytes(),
            user.as_bytes(),
        ]);
        if self.use_cache(st, &key, &created_by) {
            return Ok(());
        }
        let work = WorkMount::new(self.store, &st.layers)?;
        let root = Root::open(work.rootfs())?;
        let rel = wd.trim_start_matches('/');
        let layer = if root.kind(rel)? == Some(rustix::fs::FileType::Directory) {
            None
        } else {
            let owner = if user.is_empty() {
                (0, 0)
            } else {
                let u = crate::spec::resolve_user(&user, work.rootfs())
                    .with_context(|| format!("WORKDIR as USER {user}"))?;
                (u.uid, u.gid)
            };
            root.mkdir_all(&clean_parts(wd), owner)?;
            drop(root);
            work.unmount()?;
            Some(commit_unmounted_upper(self.store, &work.upper)?)
        };
        drop(work);
        self.made(st, &key, layer, &created_by)
    }

    fn run(&mut self, st: &mut State, form: &CommandForm, network: Option<&str>) -> Result<()> {
        let args = command_args(st, form);
        // `--network` of RUN; `default` is the build's network (host for now:
        // the hook where `run`'s bridge network comes in).
        let net = match network {
            None | Some("default") => self.opts.network,
            Some("none") => Net::None,
            Some("host") => Net::Host,
            Some(o) => bail!("--network={o}: expected default, none or host"),
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

    /// Run `args` in a container on the stage's layers (the `run` flow, as
    /// `berth-image run` does it) and commit what it changed.
    fn run_container(
        &mut self,
        st: &State,
        args: Vec<String>,
        env: Vec<String>,
        net: Net,
    ) -> Result<LayerRecord> {
        let mut config = st.config.clone();
        config["config"]["Env"] = json!(env);
        config["config"]["Cmd"] = json!(args);
        if let Some(c) = config["config"].as_object_mut() {
            c.remove("Entrypoint");
        }
        let config_bytes = serde_json::to_vec(&config)?;
        let config_digest = self
            .store
            .put_blob_bytes(&config_bytes, "build step config")?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.into()),
            config: descriptor(
                MEDIA_CONFIG,
                config_digest.clone(),
                config_bytes.len() as u64,
            ),
            layers: st
                .layers
                .iter()
                .map(|l| descriptor(&l.media_type, l.digest.clone(), l.size))
                .collect(),
            annotations: Default::default(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest)?;
        let manifest_digest = self
            .store
            .put_blob_bytes(&manifest_bytes, "build step manifest")?;
        let image = ImageRecord {
            name: "build-step".into(),
            manifest_digest,
            manifest_size: manifest_bytes.len() as u64,
            config_digest,
            platform: crate::image::Platform::host(),
            layers: st.layers.clone(),
        };
        let name = format!("build-{}", hex::encode(rand_bytes()));
        let opts = RunOptions {
            name: Some(name.clone()),
            rm: false,
            detach: false,
            tty: false,
            net,
            args: Vec::new(),
            runtime: self.opts.runtime.clone(),
        };
        let _ = self.out.flush();
        let _container = ContainerGuard {
            store: self.store,
            name: &name,
        };
        let code = run::run(self.store, &image, &opts)?;
        if code != 0 {
            bail!(
                "the command {} returned a non-zero code: {code}",
                json!(config["config"]["Cmd"])
            );
        }
        let bundle = run::container_bundle(self.store, &name);
        crate::overlay::unmount(&bundle.join("rootfs"))?;
        Ok(commit_unmounted_upper(
            self.store,
            &bundle.join(crate::bundle::STATE_DIR).join("upper"),
        )?)
    }

    /// The layers of `--from=NAME`: an earlier stage, or an image in the store.
    fn source_layers(
        &mut self,
        from: &str,
        stages: &[Stage],
        current: usize,
    ) -> Result<(Vec<LayerRecord>, String)> {
        if let Some(j) = stage_ref(stages, from, current) {
            let s = self.results[j]
                .as_ref()
                .ok_or_else(|| anyhow!("stage {from} was not built"))?;
            return Ok((s.layers.clone(), format!("stage {from}")));
        }
        if stages
            .iter()
            .any(|s| s.alias.as_deref() == Some(from.to_ascii_lowercase().as_str()))
        {
            bail!("--from={from}: a stage can only copy from stages before it");
        }
        let rec = self.base_image(from)?;
        Ok((rec.layers, format!("image {from}")))
    }

    fn copy(
        &mut self,
        st: &mut State,
        c: &CopyArgs,
        add: bool,
        stages: &[Stage],
        current: usize,
        keyword: &str,
    ) -> Result<()> {
        let vars = st.vars();
        let sources: Vec<String> = c
            .sources
            .iter()
            .map(|w| self.expand(w, &vars))
            .collect::<Result<_>>()?;
        let dest = self.expand(&c.dest, &vars)?;
        let chown = c
            .chown
            .as_ref()
            .map(|w| self.expand(w, &vars))
            .transpose()?;
        let chmod = c
            .chmod
            .as_ref()
            .map(|w| self.expand(w, &vars))
            .transpose()?;
        let mode = chmod.as_deref().map(parse_chmod).transpose()?;
        let from = c.from.as_ref().map(|w| self.expand(w, &vars)).transpose()?;
        if add {
            if let Some(u) = sources
                .iter()
                .find(|s| s.contains("://") || s.starts_with("git@"))
            {
                bail!("ADD {u}: remote sources are not supported (only local files and archives)");
            }
        }
        if sources.len() > 1 && !dest.ends_with('/') {
            bail!("when using {keyword} with more than one source file, the destination must be a directory and end with a /");
        }
        let dest_is_dir = dest.ends_with('/') || dest == "." || sources.len() > 1;
        let dest_abs = absolute_dest(&dest, &st.workdir());

        let (source_mount, label) = match &from {
            None => (None, "build context".to_string()),
            Some(f) => {
                let (layers, label) = self.source_layers(f, stages, current)?;
                (Some(WorkMount::new(self.store, &layers)?), label)
            }
        };
        let source_root = match &source_mount {
            Some(m) => Some(Root::open(m.rootfs())?),
            None => None,
        };
        let (context, ignore) = (self.context.clone(), self.ignore.clone());
        let tree = SourceTree {
            root: source_root.as_ref().unwrap_or(&context),
            ignore: if from.is_none() { Some(&ignore) } else { None },
            label,
        };
        let mut matched: Vec<Matched> = Vec::new();
        for s in &sources {
            matched.extend(tree.resolve(s)?);
        }
        let mut h = Sha256::new();
        for m in &matched {
            tree.hash(m, &mut h)?;
        }
        let content = hex::encode(h.finalize());
        let mut text = keyword.to_string();
        if let Some(o) = &chown {
            text.push_str(&format!(" --chown={o}"));
        }
        if let Some(m) = &chmod {
            text.push_str(&format!(" --chmod={m}"));
        }
        if let Some(f) = &from {
            text.push_str(&format!(" --from={f}"));
        }
        let created_by = format!("{text} {} {dest_abs}", sources.join(" "));
        let key = cache::key(&[
            keyword.as_bytes(),
            cache::state_id(&st.layers, &st.config).as_bytes(),
            created_by.as_bytes(),
            &[dest_is_dir as u8],
            content.as_bytes(),
        ]);
        if self.use_cache(st, &key, &created_by) {
            return Ok(());
        }
        let work = WorkMount::new(self.store, &st.layers)?;
        let dst = Root::open(work.rootfs())?;
        let owner = match &chown {
            Some(spec) => resolve_chown(spec, work.rootfs())?,
            None => (0, 0),
        };
        let opts = CopyOptions {
            owner,
            chmod: mode,
            unpack: add,
        };
        copy_all(&tree, &matched, &dst, &dest_abs, dest_is_dir, &opts)?;
        drop(dst);
        work.unmount()?;
        let layer = commit_unmounted_upper(self.store, &work.upper)?;
        drop(work);
        drop(source_root);
        drop(source_mount);
        self.made(st, &key, Some(layer), &created_by)
    }

    /// Store the final image under each tag (or, without one, its digest).
    pub fn finish(&mut self, st: &State, tags: &[String]) -> Result<ImageRecord, BuildError> {
        let mut config = st.config.clone();
        config["created"] = json!(now_rfc3339());
        if let Some(c) = config["config"].as_object_mut() {
            c.retain(|_, v| !v.is_null());
        }
        let ids: Vec<String> = st.layers.iter().map(|l| l.diff_id.to_string()).collect();
        config["rootfs"] = json!({"type": "layers", "diff_ids": ids});
        let config_bytes = serde_json::to_vec(&config).expect("json");
        let config_digest = self.store.put_blob_bytes(&config_bytes, "image config")?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.into()),
            config: descriptor(
                MEDIA_CONFIG,
                config_digest.clone(),
                config_bytes.len() as u64,
            ),
            layers: st
                .layers
                .iter()
                .map(|l| descriptor(&l.media_type, l.digest.clone(), l.size))
                .collect(),
            annotations: Default::default(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest).expect("json");
        let manifest_digest = self
            .store
            .put_blob_bytes(&manifest_bytes, "image manifest")?;
        let names: Vec<String> = if tags.is_empty() {
            vec![manifest_digest.to_string()]
        } else {
            tags.iter().map(|t| super::tag_name(t)).collect()
        };
        self.say(&format!("COMMIT {}", names.join(" ")));
        let mut rec = None;
        for name in names {
            let r = ImageRecord {
                name: name.clone(),
                manifest_digest: manifest_digest.clone(),
                manifest_size: manifest_bytes.len() as u64,
                config_digest: config_digest.clone(),
                platform: crate::image::Platform::host(),
                layers: st.layers.clone(),
            };
            self.store.save_image(&r)?;
            if !tags.is_empty() {
                self.say(&format!("Successfully tagged {name}"));
            }
            rec = Some(r);
        }
        self.say(&manifest_digest.to_string());
        Ok(rec.expect("at least one name"))
    }
}

fn health_json(h: &Health) -> Value {
    let mut v = json!({"Test": h.test});
    for (k, n) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
        ("Retries", h.retries),
    ] {
        if n != 0 {
            v[k] = json!(n);
        }
    }
    v
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
    name: &'a str,
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        if run::load(self.store, self.name).is_ok() {
            let _ = run::rm(self.store, self.name, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expose_specs() {
        assert_eq!(ports("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(ports("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(
            ports("8000-8002/tcp").unwrap(),
            vec!["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(ports("0").is_err());
        assert!(ports("80/xyz")
            .unwrap_err()
            .to_string()
            .contains("invalid proto"));
        assert!(ports("9-1").is_err());
    }

    #[test]
    fn stop_signals() {
        for ok in ["SIGTERM", "TERM", "sigint", "9", "SIGRTMIN+3"] {
            check_signal(ok).unwrap();
        }
        for bad in ["SIGFOO", "0", "100", ""] {
            assert!(check_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destinations_join_the_workdir() {
        assert_eq!(absolute_dest("a/b", "/app"), "/app/a/b");
        assert_eq!(absolute_dest(".", "/app"), "/app");
        assert_eq!(absolute_dest("/x/../y", "/app"), "/y");
        assert_eq!(absolute_dest("../../..", "/app"), "/");
    }

    #[test]
    fn chmod_is_octal() {
        assert_eq!(parse_chmod("0755").unwrap(), 0o755);
        assert_eq!(parse_chmod("644").unwrap(), 0o644);
        assert!(parse_chmod("u+x").is_err());
        assert!(parse_chmod("77777").is_err());
    }
}
