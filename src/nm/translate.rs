//! The model as NetworkManager profiles.
//!
//! Decisions (also in README.md):
//! - One top-level interface yields its own profile plus one per port: a bridge with two
//!   ports is three profiles; a bond inside a bridge is a port of the bridge and the controller
//!   of its own ports. The interface's profile comes first, then ports in canonical order.
//! - `connection.id` is the interface name; a port's id is `CONTROLLER-port-NAME`.
//! - UUIDs are deterministic: UUIDv5 in nmiface's namespace over `KIND:NAME` (ports:
//!   `KIND:NAME@CONTROLLER`), so translating the same XML twice gives the same profiles and a
//!   re-define updates rather than duplicates. A draft `<uuid>` replaces the interface's UUID
//!   and becomes the namespace for its ports' UUIDs.
//! - Ports name their controller by UUID in `connection.master` + `slave-type`, which every
//!   NetworkManager version understands (`controller`/`port-type` exist only since 1.46).
//! - Controllers set `autoconnect-slaves=1`, so starting a bridge or bond starts its ports.
//! - Ports take the controller's MTU and start mode, as netcf did; they get no IP settings
//!   (NetworkManager removes them from ports anyway).
//! - No IPv4 is `ipv4.method=disabled`, no IPv6 is `ipv6.method=disabled` (`ignore` before
//!   NetworkManager 1.20); an empty IPv6 protocol is `link-local`.
//! - Every profile is tagged in `user.data` (`nmiface.managed=1`, `nmiface.interface=NAME`),
//!   and the interface's profile keeps the XML the user wrote (`nmiface.xml`) when it fits in
//!   NetworkManager's 8192-byte limit.

use super::bond::bond_options;
use super::device::vlan_flag;
use super::features::{self, needs, supports, NmFeature};
use super::profile::{conn_type, user_key, Key, Profile, Setting, Settings, USER_DATA_VALUE_MAX};
use super::value::Value;
use super::version::Target;
use crate::finding::{Finding, Severity};
use crate::model::{Bond, EthernetPort, Host, IfName, Interface, Kind, Member, StartMode, Vlan, MAX_VLAN_TAG_NM};
use std::collections::BTreeMap;
use uuid::Uuid;

/// `connection.autoconnect-priority` of a shared NIC's port profile (NM's default is 0).
pub const SHARED_PORT_PRIORITY: i32 = 10;

/// The namespace of nmiface's UUIDv5 profile UUIDs.
pub const UUID_NAMESPACE: Uuid = Uuid::from_u128(0x9180e202_af25_4e18_8b0c_6c345112f1a9);

/// The profiles made for one top-level interface: its own first, then its ports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InterfaceProfiles {
    /// The interface's kernel name.
    pub interface: IfName,
    /// Profiles in activation order (controller before ports).
    pub profiles: Vec<Profile>,
}

/// The result of translating a host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Translation {
    /// Per interface, in document order.
    pub interfaces: Vec<InterfaceProfiles>,
    /// What could not be carried over exactly.
    pub findings: Vec<Finding>,
}

impl Translation {
    /// Every profile, in order.
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.interfaces.iter().flat_map(|i| i.profiles.iter())
    }

    /// Every profile, in order, taken out (the findings are left behind).
    pub fn into_profiles(self) -> Vec<Profile> {
        self.interfaces.into_iter().flat_map(|i| i.profiles).collect()
    }
}

/// The UUID nmiface gives a profile: `base` (a user-given UUID) or its own namespace, over
/// `KIND:NAME` or `KIND:NAME@CONTROLLER`.
pub fn profile_uuid(base: Option<Uuid>, kind: &str, name: &str, controller: Option<&str>) -> Uuid {
    let key = match controller {
        Some(c) => format!("{kind}:{name}@{c}"),
        None => format!("{kind}:{name}"),
    };
    Uuid::new_v5(&base.unwrap_or(UUID_NAMESPACE), key.as_bytes())
}

/// The `connection.id` of a port profile.
pub fn port_id(controller: &str, port: &str) -> String {
    format!("{controller}-port-{port}")
}

/// Translates every interface of `host`. `sources[i]` is the XML of interface `i`, kept in
/// its profile; it may be shorter than the interface list.
pub fn translate(host: &Host, sources: &[String], target: &Target) -> Translation {
    let mut t = Translator { target, findings: Vec::new() };
    let interfaces = host
        .interfaces
        .iter()
        .enumerate()
        .filter_map(|(i, iface)| t.interface(iface, sources.get(i).map(String::as_str)))
        .collect();
    Translation { interfaces, findings: t.findings }
}

