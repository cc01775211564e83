//! What NetworkManager features a model uses, and what each NetworkManager version can do.
//!
//! The one place that knows both: the table of the first upstream release of every setting,
//! property, option and value nmiface may send, with stable-branch backports (sources: the NM
//! git history, `nm-setting-*.h` defines per release tag, NEWS, as collected in
//! shared/docs/networkmanager-dbus.md sections 2 and 6.2); the rules that say which model
//! element needs which feature ([`bond_option`], [`port_features`], [`vlan_features`],
//! [`reserved_vlan_tag`]); and [`uses`], the one walk over a model that lists everything it
//! needs. The translation applies the rules where it emits a property, the capability report
//! and the daemon probe read [`uses`].

use crate::model::{Bond, EthernetPort, Host, IfName, Interface, Kind, Member, Monitor, Vlan, VlanProtocol};
use crate::nm::NmVersion;
use serde::Serialize;

/// A capability nmiface may need from NetworkManager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum NmFeature {
    /// `Settings.AddConnection2` (to-disk, block-autoconnect).
    AddConnection2,
    /// `user.data`, where nmiface marks its profiles.
    UserData,
    /// `ipv6.method=disabled`.
    Ipv6Disabled,
    /// `bond.options` key `num_grat_arp`.
    BondNumGratArp,
    /// `xmit_hash_policy` values `encap2+3` and `encap3+4`.
    BondXmitEncap,
    /// `xmit_hash_policy=vlan+srcmac`.
    BondXmitVlanSrcmac,
    /// `bond-port.queue-id`.
    BondPortQueueId,
    /// `bond-port.prio`.
    BondPortPrio,
    /// `vlan.protocol=802.1ad`.
    Vlan8021ad,
    /// `vlan.flags` MVRP (0x8).
    VlanMvrp,
    /// `ipv4.method=shared` with the nftables firewall backend.
    SharedNftables,
    /// `connection.controller`/`port-type` (nmiface sends `master`/`slave-type` instead).
    ControllerPortType,
    /// `ipv4.dns-data` (nmiface sends no DNS; listed for completeness).
    DnsData,
    /// `bond.options` `peer_notif_delay`.
    BondPeerNotifDelay,
    /// `bond.options` `balance-slb` (an option on balance-xor, not a mode).
    BondBalanceSlb,
    /// `bond.options` `arp_missed_max`, `lacp_active`, `ns_ip6_target`.
    BondArpMissedMax,
    /// `bridge.vlan-filtering`, `vlans`, `vlan-default-pvid`; `bridge-port.vlans`.
    BridgeVlans,
    /// `bridge.multicast-router`, `multicast-querier`, `vlan-protocol`, `vlan-stats-enabled`.
    BridgeMulticast,
    /// `Device.Ports` (else `Device.Bridge/Bond.Slaves`).
    DevicePorts,
    /// `Manager.VersionInfo`.
    VersionInfo,
    /// Checkpoint flag NO_PRESERVE_EXTERNAL_PORTS.
    CheckpointNoPreserveExternalPorts,
    /// Checkpoint flag TRACK_INTERNAL_GLOBAL_DNS.
    CheckpointTrackGlobalDns,
}

/// When a feature first shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since {
    /// First upstream release.
    pub version: NmVersion,
    /// An earlier stable-branch release it was backported to, if any.
    pub backport: Option<NmVersion>,
}

const fn v(minor: u16, micro: u16) -> NmVersion {
    NmVersion::new(1, minor, micro)
}

impl NmFeature {
    /// Every feature, for table tests and reports.
    pub const ALL: [NmFeature; 22] = [
        NmFeature::AddConnection2,
        NmFeature::UserData,
        NmFeature::Ipv6Disabled,
        NmFeature::BondNumGratArp,
        NmFeature::BondXmitEncap,
        NmFeature::BondXmitVlanSrcmac,
        NmFeature::BondPortQueueId,
        NmFeature::BondPortPrio,
        NmFeature::Vlan8021ad,
        NmFeature::VlanMvrp,
        NmFeature::SharedNftables,
        NmFeature::ControllerPortType,
        NmFeature::DnsData,
        NmFeature::BondPeerNotifDelay,
        NmFeature::BondBalanceSlb,
        NmFeature::BondArpMissedMax,
        NmFeature::BridgeVlans,
        NmFeature::BridgeMulticast,
        NmFeature::DevicePorts,
        NmFeature::VersionInfo,
        NmFeature::CheckpointNoPreserveExternalPorts,
        NmFeature::CheckpointTrackGlobalDns,
    ];

