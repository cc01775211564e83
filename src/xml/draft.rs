//! The 2009 draft dialect of the seed thread (libvir-list, "RFC: configuring host interfaces
//! with libvirt") into the model.
//!
//! Shapes read: `<interface device onboot>` with `<hwaddr>`, `<dhcp peerdns>`,
//! `<static ipaddr netmask gateway>`, `<mtu>`, `<uuid>`; the top-level `<bond name mode onboot>`
//! with `<slave device primary>`, `<bridge name stp onboot>` with `<member device>`,
//! `<vlan device tag reorder_hdr>`; and the reply's variant where an `<interface device=…>`
//! holds `<bond mode/>` + `<slave/>`s, `<vlan tag reorder_hdr/>` (the device is the parent; the
//! VLAN is named `PARENT.TAG`), `<shared bridge/>`, or `<bridge stp/>` + `<member/>`s.
//! The draft has no IPv6. Text-valued elements (`hwaddr`, `mtu`, `uuid`) carry their value as
//! text; `<mtu size=…/>` is also read, for documents written halfway to the final format.

use super::context::{Cx, Res};
use super::libvirt::vlan_tag;
use super::path::Path;
use super::tree::Element;
use super::values;
use crate::finding::Severity;
use crate::model::{
    self, classful_prefix, netmask_to_prefix, Bond, BondMode, Bridge, Dhcp, Ethernet, EthernetPort, IfName, Interface,
    Ipv4, Ipv4Net, Kind, Member, StartMode, Vlan,
};

/// Settings every draft element may carry: start, MTU, UUID and IPv4.
struct Common {
    start: StartMode,
    mtu: Option<u32>,
    uuid: Option<uuid::Uuid>,
    ipv4: Option<Ipv4>,
}

fn common(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Common> {
    let start = match cx.yes_no(el, path, "onboot")? {
        Some(false) => StartMode::None,
        _ => StartMode::Onboot,
    };
    let mtu = match cx.one(el, path, "mtu")? {
        Some(m) => {
            let p = path.child("mtu");
            cx.allow_attrs(m, &p, &["size"])?;
            cx.no_children_but(m, &p, &[])?;
            match (m.attr("size"), m.text_offset) {
                (Some(_), Some(off)) => {
                    return Err(cx.err(off, p, "<mtu> has both a size attribute and text; use one"))
                }
                (Some(a), None) => values::mtu(cx, &a.value, a.offset, &p.attr("size"))?,
                (None, Some(off)) => values::mtu(cx, &m.text, off, &p)?,
                (None, None) => {
                    return Err(cx.err(m.start, p, "<mtu> is empty: write the MTU as text, e.g. <mtu>1500</mtu>"))
                }
            }
        }
        None => None,
    };
    let uuid = match cx.one(el, path, "uuid")? {
        Some(u) => {
            let p = path.child("uuid");
            let (text, off) = text_of(cx, u, &p)?;
            Some(uuid::Uuid::parse_str(text).map_err(|_| cx.err(off, p, format!("invalid UUID '{text}'")))?)
        }
        None => None,
    };
    let ipv4 = ipv4(cx, el, path)?;
    Ok(Common { start, mtu, uuid, ipv4 })
}

/// The text of a text-only element, with its offset.
fn text_of<'e>(cx: &Cx<'_>, el: &'e Element, path: &Path<'_>) -> Res<(&'e str, usize)> {
    cx.allow_attrs(el, path, &[])?;
    cx.no_children_but(el, path, &[])?;
    match el.text_offset {
        Some(off) => Ok((el.text.as_str(), off)),
        None => Err(cx.err(el.start, path, format!("<{}> is empty", el.name))),
    }
}

