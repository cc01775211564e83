//! The model as libvirt interface XML: the canonical form.
//!
//! Element order, quoting and layout follow libvirt's formatter (`virInterfaceDefFormat`), so
//! `virsh iface-define` followed by `iface-dumpxml` prints our output back unchanged. Defaults
//! are written out (start mode, STP, forward delay, bond mode): the canonical form says what
//! NetworkManager will do, not what the input happened to leave implicit. What libvirt's format
//! cannot express is reported as findings.

pub use super::live::{LiveLink, LiveState};
use crate::finding::{Finding, Severity};
use crate::model::{Bond, Bridge, EthernetPort, Host, Interface, IpExtra, Ipv4, Ipv6, Kind, Member, Monitor, Vlan};
use std::fmt::Write;

struct Out<'l> {
    text: String,
    depth: usize,
    findings: Vec<Finding>,
    live: Option<&'l LiveState>,
}

impl Out<'_> {
    fn line(&mut self, s: &str) {
        for _ in 0..self.depth {
            self.text.push_str("  ");
        }
        self.text.push_str(s);
        self.text.push('\n');
    }
    fn open(&mut self, s: &str) {
        self.line(s);
        self.depth += 1;
    }
    /// Closes an element on its own line, also an empty port (`<interface …>` `</interface>`):
    /// byte for byte what libvirt's own formatter writes (the oracle tests compare), so a dump
    /// reads like `virsh iface-dumpxml`.
    fn close(&mut self, s: &str) {
        self.depth -= 1;
        self.line(s);
    }
    fn note(&mut self, severity: Severity, path: String, message: String) {
        self.findings.push(Finding::at(severity, path, None, message));
    }
}

