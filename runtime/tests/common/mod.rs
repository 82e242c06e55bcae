//! Shared harness for the integration tests that run real containers as root.
//!
//! * [`Sandbox`]: one test's world under `/tmp/berth-rtests/`: a unique `--root`
//!   state directory, a bundle (busybox rootfs + `berth spec` config edited as
//!   JSON), a host directory bind-mounted at `/host` in the container, and a tag
//!   (an environment variable) that marks every process the test starts.
//! * [`Container`]: a guard whose `Drop` force-deletes the container.
//! * [`Baseline`]: the "no leftovers" checker (mounts, cgroups, state dir,
//!   processes).
//!
//! Every berth invocation writes its stdout/stderr to files (never pipes, so a
//! container that inherits them cannot block the test) and is bounded by a
//! timeout.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Every test directory lives here (the security tests rely on host paths under /tmp).
pub const BASE: &str = "/tmp/berth-rtests";
/// The environment variable that marks the processes of one test.
pub const TAG_VAR: &str = "BERTH_TEST_TAG";
/// How long any single berth command may take before the test gives up on it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default bound for polling a condition.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(10);

pub fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Poll `f` every few milliseconds until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The result of one berth command.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// Panic (with everything berth printed) unless the command succeeded.
    #[track_caller]
    pub fn expect_ok(&self) -> &Out {
        assert!(
            self.ok(),
            "`{}` failed with {}:\nstdout: {}\nstderr: {}",
            self.what,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panic unless the command failed, and its stderr names every one of `needles`.
    #[track_caller]
    pub fn expect_fail(&self, needles: &[&str]) -> &Out {
        assert!(
            !self.ok(),
            "`{}` should have failed but exited 0:\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout,
            self.stderr
        );
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "`{}` failed, but its error does not mention {n:?}:\nstderr: {}",
                self.what,
                self.stderr
            );
        }
        self
    }
}

fn exit_code(s: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// Wait for a child with a bound; kill it and panic when the bound passes.
pub fn wait_child(child: &mut Child, timeout: Duration, what: &str) -> i32 {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    match status {
        Some(s) => exit_code(s),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not finish within {timeout:?}");
        }
    }
}

