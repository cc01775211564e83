//! NetworkManager profiles back into the model: the way `dumpxml` turns profiles into libvirt
//! XML.
//!
//! Only properties nmiface understands are read; NetworkManager's own defaults in
//! `GetSettings` replies are ignored. Anything set that the model cannot hold becomes a
//! finding naming its NetworkManager property ([`unexpressed`]), so `dumpxml` never hides
//! configuration silently. References others' profiles make by MAC or by profile UUID (a
//! profile bound to its NIC by MAC, a VLAN parent) are resolved with [`Around`]: the host's
//! devices and other profiles.

mod bond;
mod ip;
mod unexpressed;

use super::device::vlan_flag;
use super::profile::{conn_type, Profile};
use super::translate::profile_uuid;
use super::value::Value;
use crate::finding::{Finding, Severity};
use crate::model::{
    Bridge, Ethernet, EthernetPort, Host, IfName, Interface, Kind, Mac, Member, StartMode, Vlan, DEFAULT_FORWARD_DELAY,
};
use std::collections::HashMap;

/// A profile that cannot be read back into the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile '{id}': {message}")]
pub struct ReverseError {
    /// The profile's `connection.id`.
    pub id: String,
    /// What is wrong with it.
    pub message: String,
}

/// The model recovered from profiles, with what it could not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// The interfaces.
    pub host: Host,
    /// Settings the model (and so libvirt XML) cannot express.
    pub findings: Vec<Finding>,
}

/// What else the host has, for references profiles make by MAC or UUID.
#[derive(Debug, Clone, Copy, Default)]
pub struct Around<'a> {
    /// Devices by name with their permanent or current MAC.
    pub devices: &'a [(String, Mac)],
    /// Every profile of the host (a VLAN's parent may be any of them).
    pub profiles: &'a [Profile],
    /// Whether a profile bound to its NIC by MAC is named after the device with that MAC
    /// (live), or by its MAC alone (the definition: `dumpxml --inactive`).
    pub name_by_device: bool,
}

/// Rebuilds the interfaces described by `profiles`. Profiles with no controller become
/// top-level interfaces, in the given order; the others become their ports.
pub fn host_from_profiles(profiles: &[Profile]) -> Result<Recovered, ReverseError> {
    host_from_profiles_around(profiles, Around::default())
}

/// [`host_from_profiles`], resolving MACs and profile UUIDs against `around`, and naming every
/// non-default setting the XML cannot hold in a finding.
pub fn host_from_profiles_around(profiles: &[Profile], around: Around<'_>) -> Result<Recovered, ReverseError> {
    // Indexes built once, so reading n profiles back stays linear.
    let mut by_master: HashMap<&str, Vec<&Profile>> = HashMap::new();
    for p in profiles {
        if let Some(m) = p.master() {
            by_master.entry(m).or_default().push(p);
        }
    }
    let by_uuid: HashMap<String, &Profile> =
        around.profiles.iter().chain(profiles).map(|p| (p.uuid.to_string(), p)).collect();
    let mut r = Reader {
        by_master,
        by_uuid,
        devices: around.devices,
        name_by_device: around.name_by_device,
        findings: Vec::new(),
    };
    let mut interfaces = Vec::new();
    for p in profiles.iter().filter(|p| p.master().is_none()) {
        let iface = r.interface(p)?;
        r.findings.extend(unexpressed::findings(p, None));
        interfaces.push(iface);
    }
    Ok(Recovered { host: Host { interfaces }, findings: r.findings })
}

struct Reader<'p> {
    /// Ports by their `connection.master` (a UUID, or an interface name in others' profiles).
    by_master: HashMap<&'p str, Vec<&'p Profile>>,
    by_uuid: HashMap<String, &'p Profile>,
    devices: &'p [(String, Mac)],
    name_by_device: bool,
    findings: Vec<Finding>,
}

