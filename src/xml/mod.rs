//! Interface XML in, interface XML out.
//!
//! [`parse_document`] reads a document of either dialect, detected per element: libvirt's final
//! format (`<interface type=…>`), the 2009 draft (`<interface device=…>`, `<bond>`, `<bridge>`,
//! `<vlan>`), or a whole host (`<interfaces>` holding any mix of both). Cross-references inside
//! one document are resolved (a NIC defined on its own and used as a port becomes that port),
//! then the host-wide rules are checked. [`write_interface`] and [`write_host`] print the model
//! as libvirt XML, in the order and quoting of libvirt's own formatter: the canonical form.
//!
//! The raw tree and the dialect readers are private; only the model leaves this module.

mod context;
mod draft;
mod input;
mod libvirt;
mod live;
mod path;
mod tree;
mod values;
mod writer;

pub use input::{read_bounded, read_input, InputError, STDIN_NAME};
pub use tree::MAX_DOCUMENT_BYTES;
pub use writer::{escape_attr, write_host, write_interface, write_interface_live, LiveLink, LiveState};

use crate::finding::{Finding, Location, Severity};
use crate::model::{Bond, Host, HostError, IfName, Interface, Kind, Member};
use context::{Cx, Res};
use std::fmt;

/// Input that cannot be translated: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct XmlError {
    /// The document's name (a file path, or `-` for standard input).
    pub source_name: String,
    /// Line and column of the offending element, attribute or text.
    pub location: Location,
    /// Element path such as `/interface/bridge/@stp`; empty for syntax errors.
    pub path: String,
    /// What is wrong and, where it applies, what is allowed.
    pub message: String,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.source_name, self.location)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// A parsed document: the host it describes, what was normalised on the way in, and the source
/// text of each top-level interface (kept in the profiles so the user's words are not lost).
#[derive(Debug, Clone)]
pub struct Document {
    /// The interfaces described.
    pub host: Host,
    /// Normalisations made while reading, in document order.
    pub findings: Vec<Finding>,
    /// Source text of each interface of `host`, same order.
    pub sources: Vec<String>,
}

/// One top-level interface with where it came from.
struct Item {
    iface: Interface,
    start: usize,
    end: usize,
    path: String,
}

/// Reads a document of either dialect. `source_name` is used in error messages only.
pub fn parse_document(source_name: &str, text: &str) -> Result<Document, XmlError> {
    // Windows editors start UTF-8 files with a byte-order mark. It is not part of the
    // document; dropping it here keeps line 1's columns what the editor shows.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let src = tree::Source::new(source_name, text);
    let root = tree::parse(text).map_err(|e| XmlError {
        source_name: source_name.to_string(),
        location: src.location(e.offset),
        path: String::new(),
        message: e.message,
    })?;
    let mut cx = Cx::new(&src);
    let mut items = Vec::new();
    if root.name == "interfaces" {
        cx.allow_attrs(&root, &path::Path::root("/interfaces"), &[])?;
        for (i, child) in root.children.iter().enumerate() {
            let path = format!("/interfaces/{}[{}]", child.name, i + 1);
            items.push(Item { iface: convert(&mut cx, child, &path)?, start: child.start, end: child.end, path });
        }
        if items.is_empty() {
            return Err(cx.err(root.start, "/interfaces", "<interfaces> holds no interface"));
        }
        if let Some(off) = root.text_offset {
            return Err(cx.err(off, "/interfaces", format!("unexpected text '{}' in <interfaces>", root.text)));
        }
    } else {
        let path = format!("/{}", root.name);
        items.push(Item { iface: convert(&mut cx, &root, &path)?, start: root.start, end: root.end, path });
    }
    unique_names(&cx, &items)?;
    resolve_ports(&mut cx, &mut items)?;
    if let Err(e) = Host::validate_interfaces(items.iter().map(|i| &i.iface)) {
        return Err(locate(&cx, &items, e));
    }
    let sources = items.iter().map(|i| text[i.start..i.end].to_string()).collect();
    let host = Host { interfaces: items.into_iter().map(|i| i.iface).collect() };
    let root_path = if root.name == "interfaces" { "/interfaces".to_string() } else { format!("/{}", root.name) };
    Ok(Document { host, findings: cx.finish_findings(&root_path), sources })
}

