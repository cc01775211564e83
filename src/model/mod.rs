//! The neutral model: one description of host interfaces that both XML dialects read into and
//! that NetworkManager profiles are made from and read back into.
//!
//! Invalid states are unrepresentable where the type system allows: a bridge cannot hold a
//! bridge ([`Member`] has no bridge variant), a bond holds only ethernet ports, names, MACs and
//! addresses are validated types. What types cannot express (a port claimed twice, cycles,
//! duplicate names) is checked by [`Host::validate`].

pub mod bond;
mod host;
mod ip;
mod mac;
mod name;

pub use bond::{ArpValidate, Bond, BondMode, BondOptions, Carrier, Monitor, DEFAULT_MIIMON};
pub use host::HostError;
pub use ip::{
    check_dns_option, check_search_domain, classful_prefix, netmask_to_prefix, Dhcp, IpExtra, Ipv4, Ipv4Net, Ipv6,
    Ipv6Net, Route, DNS_OPTIONS,
};
pub use mac::Mac;
pub use name::{IfName, IFNAME_MAX};

use serde::Serialize;

/// When NetworkManager should bring an interface up (libvirt `<start mode>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartMode {
    /// Bring it up whenever possible (NM `connection.autoconnect=true`).
    Onboot,
    /// Only when asked (NM `connection.autoconnect=false`).
    None,
}

impl StartMode {
    /// The libvirt attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            StartMode::Onboot => "onboot",
            StartMode::None => "none",
        }
    }
}

/// A set of top-level interfaces described together (one document).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Host {
    /// Top-level interfaces, in document order. Ports live inside their controller.
    pub interfaces: Vec<Interface>,
}

/// A top-level interface: it carries the host-level settings (start, MTU, IP).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interface {
    /// Kernel name.
    pub name: IfName,
    /// Fixed profile UUID (the 2009 draft's `<uuid>`); derived from kind and name when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<uuid::Uuid>,
    /// When to bring it up.
    pub start: StartMode,
    /// MTU in bytes; also applied to the ports, as netcf did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// IPv4 settings; `None` means no IPv4 at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4>,
    /// IPv6 settings; `None` means IPv6 disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6>,
    /// What kind of interface, with its kind-specific settings.
    pub kind: Kind,
}

/// The kind of a top-level interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Kind {
    /// A physical (or otherwise existing) Ethernet NIC.
    Ethernet(Ethernet),
    /// A Linux bridge.
    Bridge(Bridge),
    /// A bond.
    Bond(Bond),
    /// An 802.1Q VLAN on a parent interface.
    Vlan(Vlan),
}

impl Kind {
    /// Every libvirt `type` name, in [`KindType::ALL`] order: what `<interface type=…>` takes.
    pub const TYPE_NAMES: [&'static str; KindType::ALL.len()] = {
        let mut names = [""; KindType::ALL.len()];
        let mut i = 0;
        while i < names.len() {
            names[i] = KindType::ALL[i].as_str();
            i += 1;
        }
        names
    };

    /// Which kind this is, without its settings.
    pub fn kind_type(&self) -> KindType {
        match self {
            Kind::Ethernet(_) => KindType::Ethernet,
            Kind::Bridge(_) => KindType::Bridge,
            Kind::Bond(_) => KindType::Bond,
            Kind::Vlan(_) => KindType::Vlan,
        }
    }

    /// The libvirt `type` attribute for this kind.
    pub fn type_name(&self) -> &'static str {
        self.kind_type().as_str()
    }
}

/// The kinds of [`Kind`] without their settings: what a reader dispatches on. Readers match
/// on it exhaustively, so a new kind of interface cannot be read as another one by a
/// catch-all arm; [`Kind::kind_type`] ties it to [`Kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KindType {
    /// [`Kind::Ethernet`].
    Ethernet,
    /// [`Kind::Bridge`].
    Bridge,
    /// [`Kind::Bond`].
    Bond,
    /// [`Kind::Vlan`].
    Vlan,
}

impl KindType {
    /// Every kind, in [`Kind`]'s declaration order.
    pub const ALL: [KindType; 4] = [KindType::Ethernet, KindType::Bridge, KindType::Bond, KindType::Vlan];

