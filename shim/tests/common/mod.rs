//! A private containerd for the shim's tests: its own root, state, sockets and
//! namespace under /tmp, the shim and berth (from this target dir) on its PATH,
//! and a busybox image built by berth-image. Dropping it removes everything it
//! made, containers, mounts and cgroups included, also when a test failed.
//!
//! Which containerd: the host's (Debian 12: 1.6, config version 2), or the
//! one in the directory `BERTH_TEST_CONTAINERD` names (containerd, ctr and
//! containerd-shim-runc-v2; scripts/unstable-peers.sh unpacks 2.1 from Debian
//! unstable), with the config version its major version reads (3 for 2.x).

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "docker.io/library/busybox:latest";
pub const BERTH_RUNTIME: &str = "io.containerd.berth.v2";
/// The sandbox image of the CRI-enabled containerd (built from busybox).
pub const PAUSE_IMAGE: &str = "docker.io/library/busybox:pause";
/// The namespace containerd's CRI plugin keeps its containers and images in.
pub const CRI_NAMESPACE: &str = "k8s.io";
const SHIM_SOCKETS: &str = "/run/containerd/s";
/// Every ctr call is bounded, so a hung shim fails the test instead of hanging it.
const CTR_TIMEOUT: &str = "60";

/// One containerd at a time: the machine is small and other builds run on it.
static SERIAL: Mutex<()> = Mutex::new(());
static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct Containerd {
    pub dir: PathBuf,
    pub ns: String,
    pub bin_dir: PathBuf,
    pub address: PathBuf,
    /// With the CRI plugin: its namespace is the shared `k8s.io`, so cleanup
    /// touches only what this instance made (see [`Containerd::start_cri`]).
    pub cri: bool,
    /// The cgroup (under every controller) this instance's containers live in.
    pub cgroup_parent: String,
    child: Option<Child>,
    sockets_before: Vec<String>,
    _serial: MutexGuard<'static, ()>,
}

/// Whether these tests can run here: root, and each of `tools` answers
/// `--version`; prints why not.
pub fn root_with_tools(tools: &[&str]) -> bool {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        berth_testsupport::skip("root", "needs root");
        return false;
    }
    for tool in tools {
        if Command::new(tool)
            .arg("--version")
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            berth_testsupport::skip(
                tool,
                &format!("{tool} not installed (scripts/install-deps.sh)"),
            );
            return false;
        }
    }
    true
}

/// The containerd under test: its directory (`None`: the host's, on PATH)
/// and major version.
pub struct Flavor {
    pub dir: Option<PathBuf>,
    pub major: u32,
    /// `containerd --version`'s version field.
    pub version: String,
}

/// The containerd the tests run (`BERTH_TEST_CONTAINERD`, else the host's).
pub fn flavor() -> &'static Flavor {
    static FLAVOR: std::sync::OnceLock<Flavor> = std::sync::OnceLock::new();
    FLAVOR.get_or_init(|| {
        let dir = std::env::var_os("BERTH_TEST_CONTAINERD").map(PathBuf::from);
        let containerd = tool_in(&dir, "containerd");
        let out = Command::new(&containerd)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", containerd.display()));
        // "containerd github.com/containerd/containerd/v2 2.1.9+ds1 …"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.split_whitespace().nth(2).unwrap_or("").to_string();
        let major = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("no version in {text:?}"));
        Flavor {
            dir,
            major,
            version,
        }
    })
}

fn tool_in(dir: &Option<PathBuf>, tool: &str) -> PathBuf {
    match dir {
        Some(d) => d.join(tool),
        None => PathBuf::from(tool),
    }
}

/// `containerd` or `ctr` of the containerd under test.
pub fn containerd_tool(tool: &str) -> PathBuf {
    tool_in(&flavor().dir, tool)
}

