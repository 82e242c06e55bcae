//! Bad input: every case exits non-zero with an error that names the problem,
//! and leaves nothing behind (no state dir, no cgroups, no mounts, no process).

mod common;

use common::*;
use serde_json::json;

/// Save the bundle, run `create`, expect failure naming `needles`, and check
/// nothing was left behind. Returns the failed command's output.
#[track_caller]
fn create_fails(sb: &Sandbox, needles: &[&str]) -> Out {
    let id = sb.id("bad");
    let base = sb.baseline(&id);
    let o = sb.create(&id);
    o.expect_fail(needles);
    base.assert_clean(sb);
    assert!(
        sb.state(&id).is_none(),
        "a failed create left a container behind"
    );
    // The program never ran.
    assert!(
        !sb.host.join("marker").exists(),
        "the program ran although create failed"
    );
    o
}

const MARK: &str = "echo ran > /host/marker";

#[test]
fn malformed_json() {
    let mut sb = Sandbox::new("bad-json");
    sb.bundle.sh(MARK);
    sb.bundle.save();
    // Truncated: the error names the file and where parsing stopped.
    let cases = [
        (
            "{\"ociVersion\": \"1.2.0\", \"process\": ",
            vec!["config.json", "line 1 column 35"],
        ),
        ("{not json", vec!["config.json", "line 1 column 2"]),
    ];
    for (text, needles) in cases {
        std::fs::write(sb.bundle.dir.join("config.json"), text).unwrap();
        let id = sb.id("bad");
        let base = sb.baseline(&id);
        let o = sb.berth(&["create", "--bundle", &sb.bundle_arg(), &id]);
        o.expect_fail(&needles);
        // A syntax error is not about any field; "field ?" would name a field that does not exist.
        assert!(
            !o.stderr.contains("field ?"),
            "misleading error: {}",
            o.stderr
        );
        base.assert_clean(&sb);
    }
}

#[test]
fn wrong_type_names_the_field() {
    let mut sb = Sandbox::new("bad-type");
    sb.bundle.sh(MARK);
    sb.bundle.set("/process/user/uid", json!("root"));
    create_fails(&sb, &["process.user.uid"]);
}

#[test]
fn missing_config() {
    let sb = Sandbox::new("bad-noconf");
    std::fs::remove_file(sb.bundle.dir.join("config.json")).unwrap();
    let id = sb.id("bad");
    let base = sb.baseline(&id);
    sb.berth(&["create", "--bundle", &sb.bundle_arg(), &id])
        .expect_fail(&["config.json"]);
    base.assert_clean(&sb);
}

#[test]
fn unknown_oci_version() {
    for v in ["9.9.9", "2.0.0", "0.9.0", "banana"] {
        let mut sb = Sandbox::new("bad-ver");
        sb.bundle.sh(MARK);
        sb.bundle.set("/ociVersion", json!(v));
        create_fails(&sb, &["ociVersion", v]);
    }
}

#[test]
fn supported_oci_versions_are_accepted() {
    // The other side of unknown_oci_version: the range berth claims must work.
    for v in ["1.0.0", "1.0.2-dev", "1.2.0"] {
        let mut sb = Sandbox::new("ok-ver");
        sb.bundle.sh(MARK);
        sb.bundle.set("/ociVersion", json!(v));
        let id = sb.id("ok");
        let _c = sb.created(&id);
    }
}

#[test]
fn missing_process_args() {
    let mut sb = Sandbox::new("bad-args");
    sb.bundle.config["process"]
        .as_object_mut()
        .unwrap()
        .remove("args");
    create_fails(&sb, &["process.args"]);
    sb.bundle.set("/process/args", json!([]));
    create_fails(&sb, &["process.args"]);
}

#[test]
fn missing_executable() {
    let mut sb = Sandbox::new("bad-exe");
    sb.bundle.args(&["/no/such/program"]);
    create_fails(&sb, &["/no/such/program"]);
    sb.bundle.args(&["no-such-program"]);
    create_fails(&sb, &["no-such-program"]);
}

#[test]
fn relative_mount_destination() {
    let mut sb = Sandbox::new("bad-mnt");
    sb.bundle.sh(MARK);
    sb.bundle
        .add_mount(json!({"destination": "relative/dir", "type": "tmpfs", "source": "tmpfs"}));
    let n = sb.bundle.config["mounts"].as_array().unwrap().len() - 1;
    create_fails(
        &sb,
        &[&format!("mounts[{n}]"), "destination", "relative/dir"],
    );
}