/// Dispatches one element to its dialect.
fn convert(cx: &mut Cx<'_>, el: &tree::Element, path: &str) -> Res<Interface> {
    let path = &path::Path::root(path);
    match el.name {
        "interface" => match (el.attr("type"), el.attr("device")) {
            (Some(_), None) => libvirt::interface(cx, el, path),
            (None, Some(_)) => draft::interface(cx, el, path),
            (Some(t), Some(_)) => Err(cx.err(
                t.offset,
                path,
                "<interface> has both 'type' (libvirt format) and 'device' (2009 draft); use one dialect",
            )),
            // A misspelt `type` (`typ='bridge'`) is named: it is why there is no type.
            (None, None) => match el.attrs.iter().find(|a| !["name", "onboot"].contains(&a.name)) {
                Some(a) => Err(cx.err(
                    a.offset,
                    path.attr(a.name),
                    format!(
                        "unknown attribute '{}' on <interface>: it needs a 'type' attribute (libvirt format: ethernet, bridge, bond, vlan) or a 'device' attribute (2009 draft)",
                        a.name
                    ),
                )),
                None => Err(cx.err(
                    el.start,
                    path,
                    "<interface> needs a 'type' attribute (libvirt format: ethernet, bridge, bond, vlan) or a 'device' attribute (2009 draft)",
                )),
            },
        },
        "bond" | "bridge" | "vlan" => draft::controller(cx, el, path),
        other => Err(cx.err(
            el.start,
            path,
            format!("unknown element <{other}> (expected <interface>, <interfaces>, or the 2009 draft's <bond>, <bridge>, <vlan>)"),
        )),
    }
}

/// Calls `f` with every port name of `iface`, directly or in a bond inside a bridge.
fn for_each_port<'a>(iface: &'a Interface, f: &mut impl FnMut(&'a IfName)) {
    let bond = |b: &'a Bond, f: &mut dyn FnMut(&'a IfName)| b.ports.iter().for_each(|p| f(&p.name));
    match &iface.kind {
        Kind::Bond(b) => bond(b, f),
        Kind::Bridge(br) => {
            for m in &br.ports {
                f(m.name());
                if let Member::Bond { bond: b, .. } = m {
                    bond(b, f);
                }
            }
        }
        _ => {}
    }
}

/// Refuses a name defined twice at top level and a controller that lists itself as a port,
/// before ports are resolved: merging by name assumes each name is one definition, and
/// following "merged into" links would otherwise chase its own tail.
fn unique_names(cx: &Cx<'_>, items: &[Item]) -> Res<()> {
    use std::collections::HashSet;
    let mut seen: HashSet<&IfName> = HashSet::with_capacity(items.len());
    for it in items {
        if !seen.insert(&it.iface.name) {
            let e = HostError::Duplicate { name: it.iface.name.clone() };
            return Err(cx.err(it.start, &it.path, e.to_string()));
        }
        let mut itself = false;
        for_each_port(&it.iface, &mut |n| itself |= *n == it.iface.name);
        if itself {
            let name = &it.iface.name;
            // Point at the port element inside this item, when it was seen.
            let at = cx
                .ports_seen
                .iter()
                .find(|(p, off)| p == name && (it.start..it.end).contains(off))
                .map_or(it.start, |(_, off)| *off);
            return Err(cx.err(at, &it.path, format!("'{name}' lists itself as one of its ports")));
        }
    }
    Ok(())
}

