//! Value checks shared by both dialects: MTU, addresses, prefixes, names.

use super::context::{parse_uint, Cx, Res};
use super::path::Path;
use super::tree::{Attr, Element};
use crate::finding::Severity;
use crate::model::{IfName, Mac};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Smallest MTU accepted: the IPv4 minimum (RFC 791), below which the kernel refuses IP.
pub(crate) const MIN_MTU: u32 = 68;
/// Largest MTU accepted: the kernel's IP_MAX_MTU.
pub(crate) const MAX_MTU: u32 = 65535;

/// Checks an MTU value; 0 means "unset" in libvirt and is reported as such.
pub(crate) fn mtu(cx: &mut Cx<'_>, text: &str, offset: usize, path: &Path<'_>) -> Res<Option<u32>> {
    let v = parse_uint("mtu", text).map_err(|m| cx.err(offset, path, m))?;
    if v == 0 {
        cx.note(Severity::Info, offset, path, "MTU 0 means unset, as in libvirt; the device keeps its default");
        return Ok(None);
    }
    if !(MIN_MTU..=MAX_MTU).contains(&v) {
        return Err(cx.err(offset, path, format!("MTU {v} out of range ({MIN_MTU}-{MAX_MTU})")));
    }
    Ok(Some(v))
}

/// An interface name from an attribute.
pub(crate) fn ifname(cx: &Cx<'_>, a: &Attr, path: &Path<'_>) -> Res<IfName> {
    cx.value(a, path, IfName::new)
}

/// A required interface-name attribute.
pub(crate) fn required_name(cx: &Cx<'_>, el: &Element, path: &Path<'_>, attr: &str) -> Res<IfName> {
    let a = cx.required(el, path, attr)?;
    ifname(cx, a, path)
}

/// A MAC from text at `offset`.
pub(crate) fn mac(cx: &Cx<'_>, text: &str, offset: usize, path: &Path<'_>) -> Res<Mac> {
    Mac::parse(text).map_err(|m| cx.err(offset, path, m))
}

/// An IPv4 address.
pub(crate) fn ipv4(v: &str) -> Result<Ipv4Addr, String> {
    v.parse().map_err(|_| {
        if v.parse::<Ipv6Addr>().is_ok() {
            format!("'{v}' is an IPv6 address where an IPv4 address is expected")
        } else {
            format!("invalid IPv4 address '{v}'")
        }
    })
}

/// An IPv6 address.
pub(crate) fn ipv6(v: &str) -> Result<Ipv6Addr, String> {
    v.parse().map_err(|_| {
        if v.parse::<Ipv4Addr>().is_ok() {
            format!("'{v}' is an IPv4 address where an IPv6 address is expected")
        } else {
            format!("invalid IPv6 address '{v}'")
        }
    })
}

/// A prefix length for a family whose longest prefix is `max`.
pub(crate) fn prefix(v: &str, max: u8, family: &str) -> Result<u8, String> {
    let n = parse_uint("prefix", v)?;
    if n > u32::from(max) {
        return Err(format!("prefix {n} out of range for {family} (0-{max})"));
    }
    Ok(n as u8)
}