fn can_run() -> bool {
    if let Some(dir) = &flavor().dir {
        assert!(
            dir.join("containerd").exists(),
            "BERTH_TEST_CONTAINERD={}: no containerd there (scripts/unstable-peers.sh)",
            dir.display()
        );
    }
    let containerd = containerd_tool("containerd");
    let ctr = containerd_tool("ctr");
    root_with_tools(&[containerd.to_str().unwrap(), ctr.to_str().unwrap()])
}

/// Whether this process may lower an oom_score_adj (CAP_SYS_RESOURCE, 24,
/// in its bounding set). Without it CRI's pod sandboxes (oomScoreAdj -998)
/// cannot start under any runtime unless `restrict_oom_score_adj` is set.
fn has_cap_sys_resource() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = bnd & (1 << 24) != 0;
    if !has {
        eprintln!("note: no CAP_SYS_RESOURCE here: CRI runs with restrict_oom_score_adj = true");
    }
    has
}

pub fn bin_dir() -> PathBuf {
    let shim = PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-berth-v2"));
    let dir = shim.parent().unwrap().to_path_buf();
    for b in ["berth", "berth-image"] {
        assert!(
            dir.join(b).exists(),
            "{} missing: build it into the same target dir first (cargo build -p berth -p berth-image)",
            dir.join(b).display()
        );
    }
    dir
}

/// containerd's PATH: the shim and berth first, then the containerd under test
/// (its runc shim and runc), then the directory of `BERTH_CRIU` (the CRIU
/// scripts/criu.sh builds, for checkpoint/restore), then the rest.
fn path_env(bin_dir: &Path) -> String {
    let mut path = bin_dir.display().to_string();
    if let Some(d) = &flavor().dir {
        path = format!("{path}:{}", d.display());
    }
    if let Some(d) = std::env::var("BERTH_CRIU")
        .ok()
        .and_then(|c| Path::new(&c).parent().map(Path::to_path_buf))
    {
        path = format!("{path}:{}", d.display());
    }
    format!(
        "{path}:{}",
        std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
    )
}

impl Containerd {
    /// [`Containerd::start`] where the tests can run, else `None` (skipped).
    pub fn start_if_possible() -> Option<Containerd> {
        can_run().then(Containerd::start)
    }

    pub fn start() -> Containerd {
        Self::start_with(false, false)
    }

    /// [`Containerd::start`] at debug log level (containerd then starts its
    /// shims with `-debug`, and their debug lines reach containerd's log),
    /// where the tests can run.
    pub fn start_debug_if_possible() -> Option<Containerd> {
        can_run().then(|| Self::start_with(false, true))
    }

    /// [`Containerd::start_cri`] where the tests can run, else `None` (skipped).
    pub fn start_cri_if_possible() -> Option<Containerd> {
        can_run().then(Containerd::start_cri)
    }

    /// A containerd with its CRI plugin on [`Containerd::address`]: runtime
    /// handler `berth` (io.containerd.berth.v2; the default stays runc),
    /// sandbox image [`PAUSE_IMAGE`], no stream server port of its own, CNI
    /// configs from `<dir>/cni` (none: pods use the host network).
    /// The busybox and pause images are in the `k8s.io` namespace.
    pub fn start_cri() -> Containerd {
        Self::start_with(true, false)
    }