#[test]
fn missing_bind_source() {
    let mut sb = Sandbox::new("bad-src");
    sb.bundle.sh(MARK);
    let missing = sb.dir.join("no-such-source");
    sb.bundle.add_mount(
        json!({"destination": "/data", "type": "bind", "source": missing, "options": ["rbind"]}),
    );
    create_fails(&sb, &["no-such-source"]);
}

#[test]
fn missing_rootfs() {
    let mut sb = Sandbox::new("bad-rootfs");
    sb.bundle.sh(MARK);
    sb.bundle.set("/root/path", json!("no-such-rootfs"));
    create_fails(&sb, &["root.path", "no-such-rootfs"]);
}

#[test]
fn terminal_without_console_socket() {
    let mut sb = Sandbox::new("bad-tty");
    sb.bundle.sh(MARK);
    sb.bundle.set("/process/terminal", json!(true));
    create_fails(&sb, &["process.terminal", "console-socket"]);
}

#[test]
fn invalid_ids() {
    let mut sb = Sandbox::new("bad-id");
    sb.bundle.sh(MARK);
    sb.bundle.save();
    for id in ["../x", "a/b", "", "..", "a b"] {
        let o = sb.berth(&["create", "--bundle", &sb.bundle_arg(), id]);
        o.expect_fail(&["invalid container id"]);
        for cmd in ["state", "start", "kill", "delete"] {
            sb.berth(&[cmd, id]).expect_fail(&["invalid container id"]);
        }
    }
    // Nothing was created next to or under the state root.
    assert!(
        !sb.dir.join("x").exists(),
        "\"../x\" escaped the state root"
    );
    assert!(!sb.root.join("a").exists());
    let entries: Vec<_> = std::fs::read_dir(&sb.root)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(entries.is_empty(), "state root not empty: {entries:?}");
    assert!(!sb.host.join("marker").exists());
}

#[test]
fn unknown_id() {
    let sb = Sandbox::new("bad-unknown");
    let id_owned = sb.id("ghost");
    let id = id_owned.as_str();
    for args in [
        vec!["state", id],
        vec!["start", id],
        vec!["kill", id],
        vec!["kill", id, "KILL"],
        vec!["delete", id],
    ] {
        sb.berth(&args).expect_fail(&["does not exist", id]);
    }
    assert!(!sb.root.join(id).exists());
}

#[test]
fn duplicate_id_leaves_nothing_of_the_second_attempt() {
    let mut sb = Sandbox::new("bad-dup");
    sb.bundle.sh("while :; do sleep 1000 & wait $!; done");
    let id = sb.id("c");
    let c = sb.created(&id);
    let pid = c.pid();
    let before = sb.tagged_processes().len();
    let mounts_before = test_mount_lines(&sb.dir, &[&id]);
    let mut other = sb.new_bundle("bundle2");
    other.sh(MARK);
    other.save();
    sb.berth(&["create", "--bundle", &other.dir.display().to_string(), &id])
        .expect_fail(&["already exists", &id]);
    assert_eq!(
        sb.tagged_processes().len(),
        before,
        "the second create left a process"
    );
    assert_eq!(test_mount_lines(&sb.dir, &[&id]), mounts_before);
    assert_eq!(c.pid(), pid);
    assert_eq!(sb.status(&id), "created");
}

#[test]
fn unknown_log_format_is_refused() {
    let sb = Sandbox::new("bad-logfmt");
    sb.berth(&["--log-format", "xml", "list"])
        .expect_fail(&["log-format", "xml"]);
}

