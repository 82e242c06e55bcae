//! `berth-image build`: an image from a Dockerfile, as Docker's reference
//! defines the format and its instructions. Each stage starts from an image
//! in the store (or `scratch`, or an earlier stage); RUN runs in a berth
//! container on the stage's layers through the `run` module, exactly as
//! `berth-image run` does, and its writable layer becomes the step's layer
//! (`commit::commit_unmounted_upper`); COPY/ADD/WORKDIR write into an overlay
//! of the stage's layers and commit its writable layer the same way. Steps that make
//! layers go through the [`cache`]. The result is an ordinary OCI image in the
//! store (manifest, config with history, gzip layers), named by `-t`.
//!
//! * [`parser`]: directives, comments, continuations, keyword/flags/arguments;
//! * [`instruction`]: typed instructions; [`words`]: `$VAR` expansion, quotes;
//! * [`pattern`]: COPY globs and `.dockerignore`;
//! * `sources`/`copy`/`fsroot`: reading sources, writing destinations in-root;
//! * `state`: a stage's layers and image config; `steps`: stages, FROM and
//!   the settings instructions; `run_step`: RUN; `copy_step`: COPY/ADD;
//!   `output`: the final image; [`cache`]: the layer cache; `mount`: step
//!   overlays; `stubs`: the runtime's mount stubs, kept out of RUN layers;
//!   [`interrupt`]: stopping on signals.

pub mod cache;
pub mod cli;
mod copy;
mod copy_step;
mod fsroot;
pub mod instruction;
pub mod interrupt;
mod mount;
mod output;
pub mod parser;
pub mod pattern;
mod run_step;
mod sources;
mod state;
mod steps;
mod stubs;
pub mod words;

use crate::run::Net;
use crate::store::{validate_name, ImageRecord, Store};
use instruction::Instruction;
use parser::Node;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use words::Vars;

/// A failed build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A problem with an instruction: names the Dockerfile and the line.
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

impl From<crate::Error> for BuildError {
    fn from(e: crate::Error) -> Self {
        BuildError::Other(e.to_string())
    }
}

/// Options of `build`.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile (default `CONTEXT/Dockerfile`; `-` reads standard input).
    pub dockerfile: Option<PathBuf>,
    /// Names to give the image (`NAME` means `NAME:latest`).
    pub tags: Vec<String>,
    /// `--build-arg` values.
    pub build_args: Vec<(String, String)>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// The OCI runtime RUN uses (as `run --runtime`).
    pub runtime: PathBuf,
    /// The network of RUN steps without `--network=` (`--network` of build):
    /// by default the bridge network of `run` ([`Net::Bridge`], attached
    /// through `crate::net` for the step), as in `docker build`.
    pub network: Net,
    /// Stops the build between steps and kills a running RUN step.
    pub interrupt: interrupt::Interrupt,
}

/// One stage of the Dockerfile.
pub(crate) struct Stage {
    pub index: usize,
    pub alias: Option<String>,
    pub from: Node,
    pub image: String,
    pub platform: Option<String>,
    pub body: Vec<(Node, Instruction)>,
}

/// Args every build has in its global scope (BuildKit's automatic platform args).
fn automatic_args() -> Vec<(String, String)> {
    let p = crate::image::Platform::host();
    let platform = format!("{}/{}", p.os, p.architecture);
    let mut v = Vec::new();
    for prefix in ["TARGET", "BUILD"] {
        v.push((format!("{prefix}PLATFORM"), platform.clone()));
        v.push((format!("{prefix}OS"), p.os.clone()));
        v.push((format!("{prefix}ARCH"), p.architecture.clone()));
        v.push((format!("{prefix}VARIANT"), String::new()));
    }
    v
}

/// Build arguments usable in RUN without an ARG (and left out of the history).
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The image name `build` stores for a `-t` value (`NAME` → `NAME:latest`).
pub fn tag_name(t: &str) -> String {
    let last = t.rsplit('/').next().unwrap_or(t);
    if last.contains(':') || last.contains('@') {
        t.to_string()
    } else {
        format!("{t}:latest")
    }
}

