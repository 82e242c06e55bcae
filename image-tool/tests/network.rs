//! Container networking with real traffic on this machine: containers on the
//! test's own bridge reach each other by address and by name, the host
//! reaches a published port on loopback, outbound NAT is in place (checked by
//! its iptables rule, nothing is sent out), and nothing is left behind after
//! `rm`, `rm -f` or a crash. Needs root, Debian's CNI plugins and iptables.

mod common;

use common::world::{free_port, wait_for, World};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const WEB: &str =
    "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www";

/// GET / from `addr` on the host; the body.
fn http_get(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

#[test]
fn http_between_containers_by_ip_and_name_and_through_a_published_port() {
    let w = World::new();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    w.ok(&[
        "run", "-d", "--name", "web", "-p", &publish, "IMG", "sh", "-c", WEB,
    ]);
    let ip = w.ip("web");
    assert!(
        ip.starts_with(&w.net.prefix),
        "{ip} not in {}",
        w.net.subnet
    );
    let doc = w.inspect("web");
    assert_eq!(
        doc["NetworkSettings"]["Gateway"],
        format!("{}1", w.net.prefix)
    );
    assert_eq!(
        doc["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        port.to_string()
    );
    // From the host to the container's address on the bridge.
    assert!(
        wait_for(Duration::from_secs(10), || http_get(&format!("{ip}:80"))
            .is_some_and(|b| b.contains("hello-from-web"))),
        "no answer from {ip}:80"
    );
    // From the host through the published port on loopback.
    let body = http_get(&format!("127.0.0.1:{port}")).expect("published port answers");
    assert!(body.contains("hello-from-web"), "{body}");
    assert_eq!(
        w.ok(&["port", "web"]).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    assert!(w.ok(&["ps"]).contains(&format!("127.0.0.1:{port}->80/tcp")));
    // From another container, by address and by name.
    let fetch = format!(
        "timeout 5 wget -q -O - http://{ip}/index.html && timeout 5 wget -q -O - http://web/index.html && cat /etc/hosts"
    );
    let out = w.ok(&["run", "--rm", "--name", "client", "IMG", "sh", "-c", &fetch]);
    assert_eq!(out.matches("hello-from-web").count(), 2, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{ip}\t")) && l.ends_with(" web")),
        "{out}"
    );
    // Outbound NAT: the bridge plugin's masquerade rule for the container.
    let nat = w.net.iptables_lines();
    assert!(
        nat.iter()
            .any(|l| l.contains("MASQUERADE") || l.contains(&w.net.name)),
        "no NAT rule for the network: {nat:?}"
    );
    assert!(
        nat.iter().any(|l| l.contains(&ip)),
        "no rule for the container address {ip}: {nat:?}"
    );
    assert_eq!(w.net.bridge_ports().len(), 1, "one veth for web");
    w.ok(&["rm", "-f", "web"]);
    w.assert_empty();
}

#[test]
fn stop_and_start_reattach_and_rm_leaves_nothing() {
    let w = World::new();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    w.ok(&[
        "run", "-d", "--name", "web", "-p", &publish, "IMG", "sh", "-c", WEB,
    ]);
    assert!(wait_for(Duration::from_secs(10), || http_get(&format!(
        "127.0.0.1:{port}"
    ))
    .is_some()));
    w.ok(&["stop", "-t", "1", "web"]);
    // Stopped: no veth, no rule, no allocation; the container is kept.
    w.assert_no_network_left();
    assert_eq!(w.containers().len(), 1);
    assert_eq!(w.inspect("web")["NetworkSettings"]["IPAddress"], "");
    let ps = w.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited") && !ps.contains("->80/tcp"), "{ps}");
    w.ok(&["start", "web"]);
    assert!(
        wait_for(Duration::from_secs(10), || http_get(&format!(
            "127.0.0.1:{port}"
        ))
        .is_some_and(|b| b.contains("hello-from-web"))),
        "the published port answers again after start"
    );
    w.ok(&["restart", "-t", "1", "web"]);
    assert!(wait_for(Duration::from_secs(10), || http_get(&format!(
        "127.0.0.1:{port}"
    ))
    .is_some()));
    assert_eq!(w.net.bridge_ports().len(), 1);
    w.ok(&["stop", "-t", "1", "web"]);
    w.ok(&["rm", "web"]);
    w.assert_empty();
}

#[test]
fn a_second_container_cannot_take_a_published_port() {
    let w = World::new();
    let port = free_port();
    let publish = format!("{port}:80");
    w.ok(&[
        "run", "-d", "--name", "one", "-p", &publish, "IMG", "sh", "-c", WEB,
    ]);
    let o = w.out(&[
        "run", "-d", "--name", "two", "-p", &publish, "IMG", "sh", "-c", WEB,
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&port.to_string()) && err.contains("one"),
        "{err}"
    );
    // The failed one was created, not started, and holds no network.
    assert_eq!(w.inspect("two")["State"]["Status"], "created");
    assert_eq!(w.net.bridge_ports().len(), 1);
    w.ok(&["rm", "-f", "one", "two"]);
    w.assert_empty();
}

#[test]
fn rename_updates_the_names_peers_see() {
    let w = World::new();
    w.ok(&["run", "-d", "--name", "old", "IMG", "sleep", "1000"]);
    w.ok(&["run", "-d", "--name", "peer", "IMG", "sleep", "1000"]);
    let ip = w.ip("old");
    // The names on the line of the address.
    let names_of = |hosts: &str| -> Vec<String> {
        hosts
            .lines()
            .find(|l| l.split_whitespace().next() == Some(ip.as_str()))
            .map(|l| l.split_whitespace().skip(1).map(String::from).collect())
            .unwrap_or_default()
    };
    let short_id = w.inspect("old")["Id"].as_str().unwrap()[..12].to_string();
    let hosts = w.ok(&["exec", "peer", "cat", "/etc/hosts"]);
    assert_eq!(
        names_of(&hosts),
        vec![short_id.clone(), "old".into()],
        "{hosts}"
    );
    w.ok(&["rename", "old", "new"]);
    let hosts = w.ok(&["exec", "peer", "cat", "/etc/hosts"]);
    assert_eq!(names_of(&hosts), vec![short_id, "new".into()], "{hosts}");
    // Pinging by the new name resolves through /etc/hosts.
    w.ok(&["exec", "peer", "ping", "-c", "1", "-W", "5", "new"]);
    assert!(w.out(&["inspect", "old"]).status.code() != Some(0));
    w.ok(&["rm", "-f", "new", "peer"]);
    w.assert_empty();
}

#[test]
fn net_container_joins_another_containers_namespace() {
    let w = World::new();
    w.ok(&["run", "-d", "--name", "web", "IMG", "sh", "-c", WEB]);
    let out = w.ok(&[
        "run", "--rm", "--net", "container:web", "IMG", "sh", "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do timeout 5 wget -q -O - http://127.0.0.1/index.html && break; sleep 0.3; done",
    ]);
    assert!(out.contains("hello-from-web"), "{out}");
    w.ok(&["rm", "-f", "web"]);
    w.assert_empty();
}

/// The pid of the monitor supervising container `id`.
fn monitor_pid(id: &str) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            (args.iter().any(|a| *a == b"monitor") && args.contains(&id.as_bytes())).then_some(pid)
        })
}

