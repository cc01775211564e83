//! D-Bus proxies for the NetworkManager objects nmiface uses, trimmed to the members it calls.
//!
//! Written by hand from NetworkManager's introspection XML (`introspection/*.xml`), the way
//! `zbus-xmlgen` would write them, then cut down. Per-object proxies are built without
//! property caching ([`build`]): zbus's default cache costs an AddMatch and a GetAll per proxy,
//! which made a peer tool slow at scale.

use std::collections::HashMap;
use zbus::proxy;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

/// NetworkManager's well-known bus name.
pub const BUS_NAME: &str = "org.freedesktop.NetworkManager";

/// `a{sa{sv}}` as sent.
pub type DbusSettings<'a> = HashMap<&'a str, HashMap<&'a str, Value<'a>>>;
/// `a{sa{sv}}` as received.
pub type OwnedSettings = HashMap<String, HashMap<String, OwnedValue>>;

/// `org.freedesktop.NetworkManager` at `/org/freedesktop/NetworkManager`.
#[proxy(
    interface = "org.freedesktop.NetworkManager",
    default_service = "org.freedesktop.NetworkManager",
    default_path = "/org/freedesktop/NetworkManager"
)]
pub trait NetworkManager {
    /// Activates a profile; `/` for device and specific object lets NM choose.
    fn activate_connection(
        &self,
        connection: &ObjectPath<'_>,
        device: &ObjectPath<'_>,
        specific_object: &ObjectPath<'_>,
    ) -> zbus::Result<OwnedObjectPath>;
    /// Deactivates an active connection.
    fn deactivate_connection(&self, active_connection: &ObjectPath<'_>) -> zbus::Result<()>;
    /// The device with this interface name.
    fn get_device_by_ip_iface(&self, iface: &str) -> zbus::Result<OwnedObjectPath>;
    /// Realized devices.
    fn get_devices(&self) -> zbus::Result<Vec<OwnedObjectPath>>;
    /// Creates a checkpoint of `devices` (empty: all) that rolls back by itself after
    /// `rollback_timeout` seconds (0: never).
    fn checkpoint_create(
        &self,
        devices: &[ObjectPath<'_>],
        rollback_timeout: u32,
        flags: u32,
    ) -> zbus::Result<OwnedObjectPath>;
    /// Destroys a checkpoint (`/`: all), keeping the current state.
    fn checkpoint_destroy(&self, checkpoint: &ObjectPath<'_>) -> zbus::Result<()>;
    /// Rolls back to a checkpoint; returns device path -> NMRollbackResult.
    fn checkpoint_rollback(&self, checkpoint: &ObjectPath<'_>) -> zbus::Result<HashMap<String, u32>>;
    /// Sets a checkpoint's timeout to `add_timeout` seconds from now.
    fn checkpoint_adjust_rollback_timeout(&self, checkpoint: &ObjectPath<'_>, add_timeout: u32) -> zbus::Result<()>;
    /// What the caller may do: polkit action -> `yes`, `auth` or `no`.
    fn get_permissions(&self) -> zbus::Result<HashMap<String, String>>;
    /// Existing checkpoints.
    #[zbus(property)]
    fn checkpoints(&self) -> zbus::Result<Vec<OwnedObjectPath>>;
    /// The daemon's version, e.g. `1.42.4`.
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    /// Active connection objects.
    #[zbus(property)]
    fn active_connections(&self) -> zbus::Result<Vec<OwnedObjectPath>>;
}

/// `org.freedesktop.NetworkManager.Settings`.
#[proxy(
    interface = "org.freedesktop.NetworkManager.Settings",
    default_service = "org.freedesktop.NetworkManager",
    default_path = "/org/freedesktop/NetworkManager/Settings"
)]
pub trait Settings {
    /// All profiles.
    fn list_connections(&self) -> zbus::Result<Vec<OwnedObjectPath>>;
    /// Adds a profile (NM 1.20+); flags: 0x1 to disk, 0x2 in memory, 0x20 block autoconnect.
    fn add_connection2(
        &self,
        settings: DbusSettings<'_>,
        flags: u32,
        args: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<(OwnedObjectPath, HashMap<String, OwnedValue>)>;
    /// The profile with this UUID.
    fn get_connection_by_uuid(&self, uuid: &str) -> zbus::Result<OwnedObjectPath>;
    /// Loads or reloads keyfiles from disk.
    fn load_connections(&self, filenames: &[&str]) -> zbus::Result<(bool, Vec<String>)>;
}

/// `org.freedesktop.NetworkManager.Settings.Connection`.
#[proxy(
    interface = "org.freedesktop.NetworkManager.Settings.Connection",
    default_service = "org.freedesktop.NetworkManager"
)]
pub trait SettingsConnection {
    /// The profile's settings, without secrets, normalised and with NM's defaults.
    fn get_settings(&self) -> zbus::Result<OwnedSettings>;
    /// Replaces the whole profile (NM 1.12+).
    fn update2(
        &self,
        settings: DbusSettings<'_>,
        flags: u32,
        args: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<HashMap<String, OwnedValue>>;
    /// Deletes the profile.
    fn delete(&self) -> zbus::Result<()>;
    /// The secrets of one setting (GetSettings leaves them out).
    fn get_secrets(&self, setting_name: &str) -> zbus::Result<OwnedSettings>;
    /// The keyfile backing the profile.
    #[zbus(property)]
    fn filename(&self) -> zbus::Result<String>;
}

/// `org.freedesktop.NetworkManager.Device`.
#[proxy(interface = "org.freedesktop.NetworkManager.Device", default_service = "org.freedesktop.NetworkManager")]
pub trait Device {
    /// Applies the (empty: the stored) profile's changed settings to the running device, in
    /// place, where NetworkManager can (NM 1.2).
    fn reapply(
        &self,
        connection: HashMap<&str, HashMap<&str, Value<'_>>>,
        version_id: u64,
        flags: u32,
    ) -> zbus::Result<()>;
}

/// `org.freedesktop.NetworkManager.Connection.Active`.
#[proxy(
    interface = "org.freedesktop.NetworkManager.Connection.Active",
    default_service = "org.freedesktop.NetworkManager"
)]
pub trait Active {
    /// NMActiveConnectionState.
    #[zbus(property)]
    fn state(&self) -> zbus::Result<u32>;
    /// The profile this activates.
    #[zbus(property)]
    fn connection(&self) -> zbus::Result<OwnedObjectPath>;
}

/// `org.freedesktop.NetworkManager.Checkpoint` (NM 1.4).
#[proxy(interface = "org.freedesktop.NetworkManager.Checkpoint", default_service = "org.freedesktop.NetworkManager")]
pub trait Checkpoint {
    /// The devices it covers.
    #[zbus(property)]
    fn devices(&self) -> zbus::Result<Vec<OwnedObjectPath>>;
    /// When it was made: CLOCK_BOOTTIME, milliseconds.
    #[zbus(property)]
    fn created(&self) -> zbus::Result<i64>;
    /// Its rollback timeout as made, seconds (0: never).
    #[zbus(property)]
    fn rollback_timeout(&self) -> zbus::Result<u32>;
}

/// Builds a proxy for one object, without the property cache.
pub async fn build<'a, P>(conn: &zbus::Connection, path: impl Into<ObjectPath<'a>>) -> zbus::Result<P>
where
    P: From<zbus::Proxy<'a>> + zbus::proxy::Defaults,
{
    zbus::proxy::Builder::<P>::new(conn)
        .path(path.into())?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
}
