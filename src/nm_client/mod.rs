//! The only module that talks D-Bus: a thin client for NetworkManager over one injected zbus
//! connection. Every NM call is logged at debug level. Work that needs many objects (all
//! profiles, all devices) is fetched concurrently over the one connection, with a bound, rather
//! than as a chain of round trips.

mod activation;
mod checkpoint;
mod convert;
mod error;
mod profiles;
pub mod proxies;

pub use activation::{ActivationFailure, Awaited, Progress};
pub use checkpoint::{
    boottime_ms, CheckpointInfo, RollbackFailure, ALLOW_OVERLAPPING, DELETE_NEW_CONNECTIONS, DISCONNECT_NEW_DEVICES,
    TRACK_INTERNAL_GLOBAL_DNS,
};
pub use convert::{from_owned, profile_from_dbus, profile_from_dbus_exact, to_dbus};
pub use error::NmError;

use crate::nm::{DeviceState, DeviceType, NmVersion, Profile};
use futures_util::{stream, StreamExt, TryStreamExt};
use proxies::{ActiveProxy, NetworkManagerProxy, SettingsProxy};
use std::collections::HashMap;
use tracing::debug;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};

/// How many NM requests are in flight at once. NM answers one at a time; pipelining hides the
/// round trip, and the bound stays under the bus's per-connection limit on pending replies
/// (dbus-daemon refuses more with LimitsExceeded).
pub const CONCURRENCY: usize = 32;

/// Runs `f` over `items` with at most [`CONCURRENCY`] calls in flight; results in input order.
pub async fn bounded<I, T, F, Fut>(items: I, f: F) -> Vec<T>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    // The futures are made first (they are lazy: nothing runs yet) so that the closure is not
    // part of the state held across awaits: a closure over borrowed items there makes rustc
    // fail to prove the future `Send` (rust-lang/rust#102211), which the session service needs.
    let futures: Vec<Fut> = items.into_iter().map(f).collect();
    stream::iter(futures).buffered(CONCURRENCY).collect().await
}

/// `AddConnection2`/`Update2` flag: write to disk.
pub const TO_DISK: u32 = 0x1;
/// `AddConnection2`/`Update2` flag: keep in memory only (gone at NetworkManager's restart or
/// the host's reboot).
pub const IN_MEMORY: u32 = 0x2;
/// `Update2` flag: in memory only, and forget any copy on disk.
pub const IN_MEMORY_ONLY: u32 = 0x8;
/// `Update2` flag: NetworkManager deletes the profile when it is no longer active (with an
/// in-memory flag).
pub const VOLATILE: u32 = 0x10;
/// `AddConnection2`/`Update2` flag: do not autoconnect until activated by hand (so defining
/// does not start anything, like `virsh iface-define`).
pub const BLOCK_AUTOCONNECT: u32 = 0x20;

/// A profile as stored in NetworkManager.
#[derive(Debug, Clone)]
pub struct StoredProfile {
    /// Its D-Bus object.
    pub path: OwnedObjectPath,
    /// Its settings.
    pub profile: Profile,
}

/// What nmiface reads of a device.
#[derive(Debug, Clone, Default)]
pub struct DeviceInfo {
    /// D-Bus object.
    pub path: String,
    /// Kernel interface name.
    pub interface: String,
    /// Current MAC.
    pub hw_address: String,
    /// Its state.
    pub state: DeviceState,
    /// The active connection on it, if any.
    pub active_connection: Option<String>,
    /// IPv4 configuration object, if any.
    pub ip4_config: Option<String>,
    /// IPv6 configuration object, if any.
    pub ip6_config: Option<String>,
    /// False for placeholders of software devices not created yet.
    pub real: bool,
    /// Its type.
    pub device_type: DeviceType,
    /// A controller's port devices (D-Bus paths, `Device.Ports`); `None` where NetworkManager
    /// does not say (before 1.34), so "no ports" is never guessed from an old daemon's silence.
    pub ports: Option<Vec<String>>,
}

impl DeviceInfo {
    /// The controller `device` is a port of now, among `devices`: `Some(None)` when no
    /// controller lists it, `None` when NetworkManager does not report ports at all. Read from
    /// the devices, not the profiles: a profile says where a NIC should be, not where it is.
    pub fn controller_of<'d>(devices: &'d [DeviceInfo], device: &DeviceInfo) -> Option<Option<&'d DeviceInfo>> {
        if devices.iter().all(|d| d.ports.is_none()) {
            return None;
        }
        Some(devices.iter().find(|c| c.ports.as_ref().is_some_and(|p| p.contains(&device.path))))
    }
}

