//! docker's container lifecycle and run flags with real containers: create,
//! start (again, on the kept R/W layer), exec, kill, wait, pause, top,
//! stats, cp, inspect; -e, --env-file, -v (binds and named volumes),
//! --tmpfs, -w, -u, --entrypoint, --hostname, resource limits, capabilities,
//! --read-only, --privileged, --device, --init, -i, --stop-signal, --label.
//! Containers use --net none unless the test is about the network. Needs root.

mod common;

use common::world::{wait_for, World};
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

const LOOP: &str = "while true; do sleep 0.1; done";

#[test]
fn create_start_again_on_the_kept_layer_inspect_and_wait() {
    let w = World::new();
    let id = w.ok(&[
        "create",
        "--net",
        "none",
        "--name",
        "keep",
        "IMG",
        "sh",
        "-c",
        "echo run >> /count; wc -l < /count; exit 5",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let doc = w.inspect("keep");
    assert_eq!(doc["State"]["Status"], "created");
    assert!(w.ok(&["ps", "-a"]).contains("Created"));
    // Attached start: the container's output and status.
    let o = w.out(&["start", "-a", "keep"]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1");
    // A stopped container starts again with its R/W layer as it was.
    let o = w.out(&["start", "-a", &id[..12]]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "2");
    let doc = w.inspect("keep");
    assert_eq!(doc["State"]["Status"], "exited");
    assert_eq!(doc["State"]["ExitCode"], 5);
    assert_eq!(doc["State"]["OOMKilled"], false);
    assert_ne!(doc["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    // Detached start, then wait prints the status.
    w.ok(&["start", "keep"]);
    assert_eq!(w.ok(&["wait", "keep"]).trim(), "5");
    assert!(w.ok(&["logs", "keep"]).contains('3'));
    w.ok(&["rm", "keep"]);
    w.assert_empty();
}

#[test]
fn exec_kill_pause_top_stats_and_stop_signal() {
    let w = World::new();
    let script =
        format!("trap 'echo got-usr1 > /usr1' USR1; trap 'echo got-usr2; exit 42' USR2; {LOOP}");
    w.ok(&[
        "run",
        "-d",
        "--net",
        "none",
        "--name",
        "busy",
        "--stop-signal",
        "USR2",
        "IMG",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(
        w.ok(&["exec", "busy", "echo", "from-exec"]).trim(),
        "from-exec"
    );
    let o = w.out(&["exec", "busy", "sh", "-c", "exit 9"]);
    assert_eq!(o.status.code(), Some(9));
    assert_eq!(
        w.ok(&[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "-u",
            "nobody",
            "busy",
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u)"
        ])
        .trim(),
        "1 /tmp 65534"
    );
    // exec -i passes stdin through.
    let mut c = w.cmd(&["exec", "-i", "busy", "cat"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped-in\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "piped-in\n");
    w.ok(&["kill", "-s", "USR1", "busy"]);
    assert!(wait_for(Duration::from_secs(10), || w
        .out(&["exec", "busy", "cat", "/usr1"])
        .stdout
        .starts_with(b"got-usr1")));
    let top = w.ok(&["top", "busy"]);
    assert!(top.contains("PID") && top.contains("sh -c"), "{top}");
    let stats = w.ok(&["stats", "--no-stream", "busy"]);
    let line = stats.lines().nth(1).unwrap_or_default().to_string();
    assert!(
        line.contains("busy") && line.contains('%') && line.contains("iB /"),
        "{stats}"
    );
    w.ok(&["pause", "busy"]);
    assert_eq!(w.inspect("busy")["State"]["Status"], "paused");
    assert!(w.ok(&["ps"]).contains("(Paused)"));
    assert!(!w.out(&["exec", "busy", "true"]).status.success());
    w.ok(&["unpause", "busy"]);
    assert_eq!(w.inspect("busy")["State"]["Status"], "running");
    // stop sends --stop-signal first.
    w.ok(&["stop", "busy"]);
    assert_eq!(w.inspect("busy")["State"]["ExitCode"], 42);
    assert!(w.ok(&["logs", "busy"]).contains("got-usr2"));
    w.ok(&["rm", "busy"]);
    w.assert_empty();
}

#[test]
fn environment_user_workdir_entrypoint_hostname_labels() {
    let w = World::new();
    let envfile = w.scratch.join("env");
    std::fs::write(&envfile, "# comment\nFROM_FILE=yes\nOVER=file\n\n").unwrap();
    let out = w.ok(&[
        "run", "--rm", "--net", "none", "--name", "envy",
        "-e", "A=1", "--env-file", envfile.to_str().unwrap(), "-e", "OVER=flag",
        "-w", "/work/dir", "-u", "daemon", "--hostname", "myhost",
        "--entrypoint", "sh", "IMG", "-c",
        "echo $A $FROM_FILE $OVER; pwd; id -u; id -g; hostname; cat /etc/hostname; grep myhost /etc/hosts",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1 yes flag", "{out}");
    assert_eq!(lines[1], "/work/dir");
    assert_eq!(lines[2], "1");
    assert_eq!(lines[3], "1");
    assert_eq!(lines[4], "myhost");
    assert_eq!(lines[5], "myhost");
    assert!(lines[6].contains("myhost"), "{out}");
    w.ok(&[
        "create", "--net", "none", "--name", "labelled", "-l", "tier=web", "--label", "x=y", "IMG",
        "true",
    ]);
    let labels = &w.inspect("labelled")["Config"]["Labels"];
    assert_eq!(labels["tier"], "web");
    assert_eq!(labels["x"], "y");
    w.ok(&["rm", "labelled"]);
    w.assert_empty();
}

#[test]
fn stdin_only_with_i() {
    let w = World::new();
    let feed = |args: &[&str]| {
        let mut c = w.cmd(args);
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"line-in\n").unwrap();
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
    };
    assert_eq!(
        feed(&["run", "--rm", "-i", "--net", "none", &w.image, "cat"]),
        "line-in\n"
    );
    assert_eq!(feed(&["run", "--rm", "--net", "none", &w.image, "cat"]), "");
    w.assert_empty();
}

#[test]
fn binds_named_volumes_and_tmpfs() {
    let w = World::new();
    let host = w.scratch.join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("in"), "from-host\n").unwrap();
    let rw = format!("{}:/data", host.display());
    let ro = format!("{}:/ro:ro", host.display());
    let out = w.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "-v",
        &rw,
        "-v",
        &ro,
        "-v",
        "vol1:/vol",
        "--tmpfs",
        "/scratch:size=1m",
        "IMG",
        "sh",
        "-c",
        "cat /data/in; echo back > /data/out; echo ro > /ro/x 2>/dev/null || echo ro-refused; \
         echo kept > /vol/f; grep ' /scratch ' /proc/mounts",
    ]);
    assert!(
        out.contains("from-host") && out.contains("ro-refused"),
        "{out}"
    );
    assert!(out.contains("tmpfs") && out.contains("size=1024k"), "{out}");
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "back\n");
    // The named volume outlives the container and is shared by the next.
    let out = w.ok(&[
        "run", "--net", "none", "--name", "user", "-v", "vol1:/v", "IMG", "cat", "/v/f",
    ]);
    assert_eq!(out, "kept\n");
    assert!(w.ok(&["volume", "ls"]).lines().any(|l| l == "vol1"));
    let mounts = &w.inspect("user")["Mounts"];
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Name"], "vol1");
    assert_eq!(mounts[0]["Destination"], "/v");
    // In use: refused; then removed.
    let o = w.out(&["volume", "rm", "vol1"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("in use"),
        "{o:?}"
    );
    w.ok(&["rm", "user"]);
    w.ok(&["volume", "rm", "vol1"]);
    assert!(!w.ok(&["volume", "ls"]).contains("vol1"));
    w.assert_empty();
}

/// The container's effective capability mask (CapEff of its shell).
fn cap_eff(w: &World, extra: &[&str]) -> u64 {
    let mut args = vec!["run", "--rm", "--net", "none"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["IMG", "grep", "CapEff", "/proc/self/status"]);
    let out = w.ok(&args);
    u64::from_str_radix(out.split_whitespace().last().unwrap(), 16).unwrap()
}

#[test]
fn capabilities_read_only_privileged_and_devices() {
    let w = World::new();
    const NET_ADMIN: u64 = 1 << 12;
    const CHOWN: u64 = 1 << 0;
    let default = cap_eff(&w, &[]);
    assert_eq!(default & NET_ADMIN, 0);
    assert_ne!(default & CHOWN, 0);
    let changed = cap_eff(&w, &["--cap-add", "NET_ADMIN", "--cap-drop", "chown"]);
    assert_ne!(changed & NET_ADMIN, 0);
    assert_eq!(changed & CHOWN, 0);
    assert_eq!(cap_eff(&w, &["--cap-drop", "ALL"]), 0);
    let all = cap_eff(&w, &["--privileged"]);
    assert!(all.count_ones() >= 38, "{all:x}");
    let out = w.ok(&[
        "run", "--rm", "--net", "none", "--read-only", "IMG", "sh", "-c",
        "touch /file 2>/dev/null && echo wrote || echo refused; touch /tmp/x 2>/dev/null || echo tmp-refused",
    ]);
    assert!(out.starts_with("refused"), "{out}");
    // --privileged: host devices and writable sysfs, no masked paths.
    let out = w.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--privileged",
        "IMG",
        "sh",
        "-c",
        "test -c /dev/kmsg && echo has-kmsg; grep ' /sys ' /proc/mounts",
    ]);
    assert!(out.contains("has-kmsg") && out.contains(" rw"), "{out}");
    // --device: the node, under another name, and the cgroup allows it.
    let out = w.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--device",
        "/dev/zero:/dev/myzero:r",
        "IMG",
        "sh",
        "-c",
        "head -c 4 /dev/myzero | od -An -tx1",
    ]);
    assert_eq!(out.trim(), "00 00 00 00");
    w.assert_empty();
}

#[test]
fn resource_limits_reach_the_cgroup_and_oom_is_reported() {
    let w = World::new();
    w.ok(&[
        "run",
        "-d",
        "--net",
        "none",
        "--name",
        "limited",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "IMG",
        "sh",
        "-c",
        LOOP,
    ]);
    let doc = w.inspect("limited");
    assert_eq!(doc["HostConfig"]["Memory"], 64 << 20);
    assert_eq!(doc["HostConfig"]["NanoCpus"], 500_000_000);
    assert_eq!(doc["HostConfig"]["PidsLimit"], 50);
    let id = doc["Id"].as_str().unwrap();
    // The host's view of the container's cgroup (v1 hierarchies here, v2
    // on a unified host).
    let read = |v1: &str, v2: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{v1}"))
            .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/{v2}")))
            .unwrap_or_default()
    };
    let mem = read(
        &format!("memory/berth/{id}/memory.limit_in_bytes"),
        &format!("berth/{id}/memory.max"),
    );
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    let quota = read(
        &format!("cpu/berth/{id}/cpu.cfs_quota_us"),
        &format!("berth/{id}/cpu.max"),
    );
    assert!(quota.starts_with("50000"), "{quota}");
    let pids = read(
        &format!("pids/berth/{id}/pids.max"),
        &format!("berth/{id}/pids.max"),
    );
    assert_eq!(pids.trim(), "50");
    w.ok(&["rm", "-f", "limited"]);
    // A container over its memory limit is OOM-killed, and inspect says so.
    let o = w.out(&[
        "run",
        "--net",
        "none",
        "--name",
        "hog",
        "--memory",
        "16m",
        "IMG",
        "awk",
        "BEGIN { s = \"xxxxxxxxxxxxxxxx\"; while (1) s = s s }",
    ]);
    assert_eq!(o.status.code(), Some(137), "{o:?}");
    let st = &w.inspect("hog")["State"];
    assert_eq!(st["OOMKilled"], true, "{st}");
    assert_eq!(st["ExitCode"], 137);
    w.ok(&["rm", "hog"]);
    w.assert_empty();
}

