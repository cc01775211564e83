//! NetworkManager profiles back into the model: the way `dumpxml` turns profiles into libvirt
//! XML.
//!
//! Only properties nmiface understands are read; NetworkManager's own defaults in
//! `GetSettings` replies are ignored. Anything set that the model cannot hold becomes a
//! finding, so `dumpxml` never hides configuration silently.

use super::device::vlan_flag;
use super::profile::{conn_type, Profile};
use super::translate::profile_uuid;
use super::value::Value;
use crate::finding::{Finding, Severity};
use crate::model::{
    ArpValidate, Bond, BondMode, Bridge, Carrier, Dhcp, Ethernet, EthernetPort, Host, IfName, Interface, Ipv4, Ipv4Net,
    Ipv6, Ipv6Net, Kind, Mac, Member, Monitor, StartMode, Vlan, DEFAULT_FORWARD_DELAY,
};
use std::collections::{BTreeMap, HashMap};

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

/// Rebuilds the interfaces described by `profiles`. Profiles with no controller become
/// top-level interfaces, in the given order; the others become their ports.
pub fn host_from_profiles(profiles: &[Profile]) -> Result<Recovered, ReverseError> {
    // Indexes built once, so reading n profiles back stays linear.
    let mut by_master: HashMap<&str, Vec<&Profile>> = HashMap::new();
    for p in profiles {
        if let Some(m) = p.master() {
            by_master.entry(m).or_default().push(p);
        }
    }
    let by_uuid: HashMap<String, &Profile> = profiles.iter().map(|p| (p.uuid.to_string(), p)).collect();
    let mut r = Reader { by_master, by_uuid, findings: Vec::new() };
    let mut interfaces = Vec::new();
    for p in profiles.iter().filter(|p| p.master().is_none()) {
        interfaces.push(r.interface(p)?);
    }
    Ok(Recovered { host: Host { interfaces }, findings: r.findings })
}

struct Reader<'p> {
    /// Ports by their `connection.master` (a UUID, or an interface name in others' profiles).
    by_master: HashMap<&'p str, Vec<&'p Profile>>,
    by_uuid: HashMap<String, &'p Profile>,
    findings: Vec<Finding>,
}

fn err(p: &Profile, message: impl Into<String>) -> ReverseError {
    ReverseError { id: p.id.clone(), message: message.into() }
}

fn name_of(p: &Profile) -> Result<IfName, ReverseError> {
    let n = p.interface_name().ok_or_else(|| err(p, "no connection.interface-name"))?;
    IfName::new(n).map_err(|m| err(p, m))
}

fn str_prop<'a>(p: &'a Profile, s: &str, k: &str) -> Option<&'a str> {
    p.get(s, k).and_then(Value::as_str)
}

impl<'p> Reader<'p> {
    fn note(&mut self, p: &Profile, severity: Severity, message: String) {
        self.findings.push(Finding::at(severity, format!("profile '{}'", p.id), None, message));
    }

