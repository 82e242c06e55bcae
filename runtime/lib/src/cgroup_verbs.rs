//! Management verbs over a running container's cgroup: pause, resume, ps,
//! events and update (runc's verbs of the same names).
//!
//! Each operation loads the container's state with its status derived from
//! facts (see [`crate::state`]) and refuses the states runc refuses. The cgroup
//! work itself is the cgroups crate's ([`berth_cgroups::CgroupManager`]).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_cgroups::Event;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

use crate::container::cgroup_manager;
use crate::error::{Error, Result};
use crate::state::{ContainerDir, State, Status, CONFIG_COPY};

/// `pause`: freeze every process of a running (or created) container and wait
/// until the kernel reports the cgroup frozen.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.load_current()?;
    match state.status {
        Status::Running | Status::Created => {}
        Status::Paused => {
            return Err(Error::WrongState(format!(
                "cannot pause container \"{id}\": it is already paused"
            )))
        }
        s => {
            return Err(Error::WrongState(format!(
                "cannot pause container \"{id}\": container not running (it is {s})"
            )))
        }
    }
    cgroup_manager(&state)?.freeze()?;
    Ok(())
}

/// `resume`: thaw a paused container and wait until the kernel reports it thawed.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.load_current()?;
    if state.status != Status::Paused {
        return Err(Error::WrongState(format!(
            "cannot resume container \"{id}\": container not paused (it is {})",
            state.status
        )));
    }
    cgroup_manager(&state)?.thaw()?;
    Ok(())
}

/// `ps`: the host pids of every process in the container's cgroup, sorted.
pub fn processes(root: &Path, id: &str) -> Result<Vec<i32>> {
    let state = crate::container::state(root, id)?;
    let mut pids = cgroup_manager(&state)?.pids()?;
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// Keep the header of `ps` output and the lines whose PID column is one of
/// `pids` (what runc's `ps` does with the host's `ps` output).
pub fn filter_ps_table(output: &str, pids: &[i32]) -> Result<String> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let Some(col) = header.split_whitespace().position(|t| t == "PID") else {
        return Err(Error::Other(
            "couldn't find PID field in ps output (pass ps options that print it, e.g. -ef)".into(),
        ));
    };
    let mut out = format!("{header}\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let field = line.split_whitespace().nth(col).unwrap_or_default();
        let pid: i32 = field.parse().map_err(|_| {
            Error::Other(format!(
                "unable to parse pid {field:?} in ps output line {line:?}"
            ))
        })?;
        if pids.contains(&pid) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The state of a container that must not be stopped (events).
fn live_state(root: &Path, id: &str, verb: &str) -> Result<State> {
    let state = crate::container::state(root, id)?;
    if state.status == Status::Stopped {
        return Err(Error::WrongState(format!(
            "cannot {verb} container \"{id}\": container not running (it has stopped)"
        )));
    }
    Ok(state)
}

/// `events --stats`: one statistics event in runc's shape.
pub fn stats_event(root: &Path, id: &str) -> Result<Event> {
    let state = live_state(root, id, "get the stats of")?;
    let stats = cgroup_manager(&state)?.stats()?;
    Ok(Event::stats(id, stats))
}

fn oom_event(id: &str) -> Event {
    Event {
        typ: "oom".into(),
        id: id.into(),
        data: None,
    }
}

fn emit(out: &mut dyn std::io::Write, e: &Event) -> Result<()> {
    let mut line = serde_json::to_vec(e).map_err(|e| Error::Other(format!("encode event: {e}")))?;
    line.push(b'\n');
    out.write_all(&line)
        .and_then(|()| out.flush())
        .map_err(|e| Error::Other(format!("write event: {e}")))
}

/// A pidfd for the container's init: readable once it has exited. `None` on
/// kernels without pidfd_open (< 5.3); the caller then polls.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid.max(0))?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// Readiness of the two event sources after one wait.
struct Ready {
    oom: bool,
    exited: bool,
}

fn wait_ready(oom: Option<i32>, exit: Option<i32>, timeout: Duration) -> Result<Ready> {
    let mut fds: Vec<libc::pollfd> = [oom, exit]
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: fds is a valid array of pollfd for the duration of the call
    // (negative fds are ignored by poll).
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(Ready {
                oom: false,
                exited: false,
            });
        }
        return Err(Error::Other(format!("poll for container events: {e}")));
    }
    Ok(Ready {
        oom: fds[0].revents != 0,
        exited: fds[1].revents != 0,
    })
}