#[test]
fn a_crashed_supervisor_leaves_nothing_after_the_next_start_or_rm() {
    let w = World::new();
    let port = free_port();
    let publish = format!("{port}:80");
    w.ok(&[
        "run", "-d", "--name", "crash", "-p", &publish, "IMG", "sh", "-c", WEB,
    ]);
    let id = w.inspect("crash")["Id"].as_str().unwrap().to_string();
    let ip = w.ip("crash");
    // The monitor dies first (SIGKILL), then the container: nothing tore
    // the network down.
    let monitor = monitor_pid(&id).expect("the monitor of the container");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(monitor).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let runtime = common::world::berth();
    let killed = std::process::Command::new(&runtime)
        .arg("--root")
        .arg(w.runtime_root())
        .args(["kill", &id, "KILL"])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(wait_for(Duration::from_secs(10), || w.inspect("crash")
        ["State"]["Status"]
        == "exited"));
    assert_eq!(w.net.bridge_ports().len(), 1, "the crash left the veth");
    assert!(w.net.iptables_lines().iter().any(|l| l.contains(&ip)));
    // The next start of any container cleans the stale attachment up.
    w.ok(&["run", "--rm", "IMG", "true"]);
    assert_eq!(w.net.bridge_ports(), Vec::<String>::new());
    assert_eq!(w.net.iptables_lines(), Vec::<String>::new());
    // And the crashed container starts again, then goes with rm -f.
    w.ok(&["start", "crash"]);
    assert!(wait_for(Duration::from_secs(10), || http_get(&format!(
        "127.0.0.1:{port}"
    ))
    .is_some()));
    let monitor = monitor_pid(&id).expect("the monitor of the container");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(monitor).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    // rm -f with no supervisor: it kills the container and tears down itself.
    w.ok(&["rm", "-f", "crash"]);
    w.assert_empty();
}

