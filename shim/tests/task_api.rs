//! Task API calls ctr cannot make (Update, Connect, error codes), sent over
//! ttrpc straight to the shim of a container containerd started.

mod common;

use std::path::PathBuf;

use containerd_shim::api::{
    ConnectRequest, KillRequest, StateRequest, StateResponse, StatsRequest, Status,
    UpdateTaskRequest,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::ttrpc::{context, Client, Code, Error as TtrpcError, Request};
use containerd_shim::protos::TaskClient;

use common::Containerd;

const TIMEOUT_NS: i64 = 10_000_000_000;

/// The socket the shim serving `c`'s containers listens on, and its pid.
fn shim_socket(c: &Containerd) -> (String, u32) {
    let pids = c.shim_pids();
    assert_eq!(pids.len(), 1, "one shim expected: {pids:?}");
    let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", pids[0])).unwrap();
    let args: Vec<&str> = cmdline.split('\0').collect();
    let at = args
        .iter()
        .position(|a| *a == "-socket")
        .expect("shim has -socket");
    (args[at + 1].to_string(), pids[0])
}

fn memory_cgroup(pid: u32) -> PathBuf {
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let p = membership
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap();
        return PathBuf::from(format!("/sys/fs/cgroup{p}"));
    }
    let p = membership
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p))
        .unwrap();
    PathBuf::from(format!("/sys/fs/cgroup/memory{p}"))
}

fn code(e: TtrpcError) -> Code {
    match e {
        TtrpcError::RpcStatus(s) => s.code(),
        other => panic!("not a status: {other:?}"),
    }
}

#[test]
fn update_connect_state_stats_and_error_codes() {
    let Some(c) = Containerd::start_if_possible() else {
        return;
    };
    c.run_detached("c1", &[], &["sleep", "1000"]);
    let (pid, _) = c.task("c1").unwrap();
    let (socket, shim_pid) = shim_socket(&c);
    let client = TaskClient::new(Client::connect(&socket).expect("connect to the shim"));
    let ctx = || context::with_timeout(TIMEOUT_NS);

    let connected = client
        .connect(
            ctx(),
            &ConnectRequest {
                id: "c1".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((connected.shim_pid, connected.task_pid), (shim_pid, pid));

    let state = client
        .state(
            ctx(),
            &StateRequest {
                id: "c1".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(state.status.enum_value(), Ok(Status::RUNNING));
    assert_eq!(state.pid, pid);

    let limit: u64 = 48 * 1024 * 1024;
    let resources = Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
        value: format!(r#"{{"memory":{{"limit":{limit}}}}}"#).into_bytes(),
        ..Default::default()
    };
    let update = UpdateTaskRequest {
        id: "c1".into(),
        resources: Some(resources).into(),
        ..Default::default()
    };
    client.update(ctx(), &update).expect("update");
    let cg = memory_cgroup(pid);
    let file = if cg.join("memory.max").exists() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let now: u64 = std::fs::read_to_string(cg.join(file))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(now, limit, "{}", cg.join(file).display());

    let stats = client
        .stats(
            ctx(),
            &StatsRequest {
                id: "c1".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let url = &stats.stats.type_url;
    assert!(
        url == "io.containerd.cgroups.v1.Metrics" || url == "io.containerd.cgroups.v2.Metrics",
        "{url}"
    );

    let missing = client
        .state(
            ctx(),
            &StateRequest {
                id: "nope".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(code(missing), Code::NOT_FOUND);
    let kill = KillRequest {
        id: "c1".into(),
        exec_id: "nope".into(),
        signal: 9,
        ..Default::default()
    };
    assert_eq!(
        code(client.kill(ctx(), &kill).unwrap_err()),
        Code::NOT_FOUND
    );

    drop(client);
    c.remove("c1");
}

/// `State` sent as `/SERVICE/State` over a raw ttrpc client.
fn raw_state(client: &Client, service: &str, id: &str) -> Result<StateResponse, TtrpcError> {
    let req = Request {
        service: service.into(),
        method: "State".into(),
        timeout_nano: TIMEOUT_NS,
        payload: StateRequest {
            id: id.into(),
            ..Default::default()
        }
        .write_to_bytes()
        .unwrap(),
        ..Default::default()
    };
    let res = client.request(req)?;
    Ok(StateResponse::parse_from_bytes(&res.payload).unwrap())
}

/// The shim serves task API v2 (containerd 1.x) and v3 (containerd 2.x) on
/// one socket, and announces v3 only to a containerd 2.x: containerd 2.x keeps
/// the start action's answer in the bundle's bootstrap.json, version 3; 1.x
/// reads a bare address (no bootstrap.json). At debug level the shim logs the
/// first call made through each version into containerd's log.
#[test]
fn both_task_api_versions_on_one_socket_and_the_one_containerd_chose() {
    let Some(c) = Containerd::start_debug_if_possible() else {
        return;
    };
    c.run_detached("c1", &[], &["sleep", "1000"]);
    let (pid, _) = c.task("c1").unwrap();
    // What containerd itself sent: the shim logs the first call through each
    // version (read before this test makes calls of its own).
    let flavor = common::flavor();
    let (used, unused) = if flavor.major >= 2 {
        ("v3", "v2")
    } else {
        ("v2", "v3")
    };
    let line = |v: &str| format!("containerd speaks task API {v}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !c.log().contains(&line(used)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = c.log();
    assert!(
        log.contains(&line(used)) && !log.contains(&line(unused)),
        "containerd {} should speak {used} only; log:\n{}",
        flavor.version,
        c.log_tail(30)
    );

    let (socket, _) = shim_socket(&c);
    let client = Client::connect(&socket).expect("connect to the shim");
    for service in ["containerd.task.v2.Task", "containerd.task.v3.Task"] {
        let state = raw_state(&client, service, "c1").unwrap();
        assert_eq!(state.pid, pid, "{service}");
        assert_eq!(state.status.enum_value(), Ok(Status::RUNNING), "{service}");
    }
    // Any other name is refused (ttrpc-rust answers INVALID_ARGUMENT).
    let unknown = code(raw_state(&client, "containerd.task.v4.Task", "c1").unwrap_err());
    assert!(
        matches!(unknown, Code::INVALID_ARGUMENT | Code::UNIMPLEMENTED),
        "{unknown:?}"
    );

    let bundle = c
        .dir
        .join("state/io.containerd.runtime.v2.task")
        .join(&c.ns)
        .join("c1");
    assert_eq!(
        std::fs::read_to_string(bundle.join("address")).unwrap(),
        socket,
        "the address file of the start action"
    );
    let bootstrap = std::fs::read_to_string(bundle.join("bootstrap.json"));
    if flavor.major >= 2 {
        let params: serde_json::Value =
            serde_json::from_str(&bootstrap.expect("containerd 2.x writes bootstrap.json"))
                .unwrap();
        assert_eq!(params["version"], 3, "{params}");
        assert_eq!(params["address"], socket.as_str(), "{params}");
        assert_eq!(params["protocol"], "ttrpc", "{params}");
    } else {
        assert!(
            bootstrap.is_err(),
            "containerd {} reads a bare address",
            flavor.version
        );
    }
    eprintln!("containerd {} speaks task API {used}", flavor.version);
    drop(client);
    c.remove("c1");
}