fn ipv4(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Option<Ipv4>> {
    let dhcp = match cx.one(el, path, "dhcp")? {
        Some(d) => {
            let p = path.child("dhcp");
            cx.allow_attrs(d, &p, &["peerdns"])?;
            cx.allow_children(d, &p, &[])?;
            Some(Dhcp { peerdns: cx.yes_no(d, &p, "peerdns")?.unwrap_or(true) })
        }
        None => None,
    };
    let mut addresses = Vec::new();
    let mut gateway: Option<(std::net::Ipv4Addr, usize)> = None;
    for s in el.children.iter().filter(|c| c.name == "static") {
        let p = path.child("static");
        cx.allow_attrs(s, &p, &["ipaddr", "netmask", "gateway"])?;
        cx.allow_children(s, &p, &[])?;
        let a = cx.required(s, &p, "ipaddr")?;
        let address = cx.value(a, &p, values::ipv4)?;
        let prefix = match s.attr("netmask") {
            Some(m) => cx.value(m, &p, |v| {
                let mask = v
                    .parse()
                    .map_err(|_| format!("invalid netmask '{v}' (expected dotted form like 255.255.255.0)"))?;
                netmask_to_prefix(mask)
            })?,
            None => 0,
        };
        // Prefix 0 means "unset" in libvirt's format, so netmask 0.0.0.0 counts as absent.
        let prefix = match prefix {
            0 => {
                let guess = classful_prefix(address);
                cx.note(
                    Severity::Approximated,
                    s.start,
                    p,
                    format!(
                        "{address} has no netmask (or 0.0.0.0); using its classful prefix /{guess}, as ifcfg tools did"
                    ),
                );
                guess
            }
            n => n,
        };
        addresses.push(Ipv4Net { address, prefix });
        if let Some(g) = s.attr("gateway") {
            let gw = cx.value(g, &p, values::ipv4)?;
            if let Some((first, _)) = gateway {
                if first != gw {
                    return Err(cx.err(
                        g.offset,
                        p.attr("gateway"),
                        format!("a second gateway {gw} (first: {first}); only one default gateway per interface"),
                    ));
                }
            }
            gateway = Some((gw, g.offset));
        }
    }
    if dhcp.is_none() && addresses.is_empty() {
        return Ok(None);
    }
    Ok(Some(Ipv4 { dhcp, addresses, gateway: gateway.map(|g| g.0), nat: false, extra: Default::default() }))
}

/// The kind-defining child of a reply-variant `<interface>`, if any.
fn variant<'e>(cx: &Cx<'_>, el: &'e Element<'e>, path: &Path<'_>) -> Res<Option<&'e Element<'e>>> {
    let mut found = el.children.iter().filter(|c| matches!(c.name, "bond" | "vlan" | "shared" | "bridge"));
    let first = found.next();
    if let Some(second) = found.next() {
        return Err(cx.err(
            second.start,
            path.child(second.name),
            format!(
                "<{}> after <{}>: an interface is one of bond, vlan, shared or bridge",
                second.name,
                first.map_or("", |f| f.name)
            ),
        ));
    }
    Ok(first)
}