    /// When it shipped.
    pub fn since(self) -> Since {
        let (version, backport) = match self {
            NmFeature::AddConnection2 => (v(20, 0), None),
            NmFeature::UserData => (v(8, 0), None),
            NmFeature::Ipv6Disabled => (v(20, 0), None),
            NmFeature::BondNumGratArp => (v(2, 0), None),
            NmFeature::BondXmitEncap => (v(10, 0), None),
            NmFeature::BondXmitVlanSrcmac => (v(30, 0), None),
            NmFeature::BondPortQueueId => (v(34, 0), None),
            NmFeature::BondPortPrio => (v(44, 0), Some(v(42, 8))),
            NmFeature::Vlan8021ad => (v(42, 0), None),
            NmFeature::VlanMvrp => (v(2, 0), None),
            NmFeature::SharedNftables => (v(32, 0), None),
            NmFeature::ControllerPortType => (v(46, 0), None),
            NmFeature::DnsData => (v(42, 0), None),
            NmFeature::BondPeerNotifDelay => (v(34, 0), None),
            NmFeature::BondBalanceSlb => (v(42, 0), None),
            NmFeature::BondArpMissedMax => (v(44, 0), None),
            NmFeature::BridgeVlans => (v(18, 0), None),
            NmFeature::BridgeMulticast => (v(24, 0), None),
            NmFeature::DevicePorts => (v(34, 0), None),
            NmFeature::VersionInfo => (v(42, 0), None),
            NmFeature::CheckpointNoPreserveExternalPorts => (v(38, 0), Some(v(36, 2))),
            NmFeature::CheckpointTrackGlobalDns => (v(48, 0), Some(v(46, 2))),
        };
        Since { version, backport }
    }

    /// What it is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            NmFeature::AddConnection2 => "Settings.AddConnection2",
            NmFeature::UserData => "user.data (nmiface's ownership mark)",
            NmFeature::Ipv6Disabled => "ipv6.method=disabled",
            NmFeature::BondNumGratArp => "bond option num_grat_arp",
            NmFeature::BondXmitEncap => "xmit_hash_policy encap2+3/encap3+4",
            NmFeature::BondXmitVlanSrcmac => "xmit_hash_policy vlan+srcmac",
            NmFeature::BondPortQueueId => "bond-port.queue-id",
            NmFeature::BondPortPrio => "bond-port.prio",
            NmFeature::Vlan8021ad => "vlan.protocol 802.1ad",
            NmFeature::VlanMvrp => "vlan flag MVRP",
            NmFeature::SharedNftables => "shared mode with nftables",
            NmFeature::ControllerPortType => "connection.controller/port-type",
            NmFeature::DnsData => "ipv4/ipv6.dns-data",
            NmFeature::BondPeerNotifDelay => "bond option peer_notif_delay",
            NmFeature::BondBalanceSlb => "bond option balance-slb",
            NmFeature::BondArpMissedMax => "bond options arp_missed_max, lacp_active, ns_ip6_target",
            NmFeature::BridgeVlans => "bridge VLAN filtering (bridge.vlans, bridge-port.vlans)",
            NmFeature::BridgeMulticast => "bridge multicast-router/querier, vlan-protocol",
            NmFeature::DevicePorts => "Device.Ports",
            NmFeature::VersionInfo => "Manager.VersionInfo",
            NmFeature::CheckpointNoPreserveExternalPorts => "checkpoint flag NO_PRESERVE_EXTERNAL_PORTS",
            NmFeature::CheckpointTrackGlobalDns => "checkpoint flag TRACK_INTERNAL_GLOBAL_DNS",
        }
    }

    /// The setting, property and a value of its type to ask the daemon whether it knows it
    /// (see `NmClient::knows_property`), for properties whose support a version number cannot
    /// settle (backports).
    pub fn probe(self) -> Option<(&'static str, &'static str, crate::nm::Value)> {
        use crate::nm::Value;
        match self {
            NmFeature::BondPortPrio => Some(("bond-port", "prio", Value::I32(0))),
            NmFeature::BondPortQueueId => Some(("bond-port", "queue-id", Value::U32(0))),
            NmFeature::Vlan8021ad => Some(("vlan", "protocol", Value::Str("802.1ad".into()))),
            _ => None,
        }
    }
}

/// Whether NetworkManager `version` has `f` by the table.
pub fn supports(version: NmVersion, f: NmFeature) -> bool {
    let s = f.since();
    version >= s.version
        || s.backport.is_some_and(|b| version.major == b.major && version.minor == b.minor && version >= b)
}

/// "1.44" or "1.44 (1.42.8 on the 1.42 series)", for messages.
pub fn needs(f: NmFeature) -> String {
    let s = f.since();
    let main = format!("{}.{}", s.version.major, s.version.minor);
    match s.backport {
        Some(b) => format!("{main} ({b} on the {}.{} series)", b.major, b.minor),
        None => main,
    }
}

