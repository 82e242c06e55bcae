//! The command line as runc's clients and tests see it: help and version
//! layout, --debug and --log.

mod common;

use common::*;

/// `berth -h`, `berth --help` and `berth VERB -h` in runc's layout (NAME:,
/// then "berth[ VERB] - what it does"); an unknown verb has no help topic.
#[test]
fn help_in_runcs_layout() {
    let sb = Sandbox::new("cli-help");
    for flag in ["-h", "--help"] {
        let o = sb.berth(&[flag]);
        o.expect_ok();
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines[0], "NAME:", "{}", o.stdout);
        assert!(
            lines[1].trim_start().starts_with("berth - "),
            "{}",
            o.stdout
        );
    }
    for verb in [
        "create", "start", "state", "kill", "delete", "run", "exec", "list", "ps", "pause",
        "resume", "update", "events", "spec", "features",
    ] {
        let o = sb.berth(&[verb, "-h"]);
        o.expect_ok();
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines[0], "NAME:", "{verb}: {}", o.stdout);
        assert!(
            lines[1]
                .trim_start()
                .starts_with(&format!("berth {verb} - ")),
            "{verb}: {}",
            o.stdout
        );
    }
    sb.berth(&["foo", "-h"])
        .expect_fail(&["No help topic for 'foo'"]);
}

/// `--version` and `-v`: version, commit and spec lines, as runc prints them.
#[test]
fn version_lines() {
    let sb = Sandbox::new("cli-version");
    for flag in ["--version", "-v"] {
        let o = sb.berth(&[flag]);
        o.expect_ok();
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{}", o.stdout);
        assert!(lines[0].starts_with("berth version "), "{}", o.stdout);
        let v = lines[0].trim_start_matches("berth version ");
        assert_eq!(v.split('.').count(), 3, "{}", o.stdout);
        assert!(
            lines[1].starts_with("commit: ") && lines[1].len() > "commit: ".len(),
            "{}",
            o.stdout
        );
        assert!(lines[2].starts_with("spec: 1."), "{}", o.stdout);
    }
}

/// `--debug` writes debug lines (logrus style, level=debug) to stderr, or to
/// the `--log` file instead (text or json); `--log FILE` makes the file even
/// when nothing is logged.
#[test]
fn debug_lines_and_the_log_file() {
    let mut sb = Sandbox::new("cli-debug");
    sb.bundle.args(&["echo", "Hello World"]);
    sb.bundle.save();
    let id = sb.id("c");
    let o = sb.berth(&["--debug", "run", "--bundle", &sb.bundle_arg(), &id]);
    o.expect_ok();
    assert!(o.stderr.contains("level=debug"), "{o:?}");
    assert!(o.stdout.contains("Hello World"), "{o:?}");
    for (format, needle) in [("text", "level=debug"), ("json", "\"level\":\"debug\"")] {
        let log = sb.dir.join(format!("log-{format}.out"));
        let id = sb.id(&format!("c{format}"));
        let o = sb.berth(&[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            format,
            "--debug",
            "run",
            "--bundle",
            &sb.bundle_arg(),
            &id,
        ]);
        o.expect_ok();
        assert!(!o.stderr.contains("level=debug"), "{o:?}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains(needle), "{format}: {text}");
    }
    let quiet = sb.dir.join("quiet.log");
    sb.berth(&["--log", quiet.to_str().unwrap(), "list"])
        .expect_ok();
    assert!(quiet.exists(), "--log did not make the file");
}

/// `berth spec` writes runc's default config (only the runtime's name as
/// hostname and the spec version differ), so runc's tests and tools that
/// edit it (adding a cgroup namespace on a cgroup v1 host, say) get what
/// they expect; `--rootless` likewise.
#[test]
fn spec_is_runcs_default() {
    let sb = Sandbox::new("cli-spec");
    for rootless in [false, true] {
        let mut ours_dir = sb.dir.join(format!("berth-{rootless}"));
        let theirs_dir = sb.dir.join(format!("runc-{rootless}"));
        for d in [&ours_dir, &theirs_dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        let mut args = vec!["spec", "--bundle", ours_dir.to_str().unwrap()];
        if rootless {
            args.push("--rootless");
        }
        sb.berth(&args).expect_ok();
        let mut runc = std::process::Command::new("/usr/sbin/runc");
        runc.args(["spec", "--bundle"]).arg(&theirs_dir);
        if rootless {
            runc.arg("--rootless");
        }
        let st = runc
            .status()
            .expect("run runc spec (install runc, scripts/install-deps.sh)");
        assert!(st.success());
        let load = |d: &std::path::Path| -> serde_json::Value {
            let mut v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap())
                    .unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("ociVersion");
            o.remove("hostname");
            v
        };
        let ours = load(&ours_dir);
        let theirs = load(&theirs_dir);
        assert_eq!(
            ours, theirs,
            "berth spec (rootless: {rootless}) differs from runc's:\nberth: {ours:#}\nrunc: {theirs:#}"
        );
        ours_dir.push("config.json");
        let text = std::fs::read_to_string(&ours_dir).unwrap();
        assert!(text.contains("\"ociVersion\": \"1.3.0\""), "{text}");
    }
}
