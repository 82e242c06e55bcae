//! The few calls of systemd's D-Bus API (`org.freedesktop.systemd1.Manager` on
//! the system bus) the driver needs, through zbus: start a transient unit,
//! change its properties, stop it, reset a failed one, and wait for the jobs
//! these calls queue (`JobRemoved` signals).
//!
//! zbus runs its connection on a thread of its own: the runtime only talks to
//! systemd from a process that forks no more without exec afterwards (the
//! `create` parent after the init is forked, `update`, `delete`).

use std::cell::{OnceCell, RefCell};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use zbus::blocking::Connection;
use zbus::zvariant::{self, OwnedObjectPath};

use super::properties::{Property, Value};
use crate::{CgroupError, Result};

const DESTINATION: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a call or a job may take (runc waits 30 s for a job too).
const TIMEOUT: Duration = Duration::from_secs(30);

fn err(what: &str, e: impl std::fmt::Display) -> CgroupError {
    CgroupError::Systemd(format!("{what}: {e}"))
}

/// The D-Bus error name of a failed call (`org.freedesktop.systemd1.NoSuchUnit`, ...).
fn error_name(e: &zbus::Error) -> Option<&str> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        _ => None,
    }
}

/// A connection to systemd's manager.
pub struct Systemd {
    conn: Connection,
    /// `JobRemoved` signals, subscribed before the first call that queues a job.
    jobs: RefCell<Option<zbus::MessageStream>>,
    version: OnceCell<u32>,
}

impl Systemd {
    /// Connects to the system bus (`$DBUS_SYSTEM_BUS_ADDRESS`, else
    /// /run/dbus/system_bus_socket).
    pub fn connect() -> Result<Systemd> {
        let conn = zbus::blocking::connection::Builder::system()
            .and_then(|b| b.method_timeout(TIMEOUT).build())
            .map_err(|e| {
                err(
                    "cannot connect to the system bus (is systemd the init and dbus running?)",
                    e,
                )
            })?;
        Ok(Systemd {
            conn,
            jobs: RefCell::new(None),
            version: OnceCell::new(),
        })
    }

    fn call<B>(&self, method: &str, body: &B) -> zbus::Result<zbus::Message>
    where
        B: serde::Serialize + zvariant::DynamicType,
    {
        self.conn
            .call_method(Some(DESTINATION), PATH, Some(MANAGER), method, body)
    }

    fn subscribe_jobs(&self) -> Result<()> {
        if self.jobs.borrow().is_some() {
            return Ok(());
        }
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(MANAGER)
            .and_then(|b| b.member("JobRemoved"))
            .and_then(|b| b.path(PATH))
            .map_err(|e| err("JobRemoved match rule", e))?
            .build();
        let it = zbus::block_on(zbus::MessageStream::for_match_rule(
            rule,
            self.conn.inner(),
            Some(64),
        ))
        .map_err(|e| err("subscribe to systemd's JobRemoved signals", e))?;
        *self.jobs.borrow_mut() = Some(it);
        Ok(())
    }

