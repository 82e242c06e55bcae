//! Leftover accounting: mounts, cgroups, processes, fds, zombies ([`Baseline`]).

use super::*;

pub fn mountinfo_lines() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The mountinfo lines that belong to one test: those naming its sandbox
/// directory (as mount point, root or source) or one of its container ids.
/// Other mounts come and go on a busy machine and are not the test's to count.
pub fn test_mount_lines(dir: &Path, ids: &[&str]) -> Vec<String> {
    let dir = dir.display().to_string();
    mountinfo_lines()
        .into_iter()
        .filter(|l| l.contains(&dir) || ids.iter().any(|id| !id.is_empty() && l.contains(id)))
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
    /// Assert the host is back to this baseline: the same mounts naming the
    /// sandbox or the container (and none under the sandbox), no cgroup
    /// directories, no state directory, no process of the test. Polls briefly, since a killed process may take a
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
        let now = test_mount_lines(&sb.dir, &[&self.id]);
        if now != self.mount_lines {
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
                "the test's mountinfo lines: {} now, {} before; added {added:?}; removed {removed:?}",
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
