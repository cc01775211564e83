//! IP configuration of one interface, per address family.
//!
//! The types hold only what NetworkManager can represent; the XML readers normalise everything
//! else on the way in and report each normalisation as a finding.

use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv4 address with its prefix length (0..=32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Ipv4Net {
    /// The host address.
    pub address: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

/// An IPv6 address with its prefix length (0..=128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Ipv6Net {
    /// The host address.
    pub address: Ipv6Addr,
    /// Prefix length, 0..=128.
    pub prefix: u8,
}

/// DHCP client settings shared by both families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Dhcp {
    /// Use the DNS servers the DHCP server hands out (libvirt `peerdns`, NM `!ignore-auto-dns`).
    pub peerdns: bool,
}

/// IPv4 configuration. Present only when the interface has IPv4 at all; invariant: `dhcp` is
/// set or `addresses` is non-empty, and `gateway` is set only together with an address
/// (NetworkManager refuses a gateway without addresses).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ipv4 {
    /// DHCP on this interface.
    pub dhcp: Option<Dhcp>,
    /// Static addresses, in document order.
    pub addresses: Vec<Ipv4Net>,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// NAT sharing (NM's `ipv4.method=shared`): NetworkManager runs a DHCP and DNS server for
    /// the machines behind this interface and masquerades them to whichever uplink is active.
    /// Never with `dhcp`; the addresses, if any, are this interface's (else 10.42.x.1/24).
    pub nat: bool,
}

/// IPv6 configuration. Present means IPv6 is on; with no method and no address it is link-local
/// only (libvirt's empty `<protocol family='ipv6'/>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ipv6 {
    /// Stateless autoconfiguration (SLAAC); NM's `auto`, which also runs DHCPv6 when the router
    /// advertisement asks for it.
    pub autoconf: bool,
    /// DHCPv6 without SLAAC (NM's `dhcp`). Never set together with `autoconf`.
    pub dhcp: Option<Dhcp>,
    /// Static addresses, in document order.
    pub addresses: Vec<Ipv6Net>,
    /// Default gateway; set only together with an address.
    pub gateway: Option<Ipv6Addr>,
}

/// Converts a dotted IPv4 netmask to a prefix length; non-contiguous masks are refused.
pub fn netmask_to_prefix(mask: Ipv4Addr) -> Result<u8, String> {
    let bits = u32::from(mask);
    let prefix = bits.leading_ones();
    if bits.checked_shl(prefix).unwrap_or(0) != 0 {
        return Err(format!("non-contiguous netmask '{mask}' (the one bits must come first)"));
    }
    Ok(prefix as u8)
}

/// The classful prefix that ifcfg tools (ipcalc) assume for an IPv4 address given without one.
pub fn classful_prefix(addr: Ipv4Addr) -> u8 {
    match addr.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks() {
        assert_eq!(netmask_to_prefix("255.255.255.0".parse().unwrap()), Ok(24));
        assert_eq!(netmask_to_prefix("255.255.255.255".parse().unwrap()), Ok(32));
        assert_eq!(netmask_to_prefix("0.0.0.0".parse().unwrap()), Ok(0));
        assert_eq!(netmask_to_prefix("255.255.254.0".parse().unwrap()), Ok(23));
        assert!(netmask_to_prefix("255.0.255.0".parse().unwrap()).is_err());
        assert!(netmask_to_prefix("0.255.255.255".parse().unwrap()).is_err());
    }

    #[test]
    fn classful() {
        assert_eq!(classful_prefix("10.1.2.3".parse().unwrap()), 8);
        assert_eq!(classful_prefix("172.16.0.1".parse().unwrap()), 16);
        assert_eq!(classful_prefix("192.168.125.6".parse().unwrap()), 24);
    }
}