/// A NetworkManager client over one connection.
#[derive(Clone)]
pub struct NmClient {
    conn: zbus::Connection,
    nm: NetworkManagerProxy<'static>,
    settings: SettingsProxy<'static>,
    /// Changes are sent with D-Bus's ALLOW_INTERACTIVE_AUTHORIZATION flag, so NetworkManager
    /// lets polkit ask the user for a password (the session service sets it when its caller
    /// allowed interaction on its own message).
    interactive: bool,
    /// How many changes (add, update, activate) are in flight on this connection, shared by
    /// every clone: an interrupted verb lets them land before it rolls back (see
    /// [`NmClient::calls_in_flight`]).
    in_flight: std::sync::Arc<tokio::sync::watch::Sender<usize>>,
}

/// Counts one change in flight while it lives (dropped with the call's future, finished or not).
struct InFlight(std::sync::Arc<tokio::sync::watch::Sender<usize>>);

impl InFlight {
    fn enter(counter: &std::sync::Arc<tokio::sync::watch::Sender<usize>>) -> Self {
        counter.send_modify(|n| *n += 1);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

fn opt_path(v: Option<&OwnedValue>) -> Option<String> {
    let p = ObjectPath::try_from(v?.try_clone().ok()?).ok()?.to_string();
    (p != "/").then_some(p)
}

/// The system bus address nmiface connects to: `DBUS_SYSTEM_BUS_ADDRESS` when set, else the
/// standard socket (for messages; zbus reads the same variable).
pub fn system_bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into())
}

/// How long any one call to NetworkManager may take before nmiface gives up on it:
/// `NMIFACE_DBUS_TIMEOUT` seconds, else 10 (NetworkManager answers in milliseconds; activation is
/// waited for on signals, under its own timeout, not in a call).
pub fn method_timeout() -> std::time::Duration {
    let secs = std::env::var("NMIFACE_DBUS_TIMEOUT").ok().and_then(|s| s.parse::<u64>().ok()).filter(|s| *s > 0);
    std::time::Duration::from_secs(secs.unwrap_or(10))
}

impl NmClient {
    /// Connects to the system bus ([`system_bus_address`]), every call bounded by
    /// [`method_timeout`]. Only front ends call this (through [`crate::verbs`]); everything else
    /// takes a client.
    pub async fn connect_system() -> Result<Self, NmError> {
        let bus = |e| NmError::Bus(Box::new(e));
        // The address messages name, not zbus's own default (`/var/run/dbus/…`, where ours
        // says `/run/dbus/…`): one path in every message.
        let conn = zbus::connection::Builder::address(system_bus_address().as_str())
            .map_err(bus)?
            .method_timeout(method_timeout())
            .build()
            .await
            .map_err(bus)?;
        Self::new(conn).await
    }

    /// The bus's own identity (`org.freedesktop.DBus.GetId`): the same for every address that
    /// reaches the same bus, so runtime state is keyed by it rather than by address text.
    pub async fn bus_id(&self) -> Result<String, NmError> {
        let dbus = zbus::fdo::DBusProxy::new(&self.conn).await?;
        Ok(dbus.get_id().await?.to_string())
    }

    /// A client over an existing connection.
    pub async fn new(conn: zbus::Connection) -> Result<Self, NmError> {
        let nm = zbus::proxy::Builder::<NetworkManagerProxy<'static>>::new(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let settings = zbus::proxy::Builder::<SettingsProxy<'static>>::new(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let in_flight = std::sync::Arc::new(tokio::sync::watch::channel(0).0);
        Ok(Self { conn, nm, settings, interactive: false, in_flight })
    }

    /// The same client, sending changes (add, update, delete, activate, deactivate) with
    /// the flag that lets NetworkManager ask polkit to authenticate the user interactively.
    pub fn interactive(&self) -> NmClient {
        NmClient { interactive: true, ..self.clone() }
    }

    /// Calls `method` on `proxy` with the interactive-authorization flag when this client has
    /// it: the generated proxies cannot set a message flag per call.
    pub(crate) async fn change<B, R>(&self, proxy: &zbus::Proxy<'_>, method: &str, body: &B) -> Result<R, NmError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let flags = match self.interactive {
            true => zbus::proxy::MethodFlags::AllowInteractiveAuth.into(),
            false => Default::default(),
        };
        let _counted = InFlight::enter(&self.in_flight);
        match proxy.call_with_flags(method, flags, body).await? {
            Some(r) => Ok(r),
            None => Err(NmError::Dbus(Box::new(zbus::Error::InvalidReply))),
        }
    }

