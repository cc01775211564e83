//! libvirt's final interface format (what `virsh iface-dumpxml` prints) into the model.
//!
//! The element and attribute rules follow libvirt's `interface.rng`, refusing everything the
//! schema refuses (libvirt's own parser silently drops unknown elements and bad `stp` values;
//! we do not). Where NetworkManager cannot represent a value exactly, the reader normalises it
//! and records a finding.

use super::context::{Cx, Res};
use super::path::Path;
use super::tree::Element;
use super::values;
use crate::finding::Severity;
use crate::model::{
    self, classful_prefix, ArpValidate, Bond, BondMode, Bridge, Carrier, Dhcp, Ethernet, EthernetPort, IfName,
    Interface, Ipv4, Ipv4Net, Ipv6, Ipv6Net, Kind, KindType, Member, Monitor, StartMode, Vlan,
};

/// Converts a top-level `<interface type=…>`.
pub(crate) fn interface(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Interface> {
    let ty = cx
        .choice(el, path, "type", &Kind::TYPE_NAMES)?
        .and_then(KindType::parse)
        .ok_or_else(|| cx.err(el.start, path, "missing required attribute 'type'"))?;
    // One arm per kind, no catch-all: a new kind must say what its element holds.
    let allowed: &[&str] = match ty {
        KindType::Ethernet => &["start", "mtu", "mac", "link", "protocol"],
        KindType::Bridge => &["start", "mtu", "protocol", "bridge"],
        KindType::Bond => &["start", "mtu", "link", "protocol", "bond"],
        KindType::Vlan => &["start", "mtu", "link", "protocol", "vlan"],
    };
    cx.allow_attrs(el, path, &["type", "name"])?;
    children_for_type(cx, el, path, ty.as_str(), allowed)?;

    let start = match cx.one(el, path, "start")? {
        Some(s) => start_mode(cx, s, &path.child("start"))?,
        None => StartMode::Onboot,
    };
    let mtu = match cx.one(el, path, "mtu")? {
        Some(m) => {
            let p = path.child("mtu");
            leaf(cx, m, &p, &["size"])?;
            let a = cx.required(m, &p, "size")?;
            values::mtu(cx, &a.value, a.offset, &p.attr("size"))?
        }
        None => None,
    };
    link(cx, el, path)?;
    let (ipv4, ipv6) = protocols(cx, el, path)?;

    let (name, kind) = match ty {
        KindType::Ethernet => {
            let name = values::required_name(cx, el, path, "name")?;
            (name, Kind::Ethernet(Ethernet { mac: mac_child(cx, el, path)? }))
        }
        KindType::Bridge => {
            let name = values::required_name(cx, el, path, "name")?;
            let b = required_child(cx, el, path, "bridge")?;
            (name, Kind::Bridge(bridge(cx, b, &path.child("bridge"))?))
        }
        KindType::Bond => {
            let name = values::required_name(cx, el, path, "name")?;
            let b = required_child(cx, el, path, "bond")?;
            (name, Kind::Bond(bond(cx, b, &path.child("bond"))?))
        }
        KindType::Vlan => {
            let v = required_child(cx, el, path, "vlan")?;
            let vlan = vlan(cx, v, &path.child("vlan"))?;
            (vlan_name(cx, el, path, &vlan)?, Kind::Vlan(vlan))
        }
    };
    Ok(Interface { name, uuid: None, start, mtu, ipv4, ipv6, kind })
}

/// Child check with a message that says which elements this interface type takes.
fn children_for_type(cx: &Cx<'_>, el: &Element, path: &Path<'_>, ty: &str, allowed: &[&str]) -> Res<()> {
    const KNOWN: [&str; 8] = ["start", "mtu", "mac", "link", "protocol", "bridge", "bond", "vlan"];
    if let Some(c) = el.children.iter().find(|c| KNOWN.contains(&c.name) && !allowed.contains(&c.name)) {
        return Err(cx.err(
            c.start,
            path.child(c.name),
            format!("<{}> is not allowed in a {ty} interface (allowed: {})", c.name, allowed.join(", ")),
        ));
    }
    cx.allow_children(el, path, allowed)
}

/// Refuses attributes other than `attrs`, and any children: for the empty elements.
fn leaf(cx: &Cx<'_>, el: &Element, path: &Path<'_>, attrs: &[&str]) -> Res<()> {
    cx.allow_attrs(el, path, attrs)?;
    cx.allow_children(el, path, &[])
}

fn required_child<'e>(cx: &Cx<'_>, el: &'e Element<'e>, path: &Path<'_>, name: &str) -> Res<&'e Element<'e>> {
    cx.one(el, path, name)?.ok_or_else(|| {
        let ty = el.attr("type").map_or("", |a| a.value.as_ref());
        cx.err(el.start, path, format!("a {ty} interface needs a <{name}> element"))
    })
}