/// Merges each top-level interface that exactly one controller uses as a port into that port.
/// The draft names ports by device only, so their MACs, and bonds or VLANs used as bridge
/// ports, are defined separately in the same file. One pass: who claims what is computed once;
/// when a bond merges into a bridge, later merges into the bond follow it there.
///
/// Names are unique here ([`unique_names`]), so the "merged into" links form a forest: each
/// link points at an item not merged yet. The walk along them is still bounded, so that no
/// input can make it loop.
fn resolve_ports(cx: &mut Cx<'_>, items: &mut Vec<Item>) -> Res<()> {
    use std::collections::HashMap;
    // port name -> (its controller's name, how many controllers claim it)
    let mut owners: HashMap<IfName, (IfName, u32)> = HashMap::new();
    for it in items.iter() {
        for_each_port(&it.iface, &mut |n| {
            let e = owners.entry(n.clone()).or_insert((it.iface.name.clone(), 0));
            e.1 += 1;
        });
    }
    let index: HashMap<IfName, usize> = items.iter().enumerate().map(|(i, it)| (it.iface.name.clone(), i)).collect();
    let mut slots: Vec<Option<Item>> = std::mem::take(items).into_iter().map(Some).collect();
    let mut moved: HashMap<IfName, IfName> = HashMap::new();
    for j in 0..slots.len() {
        let Some(name) = slots[j].as_ref().map(|it| it.iface.name.clone()) else { continue };
        let Some((owner, 1)) = owners.get(&name).cloned() else { continue };
        let mut owner = owner;
        let mut steps = 0;
        while let Some(next) = moved.get(&owner) {
            owner = next.clone();
            steps += 1;
            if steps > slots.len() {
                let it = slots[j].as_ref().map_or((0, String::new()), |it| (it.start, it.path.clone()));
                return Err(cx.err(it.0, &it.1, format!("'{name}' is a port in a circle of controllers")));
            }
        }
        let Some(&i) = index.get(&owner) else { continue };
        if i == j {
            continue; // claims itself: a cycle, reported by validation
        }
        let Some(port) = slots[j].take() else { continue };
        match slots.get_mut(i).and_then(Option::as_mut) {
            Some(ctrl) => merge(cx, ctrl, port)?,
            None => slots[j] = Some(port),
        }
        moved.insert(name, owner);
    }
    *items = slots.into_iter().flatten().collect();
    Ok(())
}

fn merge(cx: &mut Cx<'_>, ctrl: &mut Item, port: Item) -> Res<()> {
    let (pname, cname) = (port.iface.name.clone(), ctrl.iface.name.clone());
    if port.iface.ipv4.is_some() || port.iface.ipv6.is_some() {
        return Err(cx.err(
            port.start,
            &port.path,
            format!("'{pname}' is a port of '{cname}' and cannot have its own IP configuration (put it on '{cname}')"),
        ));
    }
    if port.iface.mtu.is_some() && port.iface.mtu != ctrl.iface.mtu {
        cx.note(
            Severity::Approximated,
            port.start,
            &port.path,
            format!(
                "MTU {} of '{pname}' is replaced: ports take the MTU of their controller '{cname}'",
                port.iface.mtu.unwrap_or(0)
            ),
        );
    }
    if port.iface.uuid.is_some() {
        cx.note(
            Severity::Info,
            port.start,
            &port.path,
            format!("<uuid> of '{pname}' is not used: a port's profile UUID derives from its controller"),
        );
    }
    if port.iface.start != ctrl.iface.start {
        cx.note(
            Severity::Info,
            port.start,
            &port.path,
            format!("'{pname}' starts with its controller '{cname}' (start mode {})", ctrl.iface.start.as_str()),
        );
    }
    let err_type = |what: &str| cx.err(port.start, &port.path, what.to_string());
    let unclaimed = || {
        cx.err(
            port.start,
            &port.path,
            format!("'{pname}' is used as a port of '{cname}' but '{cname}' has no such port"),
        )
    };
    let merge_mac = |slot: &mut Option<crate::model::Mac>, mac: Option<crate::model::Mac>| -> Res<()> {
        match (*slot, mac) {
            (Some(a), Some(b)) if a != b => Err(cx.err(
                port.start,
                &port.path,
                format!("'{pname}' has MAC {b} here but {a} as a port of '{cname}'"),
            )),
            (_, Some(b)) => {
                *slot = Some(b);
                Ok(())
            }
            _ => Ok(()),
        }
    };
    let bond_port = |bond: &mut Bond, kind: Kind| -> Res<()> {
        let Kind::Ethernet(e) = kind else {
            return Err(err_type(&format!(
                "a bond's ports must be ethernet interfaces, and '{pname}' is a {}",
                kind.type_name()
            )));
        };
        let Some(slot) = bond.ports.iter_mut().find(|p| p.name == pname) else {
            return Err(unclaimed());
        };
        merge_mac(&mut slot.mac, e.mac)
    };
    match &mut ctrl.iface.kind {
        Kind::Bond(bond) => bond_port(bond, port.iface.kind),
        Kind::Bridge(br) => {
            let Some(slot) = br.ports.iter_mut().find(|m| match m {
                Member::Bond { name, bond } => *name == pname || bond.ports.iter().any(|p| p.name == pname),
                other => *other.name() == pname,
            }) else {
                return Err(unclaimed());
            };
            match (slot, port.iface.kind) {
                (Member::Bond { name, bond }, kind) if *name != pname => bond_port(bond, kind),
                (Member::Ethernet(e), Kind::Ethernet(pe)) => merge_mac(&mut e.mac, pe.mac),
                (slot @ Member::Ethernet(_), Kind::Bond(bond)) => {
                    *slot = Member::Bond { name: pname.clone(), bond };
                    Ok(())
                }
                (slot @ Member::Ethernet(_), Kind::Vlan(vlan)) => {
                    *slot = Member::Vlan { name: pname.clone(), vlan };
                    Ok(())
                }
                (Member::Ethernet(_), Kind::Bridge(_)) => {
                    Err(err_type("a bridge cannot be a port of a bridge (allowed port types: ethernet, bond, vlan)"))
                }
                _ => Err(err_type(&format!("interface '{pname}' is defined twice"))),
            }
        }
        // Only bonds and bridges claim ports; anything else here means the claim was lost on
        // the way (e.g. by a name defined twice), which is the input's fault, not a bug to panic on.
        _ => Err(unclaimed()),
    }
}

