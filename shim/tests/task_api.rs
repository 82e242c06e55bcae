//! Task API calls ctr cannot make (Update, Connect, error codes), sent over
//! ttrpc straight to the shim of a container containerd started.

mod common;

use std::path::PathBuf;

use containerd_shim::api::{
    ConnectRequest, KillRequest, StateRequest, StatsRequest, Status, UpdateTaskRequest,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::ttrpc::{context, Client, Code, Error as TtrpcError};
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