fn err(p: &Profile, message: impl Into<String>) -> ReverseError {
    ReverseError { id: p.id.clone(), message: message.into() }
}

fn str_prop<'a>(p: &'a Profile, s: &str, k: &str) -> Option<&'a str> {
    p.get(s, k).and_then(Value::as_str)
}

/// The MAC a profile binds to (`802-3-ethernet.mac-address`), if it is a MAC.
fn bound_mac(p: &Profile) -> Option<Mac> {
    let b = p.get("802-3-ethernet", "mac-address")?.as_bytes()?;
    <[u8; 6]>::try_from(b).ok().map(Mac)
}

/// The name systemd's MAC naming scheme gives a NIC (`enx` + the MAC in hex): a valid,
/// stable name for a NIC nmiface knows only by its MAC.
fn enx_name(mac: &Mac) -> String {
    format!("enx{}", mac.0.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

impl<'p> Reader<'p> {
    fn note(&mut self, p: &Profile, severity: Severity, message: String) {
        self.findings.push(Finding::at(severity, format!("profile '{}'", p.id), None, message));
    }

    /// The device with `mac`, by name.
    fn device_with(&self, mac: &Mac) -> Option<&'p str> {
        self.devices.iter().find(|(_, m)| m == mac).map(|(n, _)| n.as_str())
    }

    /// The interface name of `p`: its `connection.interface-name`, else (bound by MAC) the
    /// device with that MAC, else the `enx…` name of that MAC; each with a finding, since the
    /// XML then names what the profile does not. `None` when it has neither name nor MAC.
    fn name_of(&mut self, p: &Profile) -> Result<Option<IfName>, ReverseError> {
        if let Some(n) = p.interface_name() {
            return IfName::new(n).map(Some).map_err(|m| err(p, m));
        }
        let Some(mac) = bound_mac(p) else { return Ok(None) };
        let device = if self.name_by_device { self.device_with(&mac) } else { None };
        let (name, how) = match device {
            Some(d) => (d.to_string(), format!("the XML names {d}, the device that has that MAC now")),
            None => {
                let n = enx_name(&mac);
                let why = if self.name_by_device { "no device has that MAC" } else { "the definition names no device" };
                (n.clone(), format!("{why}; the XML names it {n} (systemd's name for a NIC by its MAC)"))
            }
        };
        self.note(
            p,
            Severity::Approximated,
            format!("bound to its device by MAC {mac} only (no connection.interface-name): {how}"),
        );
        IfName::new(&name).map(Some).map_err(|m| err(p, m))
    }

    /// Profiles whose controller is `ctrl` (by UUID, or by interface name as others write it).
    fn ports_of(&self, ctrl: &Profile) -> Vec<&'p Profile> {
        let mut v: Vec<&Profile> = self.by_master.get(ctrl.uuid.to_string().as_str()).cloned().unwrap_or_default();
        if let Some(byname) = ctrl.interface_name().and_then(|n| self.by_master.get(n)) {
            v.extend(byname.iter().copied());
        }
        v
    }

    /// A port's name, or `None` (with a finding: it is left out of its controller) when it has
    /// none the XML could give it.
    fn port_name(&mut self, port: &Profile, ctrl: &Profile) -> Result<Option<IfName>, ReverseError> {
        let name = self.name_of(port)?;
        if name.is_none() {
            self.note(
                port,
                Severity::Unsupported,
                format!(
                    "a port of '{}' with no connection.interface-name and no MAC (it takes any device): left out of the XML",
                    ctrl.id
                ),
            );
        }
        Ok(name)
    }

    fn interface(&mut self, p: &Profile) -> Result<Interface, ReverseError> {
        if p.conn_type() == Some(conn_type::VLAN) && p.interface_name().is_none() {
            // A VLAN's MAC names its parent, not itself: it is called PARENT.TAG, as
            // NetworkManager and libvirt name it.
            let v = self.vlan(p)?;
            let name = format!("{}.{}", v.parent, v.tag);
            let name = IfName::new(&name).map_err(|m| err(p, m))?;
            let message = format!("no connection.interface-name: the XML names the VLAN {name} (PARENT.TAG)");
            self.note(p, Severity::Approximated, message);
            return self.interface_named(p, name, Some(v));
        }
        let name = self.name_of(p)?.ok_or_else(|| err(p, "no connection.interface-name and no MAC to name it by"))?;
        self.interface_named(p, name, None)
    }

    /// The interface of `p` called `name`; `vlan`: its VLAN settings, read already.
    fn interface_named(&mut self, p: &Profile, name: IfName, vlan: Option<Vlan>) -> Result<Interface, ReverseError> {
        let start = match p.get("connection", "autoconnect").and_then(Value::as_bool) {
            Some(false) => StartMode::None,
            _ => StartMode::Onboot,
        };
        let mtu = mtu_of(p);
        let (kind, kind_name) = match p.conn_type() {
            Some(conn_type::ETHERNET) => (Kind::Ethernet(Ethernet { mac: self.mac(p, "mac-address") }), "ethernet"),
            Some(conn_type::BRIDGE) => (Kind::Bridge(self.bridge(p)?), "bridge"),
            Some(conn_type::BOND) => (Kind::Bond(self.bond(p)?), "bond"),
            Some(conn_type::VLAN) => (
                Kind::Vlan(match vlan {
                    Some(v) => v,
                    None => self.vlan(p)?,
                }),
                "vlan",
            ),
            other => {
                return Err(err(p, format!("connection type '{}' is not one nmiface handles", other.unwrap_or(""))))
            }
        };
        let derived = profile_uuid(None, kind_name, name.as_str(), None);
        let uuid = (p.uuid != derived).then_some(p.uuid);
        let ipv4 = self.ipv4(p)?;
        let ipv6 = self.ipv6(p)?;
        Ok(Interface { name, uuid, start, mtu, ipv4, ipv6, kind })
    }

    fn mac(&mut self, p: &Profile, key: &str) -> Option<Mac> {
        let bytes = p.get("802-3-ethernet", key)?.as_bytes()?;
        match <[u8; 6]>::try_from(bytes) {
            Ok(b) => Some(Mac(b)),
            Err(_) => {
                self.note(p, Severity::Unsupported, format!("802-3-ethernet.{key} is not a 6-byte MAC; ignored"));
                None
            }
        }
    }

    fn bridge(&mut self, p: &Profile) -> Result<Bridge, ReverseError> {
        let stp = p.get("bridge", "stp").and_then(Value::as_bool).unwrap_or(true);
        let forward_delay = p
            .get("bridge", "forward-delay")
            .and_then(Value::as_uint)
            .map_or(DEFAULT_FORWARD_DELAY, |d| d.min(u64::from(u16::MAX)) as u16);
        let mac = match str_prop(p, "802-3-ethernet", "assigned-mac-address") {
            Some(m) => match Mac::parse(m) {
                Ok(mac) => Some(mac),
                Err(_) => {
                    self.note(p, Severity::Unsupported, format!("bridge MAC policy '{m}' has no libvirt equivalent"));
                    None
                }
            },
            None => None,
        };
        let mut ports = Vec::new();
        for port in self.ports_of(p) {
            self.findings.extend(unexpressed::findings(port, Some(p)));
            let Some(pname) = self.port_name(port, p)? else { continue };
            match port.conn_type() {
                Some(conn_type::ETHERNET) => ports.push(Member::Ethernet(EthernetPort {
                    name: pname,
                    mac: self.mac(port, "mac-address"),
                    port: Default::default(),
                })),
                Some(conn_type::BOND) => ports.push(Member::Bond { name: pname, bond: self.bond(port)? }),
                Some(conn_type::VLAN) => ports.push(Member::Vlan { name: pname, vlan: self.vlan(port)? }),
                other => self.note(
                    port,
                    Severity::Unsupported,
                    format!("a '{}' port of a bridge has no libvirt equivalent; left out", other.unwrap_or("")),
                ),
            }
        }
        ports.sort_by(|a, b| a.name().cmp(b.name()));
        let replaces = p.user_data(crate::nm::user_key::REPLACES).and_then(|u| uuid::Uuid::parse_str(u).ok());
        Ok(Bridge { stp, forward_delay, mac, replaces, ports })
    }

    fn vlan(&mut self, p: &Profile) -> Result<Vlan, ReverseError> {
        // GetSettings leaves out properties at their default; vlan.id defaults to 0.
        let tag = p.get("vlan", "id").and_then(Value::as_uint).unwrap_or(0);
        let parent = self.vlan_parent(p)?;
        let flags = p.get("vlan", "flags").and_then(Value::as_uint).unwrap_or(u64::from(vlan_flag::REORDER_HEADERS));
        if flags & !u64::from(vlan_flag::ALL) != 0 {
            self.note(p, Severity::Unsupported, format!("vlan.flags {flags:#x}: unknown bits left out"));
        }
        let protocol = match str_prop(p, "vlan", "protocol") {
            Some("802.1ad") => crate::model::VlanProtocol::Dot1ad,
            _ => crate::model::VlanProtocol::Dot1Q,
        };
        let has = |bit: u32| flags & u64::from(bit) != 0;
        let ext = crate::model::VlanExt {
            protocol,
            gvrp: has(vlan_flag::GVRP),
            mvrp: has(vlan_flag::MVRP),
            loose_binding: has(vlan_flag::LOOSE_BINDING),
        };
        Ok(Vlan { tag: tag.min(u64::from(u16::MAX)) as u16, parent, reorder_hdr: has(vlan_flag::REORDER_HEADERS), ext })
    }
}