/// Points a host-wide error at the element it is about.
fn locate(cx: &Cx<'_>, items: &[Item], e: HostError) -> XmlError {
    let subject = e.subject();
    let nth_item = |n: usize| items.iter().filter(|i| Some(&i.iface.name) == subject).nth(n);
    let nth_port = |n: usize| cx.ports_seen.iter().filter(|(p, _)| Some(p) == subject).nth(n);
    let (offset, path) = match &e {
        HostError::DuplicateUuid { .. } => match nth_item(0) {
            Some(item) => (item.start, item.path.clone()),
            None => (0, String::new()),
        },
        HostError::Duplicate { .. } => match (nth_item(1), nth_item(0), nth_port(0)) {
            (Some(second), _, _) => (second.start, second.path.clone()),
            (None, Some(item), _) => (item.start, item.path.clone()),
            (None, None, Some((_, off))) => (*off, String::new()),
            _ => (0, String::new()),
        },
        HostError::PortOfTwo { .. } => match (nth_port(1), items.first()) {
            (Some((_, off)), _) => (*off, String::new()),
            (None, Some(first)) => (first.start, first.path.clone()),
            (None, None) => (0, String::new()),
        },
        _ => match e_cycle_item(items, &e).or(items.first()) {
            Some(item) => (item.start, item.path.clone()),
            None => (0, String::new()),
        },
    };
    let path = if path.is_empty() { "/interfaces".to_string() } else { path };
    cx.err(offset, &path, e.to_string())
}