/// The feature a bond option's value needs beyond what every supported NetworkManager takes.
pub fn bond_option(key: &str, value: &str) -> Option<NmFeature> {
    match (key, value) {
        ("num_grat_arp", _) => Some(NmFeature::BondNumGratArp),
        ("xmit_hash_policy", "encap2+3" | "encap3+4") => Some(NmFeature::BondXmitEncap),
        ("xmit_hash_policy", "vlan+srcmac") => Some(NmFeature::BondXmitVlanSrcmac),
        _ => None,
    }
}

/// The features a bond port's extension settings need, each with its XML attribute.
pub fn port_features(p: &EthernetPort) -> Vec<(NmFeature, &'static str)> {
    let mut v = Vec::new();
    if p.port.prio.is_some() {
        v.push((NmFeature::BondPortPrio, "priority"));
    }
    if p.port.queue_id.is_some() {
        v.push((NmFeature::BondPortQueueId, "queue-id"));
    }
    v
}

/// The features a VLAN's extension settings need, each with its XML attribute, in the order
/// the translation emits them.
pub fn vlan_features(v: &Vlan) -> Vec<(NmFeature, &'static str)> {
    let mut out = Vec::new();
    if v.ext.mvrp {
        out.push((NmFeature::VlanMvrp, "mvrp"));
    }
    if v.ext.protocol == VlanProtocol::Dot1ad {
        out.push((NmFeature::Vlan8021ad, "protocol"));
    }
    out
}

/// IEEE 802.1Q reserves tag 4095; libvirt's format allows it, NetworkManager refuses it, so
/// no profile is made for such a VLAN.
pub fn reserved_vlan_tag(v: &Vlan) -> bool {
    v.tag > crate::model::MAX_VLAN_TAG_NM
}

/// A kernel function a model's devices need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// `bonding`.
    Bonding,
    /// `8021q`.
    Vlan,
    /// `bridge`.
    Bridge,
}

/// What one part of a model needs, or (`Plain`) a part listed for completeness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Nothing beyond what nmiface requires of every NetworkManager.
    Plain {
        /// What it is, e.g. `bond mode active-backup`.
        label: String,
        /// A detail, possibly empty.
        detail: String,
    },
    /// A NetworkManager feature.
    Nm {
        /// The feature.
        feature: NmFeature,
        /// What it is called in reports, e.g. `eth0: bond-port.prio`.
        label: String,
    },
    /// A kernel module, to create the device.
    Module(Module),
    /// NAT sharing (`ipv4.method=shared`): programs NetworkManager runs.
    NatSharing,
    /// No IPv6 at all: `ipv6.method=disabled`, which older versions approximate.
    Ipv6Disabled,
    /// A reserved VLAN tag ([`reserved_vlan_tag`]).
    ReservedVlanTag(u16),
}

/// One need of one top-level interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use<'h> {
    /// The top-level interface.
    pub interface: &'h IfName,
    /// What it needs.
    pub need: Need,
}

/// Everything `host` needs, interface by interface, in document order.
pub fn uses(host: &Host) -> Vec<Use<'_>> {
    let mut out = Vec::new();
    for iface in &host.interfaces {
        let mut needs = Vec::new();
        interface_needs(iface, &mut needs);
        out.extend(needs.into_iter().map(|need| Use { interface: &iface.name, need }));
    }
    out
}

fn interface_needs(iface: &Interface, out: &mut Vec<Need>) {
    match &iface.kind {
        Kind::Ethernet(_) => out.push(Need::Plain { label: "ethernet profile".into(), detail: String::new() }),
        Kind::Bridge(br) => {
            out.push(Need::Module(Module::Bridge));
            for m in &br.ports {
                match m {
                    Member::Bond { bond, .. } => bond_needs(bond, out),
                    Member::Vlan { vlan, .. } => vlan_needs(vlan, out),
                    Member::Ethernet(_) => {}
                }
            }
        }
        Kind::Bond(b) => bond_needs(b, out),
        Kind::Vlan(v) => vlan_needs(v, out),
    }
    if iface.ipv4.as_ref().is_some_and(|v| v.nat) {
        out.push(Need::NatSharing);
    }
    // DNS servers go as `dns-data`; the legacy `dns` (au/aay) nmiface does not write.
    let v4 = iface.ipv4.as_ref().is_some_and(|v| !v.extra.dns.is_empty());
    let v6 = iface.ipv6.as_ref().is_some_and(|v| !v.extra.dns.is_empty());
    for (family, used) in [("ipv4", v4), ("ipv6", v6)] {
        if used {
            out.push(Need::Nm { feature: NmFeature::DnsData, label: format!("{family}.dns-data") });
        }
    }
    if iface.ipv6.is_none() {
        out.push(Need::Ipv6Disabled);
    }
}

fn plain(label: String, detail: String) -> Need {
    Need::Plain { label, detail }
}

