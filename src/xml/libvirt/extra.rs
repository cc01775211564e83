//! nmiface's DNS and routing elements inside a `<protocol>`: what libvirt's format has no place
//! for (its schema stops at one default-route `<route gateway>`).
//!
//! ```xml
//! <protocol family='ipv4'>
//!   <ip address='192.0.2.10' prefix='24'/>
//!   <route gateway='192.0.2.1'/>
//!   <nmi:dns server='192.0.2.53'/>              <!-- repeated, in order -->
//!   <nmi:dns-search domain='example.com'/>      <!-- repeated, in order -->
//!   <nmi:dns-option value='rotate'/>            <!-- repeated -->
//!   <nmi:route address='198.51.100.0' prefix='24' gateway='192.0.2.254' metric='100' table='200'/>
//!   <nmi:route-metric value='300'/>
//!   <nmi:route-table value='200'/>
//! </protocol>
//! ```

use super::super::context::{parse_uint, Cx, Res};
use super::super::path::Path;
use super::super::tree::Element;
use super::leaf;
use crate::model::{check_dns_option, check_search_domain, IpExtra, Route};

/// The extension children a `<protocol>` may hold, as `allow_children` names them.
pub(super) const EXTRA_CHILDREN: [&str; 6] =
    ["nmi:dns", "nmi:dns-search", "nmi:dns-option", "nmi:route", "nmi:route-metric", "nmi:route-table"];

/// One family's address rules: how to parse an address, and its longest prefix.
pub(super) struct Family<A> {
    /// Parses an address of this family, with a message naming what was expected.
    pub parse: fn(&str) -> Result<A, String>,
    /// 32 or 128.
    pub max_prefix: u8,
    /// `IPv4` or `IPv6`, for messages.
    pub name: &'static str,
}

fn exts<'e>(el: &'e Element<'e>, local: &'e str) -> impl Iterator<Item = &'e Element<'e>> {
    el.children.iter().filter(move |c| c.ext && c.local == local)
}

/// Reads the extension children of one `<protocol>` (its children were checked already).
pub(super) fn extra<A: Copy>(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>, fam: &Family<A>) -> Res<IpExtra<A>> {
    let mut x = IpExtra::default();
    for d in exts(el, "dns") {
        let p = path.child(d.name);
        leaf(cx, d, &p, &["server"])?;
        let a = cx.required(d, &p, "server")?;
        x.dns.push(cx.value(a, &p, fam.parse)?);
    }
    for d in exts(el, "dns-search") {
        let p = path.child(d.name);
        leaf(cx, d, &p, &["domain"])?;
        let a = cx.required(d, &p, "domain")?;
        cx.value(a, &p, check_search_domain)?;
        x.search.push(a.value.to_string());
    }
    for d in exts(el, "dns-option") {
        let p = path.child(d.name);
        leaf(cx, d, &p, &["value"])?;
        let a = cx.required(d, &p, "value")?;
        cx.value(a, &p, check_dns_option)?;
        x.dns_options.push(a.value.to_string());
    }
    for r in exts(el, "route") {
        x.routes.push(route(cx, r, &path.child(r.name), fam)?);
    }
    x.route_metric = single_number(cx, el, path, "route-metric")?;
    x.route_table = single_number(cx, el, path, "route-table")?;
    if x.route_table == Some(0) {
        // NetworkManager's 0 is "unset" (the main table, or its policy routing default).
        x.route_table = None;
    }
    Ok(x)
}

fn route<A: Copy>(cx: &mut Cx<'_>, r: &Element, p: &Path<'_>, fam: &Family<A>) -> Res<Route<A>> {
    leaf(cx, r, p, &["address", "prefix", "gateway", "metric", "table"])?;
    let a = cx.required(r, p, "address")?;
    let address = cx.value(a, p, fam.parse)?;
    let pa = cx.required(r, p, "prefix")?;
    let max = fam.max_prefix;
    let prefix = cx.value(pa, p, |v| match parse_uint("prefix", v) {
        Ok(n) if n <= u32::from(max) => Ok(n as u8),
        Ok(n) => Err(format!("invalid {} route prefix {n} (allowed: 0-{max})", fam.name)),
        Err(m) => Err(m),
    })?;
    let gateway = match r.attr("gateway") {
        Some(g) => Some(cx.value(g, p, fam.parse)?),
        None => None,
    };
    let metric = cx.uint(r, p, "metric")?;
    let table = cx.uint(r, p, "table")?.filter(|t| *t != 0);
    Ok(Route { address, prefix, gateway, metric, table })
}

