//! The runner's command line and its behaviour against a runtime that fails everything.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth-conformance"))
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "berth-conformance-test-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn list_names_every_case_with_a_spec_section() {
    let out = runner().arg("--list").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 50, "only {} cases", lines.len());
    for line in &lines {
        let (section, desc) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("no section in {line:?}"));
        assert!(section.contains(".md#"), "bad section in {line:?}");
        assert!(!desc.is_empty());
    }
    let mut sorted = lines.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), lines.len(), "duplicate case names");
}

#[test]
fn filter_selects_cases() {
    let out = runner()
        .args(["--list", "--filter", "hooks"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.is_empty());
    assert!(text.lines().all(|l| l.contains("hooks")), "{text}");
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let out = runner().args(["--filter", "("]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --filter regex"));

    let out = runner().arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));

    let out = runner().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--runtime"));
}

#[test]
fn missing_runtime_is_reported() {
    let out = runner()
        .args(["--runtime", "/nonexistent/runtime"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/runtime"));
}

#[test]
fn a_runtime_that_fails_everything_passes_nothing() {
    let busybox = PathBuf::from("/bin/busybox");
    assert!(
        busybox.exists(),
        "busybox-static must be installed (apt-get install busybox-static)"
    );
    let scratch = Scratch::new("broken");
    let fake = scratch.0.join("broken-runtime");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"broken runtime: $*\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    // busybox is static, so it stands in for runtimetest: the broken runtime never runs it.
    let out = runner()
        .arg("--runtime")
        .arg(&fake)
        .arg("--runtimetest")
        .arg(&busybox)
        .arg("--workdir")
        .arg(&scratch.0)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !out.status.success(),
        "suite passed a broken runtime:\n{text}"
    );
    let summary = text.lines().last().unwrap();
    let counts: Vec<usize> = summary
        .split(", ")
        .map(|part| part.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 3, "summary {summary:?}");
    assert_eq!(
        counts[0], 0,
        "cases passed against a broken runtime:\n{text}"
    );
    assert!(counts[1] > 0);
    let plan: usize = text
        .lines()
        .next()
        .unwrap()
        .strip_prefix("1..")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(counts.iter().sum::<usize>(), plan);
    // Only the work directory under scratch was used, and it was removed.
    let left: Vec<_> = std::fs::read_dir(&scratch.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("broken-runtime")]);
}
