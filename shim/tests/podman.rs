//! podman (Debian's 4.3) with berth as its OCI runtime (`--runtime berth`):
//! run, run -d + exec, logs, pause/unpause, stop, kill, rm, a terminal, and
//! the bridge (netavark), host and none networks. Root only.
//!
//! Each test uses a private podman: its own `--root`, `--runroot`, `--tmpdir`,
//! storage config (vfs driver), network config dir and events file, cgroupfs
//! with a private cgroup parent. berth keeps its state in its default root
//! (/run/berth): podman 4.3 does not pass `--runtime-flag`s to the runtime
//! calls of its cleanup process (`delete --force` would miss a private root),
//! so the guard tells its containers apart by their bundle (under its dir).
//! The busybox image is built by berth-image and loaded with `podman load`
//! from a docker-archive written by skopeo. Dropping the guard removes the
//! containers, the network, conmon processes, mounts, cgroups and the dirs,
//! also when a test failed.
//!
//! Prerequisites: podman and skopeo (scripts/install-deps.sh) and berth +
//! berth-image built into the same target dir:
//! `cargo build -p berth -p berth-image && cargo test -p containerd-shim-berth-v2 --test podman`.

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const IMAGE: &str = "docker.io/library/busybox:latest";
/// podman's defaults exceed this machine's hard limits.
const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];
/// Every podman call is bounded, so a hung runtime fails the test instead of
/// hanging it.
const TIMEOUT: &str = "120";
/// The bridge network the tests create (its own interface name and subnet).
const NET: &str = "berth-test";
const NET_SUBNET: &str = "10.89.231.0/24";

static SERIAL: Mutex<()> = Mutex::new(());
static SEQ: AtomicU32 = AtomicU32::new(0);

struct Podman {
    dir: PathBuf,
    bin_dir: PathBuf,
    /// Absolute (`/name`): a relative one is taken below conmon's own cgroup.
    cgroup_parent: String,
    ip_forward: Option<String>,
    _serial: MutexGuard<'static, ()>,
}

