//! The systemd cgroup driver (`berth --systemd-cgroup`), as runc's: the
//! container's cgroup is a transient scope unit that systemd creates on the
//! system bus (`StartTransientUnit` with `Delegate=yes`, the slice, the init's
//! pid and the resource properties systemd knows), and systemd removes (the
//! runtime stops the unit). Everything else is the cgroupfs backend of the
//! host's layout working on the scope's directories: the files systemd has no
//! property for, freezing, statistics, process lists, `cgroup.kill`, the v2
//! device filter, OOM events.
//!
//! * [`unit`]: `slice:prefix:name` and the scope's cgroup path;
//! * [`properties`]: `linux.resources` as unit properties;
//! * [`devices`]: device rules as `DevicePolicy`/`DeviceAllow`;
//! * [`dbus`]: the calls, through zbus.
//!
//! Pure cgroup v2 is the main target. On a v1 or hybrid host the scope is
//! started the same way, with the v1 property names (MemoryLimit, CPUShares,
//! BlockIOWeight), and the container's processes also join the v1 hierarchies
//! systemd does not manage (cpuset, freezer, net_cls, ...) at the same path,
//! as runc's legacy systemd manager does.

pub mod dbus;
pub mod devices;
pub mod properties;
pub mod unit;

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;

use properties::{Flavor, Property};
use unit::ScopeUnit;

use crate::path::CgroupPath;
use crate::stats::Stats;
use crate::{
    CgroupError, CgroupManager, FreezerState, LinuxResources, ManagerOptions, Mode, Result,
    V1Manager, V2Manager,
};

/// What the driver asks of systemd (the real one is [`dbus::Systemd`]; tests
/// record the calls instead).
pub trait UnitControl {
    fn start_transient_unit(&self, name: &str, props: &[Property]) -> Result<()>;
    fn set_unit_properties(&self, name: &str, props: &[Property]) -> Result<()>;
    fn stop_unit(&self, name: &str) -> Result<()>;
    fn version(&self) -> u32;
}

impl UnitControl for dbus::Systemd {
    fn start_transient_unit(&self, name: &str, props: &[Property]) -> Result<()> {
        dbus::Systemd::start_transient_unit(self, name, props)
    }
    fn set_unit_properties(&self, name: &str, props: &[Property]) -> Result<()> {
        dbus::Systemd::set_unit_properties(self, name, props)
    }
    fn stop_unit(&self, name: &str) -> Result<()> {
        dbus::Systemd::stop_unit(self, name)
    }
    fn version(&self) -> u32 {
        dbus::Systemd::version(self)
    }
}

type Connector = Box<dyn Fn() -> Result<Box<dyn UnitControl>>>;

pub struct SystemdManager {
    unit: ScopeUnit,
    description: String,
    flavor: Flavor,
    /// The cgroupfs backend on the scope's directories.
    fs: Box<dyn CgroupManager>,
    /// The resources known at construction: sent with StartTransientUnit.
    start_resources: Option<LinuxResources>,
    /// Properties this process already gave the unit (not sent again by `set`).
    sent: RefCell<Vec<Property>>,
    connect: Connector,
    bus: OnceCell<Box<dyn UnitControl>>,
}

impl std::fmt::Debug for SystemdManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemdManager")
            .field("unit", &self.unit)
            .field("paths", &self.fs.paths())
            .finish()
    }
}

impl SystemdManager {
    pub(crate) fn new(opts: &ManagerOptions<'_>) -> Result<Self> {
        crate::path::validate_id(opts.container_id)?;
        let unit = ScopeUnit::parse(opts.cgroups_path, opts.container_id)?;
        let path = CgroupPath::Absolute(unit.cgroup_path());
        let (fs, flavor): (Box<dyn CgroupManager>, Flavor) = match opts.mode {
            Mode::Unified => (
                Box::new(V2Manager::new(&path, opts)?.adopting()),
                Flavor::V2,
            ),
            Mode::Legacy | Mode::Hybrid => {
                if opts.root.is_some() {
                    return Err(CgroupError::Invalid(
                        "a custom cgroup root is only supported in unified (v2) mode".into(),
                    ));
                }
                (
                    Box::new(V1Manager::new(&path, opts)?.adopting()),
                    Flavor::V1,
                )
            }
        };
        Ok(SystemdManager {
            unit,
            description: format!("berth container {}", opts.container_id),
            flavor,
            fs,
            start_resources: opts.resources.cloned(),
            sent: RefCell::new(Vec::new()),
            connect: Box::new(|| Ok(Box::new(dbus::Systemd::connect()?) as Box<dyn UnitControl>)),
            bus: OnceCell::new(),
        })
    }

    /// The same manager talking to `control` instead of the system bus.
    pub fn with_unit_control(
        opts: &ManagerOptions<'_>,
        control: impl Fn() -> Box<dyn UnitControl> + 'static,
    ) -> Result<Self> {
        let mut m = Self::new(opts)?;
        m.connect = Box::new(move || Ok(control()));
        Ok(m)
    }