/// Converts a draft `<interface device=…>`.
pub(crate) fn interface(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Interface> {
    cx.allow_attrs(el, path, &["device", "onboot"])?;
    cx.allow_children(
        el,
        path,
        &["hwaddr", "dhcp", "static", "mtu", "uuid", "bond", "slave", "vlan", "shared", "bridge", "member"],
    )?;
    let device = values::required_name(cx, el, path, "device")?;
    let var = variant(cx, el, path)?;
    let var_name = var.map(|v| v.name);
    for (child, needs) in [("slave", "bond"), ("member", "bridge")] {
        if let Some(c) = el.children.iter().find(|c| c.name == child) {
            if var_name != Some(needs) {
                return Err(cx.err(
                    c.start,
                    path.child(child),
                    format!("<{child}> belongs to a <{needs}> interface; add <{needs}/> or remove it"),
                ));
            }
        }
    }
    let hwaddr = match cx.one(el, path, "hwaddr")? {
        Some(h) => {
            let p = path.child("hwaddr");
            let (text, off) = text_of(cx, h, &p)?;
            if matches!(var_name, Some("bond" | "vlan" | "bridge")) {
                return Err(cx.err(
                    h.start,
                    p,
                    format!(
                        "<hwaddr> names a NIC's MAC; it is not allowed on a {} (define the NIC on its own)",
                        var_name.unwrap_or("")
                    ),
                ));
            }
            Some(values::mac(cx, text, off, &p)?)
        }
        None => None,
    };
    let c = common(cx, el, path)?;
    let (name, kind) = match var {
        None => (device, Kind::Ethernet(Ethernet { mac: hwaddr })),
        Some(v) if v.name == "bond" => {
            let p = path.child("bond");
            cx.allow_attrs(v, &p, &["mode"])?;
            cx.allow_children(v, &p, &[])?;
            (device, Kind::Bond(bond(cx, el, path, v, &p)?))
        }
        Some(v) if v.name == "bridge" => {
            let p = path.child("bridge");
            cx.allow_attrs(v, &p, &["stp"])?;
            cx.allow_children(v, &p, &[])?;
            (device, Kind::Bridge(bridge(cx, el, path, v, &p)?))
        }
        Some(v) if v.name == "vlan" => {
            let p = path.child("vlan");
            let vlan = vlan(cx, v, &p, device)?;
            (vlan_ifname(cx, v, &p, &vlan)?, Kind::Vlan(vlan))
        }
        Some(v) => {
            let p = path.child("shared");
            cx.allow_attrs(v, &p, &["bridge", "mode"])?;
            cx.allow_children(v, &p, &[])?;
            let br = values::required_name(cx, v, &p, "bridge")?;
            if cx.choice(v, &p, "mode", &["bridge", "nat"])? == Some("nat") {
                return nat_share(cx, el, v, &p, device, br, hwaddr.is_some(), c);
            }
            (br, Kind::Bridge(Bridge::shared(device, hwaddr)))
        }
    };
    Ok(Interface { name, uuid: c.uuid, start: c.start, mtu: c.mtu, ipv4: c.ipv4, ipv6: None, kind })
}

/// `<interface device=UPLINK><shared mode="nat" bridge="virbr1"/></interface>` (nmiface's
/// extension of the draft, for laptops whose uplink is Wi-Fi or changes): a bridge for the
/// VMs with NetworkManager's shared method, which serves DHCP and DNS on it and masquerades to
/// whichever uplink is active. A `<static>` gives the bridge's own address (else 10.42.x.1/24).
#[allow(clippy::too_many_arguments)]
fn nat_share(
    cx: &mut Cx<'_>,
    el: &Element,
    shared_el: &Element,
    p: &Path<'_>,
    uplink: IfName,
    bridge: IfName,
    has_hwaddr: bool,
    c: Common,
) -> Res<Interface> {
    if has_hwaddr {
        return Err(cx.err(
            shared_el.start,
            p,
            "<hwaddr> names the uplink's MAC; NAT sharing does not bind to the uplink, so remove it",
        ));
    }
    if c.ipv4.as_ref().is_some_and(|v| v.dhcp.is_some()) {
        return Err(cx.err(
            shared_el.start,
            p,
            "NAT sharing serves DHCP on the bridge; <dhcp/> cannot go with it (use <static> for the bridge's address)",
        ));
    }
    cx.note(
        Severity::Info,
        el.start,
        p,
        format!("NAT sharing: NetworkManager masquerades to whichever uplink is active, not only {uplink}"),
    );
    let addresses = c.ipv4.map(|v| v.addresses).unwrap_or_default();
    let ipv4 = Some(Ipv4 { dhcp: None, addresses, gateway: None, nat: true, extra: Default::default() });
    // No STP: VMs attach and detach their taps; a listening delay would only hold them back.
    let kind = Kind::Bridge(Bridge { stp: false, forward_delay: 0, mac: None, replaces: None, ports: Vec::new() });
    Ok(Interface { name: bridge, uuid: c.uuid, start: c.start, mtu: c.mtu, ipv4, ipv6: None, kind })
}

fn bond_mode(cx: &Cx<'_>, el: &Element, path: &Path<'_>) -> Res<BondMode> {
    match el.attr("mode") {
        Some(a) => cx.value(a, path, |v| {
            BondMode::parse(v).filter(|_| !v.bytes().all(|b| b.is_ascii_digit())).ok_or_else(|| {
                let names: Vec<_> = BondMode::ALL.iter().map(|m| m.as_str()).collect();
                format!("invalid value '{v}' for 'mode' (allowed: {})", names.join(", "))
            })
        }),
        None => Ok(BondMode::BalanceRr),
    }
}

/// A bond from `mode_el`'s mode and the `<slave>` children of `holder`.
fn bond(cx: &mut Cx<'_>, holder: &Element, path: &Path<'_>, mode_el: &Element, mode_path: &Path<'_>) -> Res<Bond> {
    let mode = bond_mode(cx, mode_el, mode_path)?;
    let mut ports = Vec::new();
    let mut primary: Option<(IfName, usize)> = None;
    for s in holder.children.iter().filter(|c| c.name == "slave") {
        let p = path.child("slave");
        cx.allow_attrs(s, &p, &["device", "primary"])?;
        cx.allow_children(s, &p, &[])?;
        let name = values::required_name(cx, s, &p, "device")?;
        if cx.yes_no(s, &p, "primary")? == Some(true) {
            if let Some((first, _)) = &primary {
                return Err(cx.err(
                    s.start,
                    p,
                    format!("a second primary slave '{name}' (first: '{first}'); a bond has one primary"),
                ));
            }
            primary = Some((name.clone(), s.start));
        }
        cx.ports_seen.push((name.clone(), s.start));
        ports.push(EthernetPort { name, mac: None, port: Default::default() });
    }
    if ports.is_empty() {
        return Err(cx.err(holder.start, path, "a bond needs at least one <slave device='…'/>"));
    }
    let primary = match primary {
        Some((name, off)) if !mode.has_primary() => {
            cx.note(
                Severity::Approximated,
                off,
                path.child("slave").attr("primary"),
                format!("primary '{name}' is dropped: mode {} has no primary port (only active-backup, balance-tlb, balance-alb do)", mode.as_str()),
            );
            None
        }
        other => other.map(|p| p.0),
    };
    let monitor = Some(super::libvirt::default_monitor(cx, mode_el.start, mode_path));
    let mut bond = Bond { mode, monitor, primary, ports, options: Default::default() };
    bond.sort_ports();
    Ok(bond)
}

/// A bridge from `stp_el`'s stp and the `<member>` children of `holder`.
fn bridge(cx: &mut Cx<'_>, holder: &Element, path: &Path<'_>, stp_el: &Element, stp_path: &Path<'_>) -> Res<Bridge> {
    let stp = cx.choice(stp_el, stp_path, "stp", &["on", "off"])? == Some("on");
    let mut ports = Vec::new();
    for m in holder.children.iter().filter(|c| c.name == "member") {
        let p = path.child("member");
        cx.allow_attrs(m, &p, &["device"])?;
        cx.allow_children(m, &p, &[])?;
        let name = values::required_name(cx, m, &p, "device")?;
        cx.ports_seen.push((name.clone(), m.start));
        ports.push(Member::Ethernet(EthernetPort { name, mac: None, port: Default::default() }));
    }
    ports.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(Bridge { stp, forward_delay: model::default_forward_delay(stp), mac: None, replaces: None, ports })
}

fn vlan(cx: &Cx<'_>, el: &Element, path: &Path<'_>, parent: IfName) -> Res<Vlan> {
    cx.allow_children(el, path, &[])?;
    let t = cx.required(el, path, "tag")?;
    let tag = cx.value(t, path, vlan_tag)?;
    let reorder_hdr = cx.yes_no(el, path, "reorder_hdr")?.unwrap_or(true);
    Ok(Vlan { tag, parent, reorder_hdr, ext: Default::default() })
}

fn vlan_ifname(cx: &Cx<'_>, el: &Element, path: &Path<'_>, vlan: &Vlan) -> Res<IfName> {
    IfName::new(&format!("{}.{}", vlan.parent, vlan.tag))
        .map_err(|m| cx.err(el.start, path, format!("the VLAN's name PARENT.TAG: {m}")))
}

/// Converts the draft's top-level `<bond>`, `<bridge>` or `<vlan>`.
pub(crate) fn controller(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>) -> Res<Interface> {
    let common_children = ["dhcp", "static", "mtu", "uuid"];
    let (name, kind) = match el.name {
        "bond" => {
            cx.allow_attrs(el, path, &["name", "mode", "onboot"])?;
            cx.allow_children(el, path, &[&common_children[..], &["slave"]].concat())?;
            let name = values::required_name(cx, el, path, "name")?;
            (name, Kind::Bond(bond(cx, el, path, el, path)?))
        }
        "bridge" => {
            cx.allow_attrs(el, path, &["name", "stp", "onboot"])?;
            cx.allow_children(el, path, &[&common_children[..], &["member"]].concat())?;
            let name = values::required_name(cx, el, path, "name")?;
            (name, Kind::Bridge(bridge(cx, el, path, el, path)?))
        }
        _ => {
            cx.allow_attrs(el, path, &["device", "tag", "reorder_hdr", "onboot"])?;
            cx.allow_children(el, path, &common_children)?;
            let parent = values::required_name(cx, el, path, "device")?;
            let t = cx.required(el, path, "tag")?;
            let tag = cx.value(t, path, vlan_tag)?;
            let reorder_hdr = cx.yes_no(el, path, "reorder_hdr")?.unwrap_or(true);
            let vlan = Vlan { tag, parent, reorder_hdr, ext: Default::default() };
            (vlan_ifname(cx, el, path, &vlan)?, Kind::Vlan(vlan))
        }
    };
    let c = common(cx, el, path)?;
    Ok(Interface { name, uuid: c.uuid, start: c.start, mtu: c.mtu, ipv4: c.ipv4, ipv6: None, kind })
}
