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
    /// DNS and static routes (nmiface's extension: libvirt's format has no place for them).
    #[serde(skip_serializing_if = "IpExtra::is_empty")]
    pub extra: IpExtra<Ipv4Addr>,
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
    /// DNS and static routes (nmiface's extension: libvirt's format has no place for them).
    #[serde(skip_serializing_if = "IpExtra::is_empty")]
    pub extra: IpExtra<Ipv6Addr>,
}

/// A static route of one family: NetworkManager's `route-data` entry, nmiface's
/// `<nmi:route address prefix gateway metric table/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Route<A> {
    /// The destination network (NetworkManager's `dest`).
    pub address: A,
    /// Its prefix length (0..=32 or 0..=128).
    pub prefix: u8,
    /// The next hop (`next-hop`); none: the destination is on the link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<A>,
    /// The route's metric; none: the interface's (`route-metric`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// The routing table; none: the interface's (`route-table`, else `main`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
}

/// What a `<protocol>` says in nmiface's namespace: DNS and routing, which libvirt's format has
/// no place for. Per family, as NetworkManager keeps them (`ipv4.dns`, `ipv6.dns`, …).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IpExtra<A> {
    /// DNS servers, in order of preference (`dns-data`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<A>,
    /// DNS search domains, in order (`dns-search`; a leading `~` is a routing-only domain).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options (`dns-options`), e.g. `rotate`, `ndots:2`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// Static routes besides the default route (`route-data`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route<A>>,
    /// The metric of this interface's routes (`route-metric`); none: NetworkManager's default
    /// per device type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_metric: Option<u32>,
    /// The table of this interface's routes (`route-table`); none: `main`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_table: Option<u32>,
}

// Written by hand: a derive would ask `A: Default`, which addresses are not.
impl<A> Default for IpExtra<A> {
    fn default() -> Self {
        Self {
            dns: Vec::new(),
            search: Vec::new(),
            dns_options: Vec::new(),
            routes: Vec::new(),
            route_metric: None,
            route_table: None,
        }
    }
}

impl<A> IpExtra<A> {
    /// True when nothing is set (the document says nothing in nmiface's namespace here).
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty()
            && self.search.is_empty()
            && self.dns_options.is_empty()
            && self.routes.is_empty()
            && self.route_metric.is_none()
            && self.route_table.is_none()
    }
}

/// The resolver options NetworkManager takes in `dns-options` (libnm's
/// `_nm_utils_dns_option_validate` list); `ndots`, `timeout` and `attempts` take a number.
pub const DNS_OPTIONS: [&str; 20] = [
    "ndots",
    "timeout",
    "attempts",
    "debug",
    "rotate",
    "no-check-names",
    "inet6",
    "ip6-bytestring",
    "ip6-dotint",
    "no-ip6-dotint",
    "edns0",
    "single-request",
    "single-request-reopen",
    "no-tld-query",
    "use-vc",
    "no-reload",
    "trust-ad",
    "no-aaaa",
    "_no-add-edns0",
    "_add-trust-ad",
];

/// Checks a resolver option against [`DNS_OPTIONS`]: `ndots:N`, `timeout:N`, `attempts:N` take
/// a number, the others none.
pub fn check_dns_option(v: &str) -> Result<(), String> {
    let (name, arg) = match v.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (v, None),
    };
    let numeric = matches!(name, "ndots" | "timeout" | "attempts");
    match (DNS_OPTIONS.contains(&name), numeric, arg) {
        (true, true, Some(a)) if !a.is_empty() && a.len() < 10 && a.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        (true, false, None) => Ok(()),
        (true, true, _) => Err(format!("invalid DNS option '{v}': {name} takes a number ({name}:N)")),
        (true, false, Some(_)) => Err(format!("invalid DNS option '{v}': {name} takes no value")),
        (false, _, _) => Err(format!(
            "unknown DNS option '{v}' (allowed: {}; ndots, timeout and attempts as NAME:N)",
            DNS_OPTIONS.join(", ")
        )),
    }
}

/// Checks a DNS search domain: a name of up to 253 characters without spaces, commas or
/// semicolons (the separators of NetworkManager's and resolv.conf's lists); a leading `~`
/// makes it a routing-only domain (systemd-resolved).
pub fn check_search_domain(v: &str) -> Result<(), String> {
    let name = v.strip_prefix('~').unwrap_or(v);
    if name.is_empty() && v != "~" {
        return Err("empty DNS search domain".to_string());
    }
    if name.len() > 253 {
        return Err(format!("DNS search domain '{v}' is longer than 253 characters"));
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ';' | '/' | '\\')) {
        return Err(format!(
            "invalid character {c:?} in DNS search domain '{v}' (a domain such as example.com, or ~example.com)"
        ));
    }
    Ok(())
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
