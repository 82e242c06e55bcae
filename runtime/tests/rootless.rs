//! Rootless berth: the runtime run by an unprivileged user, with a user
//! namespace mapping that user to root in the container.
//!
//! The test process (root) prepares each world and then runs `berth` as an
//! unprivileged uid through `setpriv --reuid/--regid --clear-groups` (a numeric
//! uid with no passwd entry, so no user has to be created or removed), with
//! `XDG_RUNTIME_DIR` pointing at a private directory owned by that uid. Every
//! world removes its containers, processes, delegated cgroups and files on drop,
//! also when a test fails. Tests that cannot run here (not root, no setpriv,
//! unprivileged user namespaces disabled) print why and return.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{berth_bin, unique, wait_child, wait_until, Out, COMMAND_TIMEOUT, POLL_TIMEOUT};
use serde_json::{json, Value};

/// The unprivileged user the tests run berth as (no passwd entry needed).
const UID: u32 = 61_234;
const GID: u32 = 61_234;
const TAG_VAR: &str = "BERTH_ROOTLESS_TAG";

/// Why rootless tests cannot run on this host, if they cannot.
fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("the rootless tests need root to set up the unprivileged user".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox is missing (install busybox-static)".into());
    }
    let probe = Command::new("setpriv")
        .args(as_user_args())
        .args(["unshare", "--user", "--map-root-user", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Err(e) => Some(format!("cannot run setpriv (util-linux): {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "an unprivileged user cannot create a user namespace here ({}); \
             see sysctl user.max_user_namespaces / kernel.unprivileged_userns_clone",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

macro_rules! require_rootless {
    () => {
        if let Some(why) = unavailable() {
            berth_testsupport::skip("rootless", &why);
            return;
        }
    };
}

fn as_user_args() -> Vec<String> {
    vec![
        format!("--reuid={UID}"),
        format!("--regid={GID}"),
        "--clear-groups".into(),
    ]
}

fn chown_tree(p: &Path) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{UID}:{GID}"))
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success(), "chown -R {}", p.display());
}

/// The host's cgroup mounts: (fstype, mount point).
fn cgroup_mounts() -> Vec<(String, PathBuf)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut v = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = post.split_whitespace().next().unwrap_or("");
        let mp = pre.split_whitespace().nth(4).unwrap_or("");
        if (fstype == "cgroup" || fstype == "cgroup2") && mp.starts_with("/sys/fs/cgroup") {
            v.push((fstype.to_string(), PathBuf::from(mp)));
        }
    }
    v
}

/// A cgroup delegated to the test user: a directory in every hierarchy,
/// chowned to it (on cgroup2 also the launcher's sub-cgroup, where berth itself
/// runs so that moving the container's init stays inside the delegated tree).
struct Delegation {
    name: String,
    dirs: Vec<PathBuf>,
    /// cgroup2 directory berth is started in, if the host has a cgroup2 mount.
    launcher: Option<PathBuf>,
}

impl Delegation {
    fn new() -> Delegation {
        let name = unique("berth-rl");
        let mut d = Delegation {
            name: name.clone(),
            dirs: Vec::new(),
            launcher: None,
        };
        for (fstype, mp) in cgroup_mounts() {
            let dir = mp.join(&name);
            std::fs::create_dir(&dir).unwrap();
            d.dirs.push(dir.clone());
            if fstype == "cgroup2" {
                // Controllers available to the delegated tree (pure v2 hosts).
                let avail = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap();
                for c in ["memory", "pids"] {
                    if avail.split_whitespace().any(|x| x == c) {
                        std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"))
                            .unwrap();
                    }
                }
                let launch = dir.join("launch");
                std::fs::create_dir(&launch).unwrap();
                d.launcher = Some(launch);
            }
            chown_tree(&dir);
        }
        d
    }

    /// The container's cgroup directory in the hierarchy holding `file`.
    fn container_file(&self, id: &str, file: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.join(id).join(file))
            .find(|p| p.exists())
    }
}

impl Drop for Delegation {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Sub-cgroups first (a leftover container cgroup, the launcher).
            if let Ok(rd) = std::fs::read_dir(d) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        let procs = std::fs::read_to_string(e.path().join("cgroup.procs"))
                            .unwrap_or_default();
                        for p in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                            // SAFETY: plain kill(2) of a process the test started.
                            unsafe { libc::kill(p, libc::SIGKILL) };
                        }
                        let path = e.path();
                        wait_until(POLL_TIMEOUT, || {
                            std::fs::remove_dir(&path).is_ok() || !path.exists()
                        });
                    }
                }
            }
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// One test's rootless world: a directory owned by the test user holding its
/// XDG_RUNTIME_DIR and a busybox bundle.
struct World {
    dir: PathBuf,
    tag: String,
    config: Value,
    ids: std::cell::RefCell<Vec<String>>,
    /// Start berth inside this cgroup2 directory (delegated cgroup tests).
    launcher: Option<PathBuf>,
}