/// A config.json being edited, plus the bundle directory it belongs to.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    /// A bundle at `dir`: rootfs with /bin/busybox and its applets, the config
    /// from `berth spec`, edited: no terminal, writable root, the test's tag in
    /// process.env, `host` bind-mounted read-write at /host.
    pub fn create(dir: &Path, host: &Path, tag: &str) -> Bundle {
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("copy /bin/busybox (install busybox-static)");
        for applet in busybox_applets() {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
        for d in ["proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        let out = Command::new(berth_bin())
            .args(["spec", "--bundle"])
            .arg(dir)
            .output()
            .expect("run berth spec");
        assert!(
            out.status.success(),
            "berth spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let mut config: Value = serde_json::from_str(&text).unwrap();
        config["process"]["terminal"] = json!(false);
        config["root"]["readonly"] = json!(false);
        config["process"]["args"] = json!(["true"]);
        config["process"]["env"] = json!(["PATH=/bin", format!("{TAG_VAR}={tag}")]);
        config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/host", "type": "bind", "source": host, "options": ["rbind", "rw"]}));
        let b = Bundle {
            dir: dir.to_path_buf(),
            config,
        };
        b.save();
        b
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Bundle {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// process.args = `sh -c script`.
    pub fn sh(&mut self, script: &str) -> &mut Bundle {
        self.args(&["sh", "-c", script])
    }

    /// Set a value by JSON pointer, creating missing objects on the way.
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Bundle {
        let mut cur = &mut self.config;
        let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                cur[*p] = value;
                break;
            }
            if cur.get(*p).is_none() || cur[*p].is_null() {
                cur[*p] = json!({});
            }
            cur = &mut cur[*p];
        }
        self
    }

    /// Drop the `typ` namespace ("pid", "network", ...) from linux.namespaces:
    /// the container then shares the host's.
    pub fn without_namespace(&mut self, typ: &str) -> &mut Bundle {
        if let Some(ns) = self.config["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != typ);
        }
        self
    }

    pub fn add_mount(&mut self, m: Value) -> &mut Bundle {
        self.config["mounts"].as_array_mut().unwrap().push(m);
        self
    }

    /// Write config.json.
    pub fn save(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }
}

fn busybox_applets() -> Vec<String> {
    let out = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty() && !l.contains('/'))
        .collect()
}

/// One test's world. Drop force-deletes every container under its root, kills
/// any process still carrying its tag, unmounts anything left under its
/// directory and removes it.
pub struct Sandbox {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub host: PathBuf,
    pub tag: String,
    pub bundle: Bundle,
    ids: std::sync::Mutex<Vec<String>>,
    seq: AtomicUsize,
}

impl Sandbox {
    pub fn new(prefix: &str) -> Sandbox {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests run real containers and need root"
        );
        std::fs::create_dir_all(BASE).unwrap();
        let tag = unique(prefix);
        let dir = PathBuf::from(BASE).join(&tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let host = dir.join("host");
        std::fs::create_dir(&host).unwrap();
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o777)).unwrap();
        let bundle = Bundle::create(&dir.join("bundle"), &host, &tag);
        Sandbox {
            root: dir.join("root"),
            dir,
            host,
            tag,
            bundle,
            ids: std::sync::Mutex::new(Vec::new()),
            seq: AtomicUsize::new(0),
        }
    }

    /// Another bundle in this sandbox (same host dir and tag).
    pub fn new_bundle(&self, name: &str) -> Bundle {
        Bundle::create(&self.dir.join(name), &self.host, &self.tag)
    }

    /// A container id unique to this test, remembered for cleanup.
    pub fn id(&self, name: &str) -> String {
        let id = format!("{name}-{}", self.tag);
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// A `berth --root <root> ARGS` command, tagged, stdin from /dev/null.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .env(TAG_VAR, &self.tag)
            .stdin(Stdio::null());
        c
    }

    /// Run a berth command to completion (bounded), capturing its output in files.
    pub fn run_cmd(&self, mut cmd: Command, what: &str) -> Out {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let out_path = self.dir.join(format!("out-{n}"));
        let err_path = self.dir.join(format!("err-{n}"));
        cmd.stdout(std::fs::File::create(&out_path).unwrap());
        cmd.stderr(std::fs::File::create(&err_path).unwrap());
        let mut child = cmd.spawn().expect("spawn berth");
        let code = wait_child(&mut child, COMMAND_TIMEOUT, what);
        Out {
            code,
            stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
            what: what.to_string(),
        }
    }

    pub fn berth(&self, args: &[&str]) -> Out {
        self.run_cmd(self.cmd(args), &format!("berth {}", args.join(" ")))
    }

    pub fn bundle_arg(&self) -> String {
        self.bundle.dir.display().to_string()
    }

    /// `berth create --bundle <main bundle> ID` (config saved first).
    pub fn create(&self, id: &str) -> Out {
        self.bundle.save();
        self.berth(&["create", "--bundle", &self.bundle_arg(), id])
    }

    /// create, asserting success; returns the guard.
    #[track_caller]
    pub fn created(&self, id: &str) -> Container<'_> {
        self.create(id).expect_ok();
        Container {
            sb: self,
            id: id.to_string(),
        }
    }

    /// create + start, asserting success.
    #[track_caller]
    pub fn started(&self, id: &str) -> Container<'_> {
        let c = self.created(id);
        self.berth(&["start", id]).expect_ok();
        c
    }

    /// A guard for a container that some other command (run -d, ...) made.
    pub fn guard(&self, id: &str) -> Container<'_> {
        Container {
            sb: self,
            id: id.to_string(),
        }
    }

    /// `berth state ID` as JSON, or None when the command fails.
    pub fn state(&self, id: &str) -> Option<Value> {
        let o = self.berth(&["state", id]);
        if !o.ok() {
            return None;
        }
        Some(
            serde_json::from_str(&o.stdout)
                .unwrap_or_else(|e| panic!("berth state printed invalid JSON ({e}): {}", o.stdout)),
        )
    }

    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        let s = self
            .state(id)
            .unwrap_or_else(|| panic!("berth state {id} failed"));
        s["status"].as_str().unwrap_or_default().to_string()
    }

    /// Poll `berth state` until the status is `want` (bounded).
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        let mut last = String::new();
        let ok = wait_until(POLL_TIMEOUT, || {
            last = self
                .state(id)
                .map(|s| s["status"].as_str().unwrap_or_default().to_string())
                .unwrap_or_else(|| "<no state>".into());
            last == want
        });
        assert!(
            ok,
            "container {id} did not become {want} within {POLL_TIMEOUT:?} (last status: {last})"
        );
    }

    /// Poll until the host file exists and contains `needle`; returns its content.
    #[track_caller]
    pub fn wait_file(&self, path: &Path, needle: &str) -> String {
        let mut content = String::new();
        let ok = wait_until(POLL_TIMEOUT, || {
            content = std::fs::read_to_string(path).unwrap_or_default();
            content.contains(needle)
        });
        assert!(
            ok,
            "{} did not come to contain {needle:?} within {POLL_TIMEOUT:?} (content: {content:?})",
            path.display()
        );
        content
    }

    /// Take the "no leftovers" baseline for container `id`.
    pub fn baseline(&self, id: &str) -> Baseline {
        Baseline {
            id: id.to_string(),
            mount_lines: mountinfo_lines(),
            cgroups: cgroup_dirs(id),
            state_dir: self.root.join(id).exists(),
        }
    }

    /// Pids of live processes carrying this test's tag (not zombies).
    pub fn tagged_processes(&self) -> Vec<i32> {
        tagged_processes(&self.tag, &self.root)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Force-delete every container berth still knows about.
        let mut ids: Vec<String> = self.ids.lock().map(|v| v.clone()).unwrap_or_default();
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            ids.extend(
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string)),
            );
        }
        ids.sort();
        ids.dedup();
        for id in &ids {
            let mut c = self.cmd(&["delete", "--force", id]);
            c.stdout(Stdio::null()).stderr(Stdio::null());
            if let Ok(mut child) = c.spawn() {
                let mut done = false;
                wait_until(COMMAND_TIMEOUT, || {
                    done = matches!(child.try_wait(), Ok(Some(_)));
                    done
                });
                if !done {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        // Whatever berth failed to clean: processes, cgroups, mounts.
        for pid in self.tagged_processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        wait_until(Duration::from_secs(5), || {
            self.tagged_processes().is_empty()
        });
        for id in &ids {
            for d in cgroup_dirs(id) {
                let _ = std::fs::remove_dir(&d);
            }
        }
        let prefix = format!("{}/", self.dir.display());
        let mut mps: Vec<String> = mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mps {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A container that is force-deleted when the guard goes away.
pub struct Container<'a> {
    pub sb: &'a Sandbox,
    pub id: String,
}

impl Container<'_> {
    pub fn state(&self) -> Value {
        self.sb
            .state(&self.id)
            .unwrap_or_else(|| panic!("berth state {} failed", self.id))
    }

    pub fn pid(&self) -> i32 {
        self.state()["pid"].as_i64().unwrap_or(0) as i32
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let mut c = self.sb.cmd(&["delete", "--force", &self.id]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        if let Ok(mut child) = c.spawn() {
            let mut done = false;
            wait_until(COMMAND_TIMEOUT, || {
                done = matches!(child.try_wait(), Ok(Some(_)));
                done
            });
            if !done {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

pub fn mountinfo_lines() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Mount points (field 5) of the test process's mount namespace, unescaped.
pub fn mount_points() -> Vec<String> {
    mountinfo_lines()
        .iter()
        .filter_map(|l| {
            l.split(' ').nth(4).map(|m| {
                m.replace("\\040", " ")
                    .replace("\\011", "\t")
                    .replace("\\012", "\n")
                    .replace("\\134", "\\")
            })
        })
        .collect()
}

/// The cgroup directories berth uses for `id` that exist now:
/// `/sys/fs/cgroup/<hierarchy>/berth/<id>` for every v1 hierarchy and unified.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let p = e.path().join("berth").join(id);
            if p.is_dir() {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// Live (non-zombie) processes whose environment holds `TAG_VAR=tag` or whose
/// command line names the state root.
pub fn tagged_processes(tag: &str, root: &Path) -> Vec<i32> {
    let needle = format!("{TAG_VAR}={tag}");
    let root_s = root.display().to_string();
    let me = std::process::id() as i32;
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|i| stat.get(i + 2..i + 3))
            .unwrap_or("");
        if state == "Z" || state == "X" || stat.is_empty() {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let in_env = environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes());
        let in_cmd = String::from_utf8_lossy(&cmdline).contains(&root_s);
        if in_env || in_cmd {
            v.push(pid);
        }
    }
    v
}

/// What the host looked like before a container was made.
pub struct Baseline {
    pub id: String,
    pub mount_lines: Vec<String>,
    pub cgroups: Vec<PathBuf>,
    pub state_dir: bool,
}

impl Baseline {
    /// Assert the host is back to this baseline: same number of mounts (and
    /// none under the sandbox), no cgroup directories, no state directory, no
    /// process of the test. Polls briefly, since a killed process may take a
    /// moment to go away.
    #[track_caller]
    pub fn assert_clean(&self, sb: &Sandbox) {
        let mut problems = Vec::new();
        let clean = wait_until(Duration::from_secs(5), || {
            problems = self.problems(sb);
            problems.is_empty()
        });
        assert!(
            clean,
            "leftovers after container {}:\n{}",
            self.id,
            problems.join("\n")
        );
    }

    fn problems(&self, sb: &Sandbox) -> Vec<String> {
        let mut p = Vec::new();
        let now = mountinfo_lines();
        if now.len() != self.mount_lines.len() {
            let added: Vec<&String> = now
                .iter()
                .filter(|l| !self.mount_lines.contains(l))
                .collect();
            let removed: Vec<&String> = self
                .mount_lines
                .iter()
                .filter(|l| !now.contains(l))
                .collect();
            p.push(format!(
                "mountinfo has {} lines, baseline {}; added {added:?}; removed {removed:?}",
                now.len(),
                self.mount_lines.len()
            ));
        }
        let prefix = format!("{}/", sb.dir.display());
        let ours: Vec<String> = mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&prefix))
            .collect();
        if !ours.is_empty() {
            p.push(format!("mounts left under the sandbox: {ours:?}"));
        }
        let cg = cgroup_dirs(&self.id);
        if cg != self.cgroups {
            p.push(format!(
                "cgroup directories {cg:?} (baseline {:?})",
                self.cgroups
            ));
        }
        let sd = sb.root.join(&self.id).exists();
        if sd != self.state_dir {
            p.push(format!(
                "state directory {} exists: {sd} (baseline {})",
                sb.root.join(&self.id).display(),
                self.state_dir
            ));
        }
        let procs = sb.tagged_processes();
        if !procs.is_empty() {
            let desc: Vec<String> = procs
                .iter()
                .map(|pid| {
                    format!(
                        "{pid}: {}",
                        String::from_utf8_lossy(
                            &std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
                        )
                        .replace('\0', " ")
                    )
                })
                .collect();
            p.push(format!("processes left: {desc:?}"));
        }
        p
    }
}

/// Does a process exist (and is not a zombie)?
pub fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 2..i + 3))
        .unwrap_or("");
    !stat.is_empty() && state != "Z" && state != "X"
}

/// Spawn a command whose stdout/stderr go to files in the sandbox; returns the
/// child and the two paths.
pub fn spawn_to_files(sb: &Sandbox, mut cmd: Command, name: &str) -> (Child, PathBuf, PathBuf) {
    let out = sb.dir.join(format!("{name}.out"));
    let err = sb.dir.join(format!("{name}.err"));
    cmd.stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    (cmd.spawn().expect("spawn"), out, err)
}

/// A close-on-exec duplicate of `fd` numbered 200 or above, so it cannot
/// collide with the low numbers a child is given.
pub fn high_fd(fd: &impl std::os::fd::AsRawFd) -> std::os::fd::OwnedFd {
    // SAFETY: plain fcntl on a valid fd; the result is a fresh fd we own.
    unsafe {
        let n = libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200);
        assert!(
            n >= 0,
            "F_DUPFD_CLOEXEC: {}",
            std::io::Error::last_os_error()
        );
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n)
    }
}