/// `events`: a stats event every `interval` and an `oom` event whenever the
/// kernel's OOM killer acts in the container, as JSON lines on `out`, until the
/// container stops (its init exits or its cgroup goes away).
pub fn stream_events(
    root: &Path,
    id: &str,
    interval: Duration,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    if interval.is_zero() {
        return Err(Error::Other(
            "--interval: duration interval must be greater than 0".into(),
        ));
    }
    // The lock is not held while streaming: delete must stay possible.
    let state = live_state(root, id, "watch the events of")?;
    let cg = cgroup_manager(&state)?;
    let mut oom = match cg.oom_notifier() {
        Ok(n) => Some(n),
        Err(e) => {
            crate::logging::warn(&format!("container \"{id}\": no OOM notifications: {e}"));
            None
        }
    };
    let exit = pidfd_open(state.pid);
    let alive = || crate::sys::process_alive(state.pid, state.pid_start_time) && cg.exists();
    let mut next = Instant::now() + interval;
    while alive() {
        let now = Instant::now();
        if now >= next {
            match cg.stats() {
                Ok(s) => emit(out, &Event::stats(id, s))?,
                Err(_) if !alive() => break,
                Err(e) => crate::logging::warn(&format!("container \"{id}\": stats: {e}")),
            }
            next = (next + interval).max(now + Duration::from_millis(1));
            continue;
        }
        let mut timeout = next - now;
        if exit.is_none() {
            timeout = timeout.min(Duration::from_millis(100));
        }
        let ready = wait_ready(
            oom.as_ref().map(|n| n.as_raw_fd()),
            exit.as_ref().map(|f| f.as_raw_fd()),
            timeout,
        )?;
        if ready.oom {
            if let Some(n) = oom.as_mut() {
                // A v1 eventfd also fires when the cgroup is removed.
                if n.wait(Some(Duration::ZERO))? && cg.exists() {
                    emit(out, &oom_event(id))?;
                }
            }
        }
        if ready.exited {
            break;
        }
    }
    Ok(())
}

/// Parse a memory size the way runc's update does (docker/go-units
/// `RAMInBytes`): a decimal number with an optional binary unit, `k`, `m`,
/// `g`, `t` or `p`, optionally followed by `b` or `ib`, any case (`512m`,
/// `1.5GiB`, `100 kb`). `-1` means unlimited.
pub fn parse_ram(s: &str) -> std::result::Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    let split = s
        .rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        .ok_or_else(|| format!("invalid size: '{s}'"))?;
    let (num, sfx) = (s[..=split].trim_end_matches(' '), &s[split + 1..]);
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("invalid size: '{s}'"));
    }
    let size: f64 = num.parse().map_err(|_| format!("invalid size: '{s}'"))?;
    let sfx = sfx.to_ascii_lowercase();
    let mul: u64 = match sfx.as_bytes() {
        [] | [b'b'] => 1,
        [u] | [u, b'b'] | [u, b'i', b'b'] => match u {
            b'k' => 1 << 10,
            b'm' => 1 << 20,
            b'g' => 1 << 30,
            b't' => 1 << 40,
            b'p' => 1 << 50,
            _ => return Err(format!("invalid suffix: '{sfx}'")),
        },
        _ => return Err(format!("invalid suffix: '{sfx}'")),
    };
    let bytes = size * mul as f64;
    if bytes >= i64::MAX as f64 {
        return Err(format!("size '{s}' is too large"));
    }
    Ok(bytes as i64)
}