    /// Profiles whose controller is `ctrl` (by UUID, or by interface name as others write it).
    fn ports_of(&self, ctrl: &Profile) -> Vec<&'p Profile> {
        let mut v: Vec<&Profile> = self.by_master.get(ctrl.uuid.to_string().as_str()).cloned().unwrap_or_default();
        if let Some(byname) = ctrl.interface_name().and_then(|n| self.by_master.get(n)) {
            v.extend(byname.iter().copied());
        }
        v
    }

    fn interface(&mut self, p: &Profile) -> Result<Interface, ReverseError> {
        let name = name_of(p)?;
        let start = match p.get("connection", "autoconnect").and_then(Value::as_bool) {
            Some(false) => StartMode::None,
            _ => StartMode::Onboot,
        };
        let mtu = mtu_of(p);
        let (kind, kind_name) = match p.conn_type() {
            Some(conn_type::ETHERNET) => (Kind::Ethernet(Ethernet { mac: self.mac(p, "mac-address") }), "ethernet"),
            Some(conn_type::BRIDGE) => (Kind::Bridge(self.bridge(p)?), "bridge"),
            Some(conn_type::BOND) => (Kind::Bond(self.bond(p)?), "bond"),
            Some(conn_type::VLAN) => (Kind::Vlan(self.vlan(p)?), "vlan"),
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
            let pname = name_of(port)?;
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

    fn bond(&mut self, p: &Profile) -> Result<Bond, ReverseError> {
        let empty = BTreeMap::new();
        let opts = p.get("bond", "options").and_then(Value::as_str_dict).unwrap_or(&empty);
        let mode = match opts.get("mode") {
            Some(m) => BondMode::parse(m).ok_or_else(|| err(p, format!("unknown bond mode '{m}'")))?,
            None => BondMode::BalanceRr,
        };
        let num = |k: &str| opts.get(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        let monitor = if num("arp_interval") > 0 {
            let targets = opts.get("arp_ip_target").map(String::as_str).unwrap_or("");
            let mut list = targets.split(',').map(str::trim).filter(|t| !t.is_empty());
            let first = list.next().ok_or_else(|| err(p, "arp_interval without arp_ip_target"))?;
            let target = first.parse().map_err(|_| err(p, format!("invalid arp_ip_target '{first}'")))?;
            // libvirt's format holds one target; the others go to the extension.
            let mut more_targets = Vec::new();
            for t in list {
                more_targets.push(t.parse().map_err(|_| err(p, format!("invalid arp_ip_target '{t}'")))?);
            }
            let validate = opts.get("arp_validate").map(|v| match v.as_str() {
                "0" => Some(ArpValidate::None),
                "1" => Some(ArpValidate::Active),
                "2" => Some(ArpValidate::Backup),
                "3" => Some(ArpValidate::All),
                other => ArpValidate::parse(other),
            });
            let validate = match validate {
                Some(None) => {
                    let v = opts.get("arp_validate").cloned().unwrap_or_default();
                    self.note(
                        p,
                        Severity::Unsupported,
                        format!("arp_validate '{v}' has no libvirt equivalent; left out"),
                    );
                    None
                }
                Some(v) => v,
                None => None,
            };
            Some(Monitor::Arp { interval: num("arp_interval"), target, more_targets, validate })
        } else if num("miimon") > 0 {
            let carrier = opts.get("use_carrier").map(|v| if v == "0" { Carrier::Ioctl } else { Carrier::Netif });
            Some(Monitor::Mii { freq: num("miimon"), downdelay: num("downdelay"), updelay: num("updelay"), carrier })
        } else {
            // Neither set: NetworkManager applies its default MII monitoring.
            Some(Monitor::default_mii())
        };
        let mut options = crate::model::BondOptions::default();
        for spec in crate::model::bond::OPTION_SPECS.iter() {
            if let Some(v) = opts.get(spec.key) {
                if let Err(m) = options.set(spec.key, v) {
                    self.note(p, Severity::Unsupported, format!("bond option {}: {m}; left out", spec.key));
                }
            }
        }
        let mapped = |k: &str| {
            super::bond::BOND_CORE_KEYS.contains(&k) || crate::model::bond::OPTION_SPECS.iter().any(|s| s.key == k)
        };
        for (k, v) in opts.iter().filter(|(k, _)| !mapped(k)) {
            self.note(p, Severity::Unsupported, format!("bond option {k}={v} has no libvirt equivalent; left out"));
        }
        let mut ports = Vec::new();
        for port in self.ports_of(p) {
            let pname = name_of(port)?;
            if port.conn_type() != Some(conn_type::ETHERNET) {
                self.note(
                    port,
                    Severity::Unsupported,
                    "a bond port that is not ethernet has no libvirt equivalent; left out".into(),
                );
                continue;
            }
            let ext = crate::model::PortExt {
                prio: port.get("bond-port", "prio").and_then(Value::as_int).and_then(|v| i32::try_from(v).ok()),
                // NM leaves out queue-id 0, its default.
                queue_id: port
                    .get("bond-port", "queue-id")
                    .and_then(Value::as_uint)
                    .and_then(|v| u16::try_from(v).ok()),
            };
            ports.push(EthernetPort { name: pname, mac: self.mac(port, "mac-address"), port: ext });
        }
        let primary = match opts.get("primary") {
            Some(pr) if mode.has_primary() => Some(IfName::new(pr).map_err(|m| err(p, m))?),
            _ => None,
        };
        let mut bond = Bond { mode, monitor, primary, ports, options };
        bond.sort_ports();
        Ok(bond)
    }

    fn vlan(&mut self, p: &Profile) -> Result<Vlan, ReverseError> {
        // GetSettings leaves out properties at their default; vlan.id defaults to 0.
        let tag = p.get("vlan", "id").and_then(Value::as_uint).unwrap_or(0);
        let parent = str_prop(p, "vlan", "parent").ok_or_else(|| err(p, "no vlan.parent"))?;
        // Others may name the parent by profile UUID; resolve it when that profile is here.
        let parent = match self.by_uuid.get(parent) {
            Some(q) => q.interface_name().unwrap_or(parent),
            None => parent,
        };
        let parent = IfName::new(parent).map_err(|m| err(p, format!("vlan.parent: {m}")))?;
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

    fn ipv4(&mut self, p: &Profile) -> Result<Option<Ipv4>, ReverseError> {
        let method = str_prop(p, "ipv4", "method").unwrap_or("auto");
        let nat = method == "shared";
        let dhcp = match method {
            "disabled" => return Ok(None),
            "auto" => Some(Dhcp { peerdns: !ignore_auto_dns(p, "ipv4") }),
            "manual" | "shared" => None,
            other => {
                self.note(
                    p,
                    Severity::Unsupported,
                    format!("ipv4.method '{other}' has no libvirt equivalent; left out"),
                );
                return Ok(None);
            }
        };
        let addresses = addresses(p, "ipv4")
            .into_iter()
            .map(|(a, prefix)| {
                a.parse()
                    .map(|address| Ipv4Net { address, prefix })
                    .map_err(|_| err(p, format!("bad IPv4 address '{a}'")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let gateway = gateway(p, "ipv4").map(|g| g.parse()).transpose().map_err(|_| err(p, "bad ipv4.gateway"))?;
        if dhcp.is_none() && addresses.is_empty() && !nat {
            return Ok(None);
        }
        Ok(Some(Ipv4 { dhcp, addresses, gateway, nat }))
    }

    fn ipv6(&mut self, p: &Profile) -> Result<Option<Ipv6>, ReverseError> {
        let method = str_prop(p, "ipv6", "method").unwrap_or("auto");
        let (autoconf, dhcp) = match method {
            "disabled" | "ignore" => return Ok(None),
            "auto" => {
                if ignore_auto_dns(p, "ipv6") {
                    self.note(
                        p,
                        Severity::Approximated,
                        "ipv6.ignore-auto-dns with SLAAC has no libvirt form; left out".into(),
                    );
                }
                (true, None)
            }
            "dhcp" => (false, Some(Dhcp { peerdns: !ignore_auto_dns(p, "ipv6") })),
            "manual" | "link-local" => (false, None),
            other => {
                self.note(
                    p,
                    Severity::Unsupported,
                    format!("ipv6.method '{other}' has no libvirt equivalent; left out"),
                );
                return Ok(None);
            }
        };
        let addresses = addresses(p, "ipv6")
            .into_iter()
            .map(|(a, prefix)| {
                a.parse()
                    .map(|address| Ipv6Net { address, prefix })
                    .map_err(|_| err(p, format!("bad IPv6 address '{a}'")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let gateway = gateway(p, "ipv6").map(|g| g.parse()).transpose().map_err(|_| err(p, "bad ipv6.gateway"))?;
        Ok(Some(Ipv6 { autoconf, dhcp, addresses, gateway }))
    }
}

fn mtu_of(p: &Profile) -> Option<u32> {
    p.get("802-3-ethernet", "mtu").and_then(Value::as_uint).filter(|m| *m > 0).map(|m| m as u32)
}

fn ignore_auto_dns(p: &Profile, family: &str) -> bool {
    p.get(family, "ignore-auto-dns").and_then(Value::as_bool).unwrap_or(false)
}

fn gateway<'a>(p: &'a Profile, family: &str) -> Option<&'a str> {
    str_prop(p, family, "gateway").filter(|g| !g.is_empty())
}

fn addresses(p: &Profile, family: &str) -> Vec<(String, u8)> {
    let Some(list) = p.get(family, "address-data").and_then(Value::as_dict_list) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|a| {
            let addr = a.get("address")?.as_str()?.to_string();
            let prefix = a.get("prefix")?.as_uint()?.min(128) as u8;
            Some((addr, prefix))
        })
        .collect()
}