    /// How many changes are in flight on this connection, watched. A change's call dropped
    /// mid-flight (its verb interrupted) is still carried out by NetworkManager, possibly after
    /// a rollback had looked for what it makes, which would then stay: an interrupted verb
    /// waits for this to reach 0 before rolling back.
    pub fn calls_in_flight(&self) -> tokio::sync::watch::Receiver<usize> {
        self.in_flight.subscribe()
    }

    /// The underlying connection.
    pub fn connection(&self) -> &zbus::Connection {
        &self.conn
    }

    /// The daemon's version (also proves it is running).
    pub async fn version(&self) -> Result<NmVersion, NmError> {
        debug!(call = "Get Version");
        let v = self.nm.version().await?;
        NmVersion::parse(&v).map_err(|_| NmError::BadVersion(v))
    }

    /// What NetworkManager lets this caller do: polkit action -> `yes`, `auth` or `no`
    /// (`GetPermissions`).
    pub async fn permissions(&self) -> Result<std::collections::BTreeMap<String, String>, NmError> {
        debug!(call = "GetPermissions");
        Ok(self.nm.get_permissions().await?.into_iter().collect())
    }

    /// Applies the stored profile's changes to the running device `name` in place
    /// (`Device.Reapply`); NetworkManager refuses when a change needs a re-activation.
    pub async fn reapply(&self, name: &str) -> Result<(), NmError> {
        debug!(call = "GetDeviceByIpIface", name);
        let path = self.nm.get_device_by_ip_iface(name).await?;
        let device: proxies::DeviceProxy<'_> = proxies::build(&self.conn, path.clone()).await?;
        debug!(call = "Reapply", %path);
        device.reapply(HashMap::new(), 0, 0).await?;
        Ok(())
    }

