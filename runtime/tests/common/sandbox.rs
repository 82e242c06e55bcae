//! One test's world ([`Sandbox`]) and the container guard ([`Container`]).

use super::*;

/// One test's world. Drop force-deletes every container under its root, kills
/// any process still carrying its tag, unmounts anything left under its
/// directory and removes it.
pub struct Sandbox {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub host: PathBuf,
    pub tag: String,
    pub bundle: Bundle,
    /// The runtime binary the test's commands run (cleanup always uses the
    /// build's own, [`berth_bin`]).
    pub bin: PathBuf,
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
            bin: PathBuf::from(berth_bin()),
            ids: std::sync::Mutex::new(Vec::new()),
            seq: AtomicUsize::new(0),
        }
    }

    /// A sandbox whose commands run a private copy of the berth binary
    /// (`<dir>/bin/berth`): attacks on the runtime binary aim at the copy.
    pub fn with_private_binary(prefix: &str) -> Sandbox {
        let mut sb = Sandbox::new(prefix);
        let bin = sb.dir.join("bin");
        std::fs::create_dir(&bin).unwrap();
        let copy = bin.join("berth");
        std::fs::copy(berth_bin(), &copy).expect("copy the berth binary");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        sb.bin = copy;
        sb
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
        self.cmd_with(&self.bin, args)
    }

    /// As [`Sandbox::cmd`], running the binary `bin`.
    pub fn cmd_with(&self, bin: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
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

    /// `berth delete --force ID` for cleanup: output discarded, bounded by
    /// [`COMMAND_TIMEOUT`] (killed after), never panics.
    pub fn force_delete_quietly(&self, id: &str) {
        let mut c = self.cmd_with(Path::new(berth_bin()), &["delete", "--force", id]);
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
            mount_lines: test_mount_lines(&self.dir, &[id]),
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
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| !n.starts_with('@')),
            );
        }
        ids.sort();
        ids.dedup();
        for id in &ids {
            self.force_delete_quietly(id);
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
        self.sb.force_delete_quietly(&self.id);
    }
}