    fn start_with(cri: bool, debug: bool) -> Containerd {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id());
        let dir = PathBuf::from(format!("/tmp/berth-shim-test-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let address = dir.join("containerd.sock");
        let ns = format!("berth-shim-test-{tag}");
        let mut c = Containerd {
            ns: if cri {
                CRI_NAMESPACE.into()
            } else {
                ns.clone()
            },
            bin_dir: bin_dir(),
            address: address.clone(),
            cri,
            cgroup_parent: ns,
            child: None,
            sockets_before: socket_names(),
            dir,
            _serial: serial,
        };
        if cri {
            fs::create_dir_all(c.dir.join("cni")).unwrap();
        }
        let config = c.dir.join("config.toml");
        let restrict_oom = cri && !has_cap_sys_resource();
        let mut text = c.config_text(restrict_oom);
        if debug {
            text.push_str("[debug]\n  level = \"debug\"\n");
        }
        fs::write(&config, text).unwrap();
        let log = fs::File::create(c.dir.join("containerd.log")).unwrap();
        let child = Command::new(containerd_tool("containerd"))
            .arg("--config")
            .arg(&config)
            .env("PATH", path_env(&c.bin_dir))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        c.child = Some(child);
        c.wait_ready();
        c.import_busybox();
        c
    }

    /// containerd's config: private root, state and sockets; with CRI a
    /// `berth` runtime handler (the default stays runc), the sandbox image
    /// [`PAUSE_IMAGE`], no stream server port of its own and CNI configs from
    /// `<dir>/cni`; without CRI its plugins disabled. Config version 2 for
    /// containerd 1.x, 3 for 2.x (where the CRI settings moved to the
    /// `io.containerd.cri.v1.runtime` and `.images` plugins).
    fn config_text(&self, restrict_oom: bool) -> String {
        let d = self.dir.display();
        let a = self.address.display();
        // Top-level keys (disabled_plugins) go before the first table.
        let head = |version: u32, disabled: &[&str]| {
            let disabled: Vec<String> = disabled.iter().map(|p| format!("\"{p}\"")).collect();
            format!(
                "version = {version}\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 disabled_plugins = [{}]\n\
                 [grpc]\n  address = \"{a}\"\n[ttrpc]\n  address = \"{a}.ttrpc\"\n",
                disabled.join(", ")
            )
        };
        if flavor().major < 2 {
            if self.cri {
                let plugins = format!(
                    "[plugins.\"io.containerd.grpc.v1.cri\"]\n\
                     \x20 sandbox_image = \"{PAUSE_IMAGE}\"\n\
                     \x20 stream_server_address = \"127.0.0.1\"\n\
                     \x20 stream_server_port = \"0\"\n\
                     \x20 restrict_oom_score_adj = {restrict_oom}\n\
                     \x20 [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
                     \x20   snapshotter = \"overlayfs\"\n\
                     \x20   default_runtime_name = \"runc\"\n\
                     \x20   [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n\
                     \x20     runtime_type = \"io.containerd.runc.v2\"\n\
                     \x20   [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.berth]\n\
                     \x20     runtime_type = \"{BERTH_RUNTIME}\"\n\
                     \x20 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
                     \x20   bin_dir = \"/usr/lib/cni\"\n\
                     \x20   conf_dir = \"{d}/cni\"\n"
                );
                return format!("{}{plugins}", head(2, &[]));
            }
            return head(2, &["io.containerd.grpc.v1.cri"]);
        }
        // 2.x: NRI is on by default and would listen on the machine-wide
        // /var/run/nri/nri.sock; the opt plugin's directory is made private.
        let mut disabled = vec!["io.containerd.nri.v1.nri"];
        if !self.cri {
            disabled.push("io.containerd.grpc.v1.cri");
        }
        let mut text = format!(
            "{}[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n",
            head(3, &disabled)
        );
        if self.cri {
            text.push_str(&format!(
                "[plugins.\"io.containerd.grpc.v1.cri\"]\n\
                 \x20 stream_server_address = \"127.0.0.1\"\n\
                 \x20 stream_server_port = \"0\"\n\
                 [plugins.\"io.containerd.cri.v1.images\"]\n\
                 \x20 snapshotter = \"overlayfs\"\n\
                 \x20 [plugins.\"io.containerd.cri.v1.images\".pinned_images]\n\
                 \x20   sandbox = \"{PAUSE_IMAGE}\"\n\
                 [plugins.\"io.containerd.cri.v1.runtime\"]\n\
                 \x20 restrict_oom_score_adj = {restrict_oom}\n\
                 \x20 [plugins.\"io.containerd.cri.v1.runtime\".containerd]\n\
                 \x20   default_runtime_name = \"runc\"\n\
                 \x20   [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc]\n\
                 \x20     runtime_type = \"io.containerd.runc.v2\"\n\
                 \x20   [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.berth]\n\
                 \x20     runtime_type = \"{BERTH_RUNTIME}\"\n\
                 \x20 [plugins.\"io.containerd.cri.v1.runtime\".cni]\n\
                 \x20   bin_dirs = [\"/usr/lib/cni\"]\n\
                 \x20   conf_dir = \"{d}/cni\"\n"
            ));
        }
        text
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.address.exists() && self.ctr(&["version"]).status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not come up; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The config file containerd runs with.
    pub fn config(&self) -> String {
        fs::read_to_string(self.dir.join("config.toml")).unwrap_or_default()
    }

    fn import_busybox(&self) {
        let layout = self.dir.join("layout");
        let store = self.dir.join("image-store");
        let out = Command::new(self.bin_dir.join("berth-image"))
            .arg("--store")
            .arg(&store)
            .arg("build-busybox")
            .arg(format!("oci:{}:latest", layout.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "build-busybox: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if self.cri {
            // The pod sandbox ("pause") image: busybox whose entrypoint sleeps.
            let out = Command::new("umoci")
                .arg("config")
                .arg("--image")
                .arg(format!("{}:latest", layout.display()))
                .args(["--tag", "pause", "--config.entrypoint", "/bin/sleep"])
                .args(["--config.cmd", "2147483647"])
                .output()
                .expect("run umoci (scripts/install-deps.sh)");
            assert!(
                out.status.success(),
                "umoci config: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let tar = self.dir.join("busybox.tar");
        let out = Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tar: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.ctr_ok(&[
            "images",
            "import",
            "--base-name",
            "docker.io/library/busybox",
            tar.to_str().unwrap(),
        ]);
        let _ = fs::remove_dir_all(&store);
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// The last `n` lines of containerd's log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log(), n)
    }

    /// `ctr --address A -n NS ARGS` with stdin from /dev/null.
    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "10", CTR_TIMEOUT])
            .arg(containerd_tool("ctr"))
            .arg("--address")
            .arg(&self.address)
            .args(["-n", &self.ns])
            .args(args)
            .env("PATH", path_env(&self.bin_dir))
            .stdin(Stdio::null());
        cmd
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().expect("run ctr")
    }

    /// Runs ctr, asserts success, returns stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}):\nstdout: {}\nstderr: {}\ncontainerd log tail:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 30)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A long-running ctr (e.g. `events`); see also [`Containerd::stream_ctr`].
    pub fn spawn_ctr(&self, args: &[&str]) -> Child {
        self.ctr_cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ctr")
    }

    /// A long-running ctr whose output is collected as it comes.
    pub fn stream_ctr(&self, args: &[&str]) -> Streamed {
        Streamed::new(self.spawn_ctr(args))
    }

    /// `ctr events`, returned once it is subscribed: it has printed a
    /// `/namespaces/update` event that a label on this instance's namespace
    /// published after it started.
    pub fn subscribe_events(&self) -> Streamed {
        let events = self.stream_ctr(&["events"]);
        // The namespace exists once the image is in it; creating it again fails harmlessly.
        let _ = self.ctr(&["namespaces", "create", &self.ns]);
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in 1.. {
            self.ctr_ok(&[
                "namespaces",
                "label",
                &self.ns,
                &format!("berth-test-probe={n}"),
            ]);
            if events.has_within(Duration::from_millis(200), |o| {
                o.contains("/namespaces/update")
            }) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "ctr events never printed a namespace update: {}",
                events.output()
            );
        }
        events
    }

    /// `(pid, status)` of a task from `ctr task ls`.
    pub fn task(&self, id: &str) -> Option<(u32, String)> {
        let out = self.ctr_ok(&["task", "ls"]);
        out.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    /// Polls until the task has `status` (events are asynchronous).
    pub fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let t = self.task(id);
            if t.as_ref().map(|(_, s)| s.as_str()) == Some(status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} never reached {status}: {t:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a detached container with the berth shim.
    pub fn run_detached(&self, id: &str, extra: &[&str], cmd: &[&str]) {
        let mut args = vec!["run", "-d", "--runtime", BERTH_RUNTIME];
        args.extend_from_slice(extra);
        args.extend([IMAGE, id]);
        args.extend_from_slice(cmd);
        self.ctr_ok(&args);
    }

    /// `ctr run --rm` of `cmd` with the berth shim, to completion.
    pub fn run_rm(&self, id: &str, extra: &[&str], cmd: &[&str]) -> Output {
        let mut args = vec!["run", "--rm", "--runtime", BERTH_RUNTIME];
        args.extend_from_slice(extra);
        args.extend([IMAGE, id]);
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }

    /// Kills (SIGKILL) and deletes a task and its container.
    pub fn remove(&self, id: &str) {
        let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
        let _ = self.ctr(&["task", "delete", "--force", id]);
        let _ = self.ctr(&["containers", "rm", id]);
    }

    /// The shim processes serving this containerd (`-address` is ours).
    pub fn shim_pids(&self) -> Vec<u32> {
        processes_with(&format!("-address\0{}\0", self.address.display()))
    }

    /// berth's state directory for this namespace (the shim's default root).
    pub fn berth_root(&self) -> PathBuf {
        Path::new("/run/containerd/berth").join(&self.ns)
    }

    /// Everything a finished container could leave behind, as a list of
    /// leftovers. With CRI, berth's state root is shared by namespace: only
    /// the containers in `ids` count there.
    pub fn leftovers_of(&self, ids: &[String]) -> Vec<String> {
        let mut left = Vec::new();
        for root in [
            self.berth_root(),
            Path::new("/run/containerd/runc").join(&self.ns),
        ] {
            for e in fs::read_dir(&root).into_iter().flatten().flatten() {
                if !self.cri || ids.iter().any(|id| e.file_name() == id.as_str()) {
                    left.push(format!("berth state {}", e.path().display()));
                }
            }
        }
        for ctrl in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            // The pods' parent cgroup stays; a container's must not.
            let parent = ctrl.path().join(&self.cgroup_parent);
            for e in fs::read_dir(&parent).into_iter().flatten().flatten() {
                if self.cri && e.path().is_dir() {
                    left.push(format!("cgroup {}", e.path().display()));
                }
            }
        }
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let state = self.dir.join("state");
        for m in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
            if Path::new(m).starts_with(&state) {
                left.push(format!("mount {m}"));
            }
        }
        for pid in self.shim_pids() {
            left.push(format!("shim process {pid}"));
        }
        left
    }

    /// [`Containerd::leftovers_of`] every container of this instance.
    pub fn leftovers(&self) -> Vec<String> {
        self.leftovers_of(&[])
    }
}

/// A spawned ctr (e.g. `events`, `task attach`) whose stdout a thread collects,
/// so a test can wait for what it prints.
pub struct Streamed {
    child: Child,
    out: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Streamed {
    fn new(mut child: Child) -> Self {
        let out = Arc::new(Mutex::new(String::new()));
        let mut stdout = child.stdout.take().expect("piped stdout");
        let sink = out.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Streamed {
            child,
            out,
            reader: Some(reader),
        }
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Whether `f` holds for the output within `limit`.
    pub fn has_within(&self, limit: Duration, f: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if f(&self.out.lock().unwrap()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (up to 30 s, else the test fails) until `f` holds for the output.
    pub fn wait_until(&self, what: &str, f: impl Fn(&str) -> bool) {
        assert!(
            self.has_within(Duration::from_secs(30), f),
            "timed out waiting for {what} in: {}",
            self.output()
        );
    }

    /// Stops it (SIGTERM reaches ctr through timeout(1)); returns its output.
    pub fn stop(mut self) -> String {
        kill(self.child.id(), libc::SIGTERM);
        self.finish_inner()
    }

    /// Waits for it to exit by itself; returns its exit status and output.
    pub fn finish(mut self) -> (std::process::ExitStatus, String, String) {
        let status = self.child.wait().expect("wait for ctr");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status, self.finish_inner(), err)
    }

    fn finish_inner(&mut self) -> String {
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.output()
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        if self.reader.is_some() {
            kill(self.child.id(), libc::SIGTERM);
            self.finish_inner();
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn socket_names() -> Vec<String> {
    fs::read_dir(SHIM_SOCKETS)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Pids whose NUL-separated command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let mut cmdline = String::new();
        if fs::File::open(e.path().join("cmdline"))
            .and_then(|mut f| f.read_to_string(&mut cmdline))
            .is_ok()
            && cmdline.contains(needle)
            && !cmdline.is_empty()
        {
            pids.push(pid);
        }
    }
    pids
}

fn kill(pid: u32, sig: i32) {
    // SAFETY: plain kill(2) on a pid we found.
    unsafe { libc::kill(pid as i32, sig) };
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test's output is shown only when it failed.
            eprintln!(
                "containerd {} log (last 300 lines):\n{}",
                flavor().version,
                tail(&self.log(), 300)
            );
        }
        // Containers first, through containerd, while it runs.
        let ids =
            String::from_utf8_lossy(&self.ctr(&["containers", "ls", "-q"]).stdout).into_owned();
        let ids: Vec<&str> = ids.lines().filter(|l| !l.is_empty()).collect();
        for id in &ids {
            self.remove(id);
        }
        if let Some(mut child) = self.child.take() {
            kill(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in self.shim_pids() {
            kill(pid, libc::SIGKILL);
        }
        // Containers containerd could not remove: berth itself.
        for root in [
            self.berth_root(),
            Path::new("/run/containerd/runc").join(&self.ns),
        ] {
            for e in fs::read_dir(&root).into_iter().flatten().flatten() {
                // The CRI namespace's root is shared: only our containers.
                if self.cri && !ids.iter().any(|id| e.file_name() == *id) {
                    continue;
                }
                let _ = Command::new(self.bin_dir.join("berth"))
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force"])
                    .arg(e.file_name())
                    .output();
            }
            if self.cri {
                let _ = fs::remove_dir(&root);
            } else {
                let _ = fs::remove_dir_all(&root);
            }
        }
        // Mounts under our directory, deepest first.
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let c = std::ffi::CString::new(m).unwrap();
            // SAFETY: c is a valid path string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        // The namespace's parent cgroup (ctr puts containers in
        // /<namespace>/<id>; the CRI tests' pods use /<cgroup_parent>).
        for ctrl in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = remove_cgroup_tree(&ctrl.path().join(&self.cgroup_parent));
        }
        // Sockets of shims that were killed.
        for name in socket_names() {
            let path = Path::new(SHIM_SOCKETS).join(&name);
            let is_socket = fs::symlink_metadata(&path)
                .map(|m| m.file_type().is_socket())
                .unwrap_or(false);
            if !self.sockets_before.contains(&name)
                && is_socket
                && UnixStream::connect(&path).is_err()
            {
                let _ = fs::remove_file(&path);
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Remove a cgroup directory and every cgroup below it (deepest first).
pub fn remove_cgroup_tree(dir: &Path) -> std::io::Result<()> {
    for e in fs::read_dir(dir)?.flatten() {
        if e.file_type()?.is_dir() {
            let _ = remove_cgroup_tree(&e.path());
        }
    }
    fs::remove_dir(dir)
}

/// berth's own view of a container (`BERTH --root ROOT state ID`).
pub fn berth_state(berth: &Path, root: &Path, id: &str) -> serde_json::Value {
    let out = Command::new(berth)
        .arg("--root")
        .arg(root)
        .args(["state", id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "berth state {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