/// `<nmi:LOCAL value='N'/>`, at most once: an unsigned 32-bit number.
fn single_number(cx: &mut Cx<'_>, el: &Element, path: &Path<'_>, local: &str) -> Res<Option<u32>> {
    let Some(e) = cx.ext(el, path, local)? else {
        return Ok(None);
    };
    let p = path.child(e.name);
    leaf(cx, e, &p, &["value"])?;
    cx.required(e, &p, "value")?;
    cx.uint(e, &p, "value")
}

#[cfg(test)]
mod tests {
    use crate::xml::parse_document;

    fn doc(protocol: &str) -> String {
        format!(
            "<interface type='ethernet' name='eth1' xmlns:nmi='urn:nmiface:interface:1'>\n<protocol family='ipv4'>\n<ip address='192.0.2.10' prefix='24'/>\n{protocol}\n</protocol>\n</interface>"
        )
    }

    /// The error's line, column, path and message.
    fn error(protocol: &str) -> (u32, u32, String, String) {
        let e = parse_document("t.xml", &doc(protocol)).unwrap_err();
        (e.location.line, e.location.column, e.path, e.message)
    }

    #[test]
    fn reads_dns_and_routes_in_order() {
        let d = parse_document(
            "t.xml",
            &doc(
                "<nmi:dns server='192.0.2.53'/><nmi:dns server='192.0.2.54'/><nmi:dns-search domain='~corp.example'/>\
                  <nmi:dns-option value='timeout:3'/><nmi:route address='198.51.100.0' prefix='24' table='0'/>\
                  <nmi:route-metric value='0'/><nmi:route-table value='7'/>",
            ),
        )
        .unwrap();
        let x = &d.host.interfaces[0].ipv4.as_ref().unwrap().extra;
        assert_eq!(x.dns, ["192.0.2.53".parse::<std::net::Ipv4Addr>().unwrap(), "192.0.2.54".parse().unwrap()]);
        assert_eq!(x.search, ["~corp.example"]);
        assert_eq!(x.dns_options, ["timeout:3"]);
        // Table 0 is NetworkManager's "unset".
        assert_eq!((x.routes[0].prefix, x.routes[0].table, x.routes[0].gateway), (24, None, None));
        assert_eq!((x.route_metric, x.route_table), (Some(0), Some(7)));
    }

    #[test]
    fn bad_values_are_located_and_say_what_is_allowed() {
        let (line, col, path, msg) = error("<nmi:dns server='2001:db8::1'/>");
        assert_eq!((line, col), (4, 10), "{msg}");
        assert!(path.ends_with("/protocol/nmi:dns/@server"), "{path}");
        assert!(msg.contains("IPv6 address where an IPv4 address is expected"), "{msg}");

        let (line, _, path, msg) = error("<nmi:route address='198.51.100.0' prefix='40'/>");
        assert_eq!(line, 4);
        assert!(path.ends_with("nmi:route/@prefix") && msg.contains("allowed: 0-32"), "{path}: {msg}");

        let (_, _, _, msg) = error("<nmi:route address='198.51.100.0'/>");
        assert!(msg.contains("missing required attribute 'prefix'"), "{msg}");

        let (_, _, path, msg) = error("<nmi:route address='198.51.100.0' prefix='24' metric='-1'/>");
        assert!(path.ends_with("@metric") && msg.contains("unsigned integer"), "{path}: {msg}");

        let (_, _, _, msg) = error("<nmi:route address='198.51.100.0' prefix='24' via='192.0.2.1'/>");
        assert!(msg.contains("unknown attribute 'via'") && msg.contains("allowed: address, prefix, gateway"), "{msg}");

        let (_, _, _, msg) = error("<nmi:dns-option value='ndots'/>");
        assert!(msg.contains("ndots takes a number"), "{msg}");

        let (_, _, _, msg) = error("<nmi:dns-search domain='a b'/>");
        assert!(msg.contains("invalid character ' '"), "{msg}");

        let (_, _, _, msg) = error("<nmi:route-table value='x'/>");
        assert!(msg.contains("invalid value 'x' for 'value'"), "{msg}");

        let (_, _, _, msg) = error("<nmi:dns/>");
        assert!(msg.contains("missing required attribute 'server'"), "{msg}");
    }
}