    /// The container's scope and its slice.
    pub fn unit(&self) -> &ScopeUnit {
        &self.unit
    }

    fn bus(&self) -> Result<&dyn UnitControl> {
        if self.bus.get().is_none() {
            let _ = self.bus.set((self.connect)()?);
        }
        Ok(self.bus.get().expect("set above").as_ref())
    }

    /// Resource properties for `r` (the version is asked only when needed)
    /// and the resources to write to the files.
    fn resource_properties(&self, r: &LinuxResources) -> Result<(Vec<Property>, LinuxResources)> {
        properties::resources(r, self.flavor, &|| self.bus().map_or(0, |b| b.version()))
    }

    /// Give the unit the properties of `r` it does not have from this process
    /// yet; on v1, device rules go in with the container frozen, since systemd
    /// rewrites `devices.*` from deny-all up (runc does the same).
    fn set_properties(&self, props: Vec<Property>) -> Result<()> {
        let new: Vec<Property> = props
            .into_iter()
            .filter(|p| !self.sent.borrow().contains(p))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let bus = self.bus()?;
        let freeze = self.flavor == Flavor::V1
            && new.iter().any(|p| p.name == "DevicePolicy")
            && self.fs.freezer_state().ok() == Some(FreezerState::Thawed);
        if freeze {
            self.fs.freeze()?;
        }
        let r = bus.set_unit_properties(&self.unit.scope, &new);
        if freeze {
            self.fs.thaw()?;
        }
        r?;
        self.sent.borrow_mut().extend(new);
        Ok(())
    }
}

impl CgroupManager for SystemdManager {
    fn apply(&self, pid: i32) -> Result<()> {
        let pid = u32::try_from(pid).ok().filter(|&p| p > 0).ok_or_else(|| {
            CgroupError::Unsupported(
                "the systemd cgroup driver starts the scope with the container's init: apply needs its pid".into(),
            )
        })?;
        let mut props =
            properties::scope_start(&self.description, &self.unit.slice, pid, self.flavor);
        let mut resource_props = Vec::new();
        if let Some(r) = &self.start_resources {
            resource_props = self.resource_properties(r)?.0;
            props.extend(resource_props.iter().cloned());
            props.extend(properties::oom_policy(r)?);
        }
        self.bus()?.start_transient_unit(&self.unit.scope, &props)?;
        *self.sent.borrow_mut() = resource_props;
        // systemd moved the init into the scope. On v2 the directory needs
        // only its controllers; on v1 the init also joins the hierarchies
        // systemd leaves alone.
        let joined = match self.flavor {
            Flavor::V2 => self.fs.apply(0),
            Flavor::V1 => self.fs.apply(pid as i32),
        };
        if let Err(e) = joined {
            let _ = self.bus()?.stop_unit(&self.unit.scope);
            return Err(e);
        }
        Ok(())
    }

    fn apply_needs_pid(&self) -> bool {
        true
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        self.fs.add_task(pid)
    }

    fn join_self(&self) -> Result<()> {
        self.fs.join_self()
    }

    fn join_self_v1(&self) -> Result<()> {
        self.fs.join_self_v1()
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        let (mut props, files) = self.resource_properties(r)?;
        if let Some(rules) = r.devices() {
            props.extend(devices::device_properties(rules)?);
        }
        self.set_properties(props)?;
        self.fs.set(&files)
    }

    fn freeze(&self) -> Result<()> {
        self.fs.freeze()
    }

    fn thaw(&self) -> Result<()> {
        self.fs.thaw()
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        self.fs.freezer_state()
    }

    fn pids(&self) -> Result<Vec<i32>> {
        self.fs.pids()
    }

    fn kill_all(&self, signal: i32) -> Result<()> {
        self.fs.kill_all(signal)
    }

    /// Stops the unit (systemd removes its cgroup; a unit that already
    /// stopped because its processes ended is fine), then removes what is
    /// left below the scope and the directories made in hierarchies systemd
    /// does not manage.
    fn destroy(&self) -> Result<()> {
        match self.bus() {
            Ok(bus) => bus.stop_unit(&self.unit.scope)?,
            // Without systemd there can be no unit; nor a scope to clean up if
            // its directory does not exist.
            Err(_) if !self.fs.exists() => {}
            Err(e) => return Err(e),
        }
        self.fs.destroy()
    }

    fn exists(&self) -> bool {
        self.fs.exists()
    }

    fn stats(&self) -> Result<Stats> {
        self.fs.stats()
    }

    fn paths(&self) -> BTreeMap<String, PathBuf> {
        self.fs.paths()
    }

    fn owned_depth(&self) -> usize {
        0
    }

    fn mode(&self) -> Mode {
        self.fs.mode()
    }

    fn oom_notifier(&self) -> Result<crate::oom::OomNotifier> {
        self.fs.oom_notifier()
    }
}
