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