impl World {
    fn new(prefix: &str) -> World {
        let tag = unique(prefix);
        let dir = PathBuf::from(format!("/tmp/berth-rootless/{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::set_permissions(
            "/tmp/berth-rootless",
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        );
        let rootfs = dir.join("bundle/rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        for d in ["proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for a in ["sh", "id", "cat", "sleep", "readlink", "true", "ls"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        std::fs::create_dir_all(dir.join("xdg")).unwrap();
        std::fs::set_permissions(
            dir.join("xdg"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        chown_tree(&dir);
        let mut w = World {
            dir,
            tag,
            config: Value::Null,
            ids: Default::default(),
            launcher: None,
        };
        w.berth(&["spec", "--rootless"]).expect_ok();
        let text = std::fs::read_to_string(w.bundle().join("config.json")).unwrap();
        w.config = serde_json::from_str(&text).unwrap();
        w.config["process"]["terminal"] = json!(false);
        w.config["process"]["env"] = json!(["PATH=/bin", format!("{TAG_VAR}={}", w.tag)]);
        w
    }

    fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    fn state_root(&self) -> PathBuf {
        self.dir.join("xdg/berth")
    }

    fn save(&self) {
        let p = self.bundle().join("config.json");
        std::fs::write(&p, serde_json::to_string_pretty(&self.config).unwrap()).unwrap();
        chown_tree(&p);
    }

    fn args(&mut self, args: &[&str]) {
        self.config["process"]["args"] = json!(args);
        self.save();
    }

    fn id(&self, name: &str) -> String {
        let id = format!("{}-{name}", self.tag);
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// `berth ARGS` as the test user, in the bundle directory, with the
    /// default state root (`$XDG_RUNTIME_DIR/berth`).
    fn berth(&self, args: &[&str]) -> Out {
        let what = format!("berth {}", args.join(" "));
        let out = self.dir.join(unique("out"));
        let err = out.with_extension("err");
        let mut cmd = match &self.launcher {
            // Enter the delegated cgroup2 directory, then drop privileges.
            Some(cg) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#)
                    .arg("sh")
                    .arg(cg)
                    .arg("setpriv");
                c
            }
            None => Command::new("setpriv"),
        };
        cmd.args(as_user_args())
            .arg(berth_bin())
            .args(args)
            .current_dir(self.bundle())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("XDG_RUNTIME_DIR", self.dir.join("xdg"))
            .env(TAG_VAR, &self.tag)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        let mut child = cmd.spawn().unwrap();
        let code = wait_child(&mut child, COMMAND_TIMEOUT, &what);
        let o = Out {
            code,
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
            what,
        };
        let _ = std::fs::remove_file(out);
        let _ = std::fs::remove_file(err);
        o
    }

    fn state(&self, id: &str) -> Value {
        let o = self.berth(&["state", id]);
        o.expect_ok();
        serde_json::from_str(&o.stdout).unwrap()
    }

    fn status(&self, id: &str) -> String {
        let o = self.berth(&["state", id]);
        if o.code != 0 {
            return "gone".into();
        }
        let v: Value = serde_json::from_str(&o.stdout).unwrap_or_default();
        v["status"].as_str().unwrap_or("").to_string()
    }

    /// Processes carrying this world's tag in their environment.
    /// Live (non-zombie) processes carrying this world's tag.
    fn tagged_processes(&self) -> Vec<i32> {
        let needle = format!("{TAG_VAR}={}", self.tag);
        let mut v = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            // A killed process waiting to be reaped by whoever inherited it
            // runs nothing any more: only live ones count.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3));
            if matches!(state, None | Some("Z") | Some("X")) {
                continue;
            }
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                v.push(pid);
            }
        }
        v
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            if self.state_root().join(id).exists() {
                let _ = self.berth(&["delete", "--force", id]);
            }
        }
        for pid in self.tagged_processes() {
            // SAFETY: kill(2) of a process this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        wait_until(POLL_TIMEOUT, || self.tagged_processes().is_empty());
        let _ = std::fs::remove_dir_all(&self.dir);
        // Shared by concurrent worlds: removed by the last one.
        let _ = std::fs::remove_dir("/tmp/berth-rootless");
    }
}

fn host_ns(pid: i32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn spec_rootless_maps_the_user_to_root() {
    require_rootless!();
    let mut w = World::new("rl-spec");
    let c = &w.config;
    assert_eq!(
        c["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": UID, "size": 1}])
    );
    assert_eq!(
        c["linux"]["gidMappings"],
        json!([{"containerID": 0, "hostID": GID, "size": 1}])
    );
    assert!(c["linux"].get("resources").is_none(), "{c}");
    let ns: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(ns.contains(&"user") && !ns.contains(&"network"), "{ns:?}");

    w.args(&[
        "sh",
        "-c",
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map",
    ]);
    let id = w.id("run");
    let o = w.berth(&["run", &id]);
    o.expect_ok();
    let lines: Vec<Vec<&str>> = o
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0"], "{}", o.stdout);
    assert_eq!(lines[1], ["0"], "{}", o.stdout);
    let uid = UID.to_string();
    let gid = GID.to_string();
    assert_eq!(lines[2], ["0", uid.as_str(), "1"], "{}", o.stdout);
    assert_eq!(lines[3], ["0", gid.as_str(), "1"], "{}", o.stdout);
    // `run` removed the container; the state root is the user's.
    assert!(!w.state_root().join(&id).exists());
    assert_eq!(std::fs::metadata(w.state_root()).unwrap().uid(), UID);
}

#[test]
fn lifecycle_create_start_exec_kill_delete() {
    require_rootless!();
    let mut w = World::new("rl-life");
    w.args(&["sleep", "1000"]);
    let id = w.id("c");
    w.berth(&["create", &id]).expect_ok();
    let dir = w.state_root().join(&id);
    let md = std::fs::metadata(&dir).expect("state dir under $XDG_RUNTIME_DIR/berth");
    assert_eq!((md.uid(), md.gid()), (UID, GID), "state dir owner");
    let st = w.state(&id);
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap() as i32;
    let list = w.berth(&["list"]);
    list.expect_ok();
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not listed: {}", list.stdout));
    assert!(
        row.contains("created") && row.ends_with(&format!("#{UID}")),
        "{row}"
    );

    w.berth(&["start", &id]).expect_ok();
    assert_eq!(w.state(&id)["status"], "running");

    // exec joins every namespace of the init, user namespace included.
    let o = w.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        "for n in user mnt pid ipc uts cgroup; do echo $n=$(readlink /proc/self/ns/$n); done; id -u",
    ]);
    o.expect_ok();
    for n in ["user", "mnt", "pid", "ipc", "uts", "cgroup"] {
        let want = format!("{n}={}", host_ns(pid, n));
        assert!(
            o.stdout.lines().any(|l| l == want),
            "{want} in {}",
            o.stdout
        );
    }
    assert_eq!(o.stdout.lines().last(), Some("0"), "{}", o.stdout);
    let own = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_ne!(host_ns(pid, "user"), own.to_string_lossy());
    // Exit status propagates.
    assert_eq!(w.berth(&["exec", &id, "sh", "-c", "exit 7"]).code, 7);
    // Only the user's own ids are mapped.
    w.berth(&["exec", "--user", "1000", &id, "id"])
        .expect_fail(&["process.user.uid 1000", "not mapped"]);

