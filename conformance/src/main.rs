//! `berth-conformance`: an OCI runtime-spec conformance suite for any runc-compatible runtime.
//!
//! Each case builds a bundle (busybox rootfs + the static `runtimetest` checker), drives the
//! runtime through its CLI and reports TAP, ending with `N passed, N failed, N skipped`.

mod bundle;
mod cases;
mod hostenv;
mod runtime;
mod suite;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Must match the variable runtimetest reads.
pub const HOST_NS_ENV: &str = "RUNTIMETEST_HOST_NS";
pub const EXPECT_NS_ENV: &str = "RUNTIMETEST_EXPECT_NS";

const USAGE: &str = "usage: berth-conformance --runtime PATH [--filter REGEX] [--keep] [--list]
                         [--runtimetest PATH] [--busybox PATH] [--workdir DIR]

  --runtime PATH      runc-compatible runtime to test (runc, crun, berth)
  --filter REGEX      run only cases whose `section: description` matches
  --keep              keep the work directory (bundles, logs) after the run
  --list              print the case names and exit
  --runtimetest PATH  static checker binary (default: next to this program)
  --busybox PATH      static busybox for the rootfs (default: /bin/busybox)
  --workdir DIR       parent of the per-run work directory (default: /tmp)";

struct Options {
    runtime: Option<PathBuf>,
    filter: Option<regex::Regex>,
    keep: bool,
    list: bool,
    runtimetest: Option<PathBuf>,
    busybox: PathBuf,
    workdir: PathBuf,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        runtime: None,
        filter: None,
        keep: false,
        list: false,
        runtimetest: None,
        busybox: PathBuf::from("/bin/busybox"),
        workdir: PathBuf::from("/tmp"),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--runtime" => o.runtime = Some(PathBuf::from(value("--runtime")?)),
            "--filter" => {
                let re = value("--filter")?;
                o.filter = Some(
                    regex::Regex::new(&re).map_err(|e| format!("invalid --filter regex: {e}"))?,
                );
            }
            "--keep" => o.keep = true,
            "--list" => o.list = true,
            "--runtimetest" => o.runtimetest = Some(PathBuf::from(value("--runtimetest")?)),
            "--busybox" => o.busybox = PathBuf::from(value("--busybox")?),
            "--workdir" => o.workdir = PathBuf::from(value("--workdir")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

fn default_runtimetest() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let candidates = [
        dir.join("runtimetest"),
        dir.join("../x86_64-unknown-linux-gnu/debug/runtimetest"),
        dir.join("../x86_64-unknown-linux-gnu/release/runtimetest"),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

fn resolve_runtime(path: &Path) -> Result<PathBuf, String> {
    let found = if path.components().count() > 1 {
        Some(path.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(path))
                .find(|p| p.is_file())
        })
    };
    let found = found.ok_or_else(|| format!("runtime {} not found", path.display()))?;
    std::fs::canonicalize(&found).map_err(|e| format!("runtime {}: {e}", found.display()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("berth-conformance: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let all = cases::all();
    let selected: Vec<&suite::Case> = all
        .iter()
        .filter(|c| opts.filter.as_ref().is_none_or(|re| re.is_match(&c.name())))
        .collect();
    if opts.list {
        for c in &selected {
            println!("{}", c.name());
        }
        return ExitCode::SUCCESS;
    }
    match run(&opts, &selected) {
        Ok((passed, failed, skipped)) => {
            println!("{passed} passed, {failed} failed, {skipped} skipped");
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("berth-conformance: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(opts: &Options, selected: &[&suite::Case]) -> Result<(usize, usize, usize), String> {
    let runtime_path = resolve_runtime(
        opts.runtime
            .as_deref()
            .ok_or("--runtime PATH is required")?,
    )?;
    let runtimetest = opts
        .runtimetest
        .clone()
        .or_else(default_runtimetest)
        .ok_or("runtimetest not found next to berth-conformance; pass --runtimetest PATH")?;
    hostenv::require_static(&runtimetest, "runtimetest")?;
    hostenv::require_static(&opts.busybox, "busybox")?;
    if selected.is_empty() {
        return Err("no case matches --filter".into());
    }
    let work = hostenv::WorkDir::create(&opts.workdir, opts.keep)?;
    let template =
        bundle::Template::build(work.path.join("template"), &opts.busybox, &runtimetest)?;
    let rt = runtime::Runtime::new(
        runtime_path,
        work.path.join("state"),
        work.path.join("logs"),
    )
    .map_err(|e| format!("create state dir: {e}"))?;
    let tag = format!("conf{}", std::process::id());
    let ctx = suite::Ctx::new(
        rt,
        template,
        work.path.clone(),
        hostenv::host_namespaces(),
        tag,
    );
    let counts = suite::run_all(&ctx, selected);
    work.sweep(&ctx.runtime);
    if opts.keep {
        eprintln!("berth-conformance: kept {}", work.path.display());
    }
    Ok(counts)
}