fn read_dockerfile(opts: &BuildOptions) -> Result<(String, String, PathBuf), BuildError> {
    let path = opts
        .dockerfile
        .clone()
        .unwrap_or_else(|| opts.context.join("Dockerfile"));
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
            BuildError::Other(format!("read the Dockerfile from standard input: {e}"))
        })?;
        return Ok(("Dockerfile".into(), s, path));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BuildError::Other(format!("read {}: {e}", path.display())))?;
    let label = if opts.dockerfile.is_some() {
        path.display().to_string()
    } else {
        "Dockerfile".into()
    };
    Ok((label, text, path))
}

/// Instructions with the nodes they were typed from.
type Typed = Vec<(Node, Instruction)>;

/// Split typed instructions into global ARGs and stages.
fn split_stages(file: &str, typed: Typed) -> Result<(Typed, Vec<Stage>), BuildError> {
    let mut globals = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for (node, ins) in typed {
        match ins {
            Instruction::From {
                image,
                alias,
                platform,
            } => {
                if let Some(a) = &alias {
                    if stages.iter().any(|s| s.alias.as_ref() == Some(a)) {
                        return Err(BuildError::Line {
                            file: file.into(),
                            line: node.line,
                            message: format!("duplicate stage name {a:?}"),
                        });
                    }
                }
                stages.push(Stage {
                    index: stages.len(),
                    alias,
                    from: node,
                    image,
                    platform,
                    body: Vec::new(),
                })
            }
            _ => match stages.last_mut() {
                Some(s) => s.body.push((node, ins)),
                None if matches!(ins, Instruction::Arg(_)) => globals.push((node, ins)),
                None => {
                    return Err(BuildError::Line {
                        file: file.into(),
                        line: node.line,
                        message: format!(
                            "{} before the first FROM: no build stage in current context",
                            node.keyword
                        ),
                    })
                }
            },
        }
    }
    if stages.is_empty() {
        return Err(BuildError::Other(format!(
            "{file}: no FROM instruction (a Dockerfile must start a build stage)"
        )));
    }
    Ok((globals, stages))
}

/// The stage `name` (an alias, or an index) refers to, among those before `before`.
pub(crate) fn stage_ref(stages: &[Stage], name: &str, before: usize) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    stages[..before]
        .iter()
        .position(|s| s.alias.as_deref() == Some(lower.as_str()))
        .or_else(|| lower.parse::<usize>().ok().filter(|i| *i < before))
}

/// Which stages the target needs: itself, its FROM stage, COPY --from stages
/// (all earlier ones when a reference uses a variable).
fn needed_stages(stages: &[Stage], target: usize) -> Vec<bool> {
    let mut needed = vec![false; stages.len()];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if needed[i] {
            continue;
        }
        needed[i] = true;
        let image = &stages[i].image;
        if image.contains('$') {
            todo.extend(0..i);
        } else if let Some(j) = stages[..i]
            .iter()
            .position(|s| s.alias.as_deref() == Some(image.to_ascii_lowercase().as_str()))
        {
            todo.push(j);
        }
        for (_, ins) in &stages[i].body {
            if let Instruction::Copy(c) = ins {
                match &c.from {
                    Some(f) if f.contains('$') => todo.extend(0..i),
                    Some(f) => todo.extend(stage_ref(stages, f, i)),
                    None => {}
                }
            }
        }
    }
    needed
}

