//! NetworkManager connection profiles as data: `a{sa{sv}}` settings plus the identity fields
//! the rest of nmiface needs without digging through the map.

use super::value::Value;
use serde::Serialize;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A setting or property name: static for the names nmiface writes (no allocation per key, which
/// dominated translation time), owned for names read from NetworkManager.
pub type Key = std::borrow::Cow<'static, str>;

/// One setting's properties.
pub type Setting = BTreeMap<Key, Value>;

/// A profile's settings: setting name -> property name -> value (`a{sa{sv}}`). Sorted maps keep
/// output deterministic.
pub type Settings = BTreeMap<Key, Setting>;

/// NetworkManager's `connection.type` for each kind.
pub mod conn_type {
    /// Ethernet (`ethernet` is only nmcli's alias; D-Bus needs this name).
    pub const ETHERNET: &str = "802-3-ethernet";
    /// Linux bridge.
    pub const BRIDGE: &str = "bridge";
    /// Bond.
    pub const BOND: &str = "bond";
    /// VLAN.
    pub const VLAN: &str = "vlan";
}

/// Keys nmiface keeps in `user.data` (NM: a `.` is required, at most 8192 bytes per value).
pub mod user_key {
    /// The prefix of every key nmiface keeps in `user.data` (other tools keep theirs there too).
    pub const PREFIX: &str = "nmiface.";
    /// Marks a profile as created by nmiface; nmiface changes or deletes only these.
    pub const MANAGED: &str = "nmiface.managed";
    /// The top-level interface a profile belongs to (ports name their controller's interface).
    pub const INTERFACE: &str = "nmiface.interface";
    /// The XML the user wrote for this interface, when it fits.
    pub const XML: &str = "nmiface.xml";
    /// On an interface's own profile: its ports' UUIDs, space-separated, so finding all of an
    /// interface's profiles takes a few lookups by UUID instead of reading every profile.
    pub const PORTS: &str = "nmiface.ports";
    /// Properties the format describes but the documents left out ([`crate::nm::merge::OPTIONAL`],
    /// comma-separated `setting.property`) that an update kept because they were the user's,
    /// not an earlier document's: kept again by the next update that leaves them out.
    pub const KEPT: &str = "nmiface.kept";
    /// On a bridge made by `nmiface bridge`: the UUID of the NIC's standalone profile it took
    /// over, which `unbridge` activates again.
    pub const REPLACES: &str = "nmiface.replaces";
}

/// Largest `user.data` value NetworkManager accepts, in bytes.
pub const USER_DATA_VALUE_MAX: usize = 8192;

/// One connection profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// `connection.id`.
    pub id: String,
    /// `connection.uuid`.
    pub uuid: Uuid,
    /// All settings, as sent to NetworkManager.
    pub settings: Settings,
}

impl Profile {
    /// A property's value.
    pub fn get(&self, setting: &str, property: &str) -> Option<&Value> {
        self.settings.get(setting)?.get(property)
    }

    /// `connection.type`.
    pub fn conn_type(&self) -> Option<&str> {
        self.get("connection", "type")?.as_str()
    }

    /// `connection.interface-name`.
    pub fn interface_name(&self) -> Option<&str> {
        self.get("connection", "interface-name")?.as_str()
    }

    /// `connection.master`: the controller's UUID (or interface name, in profiles made by others).
    pub fn master(&self) -> Option<&str> {
        self.get("connection", "master")?.as_str()
    }

    /// A `user.data` entry.
    pub fn user_data(&self, key: &str) -> Option<&str> {
        self.get("user", "data")?.as_str_dict()?.get(key).map(String::as_str)
    }

    /// The users `connection.permissions` restricts the profile to (empty: everyone, a
    /// system-wide profile). NetworkManager writes entries as `user:NAME:`.
    pub fn permitted_users(&self) -> Vec<&str> {
        let Some(list) = self.get("connection", "permissions").and_then(Value::as_str_list) else {
            return Vec::new();
        };
        list.iter().map(|e| e.strip_prefix("user:").map_or(e.as_str(), |u| u.split(':').next().unwrap_or(u))).collect()
    }

    /// Whether NetworkManager would use this profile for device `nic` (whose MAC is `mac`, when
    /// known): bound by `connection.interface-name`, or, with none, by
    /// `802-3-ethernet.mac-address` (the binding connection editors offer). Ports count too.
    pub fn bound_to(&self, nic: &str, mac: Option<&[u8]>) -> bool {
        match self.interface_name() {
            Some(n) => n == nic,
            None => {
                let bound = self.get("802-3-ethernet", "mac-address").and_then(Value::as_bytes);
                matches!((bound, mac), (Some(b), Some(m)) if !b.is_empty() && b == m)
            }
        }
    }

    /// Bound to a device by MAC only (no interface name): finding its device needs the
    /// devices' MACs.
    pub fn bound_by_mac(&self) -> bool {
        self.interface_name().is_none()
            && self.get("802-3-ethernet", "mac-address").and_then(Value::as_bytes).is_some_and(|b| !b.is_empty())
    }

    /// Whether NetworkManager brings this profile up by itself (`connection.autoconnect`,
    /// true unless set false).
    pub fn autoconnects(&self) -> bool {
        self.get("connection", "autoconnect").and_then(Value::as_bool).unwrap_or(true)
    }

    /// The profile to send back to NetworkManager after reading it: without the legacy forms
    /// GetSettings returns beside their successors (`addresses` beside `address-data`, …). The
    /// daemon prefers a legacy property whenever one is present (libnm's
    /// `_nm_setting_use_legacy_property`), and the legacy forms cannot hold everything (route
    /// attributes, address labels), so sending both would lose exactly that.
    pub fn without_legacy_duplicates(&self) -> Profile {
        /// (setting, legacy property, its successor).
        const LEGACY: [(&str, &str, &str); 6] = [
            ("ipv4", "addresses", "address-data"),
            ("ipv4", "routes", "route-data"),
            ("ipv4", "dns", "dns-data"),
            ("ipv6", "addresses", "address-data"),
            ("ipv6", "routes", "route-data"),
            ("ipv6", "dns", "dns-data"),
        ];
        let mut p = self.clone();
        for (setting, legacy, new) in LEGACY {
            if let Some(s) = p.settings.get_mut(setting) {
                if s.contains_key(new) {
                    s.remove(legacy);
                }
            }
        }
        p
    }

    /// The keyfile name NetworkManager would use: the id, with the characters a file name
    /// cannot hold replaced, plus `.nmconnection`.
    pub fn keyfile_name(&self) -> String {
        let safe: String = self.id.chars().map(|c| if c == '/' || c.is_control() { '*' } else { c }).collect();
        let safe = if safe.starts_with('.') { format!("_{safe}") } else { safe };
        format!("{safe}.nmconnection")
    }
}
