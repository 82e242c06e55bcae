//! The case model, the shared context every case gets, and the TAP reporter.

use crate::bundle::{Bundle, Template};
use crate::runtime::{ContainerGuard, Runtime};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Why a case did not pass.
#[derive(Debug)]
pub enum NotPassed {
    Fail(String),
    Skip(String),
}

impl From<String> for NotPassed {
    fn from(s: String) -> Self {
        NotPassed::Fail(s)
    }
}

impl From<&str> for NotPassed {
    fn from(s: &str) -> Self {
        NotPassed::Fail(s.to_string())
    }
}

pub type CaseResult = Result<(), NotPassed>;

pub struct Case {
    /// The spec section the case checks, e.g. `runtime.md#state`.
    pub section: &'static str,
    pub desc: &'static str,
    pub run: fn(&Ctx) -> CaseResult,
}

impl Case {
    pub fn name(&self) -> String {
        format!("{}: {}", self.section, self.desc)
    }
}

/// Fails with `msg` unless `cond` holds.
pub fn ensure(cond: bool, msg: impl Into<String>) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(NotPassed::Fail(msg.into()))
    }
}

pub fn skip(reason: impl Into<String>) -> CaseResult {
    Err(NotPassed::Skip(reason.into()))
}

pub struct Ctx {
    pub runtime: Runtime,
    pub template: Template,
    /// The run's private work directory (bundles, logs, state).
    pub work: PathBuf,
    /// The runner's namespace inodes, in the `RUNTIMETEST_HOST_NS` format.
    pub host_ns: String,
    /// Prefix making container ids unique to this run.
    pub tag: String,
    counter: AtomicUsize,
}

impl Ctx {
    pub fn new(
        runtime: Runtime,
        template: Template,
        work: PathBuf,
        host_ns: String,
        tag: String,
    ) -> Self {
        Ctx {
            runtime,
            template,
            work,
            host_ns,
            tag,
            counter: AtomicUsize::new(0),
        }
    }

    /// A fresh bundle with default config and a unique container id.
    pub fn bundle(&self) -> Result<(Bundle, String), NotPassed> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}-{n}", self.tag);
        let bundle = Bundle::new(
            &self.template,
            self.work.join("bundles").join(&id),
            &self.host_ns,
        )?;
        Ok((bundle, id))
    }

    pub fn guard(&self, id: &str) -> ContainerGuard<'_> {
        ContainerGuard {
            runtime: &self.runtime,
            id: id.to_string(),
        }
    }

    /// Runs `runtimetest CHECKS...` in the bundle with `run` and passes if every
    /// check inside passed.
    pub fn run_checks(&self, bundle: &mut Bundle, id: &str, checks: &[&str]) -> CaseResult {
        let mut args = vec!["/runtimetest"];
        args.extend_from_slice(checks);
        bundle.set_args(&args);
        bundle.write()?;
        let _guard = self.guard(id);
        let out = self.runtime.run(&bundle.dir, id);
        verdict(&bundle.stdout(), out.code(), &bundle.stderr())
    }
}

/// Judges runtimetest's TAP output and exit code.
pub fn verdict(tap: &str, code: Option<i32>, stderr: &str) -> CaseResult {
    let failures: Vec<&str> = tap.lines().filter(|l| l.starts_with("not ok")).collect();
    if let Some(first) = failures.first() {
        let more = if failures.len() > 1 {
            format!(" (+{} more)", failures.len() - 1)
        } else {
            String::new()
        };
        return Err(NotPassed::Fail(format!("inside: {first}{more}")));
    }
    if !tap.lines().any(|l| l.starts_with("ok ")) {
        let err = stderr.trim().replace('\n', " | ");
        return Err(NotPassed::Fail(format!(
            "no check ran (exit {code:?}); stderr: {err}"
        )));
    }
    let skipped: Vec<&str> = tap.lines().filter(|l| l.contains("# SKIP")).collect();
    if code != Some(0) {
        return Err(NotPassed::Fail(format!("runtimetest exited {code:?}")));
    }
    if !skipped.is_empty() && skipped.len() == tap.lines().filter(|l| l.starts_with("ok ")).count()
    {
        return Err(NotPassed::Skip(format!(
            "every check inside skipped: {}",
            skipped[0]
        )));
    }
    Ok(())
}

/// Prints TAP for the cases and returns (passed, failed, skipped).
pub fn run_all(ctx: &Ctx, cases: &[&Case]) -> (usize, usize, usize) {
    println!("1..{}", cases.len());
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (i, case) in cases.iter().enumerate() {
        let n = i + 1;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.run)(ctx)))
            .unwrap_or_else(|panic| {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                Err(NotPassed::Fail(format!("case panicked: {msg}")))
            });
        match result {
            Ok(()) => {
                passed += 1;
                println!("ok {n} - {}", case.name());
            }
            Err(NotPassed::Skip(reason)) => {
                skipped += 1;
                println!("ok {n} - {} # SKIP {}", case.name(), one_line(&reason));
            }
            Err(NotPassed::Fail(reason)) => {
                failed += 1;
                println!("not ok {n} - {} # {}", case.name(), one_line(&reason));
            }
        }
    }
    (passed, failed, skipped)
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_passes_clean_tap() {
        assert!(verdict("ok 1 - a\nok 2 - b\n1..2\n", Some(0), "").is_ok());
    }

    #[test]
    fn verdict_reports_first_failure_and_count() {
        let r = verdict(
            "ok 1 - a\nnot ok 2 - b # why\nnot ok 3 - c # no\n1..3\n",
            Some(1),
            "",
        );
        match r {
            Err(NotPassed::Fail(m)) => {
                assert!(m.contains("not ok 2 - b # why"), "{m}");
                assert!(m.contains("+1 more"), "{m}");
            }
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn verdict_fails_when_nothing_ran() {
        let r = verdict("", Some(1), "container_linux.go: exec failed");
        assert!(matches!(r, Err(NotPassed::Fail(m)) if m.contains("exec failed")));
    }

    #[test]
    fn verdict_fails_on_nonzero_exit_even_with_ok_lines() {
        assert!(matches!(
            verdict("ok 1 - a\n", Some(3), ""),
            Err(NotPassed::Fail(_))
        ));
    }

    #[test]
    fn verdict_turns_all_skipped_into_skip() {
        let r = verdict("ok 1 - a # SKIP not set\n1..1\n", Some(0), "");
        assert!(matches!(r, Err(NotPassed::Skip(_))));
    }
}