    /// The libvirt `type` attribute value.
    pub const fn as_str(self) -> &'static str {
        match self {
            KindType::Ethernet => "ethernet",
            KindType::Bridge => "bridge",
            KindType::Bond => "bond",
            KindType::Vlan => "vlan",
        }
    }

    /// The kind a libvirt `type` value names, if any.
    pub fn parse(name: &str) -> Option<KindType> {
        KindType::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Ethernet-specific settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Ethernet {
    /// The NIC's MAC: the profile applies only to the device with this address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
}

/// An Ethernet port of a bridge or bond (libvirt's bare `<interface type='ethernet'>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EthernetPort {
    /// Kernel name.
    pub name: IfName,
    /// The NIC's MAC, binding the port profile to that device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// Bond-port settings libvirt cannot express (extension `<nmi:port>`).
    #[serde(skip_serializing_if = "PortExt::is_empty")]
    pub port: PortExt,
}

/// A bond port's settings beyond libvirt's format (NM's `bond-port` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PortExt {
    /// Port priority for active-backup reselection (`bond-port.prio`, NM 1.44 / 1.42.8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prio: Option<i32>,
    /// Queue id (`bond-port.queue-id`, NM 1.34).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<u16>,
}

impl PortExt {
    /// True when nothing beyond libvirt's format is set.
    pub fn is_empty(&self) -> bool {
        self.prio.is_none() && self.queue_id.is_none()
    }
}

/// A Linux bridge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bridge {
    /// Spanning tree protocol on (NM's default and libvirt's iface-bridge default).
    pub stp: bool,
    /// Forward delay in whole seconds; NM takes 2..=30, or 0 when STP is off.
    pub forward_delay: u16,
    /// MAC the bridge takes explicitly: the shared NIC's, so DHCP leases survive sharing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// The standalone profile of the NIC this bridge was made from (`nmiface bridge`): kept,
    /// untouched, for `unbridge` to bring back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<uuid::Uuid>,
    /// Ports, in canonical order (sorted by name).
    pub ports: Vec<Member>,
}

/// Applies NetworkManager's forward-delay rules to a delay in seconds: whole seconds, 2..=30
/// with STP on, 0 or 2..=30 with STP off. Returns the value and, when it changed, why.
pub fn forward_delay(seconds: f64, stp: bool) -> (u16, Option<String>) {
    let rounded = seconds.round().min(f64::from(u16::MAX)) as u16;
    let clamped = if rounded == 0 && !stp { 0 } else { rounded.clamp(MIN_STP_FORWARD_DELAY, MAX_FORWARD_DELAY) };
    let why = if clamped != rounded {
        Some(format!(
            "forward delay {seconds} s becomes {clamped} s: NetworkManager and the kernel take {}-{} s{}",
            MIN_STP_FORWARD_DELAY,
            MAX_FORWARD_DELAY,
            if stp { " while STP is on" } else { ", or 0" }
        ))
    } else if f64::from(rounded) != seconds {
        Some(format!("forward delay {seconds} s rounded to {rounded} s: NetworkManager takes whole seconds"))
    } else {
        None
    };
    (clamped, why)
}

impl Bridge {
    /// The seed's shared NIC: a bridge that takes over the NIC's IP configuration and MAC, with
    /// the NIC as its only port. STP is on, as `virsh iface-bridge` defaults; libvirt's delay 0
    /// is not possible with STP on, so the delay is the kernel's minimum.
    pub fn shared(nic: IfName, mac: Option<Mac>) -> Self {
        Bridge {
            stp: true,
            forward_delay: MIN_STP_FORWARD_DELAY,
            mac,
            replaces: None,
            ports: vec![Member::Ethernet(EthernetPort { name: nic, mac, port: PortExt::default() })],
        }
    }
}

/// Kernel and NetworkManager default forward delay, seconds.
pub const DEFAULT_FORWARD_DELAY: u16 = 15;

/// The forward delay of a bridge whose XML gives none: libvirt's 0 with STP off (the kernel
/// forwards at once then, and a dump must not claim 15 s nobody asked for); with STP on 0 is
/// impossible, and the kernel's and NetworkManager's 15 s stands.
pub fn default_forward_delay(stp: bool) -> u16 {
    if stp {
        DEFAULT_FORWARD_DELAY
    } else {
        0
    }
}
/// Smallest forward delay the kernel accepts while STP is on, seconds.
pub const MIN_STP_FORWARD_DELAY: u16 = 2;
/// Largest forward delay the kernel and NM accept, seconds.
pub const MAX_FORWARD_DELAY: u16 = 30;