struct Translator<'t> {
    target: &'t Target,
    findings: Vec<Finding>,
}

/// What a port inherits from its top-level interface.
struct Inherit<'a> {
    top: &'a str,
    base_uuid: Option<Uuid>,
    start: StartMode,
    mtu: Option<u32>,
}

fn setting<'a>(s: &'a mut Settings, name: &'static str) -> &'a mut Setting {
    s.entry(Key::Borrowed(name)).or_default()
}

fn put(s: &mut Settings, setting_name: &'static str, prop: &'static str, v: impl Into<Value>) {
    setting(s, setting_name).insert(Key::Borrowed(prop), v.into());
}

impl Translator<'_> {
    /// Records something left out that the capability report also derives from the model.
    fn unsupported(&mut self, path: &str, message: String) {
        let mut finding = Finding::at(Severity::Unsupported, path, None, message);
        finding.category = crate::finding::Category::Assessed;
        self.findings.push(finding);
    }

    /// Whether the target NetworkManager takes `f`; if not, records that it is left out.
    fn allow(&mut self, f: NmFeature, path: &str) -> bool {
        if supports(self.target.nm, f) {
            return true;
        }
        self.unsupported(
            path,
            format!("{} needs NetworkManager {} (target: {}); left out", f.describe(), needs(f), self.target.nm),
        );
        false
    }

    /// The bond's options, less those the target NetworkManager lacks.
    fn gated_bond_options(&mut self, b: &Bond, path: &str) -> BTreeMap<String, String> {
        let mut o = bond_options(b);
        let gated: Vec<(String, NmFeature)> =
            o.iter().filter_map(|(k, v)| Some((k.clone(), features::bond_option(k, v)?))).collect();
        for (key, f) in gated {
            if !self.allow(f, &format!("{path}/bond/nmi:options")) {
                o.remove(&key);
            }
        }
        o
    }

    fn vlan_settings(&mut self, s: &mut Settings, v: &Vlan, path: &str) {
        let mut flags = 0;
        for (on, bit) in [
            (v.reorder_hdr, vlan_flag::REORDER_HEADERS),
            (v.ext.gvrp, vlan_flag::GVRP),
            (v.ext.loose_binding, vlan_flag::LOOSE_BINDING),
        ] {
            if on {
                flags |= bit;
            }
        }
        let mut protocol = false;
        for (f, attr) in features::vlan_features(v) {
            if self.allow(f, &format!("{path}/vlan/nmi:vlan/@{attr}")) {
                match f {
                    NmFeature::VlanMvrp => flags |= vlan_flag::MVRP,
                    _ => protocol = true,
                }
            }
        }
        let vl = setting(s, "vlan");
        vl.insert("parent".into(), v.parent.as_str().into());
        vl.insert("id".into(), Value::U32(v.tag.into()));
        // Always sent: a profile without flags gets 0 over D-Bus, not libnm's REORDER_HEADERS default.
        vl.insert("flags".into(), Value::U32(flags));
        if protocol {
            vl.insert("protocol".into(), v.ext.protocol.as_str().into());
        }
    }

    fn bond_port(&mut self, p: &EthernetPort, ctrl: &str, ctrl_uuid: Uuid, inh: &Inherit<'_>, path: &str) -> Profile {
        let mut prof = ethernet_port(p, ctrl, ctrl_uuid, "bond", inh);
        let ppath = format!("{path}/bond/interface[@name='{}']/nmi:port", p.name);
        for (f, attr) in features::port_features(p) {
            if !self.allow(f, &format!("{ppath}/@{attr}")) {
                continue;
            }
            match (f, p.port.prio, p.port.queue_id) {
                (NmFeature::BondPortPrio, Some(prio), _) => put(&mut prof.settings, "bond-port", "prio", prio),
                (NmFeature::BondPortQueueId, _, Some(q)) => {
                    put(&mut prof.settings, "bond-port", "queue-id", u32::from(q))
                }
                _ => {}
            }
        }
        prof
    }

    fn interface(&mut self, iface: &Interface, source: Option<&str>) -> Option<InterfaceProfiles> {
        let name = iface.name.as_str();
        let path = format!("/interface[@name='{name}']");
        if let Kind::Vlan(v) = &iface.kind {
            if !self.vlan_ok(v, &path) {
                return None;
            }
        }
        let kind = iface.kind.type_name();
        let uuid = iface.uuid.unwrap_or_else(|| profile_uuid(None, kind, name, None));
        let mut s = base_settings(name, uuid, name, nm_type(&iface.kind), iface.start);
        let mut user = BTreeMap::new();
        user.insert(user_key::MANAGED.to_string(), "1".to_string());
        user.insert(user_key::INTERFACE.to_string(), name.to_string());
        if let Some(xml) = source {
            if xml.len() <= USER_DATA_VALUE_MAX {
                user.insert(user_key::XML.to_string(), xml.to_string());
            } else {
                self.findings.push(Finding::at(
                    Severity::Info,
                    path.clone(),
                    None,
                    format!(
                        "the source XML ({} bytes) is not kept in the profile: NetworkManager's user.data values hold at most {USER_DATA_VALUE_MAX} bytes",
                        xml.len()
                    ),
                ));
            }
        }
        put(&mut s, "user", "data", Value::StrDict(user));
        if let Some(mtu) = iface.mtu {
            put(&mut s, "802-3-ethernet", "mtu", mtu);
        }
        for family in super::ip::settings(&mut s, iface.ipv4.as_ref(), iface.ipv6.as_ref(), self.target) {
            let f = NmFeature::DnsData;
            let message = format!(
                "{family} DNS servers need {family}.dns-data (NetworkManager {}; target: {}); left out",
                needs(f),
                self.target.nm
            );
            self.unsupported(&format!("{path}/protocol[@family='{family}']/nmi:dns"), message);
        }
        let inherit = Inherit { top: name, base_uuid: iface.uuid, start: iface.start, mtu: iface.mtu };
        let mut profiles = Vec::new();
        let mut ports = Vec::new();
        match &iface.kind {
            Kind::Ethernet(e) => {
                let eth = setting(&mut s, "802-3-ethernet");
                if let Some(mac) = e.mac {
                    eth.insert("mac-address".into(), Value::Bytes(mac.bytes().to_vec()));
                }
            }
            Kind::Bridge(b) => {
                put(&mut s, "connection", "autoconnect-slaves", 1i32);
                put(&mut s, "bridge", "stp", b.stp);
                put(&mut s, "bridge", "forward-delay", u32::from(b.forward_delay));
                if let Some(old) = b.replaces {
                    if let Some(Value::StrDict(user)) = s.get_mut("user").and_then(|u| u.get_mut("data")) {
                        user.insert(user_key::REPLACES.to_string(), old.to_string());
                    }
                }
                if let Some(mac) = b.mac {
                    // assigned-mac-address is the D-Bus name of the keyfile's cloned-mac-address;
                    // NM stores it in upper case, so send it that way and read back what we sent.
                    put(&mut s, "802-3-ethernet", "assigned-mac-address", mac.to_string().to_uppercase());
                }
                for m in &b.ports {
                    self.bridge_port(m, name, uuid, &inherit, &path, &mut ports);
                }
                if b.mac.is_some() {
                    // A shared NIC: its port profile must win over the NIC's standalone profile
                    // when both could autoconnect (at boot), without touching that profile.
                    for p in &mut ports {
                        put(&mut p.settings, "connection", "autoconnect-priority", SHARED_PORT_PRIORITY);
                    }
                }
            }
            Kind::Bond(b) => {
                put(&mut s, "connection", "autoconnect-slaves", 1i32);
                let o = self.gated_bond_options(b, &path);
                put(&mut s, "bond", "options", Value::StrDict(o));
                for p in &b.ports {
                    ports.push(self.bond_port(p, name, uuid, &inherit, &path));
                }
            }
            Kind::Vlan(v) => self.vlan_settings(&mut s, v, &path),
        }
        if !ports.is_empty() {
            let list: Vec<String> = ports.iter().map(|p: &Profile| p.uuid.to_string()).collect();
            if let Some(Value::StrDict(user)) = s.get_mut("user").and_then(|u| u.get_mut("data")) {
                user.insert(user_key::PORTS.to_string(), list.join(" "));
            }
        }
        profiles.push(Profile { id: name.to_string(), uuid, settings: s });
        profiles.extend(ports);
        Some(InterfaceProfiles { interface: iface.name.clone(), profiles })
    }

    fn vlan_ok(&mut self, v: &Vlan, path: &str) -> bool {
        if features::reserved_vlan_tag(v) {
            self.unsupported(
                &format!("{path}/vlan/@tag"),
                format!("VLAN tag {} is reserved (IEEE 802.1Q); NetworkManager takes 0-{MAX_VLAN_TAG_NM}, so no profile is made for it", v.tag),
            );
            return false;
        }
        true
    }

    fn bridge_port(
        &mut self,
        m: &Member,
        ctrl: &str,
        ctrl_uuid: Uuid,
        inh: &Inherit<'_>,
        path: &str,
        out: &mut Vec<Profile>,
    ) {
        match m {
            Member::Ethernet(p) => out.push(ethernet_port(p, ctrl, ctrl_uuid, "bridge", inh)),
            Member::Vlan { name, vlan } => {
                if !self.vlan_ok(vlan, &format!("{path}/bridge/interface[@name='{name}']")) {
                    return;
                }
                let uuid = profile_uuid(inh.base_uuid, "vlan", name.as_str(), Some(ctrl));
                let mut s = port_settings(name.as_str(), uuid, ctrl, ctrl_uuid, "bridge", conn_type::VLAN, inh);
                self.vlan_settings(&mut s, vlan, &format!("{path}/bridge/interface[@name='{name}']"));
                out.push(Profile { id: port_id(ctrl, name.as_str()), uuid, settings: s });
            }
            Member::Bond { name, bond } => {
                let uuid = profile_uuid(inh.base_uuid, "bond", name.as_str(), Some(ctrl));
                let mut s = port_settings(name.as_str(), uuid, ctrl, ctrl_uuid, "bridge", conn_type::BOND, inh);
                put(&mut s, "connection", "autoconnect-slaves", 1i32);
                let bpath = format!("{path}/bridge/interface[@name='{name}']");
                let o = self.gated_bond_options(bond, &bpath);
                put(&mut s, "bond", "options", Value::StrDict(o));
                out.push(Profile { id: port_id(ctrl, name.as_str()), uuid, settings: s });
                for p in &bond.ports {
                    let prof = self.bond_port(p, name.as_str(), uuid, inh, &bpath);
                    out.push(prof);
                }
            }
        }
    }
}