fn e_cycle_item<'a>(items: &'a [Item], e: &HostError) -> Option<&'a Item> {
    let HostError::Cycle { cycle } = e else {
        return None;
    };
    items.iter().find(|i| cycle.contains(&i.iface.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// See: issue 11. A UTF-8 byte-order mark was read as an element ("unknown element <>").
    #[test]
    fn byte_order_mark_is_accepted_and_positions_stay_right() {
        let plain = "<interface type='bridge' name='br0'>\n  <bridge stp='yes'/>\n</interface>\n";
        let with_bom = format!("\u{FEFF}{plain}");
        let (a, b) = (parse_document("t", plain).unwrap_err(), parse_document("t", &with_bom).unwrap_err());
        assert_eq!(a, b);
        assert_eq!(b.to_string(), "t:2:11: /interface/bridge/@stp: invalid value 'yes' for 'stp' (allowed: on, off)");
        let one_line = "\u{FEFF}<interface type='ethernet' name='eth0' bogus='1'/>";
        let e = parse_document("t", one_line).unwrap_err();
        assert_eq!((e.location.line, e.location.column), (1, 40), "{e}");
        let doc = parse_document("t", "\u{FEFF}<interface type='ethernet' name='eth0'/>").unwrap();
        assert_eq!(doc.sources, ["<interface type='ethernet' name='eth0'/>"]);
    }

    /// See: issue 11. `<nmi:nat/>` with the prefix bound to another URI was taken for the
    /// extension by its prefix text... and dropped, giving `ipv4.method=disabled` silently.
    #[test]
    fn extension_in_a_wrong_namespace_is_refused_with_its_location() {
        let nat = "<interface type='ethernet' name='eth0' xmlns:nmi='urn:nmiface:interface:2'>\n  <protocol family='ipv4'>\n    <nmi:nat/>\n  </protocol>\n</interface>\n";
        let e = parse_document("t", nat).unwrap_err();
        assert_eq!((e.location.line, e.location.column), (3, 5), "{e}");
        assert!(e.message.starts_with("unknown element <nmi:nat>: namespace 'urn:nmiface:interface:2'"), "{e}");
        let options = "<interface type='bond' name='bond0' xmlns:x='urn:other'>\n<bond mode='802.3ad'>\n<x:options lacp-rate='fast'/>\n<interface type='ethernet' name='eth0'/>\n</bond>\n</interface>\n";
        let e = parse_document("t", options).unwrap_err();
        assert_eq!((e.location.line, e.location.column), (3, 1), "{e}");
        assert!(e.message.starts_with("unknown element <x:options>"), "{e}");
    }

    /// The namespace decides, whatever the prefix: `x:` bound to nmiface's URI is the extension.
    #[test]
    fn extension_is_matched_by_namespace_uri_not_prefix() {
        let nat = "<interface type='ethernet' name='eth0' xmlns:x='urn:nmiface:interface:1'><protocol family='ipv4'><x:nat/></protocol></interface>";
        let doc = parse_document("t", nat).unwrap();
        assert!(doc.host.interfaces[0].ipv4.as_ref().is_some_and(|v| v.nat));
    }

    /// A default namespace would move libvirt's own elements (or let an extension pass under a
    /// plain name); only `xmlns=''` is accepted.
    #[test]
    fn default_namespace_is_refused() {
        for text in [
            "<interface xmlns='urn:x' type='ethernet' name='eth0'/>",
            "<interface type='ethernet' name='eth0'><protocol family='ipv4'><nat xmlns='urn:nmiface:interface:1'/></protocol></interface>",
        ] {
            let e = parse_document("t", text).unwrap_err();
            assert!(e.message.contains("declares the default namespace"), "{e}");
            assert_eq!(e.location.line, 1);
        }
        assert!(parse_document("t", "<interface xmlns='' type='ethernet' name='eth0'/>").is_ok());
    }

    /// See: issue 11. 190k findings on one line: every one was kept (and positioned by counting
    /// from the line start). Now the first 100 are kept and one more counts the rest, as
    /// severe as the worst dropped.
    #[test]
    fn findings_are_capped_with_a_count_of_the_rest() {
        let ips = "<ip address='10.0.0.1'/>".repeat(250);
        let text =
            format!("<interface type='ethernet' name='eth0'><protocol family='ipv4'>{ips}</protocol></interface>");
        let doc = parse_document("t", &text).unwrap();
        assert_eq!(doc.findings.len(), context::MAX_FINDINGS + 1);
        let last = doc.findings.last().unwrap();
        assert_eq!(last.message, "150 more findings not listed: only the first 100 of a document are kept");
        assert_eq!(last.severity, Severity::Approximated);
        assert_eq!(last.path, "/interface");
    }
}
