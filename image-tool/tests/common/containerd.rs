//! A private containerd (own root, state and socket below a scratch directory, CRI off)
//! to see what containerd makes of an image: `ctr images import`, then the image's
//! overlayfs snapshot mounted read-only with `ctr images mount`.

use super::{run, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A containerd process, killed (and its mounts undone) on drop.
pub struct Containerd {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
    mounts: Vec<PathBuf>,
}

impl Containerd {
    pub fn start(s: &Scratch, name: &str) -> Containerd {
        let dir = s.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{0}/sock\"\n[ttrpc]\n  address = \"{0}/sock.ttrpc\"\n",
                dir.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("containerd is installed (scripts/install-deps.sh)");
        let mut c = Containerd {
            child,
            dir,
            socket,
            mounts: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c
            .ctr()
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                c.log()
            );
            assert!(
                c.child.try_wait().unwrap().is_none(),
                "containerd exited: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// `ctr` talking to this containerd, in namespace `berth-test`.
    pub fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a").arg(&self.socket).args(["-n", "berth-test"]);
        c
    }

    /// Import (and unpack into overlayfs snapshots) an OCI or docker archive as `name`.
    pub fn import(&self, archive: &Path, name: &str) {
        run(self
            .ctr()
            .args(["images", "import", "--base-name", name, "--digests"])
            .arg(archive));
    }

    /// Mount the image `reference` read-only on `target` (an overlay of its snapshots).
    pub fn mount(&mut self, reference: &str, target: &Path) {
        std::fs::create_dir_all(target).unwrap();
        run(self.ctr().args(["images", "mount", reference]).arg(target));
        self.mounts.push(target.to_path_buf());
    }

    /// The name `ctr images import --base-name NAME --digests` gives an image.
    pub fn imported_name(&self, name: &str) -> String {
        let out = run(self.ctr().args(["images", "ls", "-q"]));
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no image {name} in {out}"))
            .to_string()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for m in super::mounts_below(&self.dir) {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
        }
    }
}