fn start_mode(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<StartMode> {
    leaf(cx, el, path, &["mode"])?;
    let a = cx.required(el, path, "mode")?;
    match cx.choice(el, path, "mode", &["onboot", "none", "hotplug"])? {
        Some("none") => Ok(StartMode::None),
        Some("hotplug") => {
            cx.note(
                Severity::Approximated,
                a.offset,
                path.attr("mode"),
                "start mode 'hotplug' has no NetworkManager equivalent; using autoconnect, which also starts it at boot (as 'onboot')",
            );
            Ok(StartMode::Onboot)
        }
        _ => Ok(StartMode::Onboot),
    }
}

fn mac_child(cx: &Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Option<model::Mac>> {
    let Some(m) = cx.one(el, path, "mac")? else {
        return Ok(None);
    };
    let p = path.child("mac");
    leaf(cx, m, &p, &["address"])?;
    let a = cx.required(m, &p, "address")?;
    values::mac(cx, &a.value, a.offset, &p.attr("address")).map(Some)
}

/// `<link>` is live state (operstate and speed); it is checked and then ignored.
fn link(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<()> {
    let Some(l) = cx.one(el, path, "link")? else {
        return Ok(());
    };
    let p = path.child("link");
    leaf(cx, l, &p, &["speed", "state"])?;
    cx.uint(l, &p, "speed")?;
    cx.choice(l, &p, "state", &["unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"])?;
    cx.note(
        Severity::Info,
        l.start,
        p,
        "<link> reports live state (speed, operstate); it is not configuration and is ignored",
    );
    Ok(())
}

fn protocols(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<(Option<Ipv4>, Option<Ipv6>)> {
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

fn dhcp(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Option<Dhcp>> {
    let Some(d) = cx.one(el, path, "dhcp")? else {
        return Ok(None);
    };
    let p = path.child("dhcp");
    leaf(cx, d, &p, &["peerdns"])?;
    Ok(Some(Dhcp { peerdns: cx.yes_no(d, &p, "peerdns")?.unwrap_or(true) }))
}

fn route<T>(
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
fn lone_gateway<T: std::fmt::Display>(
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

fn protocol_v4(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Option<Ipv4>> {
    cx.allow_children(el, path, &["dhcp", "ip", "route", "nmi:nat"])?;
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
    if addresses.is_empty() && dhcp.is_none() && !nat {
        cx.note(Severity::Info, el.start, path, "empty <protocol family='ipv4'>: no IPv4 configuration");
        return Ok(None);
    }
    Ok(Some(Ipv4 { dhcp, addresses, gateway: gateway.map(|g| g.0), nat }))
}

fn protocol_v6(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Ipv6> {
    cx.allow_children(el, path, &["autoconf", "dhcp", "ip", "route"])?;
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
    Ok(Ipv6 { autoconf, dhcp, addresses, gateway: gateway.map(|g| g.0) })
}

fn bridge(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Bridge> {
    cx.allow_attrs(el, path, &["stp", "delay"])?;
    cx.allow_children(el, path, &["interface"])?;
    let stp = cx.choice(el, path, "stp", &["on", "off"])? == Some("on");
    let forward_delay = match el.attr("delay") {
        Some(a) => {
            let p = path.attr("delay");
            let secs = cx.value(a, path, |v| match v.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 && !v.starts_with('+') => Ok(s),
                _ => Err(format!("invalid value '{v}' for 'delay': expected seconds, a number >= 0")),
            })?;
            let (d, why) = model::forward_delay(secs, stp);
            if let Some(why) = why {
                // With STP off the kernel forwards at once, so the delay has no effect.
                let sev = if stp { Severity::Approximated } else { Severity::Info };
                cx.note(sev, a.offset, p, why);
            }
            d
        }
        None => model::DEFAULT_FORWARD_DELAY,
    };
    let mut ports = Vec::new();
    for m in el.children.iter() {
        ports.push(bridge_member(cx, m, &path.child("interface"))?);
    }
    ports.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(Bridge { stp, forward_delay, mac: None, replaces: None, ports })
}

/// Refuses host-level elements on a port, which libvirt's parser silently ignores.
fn no_host_level(cx: &Cx<'_>, el: &Element, path: &Path<'_>) -> Res<()> {
    if let Some(c) = el.children.iter().find(|c| matches!(c.name, "start" | "mtu" | "protocol")) {
        return Err(cx.err(
            c.start,
            path.child(c.name),
            format!("<{}> is allowed only on the top-level interface, not on a port", c.name),
        ));
    }
    Ok(())
}

fn bridge_member(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Member> {
    cx.allow_attrs(el, path, &["type", "name"])?;
    no_host_level(cx, el, path)?;
    let ty = el.attr("type").map(|a| a.value.as_ref());
    match ty {
        Some("ethernet") => {
            cx.allow_children(el, path, &["mac", "link"])?;
            link(cx, el, path)?;
            let name = values::required_name(cx, el, path, "name")?;
            cx.ports_seen.push((name.clone(), el.start));
            Ok(Member::Ethernet(EthernetPort { name, mac: mac_child(cx, el, path)?, port: Default::default() }))
        }
        Some("bond") => {
            cx.allow_children(el, path, &["link", "bond"])?;
            link(cx, el, path)?;
            let name = values::required_name(cx, el, path, "name")?;
            cx.ports_seen.push((name.clone(), el.start));
            let b = required_child(cx, el, path, "bond")?;
            Ok(Member::Bond { name, bond: bond(cx, b, &path.child("bond"))? })
        }
        Some("vlan") => {
            cx.allow_children(el, path, &["link", "vlan"])?;
            link(cx, el, path)?;
            let v = required_child(cx, el, path, "vlan")?;
            let vlan = vlan(cx, v, &path.child("vlan"))?;
            let name = vlan_name(cx, el, path, &vlan)?;
            cx.ports_seen.push((name.clone(), el.start));
            Ok(Member::Vlan { name, vlan })
        }
        Some("bridge") => Err(cx.err(
            el.attr("type").map_or(el.start, |a| a.offset),
            path.attr("type"),
            "a bridge cannot be a port of a bridge (allowed port types: ethernet, bond, vlan)",
        )),
        Some(other) => Err(cx.err(
            el.attr("type").map_or(el.start, |a| a.offset),
            path.attr("type"),
            format!("invalid value '{other}' for 'type' (allowed port types: ethernet, bond, vlan)"),
        )),
        None => Err(cx.err(
            el.start,
            path,
            "missing required attribute 'type' on a bridge port (allowed: ethernet, bond, vlan)",
        )),
    }
}

fn bond(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Bond> {
    cx.allow_attrs(el, path, &["mode"])?;
    cx.allow_children(el, path, &["miimon", "arpmon", "interface", "nmi:options", "nmi:arp-target"])?;
    let mode = match el.attr("mode") {
        Some(a) => cx.value(a, path, |v| {
            BondMode::parse(v).filter(|_| !v.bytes().all(|b| b.is_ascii_digit())).ok_or_else(|| {
                let names: Vec<_> = BondMode::ALL.iter().map(|m| m.as_str()).collect();
                format!("invalid value '{v}' for 'mode' (allowed: {})", names.join(", "))
            })
        })?,
        None => BondMode::BalanceRr,
    };
    let mii = cx.one(el, path, "miimon")?;
    let arp = cx.one(el, path, "arpmon")?;
    let monitor = match (mii, arp) {
        (Some(m), Some(a)) => {
            let second = if m.start > a.start { m } else { a };
            return Err(cx.err(
                second.start,
                path.child(second.name),
                "<miimon> and <arpmon> are mutually exclusive; use one link monitor",
            ));
        }
        (Some(m), None) => Some(miimon(cx, m, &path.child("miimon"))?),
        (None, Some(a)) => {
            let m = arpmon(cx, a, &path.child("arpmon"))?;
            if matches!(mode, BondMode::BalanceTlb | BondMode::BalanceAlb) {
                // The bonding driver (and so NetworkManager) refuses arp_interval in these modes.
                cx.note(
                    Severity::Unsupported,
                    a.start,
                    path.child("arpmon"),
                    format!(
                        "ARP monitoring is not available in mode {} (kernel bonding driver); NetworkManager's default MII monitoring every {} ms is used instead",
                        mode.as_str(),
                        model::DEFAULT_MIIMON
                    ),
                );
                Some(Monitor::default_mii())
            } else {
                Some(m)
            }
        }
        (None, None) => Some(default_monitor(cx, el.start, path)),
    };
    let mut ports = Vec::new();
    for p in el.children.iter().filter(|c| c.name == "interface") {
        let pp = path.child("interface");
        cx.allow_attrs(p, &pp, &["type", "name"])?;
        no_host_level(cx, p, &pp)?;
        match p.attr("type") {
            Some(t) if t.value == "ethernet" => {}
            Some(t) => {
                return Err(cx.err(
                    t.offset,
                    pp.attr("type"),
                    format!("a bond's ports must be ethernet interfaces, not '{}' (allowed: ethernet)", t.value),
                ))
            }
            None => {
                return Err(cx.err(p.start, pp, "missing required attribute 'type' on a bond port (allowed: ethernet)"))
            }
        }
        cx.allow_children(p, &pp, &["mac", "link", "nmi:port"])?;
        link(cx, p, &pp)?;
        let name = values::required_name(cx, p, &pp, "name")?;
        cx.ports_seen.push((name.clone(), p.start));
        let port = port_ext(cx, p, &pp)?;
        ports.push(EthernetPort { name, mac: mac_child(cx, p, &pp)?, port });
    }
    if ports.is_empty() {
        return Err(cx.err(el.start, path, "a bond needs at least one port <interface type='ethernet' name='…'/>"));
    }
    // libvirt's convention (netcf, the schema's comment): the first port is the primary.
    let primary = ports.first().filter(|_| mode.has_primary()).map(|p| p.name.clone());
    let mut monitor = monitor;
    let targets: Vec<&Element> = el.children.iter().filter(|c| c.ext && c.local == "arp-target").collect();
    if let Some(first) = targets.first() {
        let Some(Monitor::Arp { more_targets, .. }) = monitor.as_mut() else {
            return Err(cx.err(
                first.start,
                path.child(first.name),
                "<nmi:arp-target> adds ARP targets to an <arpmon>; this bond has none",
            ));
        };
        for t in targets {
            let tp = path.child(t.name);
            leaf(cx, t, &tp, &["address"])?;
            let a = cx.required(t, &tp, "address")?;
            more_targets.push(cx.value(a, &tp, values::ipv4)?);
        }
        // The kernel's limit (BOND_MAX_ARP_TARGETS).
        if more_targets.len() + 1 > 16 {
            return Err(cx.err(el.start, path, "at most 16 ARP targets (the kernel's limit)"));
        }
    }
    let options = bond_options_ext(cx, el, path, mode)?;
    let mut bond = Bond { mode, monitor, primary, ports, options };
    bond.sort_ports();
    Ok(bond)
}

/// A bond without a monitor gets NetworkManager's default MII monitoring; the canonical form
/// says so rather than leaving it implicit.
pub(crate) fn default_monitor(cx: &mut Cx<'_>, offset: usize, path: &Path<'_>) -> Monitor {
    cx.note(
        Severity::Info,
        offset,
        path,
        format!(
            "no link monitor given: NetworkManager monitors MII every {} ms by default (written out)",
            model::DEFAULT_MIIMON
        ),
    );
    Monitor::default_mii()
}

/// `<nmi:options>`: kernel bonding options libvirt's format lacks, each checked against the
/// modes the kernel uses it in.
fn bond_options_ext(cx: &Cx<'_>, el: &Element, path: &Path<'_>, mode: BondMode) -> Res<model::BondOptions> {
    let mut o = model::BondOptions::default();
    let Some(x) = cx.ext(el, path, "options")? else { return Ok(o) };
    let xp = path.child(x.name);
    let attrs: Vec<&str> = model::bond::OPTION_SPECS.iter().map(|s| s.attr).collect();
    leaf(cx, x, &xp, &attrs)?;
    for spec in model::bond::OPTION_SPECS.iter() {
        let Some(a) = x.attr(spec.attr) else { continue };
        cx.value(a, &xp, |v| o.set(spec.key, v))?;
        if !spec.modes.contains(&mode) {
            let modes: Vec<&str> = spec.modes.iter().map(|m| m.as_str()).collect();
            return Err(cx.err(
                a.offset,
                xp.attr(spec.attr),
                format!("'{}' applies only in mode {} (this bond is {})", spec.attr, modes.join(", "), mode.as_str()),
            ));
        }
    }
    Ok(o)
}

/// `<nmi:port>` on a bond port: priority and queue id.
fn port_ext(cx: &Cx<'_>, el: &Element, path: &Path<'_>) -> Res<model::PortExt> {
    let mut ext = model::PortExt::default();
    let Some(x) = cx.ext(el, path, "port")? else { return Ok(ext) };
    let xp = path.child(x.name);
    leaf(cx, x, &xp, &["priority", "queue-id"])?;
    if let Some(a) = x.attr("priority") {
        ext.prio = Some(cx.value(a, &xp, |v| {
            v.parse::<i32>().map_err(|_| format!("invalid value '{v}' for 'priority': expected an integer"))
        })?);
    }
    if let Some(a) = x.attr("queue-id") {
        ext.queue_id = Some(cx.value(a, &xp, |v| {
            v.parse::<u16>().map_err(|_| format!("invalid value '{v}' for 'queue-id' (allowed: 0-65535)"))
        })?);
    }
    Ok(ext)
}

fn positive(cx: &Cx<'_>, el: &Element, path: &Path<'_>, name: &str) -> Res<u32> {
    let a = cx.required(el, path, name)?;
    let v = cx.value(a, path, |v| super::context::parse_uint(name, v))?;
    if v == 0 {
        return Err(cx.err(a.offset, path.attr(name), format!("'{name}' must be at least 1 ms")));
    }
    Ok(v)
}

fn miimon(cx: &Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Monitor> {
    leaf(cx, el, path, &["freq", "downdelay", "updelay", "carrier"])?;
    let freq = positive(cx, el, path, "freq")?;
    let carrier = cx.choice(el, path, "carrier", &["ioctl", "netif"])?.map(|c| {
        if c == "ioctl" {
            Carrier::Ioctl
        } else {
            Carrier::Netif
        }
    });
    Ok(Monitor::Mii {
        freq,
        downdelay: cx.uint(el, path, "downdelay")?.unwrap_or(0),
        updelay: cx.uint(el, path, "updelay")?.unwrap_or(0),
        carrier,
    })
}

fn arpmon(cx: &Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Monitor> {
    leaf(cx, el, path, &["interval", "target", "validate"])?;
    let interval = positive(cx, el, path, "interval")?;
    let t = cx.required(el, path, "target")?;
    let target = cx.value(t, path, values::ipv4)?;
    let validate = cx.choice(el, path, "validate", &["none", "active", "backup", "all"])?.and_then(ArpValidate::parse);
    Ok(Monitor::Arp { interval, target, more_targets: Vec::new(), validate })
}

fn vlan(cx: &Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Vlan> {
    cx.allow_attrs(el, path, &["tag"])?;
    cx.allow_children(el, path, &["interface", "nmi:vlan"])?;
    let t = cx.required(el, path, "tag")?;
    let tag = cx.value(t, path, vlan_tag)?;
    let parent = cx
        .one(el, path, "interface")?
        .ok_or_else(|| cx.err(el.start, path, "a <vlan> needs its parent device: <interface name='…'/>"))?;
    let pp = path.child("interface");
    leaf(cx, parent, &pp, &["name"])?;
    let parent = values::required_name(cx, parent, &pp, "name")?;
    let mut vlan = Vlan { tag, parent, reorder_hdr: true, ext: Default::default() };
    if let Some(x) = cx.ext(el, path, "vlan")? {
        let xp = path.child(x.name);
        leaf(cx, x, &xp, &["protocol", "reorder-hdr", "gvrp", "mvrp", "loose-binding"])?;
        if cx.choice(x, &xp, "protocol", &["802.1Q", "802.1ad"])? == Some("802.1ad") {
            vlan.ext.protocol = model::VlanProtocol::Dot1ad;
        }
        let on = |name: &str, default: bool| -> Res<bool> {
            Ok(cx.choice(x, &xp, name, &["on", "off"])?.map_or(default, |v| v == "on"))
        };
        vlan.reorder_hdr = on("reorder-hdr", true)?;
        vlan.ext.gvrp = on("gvrp", false)?;
        vlan.ext.mvrp = on("mvrp", false)?;
        vlan.ext.loose_binding = on("loose-binding", false)?;
    }
    Ok(vlan)
}

/// A VLAN tag as libvirt allows it (0..=4095).
pub(crate) fn vlan_tag(v: &str) -> Result<u16, String> {
    let n = super::context::parse_uint("tag", v)?;
    if n > u32::from(model::MAX_VLAN_TAG_XML) {
        return Err(format!("VLAN tag {n} out of range (0-{})", model::MAX_VLAN_TAG_XML));
    }
    Ok(n as u16)
}

/// The VLAN's name, or `PARENT.TAG` when absent (the schema allows omitting it; netcf filled it in).
fn vlan_name(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>, vlan: &Vlan) -> Res<IfName> {
    if let Some(a) = el.attr("name") {
        return values::ifname(cx, a, path);
    }
    let name = format!("{}.{}", vlan.parent, vlan.tag);
    let n = IfName::new(&name).map_err(|m| cx.err(el.start, path, format!("vlan without a name; {m}")))?;
    cx.note(
        Severity::Info,
        el.start,
        path,
        format!("vlan without a name is named '{name}' (parent.tag), as netcf did"),
    );
    Ok(n)
}