#[test]
fn json_log_records_the_error() {
    let mut sb = Sandbox::new("bad-log");
    sb.bundle.sh(MARK);
    sb.bundle.set("/ociVersion", json!("9.9.9"));
    sb.bundle.save();
    let log = sb.dir.join("berth.log");
    let id = sb.id("bad");
    let base = sb.baseline(&id);
    let log_s = log.display().to_string();
    let o = sb.berth(&[
        "--log",
        &log_s,
        "--log-format",
        "json",
        "create",
        "--bundle",
        &sb.bundle_arg(),
        &id,
    ]);
    assert!(!o.ok());
    base.assert_clean(&sb);
    let text = std::fs::read_to_string(&log).expect("the log file was not written");
    let last = text.lines().last().expect("empty log");
    let v: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {last}"));
    assert_eq!(v["level"], "error", "{v}");
    let msg = v["msg"].as_str().expect("msg is a string");
    assert!(msg.contains("ociVersion") && msg.contains("9.9.9"), "{msg}");
    let time = v["time"].as_str().expect("time is a string");
    // RFC 3339: 2024-01-02T03:04:05...
    assert!(
        time.len() >= 20 && time.as_bytes()[4] == b'-' && time.as_bytes()[10] == b'T',
        "time {time:?} is not RFC 3339"
    );
    // A second failure appends a second line.
    let o = sb.berth(&["--log", &log_s, "--log-format", "json", "state", "nope"]);
    assert!(!o.ok());
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert!(v["msg"].as_str().unwrap().contains("does not exist"), "{v}");
}

#[test]
fn unwritable_pid_file_fails_create_and_leaves_nothing() {
    let mut sb = Sandbox::new("bad-pidfile");
    sb.bundle.sh(MARK);
    sb.bundle.save();
    let id = sb.id("bad");
    let base = sb.baseline(&id);
    let pf = sb.dir.join("no-such-dir/init.pid").display().to_string();
    sb.berth(&[
        "create",
        "--bundle",
        &sb.bundle_arg(),
        "--pid-file",
        &pf,
        &id,
    ])
    .expect_fail(&["no-such-dir"]);
    base.assert_clean(&sb);
    assert!(!sb.host.join("marker").exists());
}

#[test]
fn missing_console_socket_fails_create_and_leaves_nothing() {
    let mut sb = Sandbox::new("bad-consock");
    sb.bundle.sh(MARK);
    sb.bundle.set("/process/terminal", json!(true));
    sb.bundle.save();
    let id = sb.id("bad");
    let base = sb.baseline(&id);
    let sock = sb.dir.join("no-such.sock").display().to_string();
    sb.berth(&[
        "create",
        "--bundle",
        &sb.bundle_arg(),
        "--console-socket",
        &sock,
        &id,
    ])
    .expect_fail(&["no-such.sock"]);
    base.assert_clean(&sb);
}

#[test]
fn missing_hook_binary_fails_create_and_leaves_nothing() {
    let mut sb = Sandbox::new("bad-hook");
    sb.bundle.sh(MARK);
    sb.bundle
        .set("/hooks/createRuntime", json!([{"path": "/no/such/hook"}]));
    create_fails(&sb, &["/no/such/hook"]);
}

/// `berth features | head`-style closed stdout: a quiet exit, no panic.
#[test]
fn closed_stdout_ends_quietly() {
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let out = std::process::Command::new(berth_bin())
        .arg("features")
        .stdout(std::process::Stdio::from(w))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{out:?}");
}

/// An init that fails at its first step (a negative oomScoreAdj without
/// CAP_SYS_RESOURCE) may exit before the runtime's next message reaches it;
/// the runtime must still report the init's own error, never the broken
/// channel ("Connection reset by peer", "Broken pipe"). Repeated, since the
/// race goes either way.
/// capability(7) number of CAP_SYS_RESOURCE.
const CAP_SYS_RESOURCE: libc::c_ulong = 24;

#[test]
fn init_failure_reaches_the_caller_as_its_own_message() {
    let mut sb = Sandbox::new("bad-oomneg");
    sb.bundle.sh(MARK);
    sb.bundle.set("/process/oomScoreAdj", json!(-500));
    sb.bundle.save();
    for _ in 0..20 {
        let id = sb.id("bad");
        let base = sb.baseline(&id);
        let mut cmd = sb.cmd(&["create", "--bundle", &sb.bundle_arg(), &id]);
        // Without CAP_SYS_RESOURCE a negative score cannot be set.
        // SAFETY: prctl in the child between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                if libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let o = sb.run_cmd(cmd, "berth create (oomScoreAdj -500)");
        o.expect_fail(&["oomScoreAdj"]);
        for bad in ["Connection reset", "Broken pipe"] {
            assert!(!o.stderr.contains(bad), "{o:?}");
        }
        base.assert_clean(&sb);
    }
}