    // Without a cgroup, ps lists the container's pid namespace; pause is
    // refused with the reason.
    let d = w.berth(&["exec", "-d", &id, "sleep", "999"]);
    d.expect_ok();
    let ps = w.berth(&["ps", "--format", "json", &id]);
    ps.expect_ok();
    let pids: Vec<i32> = serde_json::from_str(&ps.stdout).unwrap();
    assert_eq!(pids.len(), 2, "init and the exec'd sleep: {pids:?}");
    assert!(pids.contains(&pid), "{pids:?}");
    w.berth(&["pause", &id]).expect_fail(&["needs a cgroup"]);

    w.berth(&["kill", "--all", &id, "KILL"]).expect_ok();
    assert!(
        wait_until(POLL_TIMEOUT, || w.status(&id) == "stopped"),
        "container did not stop"
    );
    assert!(
        wait_until(POLL_TIMEOUT, || w.tagged_processes().is_empty()),
        "kill --all left {:?}",
        w.tagged_processes()
    );
    w.berth(&["delete", &id]).expect_ok();
    assert!(!dir.exists(), "state dir left behind");
    w.berth(&["exec", &id, "true"]).expect_fail(&[&id]);
}

#[test]
fn delegated_cgroup_limits_are_applied() {
    require_rootless!();
    let deleg = Delegation::new();
    let mut w = World::new("rl-cg");
    w.launcher = deleg.launcher.clone();
    let id = w.id("c");
    w.config["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", deleg.name));
    w.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 42}});
    w.args(&["sleep", "1000"]);
    w.berth(&["create", &id]).expect_ok();
    let pid = w.state(&id)["pid"].as_i64().unwrap();

    let pids_max = deleg.container_file(&id, "pids.max").expect("pids.max");
    assert_eq!(std::fs::read_to_string(&pids_max).unwrap().trim(), "42");
    let mem = deleg
        .container_file(&id, "memory.limit_in_bytes")
        .or_else(|| deleg.container_file(&id, "memory.max"))
        .expect("memory limit file");
    assert_eq!(std::fs::read_to_string(&mem).unwrap().trim(), "67108864");
    let procs = std::fs::read_to_string(pids_max.with_file_name("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "init {pid} not in {}: {procs}",
        pids_max.display()
    );
    // update works in a delegated cgroup.
    w.berth(&["update", "--pids-limit", "50", &id]).expect_ok();
    assert_eq!(std::fs::read_to_string(&pids_max).unwrap().trim(), "50");

    w.berth(&["start", &id]).expect_ok();
    w.berth(&["delete", "--force", &id]).expect_ok();
    assert!(
        !pids_max.parent().unwrap().exists(),
        "container cgroup left behind"
    );
}