fn bond_needs(b: &Bond, out: &mut Vec<Need>) {
    out.push(Need::Module(Module::Bonding));
    out.push(plain(format!("bond mode {}", b.mode.as_str()), String::new()));
    match &b.monitor {
        Some(Monitor::Mii { freq, .. }) => out.push(plain("bond miimon".into(), format!("every {freq} ms"))),
        Some(Monitor::Arp { more_targets, .. }) => {
            out.push(plain("bond arpmon".into(), format!("{} target(s)", more_targets.len() + 1)))
        }
        None => {}
    }
    // The gated options first, as the report has always listed them, then the others.
    let pairs = b.options.pairs();
    let gated = ["num_grat_arp", "xmit_hash_policy"];
    for (key, value) in gated.iter().filter_map(|g| pairs.iter().find(|(k, _)| k == g)) {
        if let Some(feature) = bond_option(key, value) {
            let label = match *key {
                "xmit_hash_policy" => format!("bond xmit_hash_policy {value}"),
                _ => format!("bond option {key}"),
            };
            out.push(Need::Nm { feature, label });
        } else if *key == "xmit_hash_policy" {
            out.push(plain(format!("bond xmit_hash_policy {value}"), String::new()));
        }
    }
    for (key, value) in &pairs {
        if !gated.contains(key) {
            out.push(plain(format!("bond option {key}={value}"), String::new()));
        }
    }
    for p in &b.ports {
        for (feature, _) in port_features(p) {
            let what = match feature {
                NmFeature::BondPortPrio => "bond-port.prio",
                _ => "bond-port.queue-id",
            };
            out.push(Need::Nm { feature, label: format!("{}: {what}", p.name) });
        }
    }
}

fn vlan_needs(v: &Vlan, out: &mut Vec<Need>) {
    out.push(Need::Module(Module::Vlan));
    // The report lists the protocol before MVRP.
    let mut features = vlan_features(v);
    features.reverse();
    for (feature, _) in features {
        let label = match feature {
            NmFeature::Vlan8021ad => "vlan.protocol 802.1ad",
            _ => "vlan flag MVRP",
        };
        out.push(Need::Nm { feature, label: label.into() });
    }
    if reserved_vlan_tag(v) {
        out.push(Need::ReservedVlanTag(v.tag));
    }
}

/// The features `host` uses whose support the daemon can be asked about directly
/// ([`NmFeature::probe`]), each once.
pub fn probe_candidates(host: &Host) -> Vec<NmFeature> {
    let mut out: Vec<NmFeature> = uses(host)
        .into_iter()
        .filter_map(|u| match u.need {
            Need::Nm { feature, .. } if feature.probe().is_some() => Some(feature),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The versions distributions ship, from Debian 11 to today.
    const TABLE: [(u16, &[NmFeature]); 6] = [
        (
            30,
            &[
                NmFeature::BondPortQueueId,
                NmFeature::BondPortPrio,
                NmFeature::Vlan8021ad,
                NmFeature::SharedNftables,
                NmFeature::ControllerPortType,
                NmFeature::DnsData,
                NmFeature::BondPeerNotifDelay,
                NmFeature::BondBalanceSlb,
                NmFeature::BondArpMissedMax,
                NmFeature::DevicePorts,
                NmFeature::VersionInfo,
                NmFeature::CheckpointNoPreserveExternalPorts,
                NmFeature::CheckpointTrackGlobalDns,
            ],
        ),
        (
            36,
            &[
                NmFeature::BondPortPrio,
                NmFeature::Vlan8021ad,
                NmFeature::ControllerPortType,
                NmFeature::DnsData,
                NmFeature::BondBalanceSlb,
                NmFeature::BondArpMissedMax,
                NmFeature::VersionInfo,
                NmFeature::CheckpointNoPreserveExternalPorts,
                NmFeature::CheckpointTrackGlobalDns,
            ],
        ),
        (
            42,
            &[
                NmFeature::BondPortPrio,
                NmFeature::ControllerPortType,
                NmFeature::BondArpMissedMax,
                NmFeature::CheckpointTrackGlobalDns,
            ],
        ),
        (46, &[NmFeature::CheckpointTrackGlobalDns]),
        (52, &[]),
        (58, &[]),
    ];

    #[test]
    fn versions_from_1_30_to_1_58() {
        for (minor, missing) in TABLE {
            let ver = v(minor, 0);
            for f in NmFeature::ALL {
                let want = !missing.contains(&f);
                assert_eq!(supports(ver, f), want, "{f:?} on {ver}");
            }
        }
    }

    #[test]
    fn backports_count() {
        assert!(!supports(v(42, 4), NmFeature::BondPortPrio));
        assert!(supports(v(42, 8), NmFeature::BondPortPrio));
        assert!(!supports(v(43, 2), NmFeature::BondPortPrio));
        assert_eq!(needs(NmFeature::BondPortPrio), "1.44 (1.42.8 on the 1.42 series)");
    }
}