/// A cgroup in every hierarchy named `/<name>` (v1) or the unified one,
/// removed (its processes killed first) when dropped.
struct OwnCgroup(String);

impl OwnCgroup {
    fn dirs(&self) -> Vec<std::path::PathBuf> {
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join(&self.0))
            .filter(|p| p.is_dir())
            .collect()
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        for d in self.dirs() {
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: plain kill(2) of a process in the test's own cgroup.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        wait_until(POLL_TIMEOUT, || {
            self.dirs()
                .into_iter()
                .all(|d| std::fs::remove_dir(&d).is_ok() || !d.exists())
        });
    }
}

/// `create` into a cgroup that already holds processes, or that is frozen,
/// is refused with runc's words (a frozen cgroup would freeze the init).
#[test]
fn busy_or_frozen_cgroup_is_refused() {
    let mut sb = Sandbox::new("bad-cgbusy");
    let cg = OwnCgroup(format!("berth-test-{}", sb.tag));
    sb.bundle
        .set("/linux/cgroupsPath", json!(format!("/{}", cg.0)));
    sb.bundle.sh("exec sleep 1000");
    let first = sb.id("first");
    let _c = sb.started(&first);
    let second = sb.id("second");
    sb.create(&second)
        .expect_fail(&["container's cgroup is not empty"]);
    assert!(sb.state(&second).is_none());
    assert_eq!(
        sb.status(&first),
        "running",
        "the refused create touched the first container"
    );
    drop(_c);

    let frozen = OwnCgroup(format!("berth-test-frozen-{}", sb.tag));
    let freezer = std::path::Path::new("/sys/fs/cgroup/freezer").join(&frozen.0);
    std::fs::create_dir(&freezer).unwrap();
    std::fs::write(freezer.join("freezer.state"), "FROZEN").unwrap();
    sb.bundle
        .set("/linux/cgroupsPath", json!(format!("/{}", frozen.0)));
    let id = sb.id("third");
    sb.create(&id)
        .expect_fail(&["container's cgroup unexpectedly frozen"]);
    assert!(sb.state(&id).is_none());
    drop(frozen);
    drop(cg);
}

/// `--systemd-cgroup` with a cgroupfs-style path: refused before anything is
/// made, naming the expected form.
#[test]
fn systemd_cgroup_needs_a_slice_prefix_name_path() {
    let mut sb = Sandbox::new("bad-sdpath");
    sb.bundle.sh(MARK);
    sb.bundle
        .set("/linux/cgroupsPath", json!("/kubepods/pod1/abc"));
    sb.bundle.save();
    let id = sb.id("bad");
    let base = sb.baseline(&id);
    let o = sb.berth(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        &sb.bundle_arg(),
        &id,
    ]);
    o.expect_fail(&["cgroupsPath", "slice:prefix:name"]);
    base.assert_clean(&sb);
    assert!(sb.state(&id).is_none());
    assert!(!sb.host.join("marker").exists());
}

/// `--systemd-cgroup` where systemd cannot be reached (this host's init is not
/// systemd, or no system bus): a clear error, nothing left behind, the init
/// killed. (The driver itself runs against a real systemd in tests/systemdvm.)
#[test]
fn systemd_cgroup_without_systemd_fails_cleanly() {
    if std::path::Path::new("/run/systemd/system").is_dir() {
        berth_testsupport::skip(
            "systemd-host",
            "this host runs systemd (the guest tests cover it)",
        );
        return;
    }
    let mut sb = Sandbox::new("bad-nosd");
    sb.bundle.sh(MARK);
    sb.bundle
        .set("/linux/cgroupsPath", json!("berthtest.slice:berth:nosd"));
    sb.bundle.save();
    let id = sb.id("bad");
    let base = sb.baseline(&id);
    let o = sb.run_cmd(
        {
            let mut c = sb.cmd(&[
                "--systemd-cgroup",
                "create",
                "--bundle",
                &sb.bundle_arg(),
                &id,
            ]);
            // A bus address nobody listens on, whatever this host runs.
            c.env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                format!("unix:path={}/no-bus", sb.dir.display()),
            );
            c
        },
        "berth --systemd-cgroup create",
    );
    o.expect_fail(&["systemd", "system bus"]);
    base.assert_clean(&sb);
    assert!(sb.state(&id).is_none());
    assert!(!sb.host.join("marker").exists());
}