/// Parse a duration in Go's `time.ParseDuration` syntax (`5s`, `100ms`,
/// `1m30s`, `1.5h`, `0`), as runc's `events --interval` takes it.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (examples: 5s, 500ms, 1m30s)");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(format!("invalid duration {s:?}: it must not be negative"));
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(n);
        if num.is_empty() || num == "." {
            return Err(bad());
        }
        let value: f64 = num.parse().map_err(|_| bad())?;
        let u = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u);
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * nanos;
        rest = tail;
    }
    if total > u64::MAX as f64 {
        return Err(format!("invalid duration {s:?}: too large"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// How an `update` flag's value is parsed.
#[derive(Clone, Copy)]
enum FlagValue {
    U16,
    U64,
    I64,
    /// A memory size ([`parse_ram`]).
    Ram,
    /// A cpuset list, passed through; empty means unchanged.
    List,
}

/// runc's `update` flags (without `--`) and the `LinuxResources` field each sets.
const UPDATE_FLAGS: &[(&str, &str, &str, FlagValue)] = &[
    ("blkio-weight", "blockIO", "weight", FlagValue::U16),
    ("cpu-period", "cpu", "period", FlagValue::U64),
    ("cpu-quota", "cpu", "quota", FlagValue::I64),
    ("cpu-burst", "cpu", "burst", FlagValue::U64),
    ("cpu-share", "cpu", "shares", FlagValue::U64),
    ("cpu-rt-period", "cpu", "realtimePeriod", FlagValue::U64),
    ("cpu-rt-runtime", "cpu", "realtimeRuntime", FlagValue::I64),
    ("cpu-idle", "cpu", "idle", FlagValue::I64),
    ("cpuset-cpus", "cpu", "cpus", FlagValue::List),
    ("cpuset-mems", "cpu", "mems", FlagValue::List),
    ("memory", "memory", "limit", FlagValue::Ram),
    ("memory-swap", "memory", "swap", FlagValue::Ram),
    (
        "memory-reservation",
        "memory",
        "reservation",
        FlagValue::Ram,
    ),
    ("pids-limit", "pids", "limit", FlagValue::I64),
];

fn invalid(flag: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::Other(format!("invalid value for --{flag} {value:?}: {why}"))
}

fn flag_value(flag: &str, val: &str, kind: FlagValue) -> Result<Option<Value>> {
    Ok(Some(match kind {
        FlagValue::U16 => json!(val.parse::<u16>().map_err(|e| invalid(flag, val, e))?),
        FlagValue::U64 => json!(val.parse::<u64>().map_err(|e| invalid(flag, val, e))?),
        FlagValue::I64 => json!(val.parse::<i64>().map_err(|e| invalid(flag, val, e))?),
        FlagValue::Ram => json!(parse_ram(val).map_err(|e| invalid(flag, val, e))?),
        FlagValue::List if val.is_empty() => return Ok(None),
        FlagValue::List => json!(val),
    }))
}

/// The resource changes that `update` flags ask for, as an OCI
/// `LinuxResources` JSON object holding only the given fields. `flags` are
/// (name, value) pairs with runc's flag names, without `--`.
pub fn resources_from_flags(flags: &[(&str, &str)]) -> Result<Value> {
    let mut r = json!({});
    for &(flag, val) in flags {
        match flag {
            "kernel-memory" | "kernel-memory-tcp" => {
                crate::logging::warn(&format!(
                    "Setting --{flag} is ignored (kernel memory limits are obsolete)"
                ));
                continue;
            }
            "l3-cache-schema" | "mem-bw-schema" => return Err(rdt_unsupported(flag)),
            _ => {}
        }
        let Some(&(_, section, key, kind)) = UPDATE_FLAGS.iter().find(|f| f.0 == flag) else {
            return Err(Error::Other(format!("unknown update flag --{flag}")));
        };
        if let Some(v) = flag_value(flag, val, kind)? {
            r[section][key] = v;
        }
    }
    Ok(r)
}

fn rdt_unsupported(flag: &str) -> Error {
    let what = if flag == "l3-cache-schema" {
        "Intel RDT/CAT: l3 cache schema"
    } else {
        "Intel RDT/MBA: memory bandwidth schema"
    };
    if Path::new("/sys/fs/resctrl/schemata").exists() {
        Error::Other(format!(
            "--{flag}: {what}: berth does not manage Intel RDT (resctrl)"
        ))
    } else {
        Error::Other(format!(
            "--{flag}: {what} is not enabled (resctrl is not mounted)"
        ))
    }
}

/// Parse an OCI `LinuxResources` JSON document (`update --resources`).
pub fn resources_from_json(text: &str) -> Result<Value> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::Other(format!("--resources: invalid JSON: {e}")))?;
    if !v.is_object() {
        return Err(Error::Other(
            "--resources: expected a JSON object (OCI linux.resources)".into(),
        ));
    }
    // Check the types here, so that errors name the field.
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, LinuxResources>(de)
        .map_err(|e| Error::Other(format!("--resources: field {}: {}", e.path(), e.inner())))?;
    Ok(v)
}

/// Fields where runc's update reads 0 (or "") as "leave unchanged".
const UNCHANGED_IF_ZERO: &[(&str, &str)] = &[
    ("memory", "limit"),
    ("memory", "reservation"),
    ("memory", "swap"),
    ("cpu", "shares"),
    ("cpu", "quota"),
    ("cpu", "period"),
    ("cpu", "realtimeRuntime"),
    ("cpu", "realtimePeriod"),
    ("cpu", "cpus"),
    ("cpu", "mems"),
    ("pids", "limit"),
    ("blockIO", "weight"),
    ("blockIO", "leafWeight"),
];

/// Drop what update never applies (device rules, kernel memory; with a
/// warning) and the fields whose value means "unchanged", and empty sections.
fn normalize(mut changes: Value) -> Value {
    let Some(obj) = changes.as_object_mut() else {
        return json!({});
    };
    if obj.remove("devices").is_some() {
        crate::logging::warn(
            "update: linux.resources.devices is ignored (device rules cannot be updated)",
        );
    }
    if let Some(mem) = obj.get_mut("memory").and_then(Value::as_object_mut) {
        for k in ["kernel", "kernelTCP"] {
            if mem.remove(k).is_some_and(|v| v.as_i64() != Some(0)) {
                crate::logging::warn(&format!(
                    "update: memory.{k} is ignored (kernel memory limits are obsolete)"
                ));
            }
        }
    }
    for (section, key) in UNCHANGED_IF_ZERO {
        if let Some(s) = obj.get_mut(*section).and_then(Value::as_object_mut) {
            let unchanged = match s.get(*key) {
                Some(Value::Null) => true,
                Some(Value::Number(n)) => n.as_f64() == Some(0.0),
                Some(Value::String(v)) => v.is_empty(),
                _ => false,
            };
            if unchanged {
                s.remove(*key);
            }
        }
    }
    obj.retain(|_, v| !(v.is_null() || v.as_object().is_some_and(Map::is_empty)));
    changes
}

/// Merge `changes` into `base`: objects key by key, anything else replaced.
fn merge(base: &mut Value, changes: &Value) {
    match (base, changes) {
        (Value::Object(b), Value::Object(c)) => {
            for (k, v) in c {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, c) => *b = c.clone(),
    }
}

/// The resources written to the cgroup for `changes`. cgroup v2 stores swap
/// apart from memory, so a swap change needs the memory limit: take it from
/// the saved resources when the update does not give it.
fn to_apply(changes: &Value, saved: &Value, mode: berth_cgroups::Mode) -> Result<LinuxResources> {
    let mut apply = changes.clone();
    if mode == berth_cgroups::Mode::Unified {
        let mem = &changes["memory"];
        if mem.get("swap").is_some() && mem.get("limit").is_none() {
            if let Some(limit) = saved["memory"]
                .get("limit")
                .filter(|l| l.as_i64().is_some_and(|l| l != 0))
            {
                apply["memory"]["limit"] = limit.clone();
            }
        }
    }
    serde_json::from_value(apply).map_err(|e| Error::Other(format!("update: resources: {e}")))
}

/// `update`: apply `changes` (an OCI `LinuxResources` object; fields left out,
/// or 0, keep their values) to a container that has not stopped, and record
/// them in the container's saved config so later reads agree with the cgroup.
pub fn update(root: &Path, id: &str, changes: Value) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let state = dir.load_current()?;
    match state.status {
        Status::Created | Status::Running | Status::Paused => {}
        s => {
            return Err(Error::WrongState(format!(
                "cannot update container \"{id}\": container not running (it is {s})"
            )))
        }
    }
    let changes = normalize(changes);
    let config_path = dir.path.join(CONFIG_COPY);
    let mut config: Option<Value> = std::fs::read(&config_path)
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok());
    let saved = config
        .as_ref()
        .map(|c| c["linux"]["resources"].clone())
        .unwrap_or(Value::Null);
    let cg = cgroup_manager(&state)?;
    let apply = to_apply(&changes, &saved, cg.mode())?;
    cg.update(&apply)?;
    if let Some(cfg) = config.as_mut() {
        if !cfg["linux"].is_object() {
            cfg["linux"] = Value::Object(Map::new());
        }
        let res = &mut cfg["linux"]["resources"];
        if !res.is_object() {
            *res = Value::Object(Map::new());
        }
        merge(res, &changes);
        let text =
            serde_json::to_vec(cfg).map_err(|e| Error::Other(format!("encode config: {e}")))?;
        crate::sys::write_atomic(&config_path, &text)?;
    }
    Ok(())
}

