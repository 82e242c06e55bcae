//! `inspect NAME`: docker's container document (State, Config, HostConfig,
//! Mounts, NetworkSettings), as a one-element JSON array.

use std::collections::BTreeMap;
use std::fs;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::control::{runtime_state, status, Status};
use super::{container_dir, load, run_state, Net};
use crate::store::Store;

/// RFC 3339 (UTC) of a Unix time; docker's zero time when unknown.
pub(super) fn rfc3339(t: Option<u64>) -> String {
    let Some(t) = t else {
        return "0001-01-01T00:00:00Z".into();
    };
    let (days, secs) = ((t / 86400) as i64, t % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn port_map(rec: &super::ContainerRecord) -> Value {
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in &rec.ports {
        m.entry(p.container_side()).or_default().push(json!({
            "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
            "HostPort": p.host_port.to_string(),
        }));
    }
    json!(m)
}

/// The container's document.
pub fn inspect(store: &Store, name: &str) -> Result<Value> {
    let rec = load(store, name)?;
    let cfg_path = container_dir(store, &rec.id).join("bundle/config.json");
    let cfg: Value = serde_json::from_slice(
        &fs::read(&cfg_path).with_context(|| format!("read {}", cfg_path.display()))?,
    )?;
    let st = status(store, &rec)?;
    let last = run_state(store, &rec.id);
    let pid = match st {
        Status::Running | Status::Paused => runtime_state(store, &rec)?.map_or(0, |s| s.1),
        _ => 0,
    };
    let exit_code = match st {
        Status::Exited(c) => c,
        _ => 0,
    };
    let res = &cfg["linux"]["resources"];
    let caps = cfg["process"]["capabilities"]["bounding"].clone();
    let att =
        crate::net::find(store, &rec.id).filter(|_| matches!(st, Status::Running | Status::Paused));
    let mut networks = serde_json::Map::new();
    if let (Net::Bridge, Some(n)) = (&rec.net, &rec.network) {
        networks.insert(
            n.name.clone(),
            json!({
                "NetworkID": n.name,
                "Bridge": n.bridge,
                "Subnet": n.subnet,
                "IPAddress": att.as_ref().and_then(|a| a.ip.clone()).unwrap_or_default(),
                "IPPrefixLen": att.as_ref().and_then(|a| a.prefix_len).unwrap_or(0),
                "Gateway": att.as_ref().and_then(|a| a.gateway.clone()).unwrap_or_default(),
                "MacAddress": att.as_ref().and_then(|a| a.mac.clone()).unwrap_or_default(),
                "Aliases": [rec.name],
            }),
        );
    }
    let user = &cfg["process"]["user"];
    Ok(json!([{
        "Id": rec.id,
        "Created": rfc3339(Some(rec.created)),
        "Path": rec.command.first().cloned().unwrap_or_default(),
        "Args": rec.command.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": st.word(),
            "Running": matches!(st, Status::Running | Status::Paused),
            "Paused": st == Status::Paused,
            "OOMKilled": last.oom_killed,
            "Dead": false,
            "Pid": pid,
            "ExitCode": exit_code,
            "Error": last.error.clone().unwrap_or_default(),
            "StartedAt": rfc3339(last.started_at),
            "FinishedAt": rfc3339(last.finished_at),
        },
        "Image": rec.image,
        "Name": format!("/{}", rec.name),
        "RestartCount": 0,
        "HostConfig": {
            "NetworkMode": rec.net.to_string(),
            "PortBindings": port_map(&rec),
            "AutoRemove": rec.rm,
            "Memory": res["memory"]["limit"].as_i64().unwrap_or(0),
            "MemorySwap": res["memory"]["swap"].as_i64().unwrap_or(0),
            "NanoCpus": res["cpu"]["quota"].as_i64().map_or(0, |q| q * 10_000),
            "CpuQuota": res["cpu"]["quota"].as_i64().unwrap_or(0),
            "CpuPeriod": res["cpu"]["period"].as_i64().unwrap_or(0),
            "PidsLimit": res["pids"]["limit"].as_i64(),
            "ReadonlyRootfs": cfg["root"]["readonly"].as_bool().unwrap_or(false),
            "Capabilities": caps,
            "Devices": cfg["linux"]["devices"].clone(),
        },
        "Mounts": rec.mounts,
        "Config": {
            "Hostname": cfg["hostname"],
            "User": format!("{}:{}", user["uid"], user["gid"]),
            "Tty": rec.tty,
            "OpenStdin": rec.interactive,
            "Env": cfg["process"]["env"],
            "Cmd": rec.command,
            "Image": rec.image,
            "WorkingDir": cfg["process"]["cwd"],
            "Labels": rec.labels,
            "StopSignal": rec.stop_signal,
        },
        "NetworkSettings": {
            "IPAddress": att.as_ref().and_then(|a| a.ip.clone()).unwrap_or_default(),
            "IPPrefixLen": att.as_ref().and_then(|a| a.prefix_len).unwrap_or(0),
            "Gateway": att.as_ref().and_then(|a| a.gateway.clone()).unwrap_or_default(),
            "MacAddress": att.as_ref().and_then(|a| a.mac.clone()).unwrap_or_default(),
            "Ports": port_map(&rec),
            "SandboxKey": att.as_ref().map(|a| a.netns.display().to_string()).unwrap_or_default(),
            "Networks": networks,
        },
    }]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(Some(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(Some(1_700_000_000)), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(None), "0001-01-01T00:00:00Z");
    }
}