#[test]
fn init_runs_as_pid_1_and_reaps() {
    let w = World::new();
    let out = w.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "--init",
        "IMG",
        "sh",
        "-c",
        "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("/dev/init -- sh -c"), "{out}");
    assert_ne!(lines[1], "1", "the shell is not PID 1 under --init");
    // Without --init the command is PID 1.
    let out = w.ok(&["run", "--rm", "--net", "none", "IMG", "sh", "-c", "echo $$"]);
    assert_eq!(out.trim(), "1");
    w.assert_empty();
}

#[test]
fn cp_in_and_out_of_running_and_stopped_containers_stays_inside() {
    let w = World::new();
    w.ok(&[
        "run", "-d", "--net", "none", "--name", "box", "IMG", "sh", "-c",
        &format!("mkdir -p /d/sub && echo inner > /d/sub/f && ln -s /etc /d/link && ln -s / /escape && {LOOP}"),
    ]);
    assert!(wait_for(Duration::from_secs(10), || w
        .out(&["exec", "box", "test", "-L", "/escape"])
        .status
        .success()));
    let host = w.scratch.join("cp");
    std::fs::create_dir(&host).unwrap();
    // Out: a tree, symlinks copied as symlinks.
    w.ok(&["cp", "box:/d", host.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(host.join("d/sub/f")).unwrap(),
        "inner\n"
    );
    assert_eq!(
        std::fs::read_link(host.join("d/link")).unwrap().to_str(),
        Some("/etc")
    );
    // In: a file into a directory, then a tree.
    let src = host.join("newfile");
    std::fs::write(&src, "from-host\n").unwrap();
    w.ok(&["cp", src.to_str().unwrap(), "box:/d/sub"]);
    assert_eq!(
        w.ok(&["exec", "box", "cat", "/d/sub/newfile"]),
        "from-host\n"
    );
    // Through a symlink pointing at / in the container: it resolves inside
    // the container, never to the host's directories.
    let canary = w.scratch.join("canary");
    let target = format!("box:/escape{}", canary.display());
    let o = w.out(&["cp", src.to_str().unwrap(), &target]);
    assert!(
        !canary.exists(),
        "cp followed a container symlink to the host"
    );
    let _ = o;
    // Stopped: cp still works on its kept layer.
    w.ok(&["stop", "-t", "1", "box"]);
    let out = host.join("after-stop");
    w.ok(&["cp", "box:/d/sub/newfile", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "from-host\n");
    w.ok(&["rm", "box"]);
    w.assert_empty();
}

#[test]
fn commit_a_container_by_name() {
    let w = World::new();
    w.ok(&[
        "run",
        "--net",
        "none",
        "--name",
        "src",
        "IMG",
        "sh",
        "-c",
        "echo committed > /etc/note",
    ]);
    w.ok(&["commit", "src", "noted:1"]);
    let out = w.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "noted:1",
        "cat",
        "/etc/note",
    ]);
    assert_eq!(out, "committed\n");
    w.ok(&["rm", "src"]);
    w.assert_empty();
}

