//! What each instruction does to a stage's [`State`]. Settings instructions
//! (ENV, CMD, ...) edit the image config and add a history entry; RUN, COPY,
//! ADD and WORKDIR (of a missing directory) make a layer, through the cache.

use super::cache::{self, CacheEntry};
use super::fsroot::Root;
use super::instruction::{CommandForm, Health, Instruction, VolumeArgs};
use super::mount::WorkMount;
use super::parser::Node;
use super::pattern::{clean_parts, Ignore};
use super::state::State;
use super::words::{self, Vars};
use super::{BuildError, BuildOptions, Stage};
use crate::commit::{commit_unmounted_upper, now_rfc3339};
use crate::pull::{pull, PullOptions};
use crate::source::SourceRef;
use crate::store::{ImageRecord, LayerRecord, Store};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
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

/// The error of a build stopped by a signal.
pub(super) const INTERRUPTED: &str = "the build was interrupted";

/// `ls` the arguments of a command form: exec form as is, shell form through SHELL.
pub(super) fn command_args(st: &State, form: &CommandForm) -> Vec<String> {
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
        .is_some_and(|r| {
            r.is_empty()
                || (r.starts_with(['+', '-'])
                    && r.get(1..).is_some_and(|n| n.parse::<u32>().is_ok()))
        });
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

/// Join a destination with the working directory; keeps a trailing `/`.
pub(super) fn absolute_dest(dest: &str, workdir: &str) -> String {
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

    pub(super) fn expand(&self, word: &str, vars: &Vars) -> Result<String> {
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
            if self.opts.interrupt.is_set() {
                return Err(self.line_err(node, INTERRUPTED));
            }
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
    pub(super) fn base_image(&mut self, image: &str) -> Result<ImageRecord> {
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
    pub(super) fn use_cache(&mut self, st: &mut State, key: &str, created_by: &str) -> bool {
        if self.opts.no_cache {
            return false;
        }
        let Some(entry) = self.cache.get(key, &st.layers) else {
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
    pub(super) fn made(
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
                let u = crate::config_gen::resolve_user(&user, work.rootfs())
                    .with_context(|| format!("WORKDIR as USER {user}"))?;
                (u.uid, u.gid)
            };
            root.mkdir_all(&clean_parts(wd), owner)?;
            drop(root);
            work.unmount()?;
            Some(commit_unmounted_upper(self.store, &st.layers, &work.upper)?)
        };
        drop(work);
        self.made(st, &key, layer, &created_by)
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
        for ok in ["SIGTERM", "TERM", "sigint", "9", "SIGRTMIN+3", "RTMAX-1"] {
            check_signal(ok).unwrap();
        }
        for bad in ["SIGFOO", "0", "100", "", "SIGRTMINé", "RTMIN3"] {
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
}
