//! libvirt's `<bond>` element, with nmiface's bond extensions.

use super::super::context::{Cx, Res};
use super::super::path::Path;
use super::super::tree::Element;
use super::super::values;
use super::{leaf, link, mac_child, no_host_level};
use crate::finding::Severity;
use crate::model::{self, ArpValidate, Bond, BondMode, Carrier, EthernetPort, Monitor};

pub(super) fn bond(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Bond> {
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
pub(super) fn bond_options_ext(cx: &Cx<'_>, el: &Element, path: &Path<'_>, mode: BondMode) -> Res<model::BondOptions> {
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
pub(super) fn port_ext(cx: &Cx<'_>, el: &Element, path: &Path<'_>) -> Res<model::PortExt> {
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

pub(super) fn positive(cx: &Cx<'_>, el: &Element, path: &Path<'_>, name: &str) -> Res<u32> {
    let a = cx.required(el, path, name)?;
    let v = cx.value(a, path, |v| super::super::context::parse_uint(name, v))?;
    if v == 0 {
        return Err(cx.err(a.offset, path.attr(name), format!("'{name}' must be at least 1 ms")));
    }
    Ok(v)
}

pub(super) fn miimon(cx: &Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Monitor> {
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

pub(super) fn arpmon(cx: &Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Monitor> {
    leaf(cx, el, path, &["interval", "target", "validate"])?;
    let interval = positive(cx, el, path, "interval")?;
    let t = cx.required(el, path, "target")?;
    let target = cx.value(t, path, values::ipv4)?;
    let validate = cx.choice(el, path, "validate", &["none", "active", "backup", "all"])?.and_then(ArpValidate::parse);
    Ok(Monitor::Arp { interval, target, more_targets: Vec::new(), validate })
}
