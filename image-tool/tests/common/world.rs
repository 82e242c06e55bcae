//! A store, a busybox image and a bridge network of its own for container
//! tests: every name (network, bridge, subnet) is unique to the test, every
//! container it made is removed on drop, then its bridge.

use super::{berth_image, busybox_layout, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// The workspace's `berth` binary, next to `berth-image`.
pub fn berth() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_berth-image"))
        .parent()
        .unwrap()
        .join("berth");
    assert!(
        p.is_file(),
        "{} is missing: build the runtime first (cargo build -p berth)",
        p.display()
    );
    p
}

/// A network name, bridge and /24 subnet no one else uses.
pub struct TestNet {
    pub name: String,
    pub bridge: String,
    pub subnet: String,
    /// "10.A.B." of the subnet.
    pub prefix: String,
    ip_forward_before: String,
}

fn subnet_in_use(prefix: &str) -> bool {
    let routes = Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output();
    let addrs = Command::new("ip").args(["-4", "-o", "addr"]).output();
    [routes, addrs].into_iter().any(|o| {
        o.map(|o| String::from_utf8_lossy(&o.stdout).contains(prefix))
            .unwrap_or(true)
    })
}

impl TestNet {
    pub fn new() -> TestNet {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as usize;
        let mut seed = pid as usize * 7919 + n * 104_729 + nanos;
        let prefix = loop {
            let a = 100 + seed % 150;
            let b = (seed / 150) % 256;
            let p = format!("10.{a}.{b}.");
            if !subnet_in_use(&p) {
                break p;
            }
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        };
        TestNet {
            name: format!("berth-test-{pid}-{n}"),
            bridge: format!("bt{}x{n}", pid % 10_000_000),
            subnet: format!("{prefix}0/24"),
            prefix,
            ip_forward_before: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap_or_default(),
        }
    }

    pub fn apply(&self, c: &mut Command) {
        c.env("BERTH_NETWORK", &self.name)
            .env("BERTH_BRIDGE", &self.bridge)
            .env("BERTH_SUBNET", &self.subnet);
    }

    /// Interfaces enslaved to the test's bridge (the host ends of veths).
    pub fn bridge_ports(&self) -> Vec<String> {
        std::fs::read_dir(format!("/sys/class/net/{}/brif", self.bridge))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// iptables lines (filter and nat) that mention this network or subnet.
    pub fn iptables_lines(&self) -> Vec<String> {
        let out = Command::new("iptables-save")
            .output()
            .expect("run iptables-save");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&self.name) || l.contains(&self.prefix))
            .map(String::from)
            .collect()
    }

    /// Nothing of the network is left in `store` or on the host: no veth
    /// on the bridge, no iptables rule for the network or its subnet, no
    /// address allocation, no pinned namespace, no attachment record.
    pub fn assert_nothing_left(&self, store: &Path) {
        let entries = |dir: &str| entries(store, dir);
        assert_eq!(self.bridge_ports(), Vec::<String>::new(), "veths left");
        assert_eq!(
            self.iptables_lines(),
            Vec::<String>::new(),
            "iptables rules left"
        );
        let ipam: Vec<String> = entries(&format!("net/ipam/{}", self.name))
            .into_iter()
            .filter(|n| n.starts_with(&self.prefix))
            .collect();
        assert_eq!(ipam, Vec::<String>::new(), "address allocations left");
        assert_eq!(
            entries("net/netns"),
            Vec::<String>::new(),
            "netns pins left"
        );
        assert_eq!(
            entries("net/attachments"),
            Vec::<String>::new(),
            "attachments left"
        );
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if Path::new(&format!("/sys/class/net/{}", self.bridge)).exists() {
            let _ = Command::new("ip")
                .args(["link", "del", &self.bridge])
                .status();
        }
        // The bridge plugin turns forwarding on (isGateway); put it back.
        if self.ip_forward_before.trim() == "0" {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "0");
        }
    }
}

/// Names in `store`'s directory `dir` (none when it is missing).
pub fn entries(store: &Path, dir: &str) -> Vec<String> {
    std::fs::read_dir(store.join(dir))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub struct World {
    pub net: TestNet,
    pub store: PathBuf,
    pub image: String,
    pub scratch: Scratch,
}

impl World {
    pub fn new() -> World {
        assert!(
            rustix::process::geteuid().is_root(),
            "these tests run real containers and need root"
        );
        let scratch = Scratch::new();
        let store = scratch.join("store");
        let layout = scratch.join("layout");
        busybox_layout(&layout, "1");
        let image = format!("oci:{}:1", layout.display());
        World {
            net: TestNet::new(),
            store,
            image,
            scratch,
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = berth_image();
        c.arg("--store").arg(&self.store);
        match args.first() {
            // `run` and `create` take --runtime after the verb.
            Some(&v) if v == "run" || v == "create" => {
                c.arg(v).arg("--runtime").arg(berth()).args(&args[1..]);
            }
            _ => {
                c.args(args);
            }
        }
        c.stdin(Stdio::null());
        self.net.apply(&mut c);
        c
    }

    pub fn out(&self, args: &[&str]) -> Output {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "IMG" { self.image.as_str() } else { a })
            .collect();
        // Bounded: a hang fails the test instead of stalling it.
        let c = self.cmd(&args);
        let mut t = Command::new("timeout");
        t.args(["-k", "5", "120"])
            .arg(c.get_program())
            .args(c.get_args());
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                t.env(k, v);
            }
        }
        t.stdin(Stdio::null());
        t.output().expect("spawn berth-image")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "berth-image {args:?}: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `inspect NAME` as JSON (the first element).
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        v[0].clone()
    }

    pub fn ip(&self, name: &str) -> String {
        self.inspect(name)["NetworkSettings"]["IPAddress"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn runtime_root(&self) -> PathBuf {
        self.store.join("containers/.runtime")
    }

    /// Container ids in the store.
    pub fn containers(&self) -> Vec<String> {
        std::fs::read_dir(self.store.join("containers"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Nothing of the network is left (see [`TestNet::assert_nothing_left`]).
    pub fn assert_no_network_left(&self) {
        self.net.assert_nothing_left(&self.store);
    }

    /// Nothing of any container is left: no container directory, no runtime
    /// state, no mount below the store, no network state.
    pub fn assert_empty(&self) {
        assert_eq!(self.containers(), Vec::<String>::new());
        let states: Vec<_> = entries(&self.store, "containers/.runtime")
            .into_iter()
            .filter(|n| !n.starts_with('@'))
            .collect();
        assert!(states.is_empty(), "runtime state left: {states:?}");
        assert_eq!(super::mounts_below(&self.store), Vec::<PathBuf>::new());
        self.assert_no_network_left();
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Kill and remove whatever a failed test left, before the bridge and
        // the scratch directory go.
        for id in self.containers() {
            let _ = self.cmd(&["rm", "-f", &id]).output();
            let _ = Command::new(berth())
                .arg("--root")
                .arg(self.runtime_root())
                .args(["delete", "--force", &id])
                .output();
        }
    }
}

pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A TCP port free on the host right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