#[test]
fn resources_without_a_writable_cgroup_fail_cleanly() {
    require_rootless!();
    let mut w = World::new("rl-nocg");
    w.config["linux"]["resources"] = json!({"pids": {"limit": 42}});
    w.args(&["sleep", "1000"]);
    let id = w.id("c");
    w.berth(&["create", &id])
        .expect_fail(&["linux.resources", "delegated", "Permission denied"]);
    assert!(!w.state_root().join(&id).exists(), "state dir left behind");
    assert!(
        w.tagged_processes().is_empty(),
        "{:?}",
        w.tagged_processes()
    );
    for (_, mp) in cgroup_mounts() {
        assert!(
            !mp.join("berth").join(&id).exists(),
            "cgroup left in {mp:?}"
        );
    }
    // Device rules alone are no resource request: they are skipped rootless.
    w.config["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    w.args(&["true"]);
    let id = w.id("dev");
    w.berth(&["run", &id]).expect_ok();
}

#[test]
fn rlimit_above_the_hard_limit_fails_clearly() {
    require_rootless!();
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) }, 0);
    if cur.rlim_max == libc::RLIM_INFINITY {
        berth_testsupport::skip(
            "rlimit-unlimited",
            "RLIMIT_NOFILE is unlimited here, nothing to exceed",
        );
        return;
    }
    let mut w = World::new("rl-rlim");
    w.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": 64, "hard": cur.rlim_max + 1}]);
    w.args(&["true"]);
    let id = w.id("c");
    w.berth(&["run", &id])
        .expect_fail(&["process.rlimits[0]", "CAP_SYS_RESOURCE"]);
    assert!(!w.state_root().join(&id).exists());
    // Lowering is allowed.
    w.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 128}]);
    w.args(&["sh", "-c", "ulimit -n"]);
    let id = w.id("low");
    let o = w.berth(&["run", &id]);
    o.expect_ok();
    assert_eq!(o.stdout.trim(), "64");
}

/// A rootless container whose processes may hold CAP_SYS_PTRACE shares
/// berth's user namespace as far as the host is concerned: berth runs it from
/// a sealed memfd copy of its binary (no overlayfs for an unprivileged user),
/// which the created init's /proc/PID/exe shows.
#[test]
fn ptrace_capable_container_runs_from_a_sealed_copy() {
    require_rootless!();
    let mut w = World::new("rl-seal");
    for set in ["bounding", "effective", "permitted"] {
        w.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYS_PTRACE"));
    }
    w.args(&["sleep", "1000"]);
    let id = w.id("c");
    w.berth(&["create", &id]).expect_ok();
    let pid = w.state(&id)["pid"].as_i64().unwrap() as i32;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.to_string_lossy().starts_with("/memfd:berth"),
        "the created init runs {}",
        exe.display()
    );
    w.berth(&["start", &id]).expect_ok();
    w.berth(&["exec", &id, "true"]).expect_ok();
    w.berth(&["delete", "--force", &id]).expect_ok();
}