/// Escapes an attribute value for single quotes, as libvirt's formatter does.
pub fn escape_attr(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\'' => o.push_str("&apos;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

/// One interface as a libvirt `<interface>` document, plus what the format could not say.
pub fn write_interface(iface: &Interface) -> (String, Vec<Finding>) {
    let mut out = Out { text: String::new(), depth: 0, findings: Vec::new(), live: None };
    interface(&mut out, iface);
    (out.text, out.findings)
}

/// One interface with its live state (libvirt's `iface-dumpxml` without `--inactive`).
pub fn write_interface_live(iface: &Interface, live: &LiveState) -> (String, Vec<Finding>) {
    let mut out = Out { text: String::new(), depth: 0, findings: Vec::new(), live: Some(live) };
    interface(&mut out, iface);
    (out.text, out.findings)
}

/// A host: a single interface as its own document, several inside `<interfaces>` (nmiface's
/// whole-host root; libvirt itself takes one interface per document).
pub fn write_host(host: &Host) -> (String, Vec<Finding>) {
    if let [only] = host.interfaces.as_slice() {
        return write_interface(only);
    }
    let mut out = Out { text: String::new(), depth: 0, findings: Vec::new(), live: None };
    out.open("<interfaces>");
    for iface in &host.interfaces {
        interface(&mut out, iface);
    }
    out.close("</interfaces>");
    (out.text, out.findings)
}

fn interface(out: &mut Out, iface: &Interface) {
    let name = iface.name.as_str();
    let path = format!("/interface[@name='{name}']");
    // The extension namespace is declared only where used, so other documents stay plain
    // libvirt XML.
    let ns = if uses_extensions(iface, out.live.is_none()) {
        format!(" xmlns:nmi='{}'", super::tree::NMIFACE_NS)
    } else {
        String::new()
    };
    out.open(&format!("<interface type='{}' name='{}'{ns}>", iface.kind.type_name(), escape_attr(name)));
    if let Some(uuid) = iface.uuid {
        out.note(
            Severity::Info,
            path.clone(),
            format!("libvirt XML has no <uuid>; {uuid} stays in the NetworkManager profile only"),
        );
    }
    out.line(&format!("<start mode='{}'/>", iface.start.as_str()));
    if let Some(mtu) = iface.mtu {
        out.line(&format!("<mtu size='{mtu}'/>"));
    }
    match out.live {
        Some(live) => live_protocols(out, live, iface),
        None => {
            if let Some(v4) = &iface.ipv4 {
                ipv4(out, v4);
            }
            if let Some(v6) = &iface.ipv6 {
                ipv6(out, v6);
            }
        }
    }
    if !matches!(iface.kind, Kind::Bridge(_)) {
        // libvirt: "link status makes no sense for a bridge".
        link(out, name);
    }
    match &iface.kind {
        Kind::Ethernet(e) => {
            if let Some(mac) = live_mac(out, name).or(e.mac) {
                out.line(&format!("<mac address='{mac}'/>"));
            }
        }
        Kind::Bridge(b) => bridge(out, b, &path),
        Kind::Bond(b) => bond(out, b),
        Kind::Vlan(v) => vlan(out, v),
    }
    out.close("</interface>");
}

fn dhcp_line(peerdns: bool) -> &'static str {
    if peerdns {
        "<dhcp/>"
    } else {
        "<dhcp peerdns='no'/>"
    }
}

fn ipv4(out: &mut Out, v4: &Ipv4) {
    out.open("<protocol family='ipv4'>");
    if v4.nat {
        out.line("<nmi:nat/>");
    }
    if let Some(d) = v4.dhcp {
        out.line(dhcp_line(d.peerdns));
    }
    for a in &v4.addresses {
        out.line(&format!("<ip address='{}' prefix='{}'/>", a.address, a.prefix));
    }
    if let Some(gw) = v4.gateway {
        out.line(&format!("<route gateway='{gw}'/>"));
    }
    extra(out, &v4.extra);
    out.close("</protocol>");
}

fn ipv6(out: &mut Out, v6: &Ipv6) {
    out.open("<protocol family='ipv6'>");
    if v6.autoconf {
        out.line("<autoconf/>");
    }
    if let Some(d) = v6.dhcp {
        out.line(dhcp_line(d.peerdns));
    }
    for a in &v6.addresses {
        out.line(&format!("<ip address='{}' prefix='{}'/>", a.address, a.prefix));
    }
    if let Some(gw) = v6.gateway {
        out.line(&format!("<route gateway='{gw}'/>"));
    }
    extra(out, &v6.extra);
    out.close("</protocol>");
}

/// nmiface's DNS and routing elements, after libvirt's own (`src/xml/libvirt/extra.rs`).
fn extra<A: std::fmt::Display>(out: &mut Out, x: &IpExtra<A>) {
    for s in &x.dns {
        out.line(&format!("<nmi:dns server='{s}'/>"));
    }
    for d in &x.search {
        out.line(&format!("<nmi:dns-search domain='{}'/>", escape_attr(d)));
    }
    for o in &x.dns_options {
        out.line(&format!("<nmi:dns-option value='{}'/>", escape_attr(o)));
    }
    for r in &x.routes {
        let mut s = format!("<nmi:route address='{}' prefix='{}'", r.address, r.prefix);
        if let Some(g) = &r.gateway {
            let _ = write!(s, " gateway='{g}'");
        }
        if let Some(m) = r.metric {
            let _ = write!(s, " metric='{m}'");
        }
        if let Some(t) = r.table {
            let _ = write!(s, " table='{t}'");
        }
        out.line(&(s + "/>"));
    }
    if let Some(m) = x.route_metric {
        out.line(&format!("<nmi:route-metric value='{m}'/>"));
    }
    if let Some(t) = x.route_table {
        out.line(&format!("<nmi:route-table value='{t}'/>"));
    }
}

/// The addresses the device has, with how it gets them where the definition says (`<dhcp/>`,
/// `<autoconf/>`), as libvirt's live XML keeps them: a leased address alone reads as static.
fn live_protocols(out: &mut Out, live: &LiveState, iface: &Interface) {
    let v4_dhcp = iface.ipv4.as_ref().and_then(|v| v.dhcp);
    if !live.ipv4.is_empty() || v4_dhcp.is_some() {
        out.open("<protocol family='ipv4'>");
        if let Some(d) = v4_dhcp {
            out.line(dhcp_line(d.peerdns));
        }
        for (a, p) in &live.ipv4 {
            out.line(&format!("<ip address='{a}' prefix='{p}'/>"));
        }
        out.close("</protocol>");
    }
    let v6 = iface.ipv6.as_ref();
    let (autoconf, v6_dhcp) = (v6.is_some_and(|v| v.autoconf), v6.and_then(|v| v.dhcp));
    if !live.ipv6.is_empty() || autoconf || v6_dhcp.is_some() {
        out.open("<protocol family='ipv6'>");
        if autoconf {
            out.line("<autoconf/>");
        }
        if let Some(d) = v6_dhcp {
            out.line(dhcp_line(d.peerdns));
        }
        for (a, p) in &live.ipv6 {
            out.line(&format!("<ip address='{a}' prefix='{p}'/>"));
        }
        out.close("</protocol>");
    }
}

fn link(out: &mut Out, name: &str) {
    let Some(l) = out.live.and_then(|live| live.links.get(name)) else { return };
    let speed = l.speed.map(|s| format!(" speed='{s}'")).unwrap_or_default();
    let line = format!("<link{speed} state='{}'/>", escape_attr(&l.state));
    out.line(&line);
}

fn live_mac(out: &Out, name: &str) -> Option<crate::model::Mac> {
    out.live?.links.get(name)?.mac
}

fn ethernet_port(out: &mut Out, p: &EthernetPort) {
    out.open(&format!("<interface type='ethernet' name='{}'>", escape_attr(p.name.as_str())));
    link(out, p.name.as_str());
    if let Some(mac) = live_mac(out, p.name.as_str()).or(p.mac) {
        out.line(&format!("<mac address='{mac}'/>"));
    }
    if !p.port.is_empty() {
        let mut s = String::from("<nmi:port");
        if let Some(prio) = p.port.prio {
            let _ = write!(s, " priority='{prio}'");
        }
        if let Some(q) = p.port.queue_id {
            let _ = write!(s, " queue-id='{q}'");
        }
        out.line(&(s + "/>"));
    }
    out.close("</interface>");
}

fn bridge(out: &mut Out, b: &Bridge, path: &str) {
    if let Some(mac) = b.mac {
        let implied = matches!(b.ports.as_slice(), [Member::Ethernet(p)] if p.mac == Some(mac));
        let (sev, how) = if implied {
            (Severity::Info, "implied by its only port, which has that MAC")
        } else {
            (Severity::Approximated, "lost: libvirt XML has no MAC for a bridge")
        };
        out.note(sev, format!("{path}/bridge"), format!("the bridge's own MAC {mac} is {how}"));
    }
    out.open(&format!("<bridge stp='{}' delay='{}'>", if b.stp { "on" } else { "off" }, b.forward_delay));
    for m in &b.ports {
        match m {
            Member::Ethernet(p) => ethernet_port(out, p),
            Member::Bond { name, bond: bd } => {
                out.open(&format!("<interface type='bond' name='{}'>", escape_attr(name.as_str())));
                link(out, name.as_str());
                bond(out, bd);
                out.close("</interface>");
            }
            Member::Vlan { name, vlan: v } => {
                out.open(&format!("<interface type='vlan' name='{}'>", escape_attr(name.as_str())));
                link(out, name.as_str());
                vlan(out, v);
                out.close("</interface>");
            }
        }
    }
    out.close("</bridge>");
}

fn bond(out: &mut Out, b: &Bond) {
    out.open(&format!("<bond mode='{}'>", b.mode.as_str()));
    match &b.monitor {
        Some(Monitor::Mii { freq, downdelay, updelay, carrier }) => {
            let mut s = format!("<miimon freq='{freq}'");
            if *downdelay > 0 {
                let _ = write!(s, " downdelay='{downdelay}'");
            }
            if *updelay > 0 {
                let _ = write!(s, " updelay='{updelay}'");
            }
            if let Some(c) = carrier {
                let _ = write!(s, " carrier='{}'", if *c == crate::model::Carrier::Ioctl { "ioctl" } else { "netif" });
            }
            s.push_str("/>");
            out.line(&s);
        }
        Some(Monitor::Arp { interval, target, more_targets, validate }) => {
            let mut s = format!("<arpmon interval='{interval}' target='{target}'");
            if let Some(v) = validate {
                let _ = write!(s, " validate='{}'", v.as_str());
            }
            s.push_str("/>");
            out.line(&s);
            for t in more_targets {
                out.line(&format!("<nmi:arp-target address='{t}'/>"));
            }
        }
        None => {}
    }
    if !b.options.is_empty() {
        let mut s = String::from("<nmi:options");
        for (key, value) in b.options.pairs() {
            let attr = crate::model::bond::OPTION_SPECS.iter().find(|o| o.key == key).map_or(key, |o| o.attr);
            let _ = write!(s, " {attr}='{}'", escape_attr(&value));
        }
        out.line(&(s + "/>"));
    }
    // The primary is first by construction (Bond::sort_ports): libvirt's convention.
    for p in &b.ports {
        ethernet_port(out, p);
    }
    out.close("</bond>");
}

fn vlan(out: &mut Out, v: &Vlan) {
    out.open(&format!("<vlan tag='{}'>", v.tag));
    out.line(&format!("<interface name='{}'/>", escape_attr(v.parent.as_str())));
    if !v.reorder_hdr || !v.ext.is_default() {
        let mut s = String::from("<nmi:vlan");
        let on = |b: bool| if b { "on" } else { "off" };
        if v.ext.protocol != crate::model::VlanProtocol::Dot1Q {
            let _ = write!(s, " protocol='{}'", v.ext.protocol.as_str());
        }
        if !v.reorder_hdr {
            let _ = write!(s, " reorder-hdr='{}'", on(false));
        }
        for (attr, set) in [("gvrp", v.ext.gvrp), ("mvrp", v.ext.mvrp), ("loose-binding", v.ext.loose_binding)] {
            if set {
                let _ = write!(s, " {attr}='{}'", on(true));
            }
        }
        out.line(&(s + "/>"));
    }
    out.close("</vlan>");
}

/// Whether an interface uses anything of nmiface's extension namespace; `protocols`: whether
/// its protocols are written (live XML lists addresses only).
fn uses_extensions(iface: &Interface, protocols: bool) -> bool {
    let bond = |b: &Bond| {
        !b.options.is_empty()
            || b.ports.iter().any(|p| !p.port.is_empty())
            || matches!(&b.monitor, Some(Monitor::Arp { more_targets, .. }) if !more_targets.is_empty())
    };
    let vlan = |v: &Vlan| !v.reorder_hdr || !v.ext.is_default();
    if protocols
        && (iface.ipv4.as_ref().is_some_and(|v| v.nat || !v.extra.is_empty())
            || iface.ipv6.as_ref().is_some_and(|v| !v.extra.is_empty()))
    {
        return true;
    }
    match &iface.kind {
        Kind::Bond(b) => bond(b),
        Kind::Vlan(v) => vlan(v),
        Kind::Bridge(br) => br.ports.iter().any(|m| match m {
            Member::Bond { bond: b, .. } => bond(b),
            Member::Vlan { vlan: v, .. } => vlan(v),
            Member::Ethernet(_) => false,
        }),
        Kind::Ethernet(_) => false,
    }
}