fn nm_type(kind: &Kind) -> &'static str {
    match kind {
        Kind::Ethernet(_) => conn_type::ETHERNET,
        Kind::Bridge(_) => conn_type::BRIDGE,
        Kind::Bond(_) => conn_type::BOND,
        Kind::Vlan(_) => conn_type::VLAN,
    }
}

fn base_settings(id: &str, uuid: Uuid, ifname: &str, ty: &str, start: StartMode) -> Settings {
    let mut s = Settings::new();
    let c = setting(&mut s, "connection");
    c.insert("id".into(), id.into());
    c.insert("uuid".into(), uuid.to_string().into());
    c.insert("type".into(), ty.into());
    c.insert("interface-name".into(), ifname.into());
    c.insert("autoconnect".into(), (start == StartMode::Onboot).into());
    s
}

fn port_settings(
    name: &str,
    uuid: Uuid,
    ctrl: &str,
    ctrl_uuid: Uuid,
    slave_type: &str,
    ty: &str,
    inh: &Inherit<'_>,
) -> Settings {
    let mut s = base_settings(&port_id(ctrl, name), uuid, name, ty, inh.start);
    put(&mut s, "connection", "master", ctrl_uuid.to_string());
    put(&mut s, "connection", "slave-type", slave_type);
    let user = BTreeMap::from([
        (user_key::MANAGED.to_string(), "1".to_string()),
        (user_key::INTERFACE.to_string(), inh.top.to_string()),
    ]);
    put(&mut s, "user", "data", Value::StrDict(user));
    if let Some(mtu) = inh.mtu {
        put(&mut s, "802-3-ethernet", "mtu", mtu);
    }
    s
}

fn ethernet_port(p: &EthernetPort, ctrl: &str, ctrl_uuid: Uuid, slave_type: &str, inh: &Inherit<'_>) -> Profile {
    let uuid = profile_uuid(inh.base_uuid, "ethernet", p.name.as_str(), Some(ctrl));
    let mut s = port_settings(p.name.as_str(), uuid, ctrl, ctrl_uuid, slave_type, conn_type::ETHERNET, inh);
    let eth = setting(&mut s, "802-3-ethernet");
    if let Some(mac) = p.mac {
        eth.insert("mac-address".into(), Value::Bytes(mac.bytes().to_vec()));
    }
    Profile { id: port_id(ctrl, p.name.as_str()), uuid, settings: s }
}
