//! Bonds: mode, link monitor and Ethernet ports.

use super::{EthernetPort, IfName};
use serde::Serialize;
use std::net::Ipv4Addr;

/// Bonding mode. The seven names are the same in the kernel, libvirt and every NM version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BondMode {
    /// Round robin (the kernel's and NM's default).
    #[serde(rename = "balance-rr")]
    BalanceRr,
    /// One active port, others standby.
    #[serde(rename = "active-backup")]
    ActiveBackup,
    /// Transmit hash.
    #[serde(rename = "balance-xor")]
    BalanceXor,
    /// Everything on every port.
    #[serde(rename = "broadcast")]
    Broadcast,
    /// IEEE 802.3ad LACP.
    #[serde(rename = "802.3ad")]
    Ieee8023ad,
    /// Adaptive transmit load balancing.
    #[serde(rename = "balance-tlb")]
    BalanceTlb,
    /// Adaptive load balancing.
    #[serde(rename = "balance-alb")]
    BalanceAlb,
}

impl BondMode {
    /// All modes, in the kernel's numeric order (0..=6).
    pub const ALL: [BondMode; 7] = [
        BondMode::BalanceRr,
        BondMode::ActiveBackup,
        BondMode::BalanceXor,
        BondMode::Broadcast,
        BondMode::Ieee8023ad,
        BondMode::BalanceTlb,
        BondMode::BalanceAlb,
    ];

    /// The name used by libvirt, the kernel and NM's `bond.options`.
    pub fn as_str(self) -> &'static str {
        match self {
            BondMode::BalanceRr => "balance-rr",
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceXor => "balance-xor",
            BondMode::Broadcast => "broadcast",
            BondMode::Ieee8023ad => "802.3ad",
            BondMode::BalanceTlb => "balance-tlb",
            BondMode::BalanceAlb => "balance-alb",
        }
    }

    /// Parses a mode name, or the kernel's number 0..=6 (NM accepts both).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == text)
            .or_else(|| text.parse::<usize>().ok().and_then(|n| Self::ALL.get(n).copied()))
    }

    /// Whether the kernel's `primary` option means anything in this mode; NM refuses it in the
    /// other modes.
    pub fn has_primary(self) -> bool {
        matches!(self, BondMode::ActiveBackup | BondMode::BalanceTlb | BondMode::BalanceAlb)
    }
}

/// How `miimon` checks carrier (libvirt `carrier`, kernel `use_carrier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Carrier {
    /// MII/ethtool ioctls (`use_carrier=0`).
    Ioctl,
    /// The driver's netif_carrier_ok (`use_carrier=1`).
    Netif,
}

/// ARP monitor validation (kernel `arp_validate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArpValidate {
    /// No validation (schema-valid in libvirt, though libvirt's own parser rejects it).
    None,
    /// Validate on the active port only.
    Active,
    /// Validate on backup ports only.
    Backup,
    /// Validate on all ports.
    All,
}

impl ArpValidate {
    /// The kernel/libvirt name.
    pub fn as_str(self) -> &'static str {
        match self {
            ArpValidate::None => "none",
            ArpValidate::Active => "active",
            ArpValidate::Backup => "backup",
            ArpValidate::All => "all",
        }
    }

    /// Parses a kernel/libvirt name.
    pub fn parse(text: &str) -> Option<Self> {
        [ArpValidate::None, ArpValidate::Active, ArpValidate::Backup, ArpValidate::All]
            .into_iter()
            .find(|v| v.as_str() == text)
    }
}

/// The bond's link monitor. libvirt allows at most one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Monitor {
    /// MII link monitoring.
    Mii {
        /// Polling interval in ms (`miimon`), at least 1.
        freq: u32,
        /// Delay before disabling a port after link loss, ms (0 = unset).
        downdelay: u32,
        /// Delay before enabling a port after link recovery, ms (0 = unset).
        updelay: u32,
        /// Carrier detection method; kernel default when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        carrier: Option<Carrier>,
    },
    /// ARP monitoring.
    Arp {
        /// Probe interval in ms (`arp_interval`), at least 1.
        interval: u32,
        /// The address probed (`arp_ip_target`); libvirt allows exactly one.
        target: Ipv4Addr,
        /// Further targets (extension `<nmi:arp-target>`; the kernel takes up to 16 in all).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        more_targets: Vec<Ipv4Addr>,
        /// Reply validation; kernel default when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        validate: Option<ArpValidate>,
    },
}

/// NetworkManager's MII polling interval for a bond given no monitor, in ms.
pub const DEFAULT_MIIMON: u32 = 100;

impl Monitor {
    /// What NetworkManager does for a bond with no monitor: MII every [`DEFAULT_MIIMON`] ms.
    pub fn default_mii() -> Self {
        Monitor::Mii { freq: DEFAULT_MIIMON, downdelay: 0, updelay: 0, carrier: None }
    }
}