#[test]
fn a_new_named_volume_is_filled_from_the_image() {
    let w = World::new();
    // docker copies the image's files at the mount point into a new volume.
    let out = w.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "-v",
        "etcvol:/etc",
        "IMG",
        "sh",
        "-c",
        "grep -c root /etc/passwd; echo added > /etc/new",
    ]);
    assert_eq!(out.trim(), "1", "{out}");
    let data = w.store.join("volumes/etcvol/_data");
    assert!(data.join("passwd").is_file());
    assert_eq!(
        std::fs::read_to_string(data.join("new")).unwrap(),
        "added\n"
    );
    // A volume that has content is not filled again.
    std::fs::remove_file(data.join("passwd")).unwrap();
    let out = w.ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "-v",
        "etcvol:/etc",
        "IMG",
        "ls",
        "/etc",
    ]);
    assert!(!out.contains("passwd") && out.contains("new"), "{out}");
    w.ok(&["volume", "rm", "etcvol"]);
    w.assert_empty();
}

#[test]
fn exec_it_gets_a_terminal() {
    let w = World::new();
    w.ok(&[
        "run", "-d", "--net", "none", "--name", "term", "IMG", "sh", "-c", LOOP,
    ]);
    // script(1) gives berth-image a terminal of its own.
    let line = format!(
        "{} --store {} exec -it term sh -c 'tty; [ -t 0 ] && echo on-a-tty'",
        env!("CARGO_BIN_EXE_berth-image"),
        w.store.display(),
    );
    let out = std::process::Command::new("timeout")
        .args(["-k", "10", "60", "script", "-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script(1) (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("/dev/pts/") && text.contains("on-a-tty"),
        "{text:?}"
    );
    w.ok(&["rm", "-f", "term"]);
    w.assert_empty();
}

#[test]
fn an_attached_run_is_logged_too_and_its_output_is_a_pipe() {
    let w = World::new();
    let o = w.out(&[
        "run",
        "--net",
        "none",
        "--name",
        "att",
        "IMG",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; [ -p /proc/self/fd/1 ] && echo stdout-is-a-pipe",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "to-out\nstdout-is-a-pipe\n"
    );
    assert_eq!(String::from_utf8_lossy(&o.stderr), "to-err\n");
    let logs = w.ok(&["logs", "att"]);
    assert!(
        logs.contains("to-out") && logs.contains("stdout-is-a-pipe"),
        "{logs}"
    );
    w.ok(&["rm", "att"]);
    w.assert_empty();
}