/// The container's resources as recorded in its saved config (after updates).
pub fn saved_resources(root: &Path, id: &str) -> Result<Option<LinuxResources>> {
    let dir = ContainerDir::open(root, id)?;
    let text = match std::fs::read(dir.path.join(CONFIG_COPY)) {
        Ok(t) => t,
        Err(_) => return Ok(None),
    };
    let cfg: Value =
        serde_json::from_slice(&text).map_err(|e| Error::Other(format!("saved config: {e}")))?;
    match &cfg["linux"]["resources"] {
        Value::Null => Ok(None),
        v => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| Error::Other(format!("saved config: linux.resources: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_sizes_parse_like_go_units() {
        for (s, want) in [
            ("512m", 512 << 20),
            ("512M", 512 << 20),
            ("1g", 1 << 30),
            ("1GiB", 1 << 30),
            ("1.5g", 3 << 29),
            ("100 kb", 100 << 10),
            ("100kB", 100 << 10),
            ("4096", 4096),
            (".5m", 1 << 19),
            ("12 ", 12),
            ("4096b", 4096),
            ("-1", -1),
            ("1t", 1 << 40),
        ] {
            assert_eq!(parse_ram(s), Ok(want), "{s}");
        }
        for bad in [
            "", "abc", "m", "12x", "12mbb", "12mi", "-2", "1..2m", "1 2m",
        ] {
            assert!(parse_ram(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "5", "s", "5x", "-1s", "1.s.", "ms5"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn flags_become_resources() {
        let r = resources_from_flags(&[
            ("memory", "512m"),
            ("memory-swap", "-1"),
            ("cpu-quota", "50000"),
            ("cpu-period", "100000"),
            ("cpu-share", "512"),
            ("cpuset-cpus", "0"),
            ("pids-limit", "42"),
            ("blkio-weight", "300"),
            ("kernel-memory", "10m"),
        ])
        .unwrap();
        assert_eq!(
            r,
            json!({"memory": {"limit": 512 << 20, "swap": -1},
                   "cpu": {"quota": 50000, "period": 100000, "shares": 512, "cpus": "0"},
                   "pids": {"limit": 42}, "blockIO": {"weight": 300}})
        );
        let e = resources_from_flags(&[("memory", "lots")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--memory") && e.contains("lots"), "{e}");
        let e = resources_from_flags(&[("cpu-share", "-5")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cpu-share"), "{e}");
        let e = resources_from_flags(&[("l3-cache-schema", "L3:0=f")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("l3"), "{e}");
    }

    #[test]
    fn normalize_drops_unchanged_and_ignored_fields() {
        let v = normalize(json!({
            "memory": {"limit": 0, "reservation": 1024, "kernel": 5},
            "cpu": {"shares": 0, "cpus": "", "quota": -1},
            "pids": {"limit": 0},
            "devices": [{"allow": false, "access": "rwm"}]
        }));
        assert_eq!(
            v,
            json!({"memory": {"reservation": 1024}, "cpu": {"quota": -1}})
        );
    }

    #[test]
    fn merge_keeps_other_fields() {
        let mut base = json!({"memory": {"limit": 100, "swap": 200}, "devices": [1]});
        merge(
            &mut base,
            &json!({"memory": {"limit": 300}, "pids": {"limit": 5}}),
        );
        assert_eq!(
            base,
            json!({"memory": {"limit": 300, "swap": 200}, "devices": [1], "pids": {"limit": 5}})
        );
    }

    #[test]
    fn v2_swap_change_takes_the_saved_limit() {
        let r = to_apply(
            &json!({"memory": {"swap": 300}}),
            &json!({"memory": {"limit": 100}}),
            berth_cgroups::Mode::Unified,
        )
        .unwrap();
        let m = r.memory().as_ref().unwrap();
        assert_eq!((m.limit(), m.swap()), (Some(100), Some(300)));
        let r = to_apply(
            &json!({"memory": {"swap": 300}}),
            &json!({"memory": {"limit": 100}}),
            berth_cgroups::Mode::Hybrid,
        )
        .unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), None);
    }

    #[test]
    fn ps_table_keeps_header_and_container_lines() {
        let ps = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                  root           1       0  0 07:34 ?        00:00:01 /sbin/init\n\
                  root         200       1  0 07:35 ?        00:00:00 sleep 100\n\
                  root         201     200  0 07:35 ?        00:00:00 sh\n";
        let t = filter_ps_table(ps, &[200, 201]).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("UID"));
        assert!(lines[1].contains("sleep 100") && lines[2].ends_with("sh"));
        assert!(filter_ps_table("USER COMMAND\nroot x\n", &[1]).is_err());
    }
}