/// A bond and its Ethernet ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bond {
    /// Bonding mode.
    pub mode: BondMode,
    /// Link monitor, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Monitor>,
    /// The preferred port; only in modes where it means something ([`BondMode::has_primary`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<IfName>,
    /// Ports in canonical order: the primary first, then by name.
    pub ports: Vec<EthernetPort>,
    /// Options libvirt's format has no element for (extension `<nmi:options>`).
    #[serde(skip_serializing_if = "BondOptions::is_empty")]
    pub options: BondOptions,
}

/// Kernel bonding options beyond libvirt's format. Each is checked against the modes where the
/// kernel uses it, and against its allowed values, when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct BondOptions {
    /// LACPDU rate (802.3ad).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lacp_rate: Option<&'static str>,
    /// Transmit hash (balance-xor, 802.3ad, balance-tlb, balance-alb).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xmit_hash_policy: Option<&'static str>,
    /// Aggregator selection (802.3ad).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ad_select: Option<&'static str>,
    /// MAC policy on failover (active-backup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_over_mac: Option<&'static str>,
    /// Gratuitous ARPs after failover (active-backup), 0-255.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_grat_arp: Option<u8>,
}

/// One bonding option nmiface knows: its key, allowed words (empty: a number), the modes
/// that use it, and where [`BondOptions`] keeps it. Every list of option keys (the extension's
/// attributes, the keys read back from NetworkManager, the canonical writer) derives from
/// [`OPTION_SPECS`].
pub struct OptionSpec {
    /// The kernel/NM option name.
    pub key: &'static str,
    /// The extension's attribute name.
    pub attr: &'static str,
    /// Allowed values; empty for a number 0-255.
    pub values: &'static [&'static str],
    /// Modes where the kernel uses it.
    pub modes: &'static [BondMode],
    /// Where [`BondOptions`] keeps a word option (`None` for the numeric one).
    word: Option<fn(&mut BondOptions) -> &mut Option<&'static str>>,
}

/// The options of [`BondOptions`], in kernel order.
pub const OPTION_SPECS: [OptionSpec; 5] = [
    OptionSpec {
        key: "lacp_rate",
        attr: "lacp-rate",
        values: &["slow", "fast"],
        modes: &[BondMode::Ieee8023ad],
        word: Some(|o| &mut o.lacp_rate),
    },
    OptionSpec {
        key: "xmit_hash_policy",
        attr: "xmit-hash-policy",
        values: &["layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4", "vlan+srcmac"],
        modes: &[BondMode::BalanceXor, BondMode::Ieee8023ad, BondMode::BalanceTlb, BondMode::BalanceAlb],
        word: Some(|o| &mut o.xmit_hash_policy),
    },
    OptionSpec {
        key: "ad_select",
        attr: "ad-select",
        values: &["stable", "bandwidth", "count"],
        modes: &[BondMode::Ieee8023ad],
        word: Some(|o| &mut o.ad_select),
    },
    OptionSpec {
        key: "fail_over_mac",
        attr: "fail-over-mac",
        values: &["none", "active", "follow"],
        modes: &[BondMode::ActiveBackup],
        word: Some(|o| &mut o.fail_over_mac),
    },
    OptionSpec { key: "num_grat_arp", attr: "num-grat-arp", values: &[], modes: &[BondMode::ActiveBackup], word: None },
];

impl BondOptions {
    /// True when nothing beyond libvirt's format is set.
    pub fn is_empty(&self) -> bool {
        *self == BondOptions::default()
    }

    /// (key, value) of each option set, in [`OPTION_SPECS`] order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut copy = *self;
        OPTION_SPECS
            .iter()
            .filter_map(|spec| {
                let value = match spec.word {
                    Some(slot) => slot(&mut copy).map(str::to_string),
                    None => self.num_grat_arp.map(|n| n.to_string()),
                };
                Some((spec.key, value?))
            })
            .collect()
    }

    /// Sets option `key` from text; `Err` says what is allowed.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let spec = OPTION_SPECS.iter().find(|s| s.key == key).ok_or_else(|| format!("unknown bond option '{key}'"))?;
        let Some(slot) = spec.word else {
            let n: u8 =
                value.parse().map_err(|_| format!("invalid value '{value}' for '{}' (allowed: 0-255)", spec.attr))?;
            self.num_grat_arp = Some(n);
            return Ok(());
        };
        let v = spec.values.iter().copied().find(|v| *v == value).ok_or_else(|| {
            format!("invalid value '{value}' for '{}' (allowed: {})", spec.attr, spec.values.join(", "))
        })?;
        *slot(self) = Some(v);
        Ok(())
    }
}

impl Bond {
    /// Puts the ports in canonical order. NetworkManager keeps no port order (each port is its
    /// own profile), so the order read back is this one.
    pub fn sort_ports(&mut self) {
        let primary = self.primary.clone();
        self.ports.sort_by(|a, b| {
            (Some(&a.name) != primary.as_ref(), &a.name).cmp(&(Some(&b.name) != primary.as_ref(), &b.name))
        });
    }
}