/// Build an image; progress goes to `out`, RUN output to this process's stdout/stderr.
pub fn build(
    store: &Store,
    opts: &BuildOptions,
    out: &mut dyn Write,
) -> Result<ImageRecord, BuildError> {
    for t in &opts.tags {
        validate_name(&tag_name(t))?;
    }
    if !opts.context.is_dir() {
        return Err(BuildError::Other(format!(
            "build context {} is not a directory",
            opts.context.display()
        )));
    }
    let (file, text, path) = read_dockerfile(opts)?;
    let df = parser::parse(&text).map_err(|e| BuildError::Line {
        file: file.clone(),
        line: e.line,
        message: e.message,
    })?;
    let escape = df.directives.escape;
    let mut typed = Vec::new();
    for node in df.nodes {
        let ins = instruction::from_node(&node, escape).map_err(|message| BuildError::Line {
            file: file.clone(),
            line: node.line,
            message,
        })?;
        typed.push((node, ins));
    }
    let (globals, stages) = split_stages(&file, typed)?;
    let target = match &opts.target {
        None => stages.len() - 1,
        Some(t) => stages
            .iter()
            .position(|s| s.alias.as_deref() == Some(t.to_ascii_lowercase().as_str()))
            .ok_or_else(|| BuildError::Other(format!("target stage {t:?} could not be found")))?,
    };
    let build_args: HashMap<String, String> = opts.build_args.iter().cloned().collect();
    let mut used: HashSet<String> = HashSet::new();
    let mut global: Vars = automatic_args().into_iter().collect();
    let mut global_declared: Vars = Vars::new();
    for (node, ins) in &globals {
        let Instruction::Arg(list) = ins else {
            continue;
        };
        for (name, default) in list {
            let value = match build_args.get(name) {
                Some(v) => {
                    used.insert(name.clone());
                    Some(v.clone())
                }
                None => match default {
                    Some(d) => Some(words::expand(d, &global, escape).map_err(|message| {
                        BuildError::Line {
                            file: file.clone(),
                            line: node.line,
                            message,
                        }
                    })?),
                    None => global.get(name).cloned(),
                },
            };
            if let Some(v) = value {
                global.insert(name.clone(), v.clone());
                global_declared.insert(name.clone(), v);
            }
        }
    }
    let needed = needed_stages(&stages, target);
    let ignore = steps::load_ignore(&opts.context, &path).map_err(BuildError::Other)?;
    let _guard = store.lock_shared()?;
    mount::sweep_stale(store);
    run_step::sweep_stale_containers(store);
    let mut b = steps::Builder {
        store,
        opts,
        cache: cache::Cache::open(store)?,
        file: file.clone(),
        escape,
        context: std::rc::Rc::new(
            fsroot::Root::open(&opts.context).map_err(|e| BuildError::Other(format!("{e:#}")))?,
        ),
        ignore: std::rc::Rc::new(ignore),
        global,
        global_declared,
        build_args,
        used,
        results: vec![None; stages.len()],
        stages_total: stages.len(),
        out,
    };
    for stage in &stages[..=target] {
        if needed[stage.index] {
            let state = b.run_stage(stage, &stages)?;
            b.results[stage.index] = Some(state);
        }
    }
    let state = b.results[target].take().expect("target was built");
    let mut unused: Vec<&String> = b
        .build_args
        .keys()
        .filter(|k| !b.used.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .collect();
    unused.sort();
    if !unused.is_empty() {
        let list: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        b.say(&format!(
            "[Warning] One or more build-args [{}] were not consumed",
            list.join(" ")
        ));
    }
    b.finish(&state, &opts.tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Typed {
        let df = parser::parse(text).unwrap();
        df.nodes
            .into_iter()
            .map(|n| {
                let i = instruction::from_node(&n, '\\').unwrap();
                (n, i)
            })
            .collect()
    }

    fn stages_of(text: &str) -> Vec<Stage> {
        split_stages("Dockerfile", typed(text)).unwrap().1
    }

    #[test]
    fn target_needs_only_its_dependencies() {
        let s = stages_of(
            "FROM scratch AS a\nFROM scratch AS b\nFROM a AS c\nCOPY --from=b /x /x\nFROM scratch AS d\nCOPY --from=0 /x /x\n",
        );
        assert_eq!(needed_stages(&s, 2), vec![true, true, true, false]);
        assert_eq!(needed_stages(&s, 3), vec![true, false, false, true]);
        assert_eq!(needed_stages(&s, 1), vec![false, true, false, false]);
    }

    #[test]
    fn instructions_before_from_and_duplicate_names() {
        let e = split_stages("Dockerfile", typed("ARG A=1\nRUN x\nFROM scratch\n"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("Dockerfile:2: RUN before the first FROM"),
            "{e}"
        );
        let e = split_stages(
            "Dockerfile",
            typed("FROM scratch AS x\nFROM scratch AS X\n"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("Dockerfile:2: duplicate stage name"), "{e}");
    }

    #[test]
    fn tag_names_default_to_latest() {
        assert_eq!(tag_name("app"), "app:latest");
        assert_eq!(tag_name("app:1"), "app:1");
        assert_eq!(tag_name("127.0.0.1:5000/app"), "127.0.0.1:5000/app:latest");
        assert_eq!(tag_name("reg:5000/app:2"), "reg:5000/app:2");
    }
}