/// A port of a bridge: an Ethernet NIC, a bond, or a VLAN. There is no bridge variant: Linux
/// bridges cannot be nested.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Member {
    /// An Ethernet NIC.
    Ethernet(EthernetPort),
    /// A bond with its own Ethernet ports.
    Bond {
        /// Kernel name of the bond.
        name: IfName,
        /// The bond's settings and ports.
        bond: Bond,
    },
    /// A VLAN.
    Vlan {
        /// Kernel name of the VLAN device.
        name: IfName,
        /// Tag and parent.
        vlan: Vlan,
    },
}

impl Member {
    /// The port's kernel name.
    pub fn name(&self) -> &IfName {
        match self {
            Member::Ethernet(e) => &e.name,
            Member::Bond { name, .. } | Member::Vlan { name, .. } => name,
        }
    }
}

/// An 802.1Q VLAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vlan {
    /// VLAN id. libvirt allows 0..=4095; NM takes 0..=4094, so 4095 is a gap, not an error here.
    pub tag: u16,
    /// The parent (trunk) interface.
    pub parent: IfName,
    /// Kernel REORDER_HDR flag (on unless turned off: the 2009 draft's `reorder_hdr="no"` or
    /// the extension's `reorder-hdr='off'`).
    pub reorder_hdr: bool,
    /// What libvirt's format cannot say (extension `<nmi:vlan>`).
    #[serde(skip_serializing_if = "VlanExt::is_default")]
    pub ext: VlanExt,
}

/// The tag protocol of a VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum VlanProtocol {
    /// IEEE 802.1Q (the default).
    #[default]
    #[serde(rename = "802.1Q")]
    Dot1Q,
    /// IEEE 802.1ad, "QinQ" (NM 1.42).
    #[serde(rename = "802.1ad")]
    Dot1ad,
}

impl VlanProtocol {
    /// The name NM and the kernel use.
    pub fn as_str(self) -> &'static str {
        match self {
            VlanProtocol::Dot1Q => "802.1Q",
            VlanProtocol::Dot1ad => "802.1ad",
        }
    }
}

/// A VLAN's settings beyond libvirt's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct VlanExt {
    /// Tag protocol.
    pub protocol: VlanProtocol,
    /// GARP VLAN Registration Protocol (vlan.flags 0x2).
    pub gvrp: bool,
    /// Multiple VLAN Registration Protocol (vlan.flags 0x8, NM 1.2).
    pub mvrp: bool,
    /// Loose binding: the VLAN's state does not follow the parent's (vlan.flags 0x4).
    pub loose_binding: bool,
}

impl VlanExt {
    /// True for libvirt's implicit VLAN (802.1Q, no registration protocol, bound).
    pub fn is_default(&self) -> bool {
        *self == VlanExt::default()
    }
}

/// Highest VLAN id libvirt's format allows.
pub const MAX_VLAN_TAG_XML: u16 = 4095;
/// Highest VLAN id NetworkManager accepts.
pub const MAX_VLAN_TAG_NM: u16 = 4094;

#[cfg(test)]
mod tests {
    use super::*;

    /// One value of every [`Kind`]; the match makes a new kind a compile error here.
    fn one_of_each() -> Vec<Kind> {
        let name = IfName::new("eth0").unwrap();
        let all = vec![
            Kind::Ethernet(Ethernet::default()),
            Kind::Bridge(Bridge::shared(name.clone(), None)),
            Kind::Bond(Bond {
                mode: BondMode::BalanceRr,
                monitor: None,
                primary: None,
                ports: Vec::new(),
                options: Default::default(),
            }),
            Kind::Vlan(Vlan { tag: 1, parent: name, reorder_hdr: true, ext: VlanExt::default() }),
        ];
        for k in &all {
            match k {
                Kind::Ethernet(_) | Kind::Bridge(_) | Kind::Bond(_) | Kind::Vlan(_) => {}
            }
        }
        all
    }

    #[test]
    fn type_names_are_the_kinds_type_names() {
        let kinds = one_of_each();
        let names: Vec<&str> = kinds.iter().map(Kind::type_name).collect();
        assert_eq!(names, Kind::TYPE_NAMES);
        for k in &kinds {
            assert_eq!(KindType::parse(k.type_name()), Some(k.kind_type()));
        }
        assert_eq!(KindType::parse("bogus"), None);
    }
}