#[test]
fn an_attachment_whose_namespace_is_gone_is_released_after_a_reboot() {
    let w = World::new();
    // What a reboot leaves of a run: the attachment record, an unmounted
    // pin file and host-local's address file (veths and rules died with the
    // kernel).
    let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let net = w.store.join("net");
    for d in ["attachments", "netns", &format!("ipam/{}", w.net.name)] {
        std::fs::create_dir_all(net.join(d)).unwrap();
    }
    let pin = net.join("netns").join(id);
    std::fs::write(&pin, "").unwrap();
    let addr = net.join(format!("ipam/{}/{}9", w.net.name, w.net.prefix));
    std::fs::write(&addr, format!("{id}\r\neth0")).unwrap();
    let record = serde_json::json!({
        "id": id, "name": "before-reboot", "hostname": "before-reboot",
        "network": {"name": w.net.name, "bridge": w.net.bridge, "subnet": w.net.subnet,
                    "plugin_dir": "/usr/lib/cni"},
        "netns": pin, "ports": [], "hosts_file": null, "result": null,
        "ip": format!("{}9", w.net.prefix), "prefix_len": 24, "gateway": null, "mac": null
    });
    std::fs::write(
        net.join(format!("attachments/{id}.json")),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    // The next run cleans it up: CNI DEL without a namespace releases the
    // address; the record and the pin file go.
    w.ok(&["run", "--rm", "IMG", "true"]);
    assert!(!addr.exists(), "the address allocation was not released");
    assert!(!pin.exists());
    w.assert_empty();
}

#[test]
fn a_signal_to_an_attached_run_reaches_the_container_and_the_network_goes() {
    let w = World::new();
    let mut child = w
        .cmd(&[
            "run",
            "--name",
            "fg",
            &w.image,
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    out.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    assert_eq!(w.net.bridge_ports().len(), 1);
    // SIGTERM to berth-image only (as `kill PID` or a service manager does).
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    // (Checked before reading on: a container left running keeps the pipe open.)
    assert_eq!(
        status.code(),
        Some(7),
        "berth-image did not end with the container"
    );
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("got-term"), "{rest}");
    assert_eq!(w.inspect("fg")["State"]["ExitCode"], 7);
    w.assert_no_network_left();
    w.ok(&["rm", "fg"]);
    w.assert_empty();
}

#[test]
fn bad_network_settings_are_refused_and_leave_nothing() {
    let w = World::new();
    for (var, value, needle) in [
        ("BERTH_SUBNET", "10.1.2.3", "subnet \"10.1.2.3\""),
        ("BERTH_SUBNET", "fd00::/64", "IPv4"),
        ("BERTH_BRIDGE", "a-much-too-long-bridge", "bridge name"),
        ("BERTH_NETWORK", "bad/name", "network name"),
        ("BERTH_CNI_PATH", "/nonexistent", "/nonexistent/"),
    ] {
        let o = w
            .cmd(&["run", "--rm", &w.image, "true"])
            .env(var, value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{var}={value} was accepted");
        assert!(err.contains(needle), "{var}={value}: {err}");
    }
    w.assert_empty();
}