/// Make `fd` available as `target` (without close-on-exec) in the child of `cmd`.
pub fn pass_fd(cmd: &mut Command, fd: i32, target: i32) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let flags = libc::fcntl(target, libc::F_GETFD);
            libc::fcntl(target, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            Ok(())
        });
    }
}

// Helpers for the fault-injection (faults.rs) and soak (soak.rs) tests.

/// The test process's open fds and what each points to (`/proc/self/fd`).
pub fn open_fds() -> std::collections::BTreeMap<i32, String> {
    let mut m = std::collections::BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        for e in rd.flatten() {
            if let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                let target = std::fs::read_link(e.path())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                m.insert(fd, target);
            }
        }
    }
    // The read_dir handle itself was listed too; it is closed now.
    m.retain(|fd, _| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok());
    m
}

/// Zombie children of the test process (state Z, ppid = us).
pub fn zombie_children() -> Vec<i32> {
    let me = std::process::id() as i64;
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
            continue;
        };
        let mut f = rest.split(' ');
        let state = f.next().unwrap_or("");
        let ppid: i64 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state == "Z" && ppid == me {
            v.push(pid);
        }
    }
    v
}

/// Every container cgroup directory berth has now: `/sys/fs/cgroup/*/berth/*`.
pub fn berth_cgroup_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            if let Ok(inner) = std::fs::read_dir(e.path().join("berth")) {
                v.extend(
                    inner
                        .flatten()
                        .filter(|c| c.path().is_dir())
                        .map(|c| c.path()),
                );
            }
        }
    }
    v.sort();
    v
}

/// What [`Baseline::assert_clean`] would report right now (empty: clean), without polling.
pub fn leftovers(base: &Baseline, sb: &Sandbox) -> Vec<String> {
    base.problems(sb)
}

/// Pids in the container's cgroup (the union over every hierarchy).
pub fn cgroup_pids(id: &str) -> Vec<i32> {
    let mut v: Vec<i32> = cgroup_dirs(id)
        .iter()
        .flat_map(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The value of a `Key:\tvalue` line of /proc/self/status-like output.
#[track_caller]
pub fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}