    /// Waits for `job` to finish; its result ("done", "failed", "canceled", ...).
    fn wait_job(&self, job: &OwnedObjectPath, what: &str) -> Result<String> {
        let mut guard = self.jobs.borrow_mut();
        let it = guard.as_mut().expect("subscribed before the call");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = zbus::block_on(futures_lite::future::or(
                async { Some(it.next().await) },
                async {
                    async_io::Timer::after(left).await;
                    None
                },
            ));
            let msg = match next {
                Some(Some(Ok(m))) => m,
                Some(Some(Err(e))) => return Err(err(what, e)),
                Some(None) => return Err(err(what, "the bus connection closed")),
                None => {
                    return Err(err(
                        what,
                        format!("systemd did not finish job {} in {TIMEOUT:?}", job.as_str()),
                    ))
                }
            };
            let Ok((_id, path, _unit, result)) = msg
                .body()
                .deserialize::<(u32, OwnedObjectPath, String, String)>()
            else {
                continue;
            };
            if path == *job {
                return Ok(result);
            }
        }
    }

    fn start_once(&self, name: &str, props: &[Property]) -> zbus::Result<OwnedObjectPath> {
        let props: Vec<(&str, zvariant::Value)> = props
            .iter()
            .map(|p| (p.name, to_variant(&p.value)))
            .collect();
        let aux: Vec<(&str, Vec<(&str, zvariant::Value)>)> = Vec::new();
        self.call("StartTransientUnit", &(name, "replace", props, aux))?
            .body()
            .deserialize()
    }

    /// `StartTransientUnit(name, "replace", props)` and wait for its job. A
    /// leftover failed unit of the same name is reset and the start tried once
    /// more (runc does the same).
    pub fn start_transient_unit(&self, name: &str, props: &[Property]) -> Result<()> {
        let what = format!("start unit {name}");
        self.subscribe_jobs()?;
        let job = match self.start_once(name, props) {
            Err(e) if error_name(&e) == Some("org.freedesktop.systemd1.UnitExists") => {
                let _ = self.reset_failed(name);
                self.start_once(name, props)
            }
            r => r,
        }
        .map_err(|e| err(&what, e))?;
        let result = self.wait_job(&job, &what)?;
        if result != "done" {
            let _ = self.reset_failed(name);
            return Err(err(&what, format!("job {result}")));
        }
        Ok(())
    }

    /// `StopUnit(name, "replace")`, wait for the job and reset the unit if it
    /// failed. A unit that is not loaded (it stopped when its last process
    /// left) is fine.
    pub fn stop_unit(&self, name: &str) -> Result<()> {
        let what = format!("stop unit {name}");
        self.subscribe_jobs()?;
        match self.call("StopUnit", &(name, "replace")) {
            Ok(reply) => {
                let job: OwnedObjectPath = reply.body().deserialize().map_err(|e| err(&what, e))?;
                self.wait_job(&job, &what)?;
            }
            Err(e) if error_name(&e) == Some("org.freedesktop.systemd1.NoSuchUnit") => {}
            Err(e) => return Err(err(&what, e)),
        }
        let _ = self.reset_failed(name);
        Ok(())
    }

    /// `SetUnitProperties(name, runtime=true, props)`.
    pub fn set_unit_properties(&self, name: &str, props: &[Property]) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        let props: Vec<(&str, zvariant::Value)> = props
            .iter()
            .map(|p| (p.name, to_variant(&p.value)))
            .collect();
        self.call("SetUnitProperties", &(name, true, props))
            .map(drop)
            .map_err(|e| err(&format!("set properties of unit {name}"), e))
    }

    pub fn reset_failed(&self, name: &str) -> Result<()> {
        self.call("ResetFailedUnit", &(name,))
            .map(drop)
            .map_err(|e| err(&format!("reset failed unit {name}"), e))
    }

    /// systemd's version number (e.g. 252), 0 when it cannot be read (then no
    /// property that needs a newer systemd is sent).
    pub fn version(&self) -> u32 {
        *self.version.get_or_init(|| {
            self.conn
                .call_method(
                    Some(DESTINATION),
                    PATH,
                    Some("org.freedesktop.DBus.Properties"),
                    "Get",
                    &(MANAGER, "Version"),
                )
                .ok()
                .and_then(|m| m.body().deserialize::<zvariant::OwnedValue>().ok())
                .and_then(|v| String::try_from(v).ok())
                .map_or(0, |s| parse_version(&s))
        })
    }
}

/// "252.38-1~deb12u1" -> 252; "v245.4-1.fc32" -> 245.
pub fn parse_version(s: &str) -> u32 {
    let digits: String = s
        .trim_start_matches(['"', 'v'])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

fn to_variant(v: &Value) -> zvariant::Value<'static> {
    match v {
        Value::Str(s) => zvariant::Value::from(s.clone()),
        Value::Bool(b) => zvariant::Value::from(*b),
        Value::U64(n) => zvariant::Value::from(*n),
        Value::U32s(v) => zvariant::Value::from(v.clone()),
        Value::Bytes(v) => zvariant::Value::from(v.clone()),
        Value::DeviceAllow(v) => zvariant::Value::from(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("252.38-1~deb12u1"), 252);
        assert_eq!(parse_version("v245.4-1.fc32"), 245);
        assert_eq!(parse_version("\"239\""), 239);
        assert_eq!(parse_version("unknown"), 0);
    }

    #[test]
    fn property_values_have_systemds_signatures() {
        let sig = |v: Value| to_variant(&v).value_signature().to_string();
        assert_eq!(sig(Value::Str("x".into())), "s");
        assert_eq!(sig(Value::Bool(true)), "b");
        assert_eq!(sig(Value::U64(1)), "t");
        assert_eq!(sig(Value::U32s(vec![1])), "au");
        assert_eq!(sig(Value::Bytes(vec![1])), "ay");
        assert_eq!(sig(Value::DeviceAllow(vec![])), "a(ss)");
        assert_eq!(
            sig(Value::DeviceAllow(vec![("char-*".into(), "m".into())])),
            "a(ss)"
        );
    }
}