impl Reader<'_> {
    /// A VLAN's parent: `vlan.parent` as an interface name or as the UUID of the parent's
    /// profile, or (no `vlan.parent`) the device with the MAC in the VLAN's own
    /// `802-3-ethernet.mac-address`, which is how NetworkManager finds the parent then.
    fn vlan_parent(&mut self, p: &Profile) -> Result<IfName, ReverseError> {
        if let Some(parent) = str_prop(p, "vlan", "parent") {
            let Some(q) = self.by_uuid.get(parent).copied() else {
                return IfName::new(parent).map_err(|m| err(p, format!("vlan.parent: {m}")));
            };
            // The parent's profile may itself be bound by MAC.
            return match self.name_of(q)? {
                Some(n) => Ok(n),
                None => Err(err(p, format!("vlan.parent is profile '{}', which names no interface and no MAC", q.id))),
            };
        }
        let mac = bound_mac(p).ok_or_else(|| err(p, "no vlan.parent and no 802-3-ethernet.mac-address"))?;
        let name = match self.device_with(&mac) {
            Some(d) => d.to_string(),
            None => {
                // A profile of the host bound to that MAC with a name names the parent too.
                let named = self.by_uuid.values().find(|q| bound_mac(q) == Some(mac) && q.interface_name().is_some());
                match named.and_then(|q| q.interface_name()) {
                    Some(n) => n.to_string(),
                    None => enx_name(&mac),
                }
            }
        };
        self.note(
            p,
            Severity::Approximated,
            format!("the VLAN's parent is given by MAC {mac} (802-3-ethernet.mac-address, no vlan.parent): the XML names it {name}"),
        );
        IfName::new(&name).map_err(|m| err(p, format!("vlan parent: {m}")))
    }
}

fn mtu_of(p: &Profile) -> Option<u32> {
    p.get("802-3-ethernet", "mtu").and_then(Value::as_uint).filter(|m| *m > 0).map(|m| m as u32)
}