    /// All realized devices, each read with one GetAll, concurrently.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>, NmError> {
        debug!(call = "GetDevices");
        let paths = self.nm.get_devices().await?;
        let devices: Vec<Option<DeviceInfo>> = stream::iter(paths)
            .map(|path| async move { self.device_at(path).await })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(devices.into_iter().flatten().collect())
    }

    /// A Properties proxy for one NetworkManager object, without zbus's property cache (the
    /// one way nmiface reads properties of objects it has no typed proxy for).
    pub(crate) async fn props(&self, path: &str) -> Result<zbus::fdo::PropertiesProxy<'static>, NmError> {
        Ok(zbus::fdo::PropertiesProxy::builder(&self.conn)
            .destination(proxies::BUS_NAME)?
            .path(path.to_string())?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?)
    }

    /// One `org.freedesktop.NetworkManager.Device` property; `None` when the device is gone.
    pub(crate) async fn device_property(&self, path: &str, name: &str) -> Option<OwnedValue> {
        let iface = zbus::names::InterfaceName::from_static_str_unchecked("org.freedesktop.NetworkManager.Device");
        self.props(path).await.ok()?.get(iface, name).await.ok()
    }

    /// One device by interface name.
    pub async fn device(&self, name: &str) -> Result<DeviceInfo, NmError> {
        debug!(call = "GetDeviceByIpIface", name);
        let path = self.nm.get_device_by_ip_iface(name).await?;
        self.device_at(path).await?.ok_or_else(|| NmError::UnknownDevice { message: format!("{name} (vanished)") })
    }

    /// The type of the device with this interface name; `None` when there is none.
    pub async fn device_type(&self, name: &str) -> Result<Option<DeviceType>, NmError> {
        debug!(call = "GetDeviceByIpIface", name);
        let path = match self.nm.get_device_by_ip_iface(name).await.map_err(NmError::from) {
            Ok(p) => p,
            Err(NmError::UnknownDevice { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let t = self.device_property(path.as_str(), "DeviceType").await;
        Ok(t.and_then(|v| u32::try_from(&v).ok()).map(DeviceType::from_code))
    }

    async fn device_at(&self, path: OwnedObjectPath) -> Result<Option<DeviceInfo>, NmError> {
        let props = self.props(path.as_str()).await?;
        debug!(call = "GetAll Device", %path);
        let iface = zbus::names::InterfaceName::from_static_str_unchecked("org.freedesktop.NetworkManager.Device");
        let all = match props.get_all(iface).await.map_err(NmError::from) {
            Ok(a) => a,
            Err(NmError::ObjectGone) => return Ok(None),
            Err(e) => return Err(e),
        };
        let s = |k: &str| all.get(k).and_then(|v| String::try_from(v.try_clone().ok()?).ok()).unwrap_or_default();
        Ok(Some(DeviceInfo {
            path: path.to_string(),
            interface: s("Interface"),
            hw_address: s("HwAddress"),
            state: DeviceState::from_code(all.get("State").and_then(|v| u32::try_from(v).ok()).unwrap_or(0)),
            active_connection: opt_path(all.get("ActiveConnection")),
            ip4_config: opt_path(all.get("Ip4Config")),
            ip6_config: opt_path(all.get("Ip6Config")),
            real: all.get("Real").and_then(|v| bool::try_from(v).ok()).unwrap_or(true),
            device_type: DeviceType::from_code(all.get("DeviceType").and_then(|v| u32::try_from(v).ok()).unwrap_or(0)),
            ports: all.get("Ports").and_then(|v| {
                let paths = Vec::<OwnedObjectPath>::try_from(v.try_clone().ok()?).ok()?;
                Some(paths.into_iter().map(|p| p.to_string()).collect())
            }),
        }))
    }

    /// The profile path behind each active connection, as (active connection, profile).
    pub async fn active_profiles(&self) -> Result<Vec<(String, String)>, NmError> {
        debug!(call = "Get ActiveConnections");
        let acs = self.nm.active_connections().await?;
        let conn = &self.conn;
        let pairs: Vec<Option<(String, String)>> = stream::iter(acs)
            .map(|ac| async move {
                let proxy: ActiveProxy<'_> = proxies::build(conn, ac.clone()).await?;
                debug!(call = "Get Connection", %ac);
                match proxy.connection().await.map_err(NmError::from) {
                    Ok(p) => Ok(Some((ac.to_string(), p.to_string()))),
                    Err(NmError::ObjectGone) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(pairs.into_iter().flatten().collect())
    }

    /// The profile path behind one active connection (`None`: it ended meanwhile).
    pub async fn active_profile(&self, ac: &str) -> Result<Option<String>, NmError> {
        let path = zbus::zvariant::OwnedObjectPath::try_from(ac.to_string()).map_err(zbus::Error::from)?;
        let proxy: ActiveProxy<'_> = proxies::build(&self.conn, path).await?;
        debug!(call = "Get Connection", %ac);
        match proxy.connection().await.map_err(NmError::from) {
            Ok(p) => Ok(Some(p.to_string())),
            Err(NmError::ObjectGone) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `address-data` of an IP4Config/IP6Config object, as (address, prefix).
    pub async fn addresses(&self, config: &str, v6: bool) -> Result<Vec<(String, u32)>, NmError> {
        let iface =
            if v6 { "org.freedesktop.NetworkManager.IP6Config" } else { "org.freedesktop.NetworkManager.IP4Config" };
        let props = self.props(config).await?;
        debug!(call = "Get AddressData", config);
        let v =
            props.get(zbus::names::InterfaceName::try_from(iface).map_err(zbus::Error::from)?, "AddressData").await?;
        let list = match from_owned(&v) {
            Some(crate::nm::Value::DictList(l)) => l,
            _ => return Ok(Vec::new()),
        };
        Ok(list
            .iter()
            .filter_map(|d| Some((d.get("address")?.as_str()?.to_string(), d.get("prefix")?.as_uint()? as u32)))
            .collect())
    }

    /// Link speed in Mb/s of a wired device, when it reports one.
    pub async fn speed(&self, device: &str) -> Option<u32> {
        let props = self.props(device).await.ok()?;
        let iface =
            zbus::names::InterfaceName::from_static_str_unchecked("org.freedesktop.NetworkManager.Device.Wired");
        let v = props.get(iface, "Speed").await.ok()?;
        u32::try_from(&v).ok().filter(|s| *s > 0)
    }
}
