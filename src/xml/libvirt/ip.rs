//! libvirt's `<protocol>` elements: IPv4 and IPv6 configuration.

use super::super::context::{Cx, Res};
use super::super::path::Path;
use super::super::tree::Element;
use super::super::values;
use super::extra::{extra, Family, EXTRA_CHILDREN};
use super::leaf;
use crate::finding::Severity;
use crate::model::{classful_prefix, Dhcp, Ipv4, Ipv4Net, Ipv6, Ipv6Net};

pub(super) fn protocols(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<(Option<Ipv4>, Option<Ipv6>)> {
    let (mut v4, mut v6) = (None, None);
    let (mut seen4, mut seen6) = (false, false);
    for p in el.children.iter().filter(|c| c.name == "protocol") {
        let pp = path.child("protocol");
        let fam = cx.choice(p, &pp, "family", &["ipv4", "ipv6"])?;
        let fam = fam.ok_or_else(|| {
            cx.err(p.start, pp, "missing required attribute 'family' on <protocol> (allowed: ipv4, ipv6)")
        })?;
        let seen = if fam == "ipv4" { &mut seen4 } else { &mut seen6 };
        if std::mem::replace(seen, true) {
            return Err(cx.err(
                p.start,
                pp,
                format!("a second <protocol family='{fam}'>; libvirt allows one per family"),
            ));
        }
        cx.allow_attrs(p, &pp, &["family"])?;
        if fam == "ipv4" {
            v4 = protocol_v4(cx, p, &pp)?;
        } else {
            v6 = Some(protocol_v6(cx, p, &pp)?);
        }
    }
    Ok((v4, v6))
}

pub(super) fn dhcp(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Option<Dhcp>> {
    let Some(d) = cx.one(el, path, "dhcp")? else {
        return Ok(None);
    };
    let p = path.child("dhcp");
    leaf(cx, d, &p, &["peerdns"])?;
    Ok(Some(Dhcp { peerdns: cx.yes_no(d, &p, "peerdns")?.unwrap_or(true) }))
}

pub(super) fn route<T>(
    cx: &Cx<'_>,
    el: &Element,
    path: &Path<'_>,
    parse: fn(&str) -> Result<T, String>,
) -> Res<Option<(T, usize)>> {
    let Some(r) = cx.one(el, path, "route")? else {
        return Ok(None);
    };
    let p = path.child("route");
    leaf(cx, r, &p, &["gateway"])?;
    let a = cx.required(r, &p, "gateway")?;
    Ok(Some((cx.value(a, &p, parse)?, a.offset)))
}

/// Drops a gateway given without any static address (NetworkManager refuses one; DHCP and
/// router advertisements supply their own), with a finding.
pub(super) fn lone_gateway<T: std::fmt::Display>(
    cx: &mut Cx<'_>,
    gateway: Option<(T, usize)>,
    no_address: bool,
    path: &Path<'_>,
) -> Option<(T, usize)> {
    match gateway {
        Some((gw, off)) if no_address => {
            cx.note(
                Severity::Approximated,
                off,
                path.child("route").attr("gateway"),
                format!("gateway {gw} without a static address is dropped: NetworkManager needs an address for a static gateway (DHCP supplies its own)"),
            );
            None
        }
        g => g,
    }
}

pub(super) fn protocol_v4(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Option<Ipv4>> {
    let allowed: Vec<&str> = ["dhcp", "ip", "route", "nmi:nat"].into_iter().chain(EXTRA_CHILDREN).collect();
    cx.allow_children(el, path, &allowed)?;
    let dhcp = dhcp(cx, el, path)?;
    // Extension: NAT sharing (NM's shared method), which libvirt's format has no word for.
    let nat = match cx.ext(el, path, "nat")? {
        Some(n) => {
            leaf(cx, n, &path.child(n.name), &[])?;
            if dhcp.is_some() {
                return Err(cx.err(
                    n.start,
                    path.child(n.name),
                    "<nmi:nat/> serves addresses to others; it cannot go with <dhcp/>",
                ));
            }
            true
        }
        None => false,
    };
    let mut addresses = Vec::new();
    for ip in el.children.iter().filter(|c| c.name == "ip") {
        let p = path.child("ip");
        leaf(cx, ip, &p, &["address", "prefix"])?;
        let a = cx.required(ip, &p, "address")?;
        let address = cx.value(a, &p, values::ipv4)?;
        let prefix = match ip.attr("prefix") {
            Some(pa) => cx.value(pa, &p, |v| values::prefix(v, 32, "IPv4"))?,
            None => 0,
        };
        let prefix = if prefix == 0 {
            let guess = classful_prefix(address);
            cx.note(
                Severity::Approximated,
                ip.start,
                p,
                format!("{address} has no prefix; using its classful prefix /{guess}, as ifcfg tools did"),
            );
            guess
        } else {
            prefix
        };
        addresses.push(Ipv4Net { address, prefix });
    }
    let gateway = lone_gateway(cx, route(cx, el, path, values::ipv4)?, addresses.is_empty(), path);
    let extra = extra(cx, el, path, &Family { parse: values::ipv4, max_prefix: 32, name: "IPv4" })?;
    if addresses.is_empty() && dhcp.is_none() && !nat {
        if !extra.is_empty() {
            // NetworkManager has no IPv4 method that keeps DNS or routes without addresses.
            return Err(cx.err(
                el.start,
                path,
                "DNS servers and routes need IPv4 addresses: add an <ip>, <dhcp/> or <nmi:nat/> (or move them to the ipv6 protocol)",
            ));
        }
        cx.note(Severity::Info, el.start, path, "empty <protocol family='ipv4'>: no IPv4 configuration");
        return Ok(None);
    }
    Ok(Some(Ipv4 { dhcp, addresses, gateway: gateway.map(|g| g.0), nat, extra }))
}

pub(super) fn protocol_v6(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Ipv6> {
    let allowed: Vec<&str> = ["autoconf", "dhcp", "ip", "route"].into_iter().chain(EXTRA_CHILDREN).collect();
    cx.allow_children(el, path, &allowed)?;
    let autoconf = match cx.one(el, path, "autoconf")? {
        Some(a) => {
            leaf(cx, a, &path.child("autoconf"), &[])?;
            true
        }
        None => false,
    };
    let mut dhcp = dhcp(cx, el, path)?;
    if autoconf && dhcp.is_some() {
        let d = el.children.iter().find(|c| c.name == "dhcp").map_or(el.start, |d| d.start);
        cx.note(
            Severity::Approximated,
            d,
            path.child("dhcp"),
            "autoconf and dhcp together become NetworkManager's 'auto', which runs SLAAC and runs DHCPv6 only when the router advertisement asks for it",
        );
        dhcp = None;
    }
    let mut addresses = Vec::new();
    for ip in el.children.iter().filter(|c| c.name == "ip") {
        let p = path.child("ip");
        leaf(cx, ip, &p, &["address", "prefix"])?;
        let a = cx.required(ip, &p, "address")?;
        let address = cx.value(a, &p, values::ipv6)?;
        let prefix = match ip.attr("prefix") {
            Some(pa) => cx.value(pa, &p, |v| values::prefix(v, 128, "IPv6"))?,
            None => 0,
        };
        let prefix = if prefix == 0 {
            cx.note(Severity::Approximated, ip.start, p, format!("{address} has no prefix; using /64"));
            64
        } else {
            prefix
        };
        addresses.push(Ipv6Net { address, prefix });
    }
    let gateway = lone_gateway(cx, route(cx, el, path, values::ipv6)?, addresses.is_empty(), path);
    let extra = extra(cx, el, path, &Family { parse: values::ipv6, max_prefix: 128, name: "IPv6" })?;
    Ok(Ipv6 { autoconf, dhcp, addresses, gateway: gateway.map(|g| g.0), extra })
}
