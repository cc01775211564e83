//! libvirt's final interface format (what `virsh iface-dumpxml` prints) into the model.
//!
//! The element and attribute rules follow libvirt's `interface.rng`, refusing everything the
//! schema refuses (libvirt's own parser silently drops unknown elements and bad `stp` values;
//! we do not). Where NetworkManager cannot represent a value exactly, the reader normalises it
//! and records a finding.

mod bond;
mod extra;
mod ip;

use super::context::{Cx, Res};
use super::path::Path;
use super::tree::Element;
use super::values;
use crate::finding::Severity;
use crate::model::{self, Bridge, Ethernet, EthernetPort, IfName, Interface, Kind, KindType, Member, StartMode, Vlan};
use bond::bond;
pub(crate) use bond::default_monitor;
use ip::protocols;

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
pub(super) fn leaf(cx: &Cx<'_>, el: &Element, path: &Path<'_>, attrs: &[&str]) -> Res<()> {
    cx.allow_attrs(el, path, attrs)?;
    cx.allow_children(el, path, &[])
}

pub(super) fn required_child<'e>(
    cx: &Cx<'_>,
    el: &'e Element<'e>,
    path: &Path<'_>,
    name: &str,
) -> Res<&'e Element<'e>> {
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

pub(super) fn mac_child(cx: &Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Option<model::Mac>> {
    let Some(m) = cx.one(el, path, "mac")? else {
        return Ok(None);
    };
    let p = path.child("mac");
    leaf(cx, m, &p, &["address"])?;
    let a = cx.required(m, &p, "address")?;
    values::mac(cx, &a.value, a.offset, &p.attr("address")).map(Some)
}

/// `<link>` is live state (operstate and speed); it is checked and then ignored.
pub(super) fn link(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<()> {
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
        None => model::default_forward_delay(stp),
    };
    let mut ports = Vec::new();
    for m in el.children.iter() {
        ports.push(bridge_member(cx, m, &path.child("interface"))?);
    }
    ports.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(Bridge { stp, forward_delay, mac: None, replaces: None, ports })
}

/// Refuses host-level elements on a port, which libvirt's parser silently ignores.
pub(super) fn no_host_level(cx: &Cx<'_>, el: &Element, path: &Path<'_>) -> Res<()> {
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