fn can_run() -> bool {
    common::root_with_tools(&["podman", "skopeo", "conmon"])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Podman {
    fn start_if_possible() -> Option<Podman> {
        can_run().then(Podman::start)
    }

    fn start() -> Podman {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let tag = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = PathBuf::from(format!("/tmp/berth-podman-test-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        for d in ["root", "runroot", "tmp", "net"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-berth-v2"));
        let bin_dir = bin.parent().unwrap().to_path_buf();
        for b in ["berth", "berth-image"] {
            assert!(
                bin_dir.join(b).exists(),
                "{} missing: build it into the same target dir first (cargo build -p berth -p berth-image)",
                bin_dir.join(b).display()
            );
        }
        let p = Podman {
            ip_forward: fs::read_to_string("/proc/sys/net/ipv4/ip_forward").ok(),
            cgroup_parent: format!("/berth-podman-test-{tag}"),
            dir,
            bin_dir,
            _serial: serial,
        };
        let d = p.dir.display();
        fs::write(
            p.dir.join("storage.conf"),
            format!("[storage]\ndriver = \"vfs\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/root\"\n"),
        )
        .unwrap();
        fs::write(
            p.dir.join("containers.conf"),
            format!(
                "[engine]\nevents_logger = \"file\"\nevents_logfile_path = \"{d}/events.log\"\n\
                 cgroup_manager = \"cgroupfs\"\ntmp_dir = \"{d}/tmp\"\n\
                 [network]\nnetwork_config_dir = \"{d}/net\"\n"
            ),
        )
        .unwrap();
        p.load_busybox();
        p
    }

    fn berth(&self) -> PathBuf {
        self.bin_dir.join("berth")
    }

    /// berth's default state root, which podman's calls use.
    fn berth_root(&self) -> PathBuf {
        PathBuf::from("/run/berth")
    }

    /// The containers in berth's state root whose bundle is under our dir.
    fn berth_containers(&self) -> Vec<String> {
        let out = Command::new(self.berth())
            .arg("--root")
            .arg(self.berth_root())
            .args(["list", "--format", "json"])
            .output()
            .unwrap();
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        list.iter()
            .filter(|c| {
                c["bundle"]
                    .as_str()
                    .is_some_and(|b| Path::new(b).starts_with(&self.dir))
            })
            .filter_map(|c| c["id"].as_str().map(str::to_string))
            .collect()
    }

    fn load_busybox(&self) {
        let layout = self.dir.join("layout");
        let out = Command::new(self.bin_dir.join("berth-image"))
            .arg("--store")
            .arg(self.dir.join("image-store"))
            .arg("build-busybox")
            .arg(format!("oci:{}:latest", layout.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "build-busybox: {}", text(&out.stderr));
        let archive = self.dir.join("busybox.tar");
        let out = Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker-archive:{}:{IMAGE}", archive.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo copy: {}", text(&out.stderr));
        let loaded = self.ok(&["load", "-i", archive.to_str().unwrap()]);
        assert!(loaded.contains(IMAGE), "{loaded}");
        let _ = fs::remove_dir_all(self.dir.join("image-store"));
    }

    /// `podman <private options> --runtime berth ARGS`, bounded by [`TIMEOUT`].
    fn cmd(&self, args: &[&str]) -> Command {
        let d = &self.dir;
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "10", TIMEOUT])
            .arg("podman")
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--network-config-dir")
            .arg(d.join("net"))
            .args(["--storage-driver", "vfs"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .arg("--runtime")
            .arg(self.berth())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run podman")
    }

    /// Runs podman, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `podman run [--rm|-d] ULIMITS --cgroup-parent P EXTRA IMAGE CMD`.
    fn run_args<'a>(&'a self, mode: &'a str, extra: &[&'a str], cmd: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["run", mode];
        args.extend(ULIMITS);
        args.extend(["--cgroup-parent", &self.cgroup_parent]);
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        args
    }

    fn inspect(&self, id: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, id])
            .trim()
            .to_string()
    }

    /// berth's own view of a container (`berth --root R state ID`).
    fn berth_state(&self, id: &str) -> serde_json::Value {
        common::berth_state(&self.berth(), &self.berth_root(), id)
    }

    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for id in self.berth_containers() {
            left.push(format!("berth container {id}"));
        }
        for m in self.mounts() {
            left.push(format!("mount {m}"));
        }
        for pid in self.conmon_pids() {
            left.push(format!("conmon {pid}"));
        }
        for ctrl in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let parent = ctrl.path().join(&self.cgroup_parent[1..]);
            // podman's own conmon cgroup stays until the guard goes.
            for e in fs::read_dir(&parent).into_iter().flatten().flatten() {
                if e.path().is_dir() && e.file_name() != "conmon" {
                    left.push(format!("cgroup {}", e.path().display()));
                }
            }
        }
        left
    }

    fn assert_clean(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left = self.leftovers();
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            left = self.leftovers();
        }
        assert!(left.is_empty(), "leftovers: {left:?}");
    }

    fn mounts(&self) -> Vec<String> {
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .map(str::to_string)
            .collect()
    }

    /// conmon processes of this podman (their command line names our dirs).
    fn conmon_pids(&self) -> Vec<i32> {
        let needle = self.dir.to_string_lossy().into_owned();
        let mut pids = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let mut cmdline = String::new();
            let _ = fs::File::open(e.path().join("cmdline"))
                .and_then(|mut f| f.read_to_string(&mut cmdline));
            let argv0 = cmdline.split('\0').next().unwrap_or_default();
            if Path::new(argv0).file_name() == Some("conmon".as_ref()) && cmdline.contains(&needle)
            {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.run(&["network", "rm", "--force", NET]);
        for pid in self.conmon_pids() {
            // SAFETY: plain kill(2) of a conmon of ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for id in self.berth_containers() {
            let _ = Command::new(self.berth())
                .arg("--root")
                .arg(self.berth_root())
                .args(["delete", "--force", &id])
                .output();
        }
        let mut ours = self.mounts();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let c = std::ffi::CString::new(m).unwrap();
            // SAFETY: c is a valid path string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        // The parent cgroup, deepest first (podman nests one under conmon/);
        // a conmon may take a moment to leave it.
        let deadline = Instant::now() + Duration::from_secs(5);
        for ctrl in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let parent = ctrl.path().join(&self.cgroup_parent[1..]);
            while common::remove_cgroup_tree(&parent).is_err()
                && parent.exists()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // netavark turns IP forwarding on for a bridge network; put it back.
        if let Some(v) = &self.ip_forward {
            let _ = fs::write("/proc/sys/net/ipv4/ip_forward", v);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn run_reports_output_and_exit_status() {
    let Some(p) = Podman::start_if_possible() else {
        return;
    };
    let runtime = p.ok(&["info", "--format", "{{.Host.OCIRuntime.Path}}"]);
    assert_eq!(runtime.trim(), p.berth().to_str().unwrap());
    let out = p.run(&p.run_args(
        "--rm",
        &["--network", "none"],
        &["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"],
    ));
    assert_exit(&out, 3);
    assert!(
        text(&out.stdout).contains("to-stdout"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("to-stderr"),
        "{}",
        text(&out.stderr)
    );
    assert!(p.ok(&["ps", "-a", "-q"]).trim().is_empty());
    p.assert_clean();
}

#[test]
fn detached_container_exec_logs_pause_stop_rm() {
    let Some(p) = Podman::start_if_possible() else {
        return;
    };
    let script = "echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 1; done";
    let id = p
        .ok(&p.run_args(
            "-d",
            &["--name", "d1", "--network", "none"],
            &["sh", "-c", script],
        ))
        .trim()
        .to_string();
    assert_eq!(p.inspect("d1", "{{.State.Status}}"), "running");
    assert_eq!(
        p.inspect("d1", "{{.OCIRuntime}}"),
        p.berth().to_str().unwrap()
    );

    // berth runs it: its state has the container, with podman's pid.
    assert_eq!(p.berth_containers(), std::slice::from_ref(&id));
    let pid = p.inspect("d1", "{{.State.Pid}}");
    let state = p.berth_state(&id);
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(state["pid"].to_string(), pid, "{state}");
    let cg = format!("/sys/fs/cgroup/memory{}", p.cgroup_parent);
    assert!(
        fs::read_dir(&cg)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains(&id)),
        "container cgroup under {cg}"
    );

    // exec: output and exit status; exec -d.
    let out = p.run(&[
        "exec",
        "d1",
        "sh",
        "-c",
        "echo in-exec; echo err >&2; exit 5",
    ]);
    assert_exit(&out, 5);
    assert_eq!(text(&out.stdout), "in-exec\n");
    assert_eq!(text(&out.stderr), "err\n");
    p.ok(&["exec", "-d", "d1", "sleep", "1000"]);
    let top = p.ok(&["top", "d1", "args"]);
    assert!(top.lines().any(|l| l.trim() == "sleep 1000"), "{top}");

    // logs.
    let logs = p.ok(&["logs", "d1"]);
    assert_eq!(logs, "started\n");

    // pause / unpause: podman's state and berth's.
    p.ok(&["pause", "d1"]);
    assert_eq!(p.inspect("d1", "{{.State.Status}}"), "paused");
    assert_eq!(p.berth_state(&id)["status"], "paused");
    let frozen = fs::read_to_string(format!(
        "/sys/fs/cgroup/freezer{}/libpod-{id}/freezer.state",
        p.cgroup_parent
    ))
    .unwrap_or_default();
    assert_eq!(frozen.trim(), "FROZEN");
    p.ok(&["unpause", "d1"]);
    assert_eq!(p.inspect("d1", "{{.State.Status}}"), "running");
    assert_eq!(p.berth_state(&id)["status"], "running");

    // stop: SIGTERM, trapped, exit 0.
    p.ok(&["stop", "--time", "30", "d1"]);
    assert_eq!(p.inspect("d1", "{{.State.Status}}"), "exited");
    assert_eq!(p.inspect("d1", "{{.State.ExitCode}}"), "0");
    assert_eq!(p.ok(&["logs", "d1"]), "started\nbye\n");
    let out = p.run(&["exec", "d1", "true"]);
    assert!(!out.status.success(), "exec in a stopped container");

    // start again, kill (SIGKILL → 137), rm.
    p.ok(&["start", "d1"]);
    assert_eq!(p.inspect("d1", "{{.State.Status}}"), "running");
    p.ok(&["kill", "d1"]);
    p.ok(&["wait", "d1"]);
    assert_eq!(p.inspect("d1", "{{.State.ExitCode}}"), "137");
    p.ok(&["rm", "d1"]);
    assert!(p.ok(&["ps", "-a", "-q"]).trim().is_empty());
    p.assert_clean();
}

#[test]
fn rm_force_removes_a_running_container() {
    let Some(p) = Podman::start_if_possible() else {
        return;
    };
    p.ok(&p.run_args(
        "-d",
        &["--name", "r1", "--network", "none"],
        &["sleep", "1000"],
    ));
    p.ok(&["exec", "-d", "r1", "sleep", "1000"]);
    p.ok(&["rm", "--force", "--time", "0", "r1"]);
    assert!(p.ok(&["ps", "-a", "-q"]).trim().is_empty());
    p.assert_clean();
}

#[test]
fn terminal_run_and_exec() {
    let Some(p) = Podman::start_if_possible() else {
        return;
    };
    if Command::new("script").arg("--version").output().is_err() {
        berth_testsupport::skip("script", "script(1) (util-linux/bsdutils) not installed");
        return;
    }
    // podman needs a terminal on its stdin for -t: script(1) provides one.
    // The bound goes outside script: `timeout` inside the pty would put
    // podman in a background process group of that terminal, where reading
    // it (exec -i) stops podman with SIGTTIN and nothing ever ends it.
    let under_script = |args: &[&str]| -> Output {
        let cmd = p.cmd(args);
        // p.cmd is `timeout -k 10 SECONDS podman ...`: keep `podman ...`.
        assert_eq!(cmd.get_program(), "timeout");
        let line = cmd
            .get_args()
            .skip_while(|a| *a != "podman")
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        let mut script = Command::new("timeout");
        script.args(["-k", "10", TIMEOUT, "script", "-qec", &line, "/dev/null"]);
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                script.env(k, v);
            }
        }
        script.stdin(Stdio::null()).output().expect("run script")
    };
    let out = under_script(&p.run_args(
        "--rm",
        &["-t", "--network", "none"],
        &["sh", "-c", "tty; exit 2"],
    ));
    assert_exit(&out, 2);
    assert!(
        text(&out.stdout).contains("/dev/pts/0"),
        "{}",
        text(&out.stdout)
    );

    p.ok(&p.run_args(
        "-d",
        &["--name", "t1", "--network", "none"],
        &["sleep", "1000"],
    ));
    let out = under_script(&["exec", "-it", "t1", "sh", "-c", "tty; exit 6"]);
    assert_exit(&out, 6);
    assert!(
        text(&out.stdout).contains("/dev/pts/"),
        "{}",
        text(&out.stdout)
    );
    p.ok(&["rm", "--force", "--time", "0", "t1"]);
    p.assert_clean();
}

#[test]
fn bridge_host_and_none_networks() {
    let Some(p) = Podman::start_if_possible() else {
        return;
    };
    // none: only loopback.
    let out = p.ok(&p.run_args("--rm", &["--network", "none"], &["ls", "/sys/class/net"]));
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"]);

    // host: the host's interfaces.
    let out = p.ok(&p.run_args("--rm", &["--network", "host"], &["ls", "/sys/class/net"]));
    let mut host: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    let mut seen: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    seen.sort();
    assert_eq!(seen, host);

    // bridge (netavark): a private network; one container serves HTTP,
    // another fetches from it by address, container to container.
    p.ok(&[
        "network", "create", "--driver", "bridge", "--subnet", NET_SUBNET, NET,
    ]);
    let bridge = p
        .ok(&[
            "network",
            "inspect",
            "--format",
            "{{.NetworkInterface}}",
            NET,
        ])
        .trim()
        .to_string();
    assert!(!bridge.is_empty());
    p.ok(&p.run_args(
        "-d",
        &["--name", "web", "--network", NET],
        &[
            "sh",
            "-c",
            "mkdir /www && echo hello-from-berth > /www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    ));
    let ip = p.inspect(
        "web",
        &format!("{{{{(index .NetworkSettings.Networks \"{NET}\").IPAddress}}}}"),
    );
    assert!(ip.starts_with("10.89.231."), "web's address {ip:?}");
    assert!(
        Path::new("/sys/class/net").join(&bridge).exists(),
        "bridge {bridge} while web runs"
    );
    // An HTTP/1.0 GET with nc (busybox's static wget resolves through NSS
    // and crashes); httpd may not listen yet: retry in the client, bounded.
    let fetch = format!(
        "i=0; while [ $i -lt 100 ]; do \
           r=$(printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 8080) && \
           [ -n \"$r\" ] && {{ echo \"$r\"; exit 0; }}; i=$((i+1)); sleep 0.1; done; exit 1"
    );
    let out = p.run(&p.run_args("--rm", &["--network", NET], &["sh", "-c", &fetch]));
    assert_exit(&out, 0);
    let reply = text(&out.stdout);
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with("\nhello-from-berth\n"), "{reply}");
    let addr = p.ok(&p.run_args(
        "--rm",
        &["--network", NET],
        &["ip", "-4", "-o", "addr", "show", "eth0"],
    ));
    assert!(addr.contains("inet 10.89.231."), "{addr}");
    p.ok(&["rm", "--force", "--time", "0", "web"]);
    p.ok(&["network", "rm", NET]);
    assert!(
        !Path::new("/sys/class/net").join(&bridge).exists(),
        "bridge {bridge} removed with its network"
    );
    p.assert_clean();
}
