//! The `ipv4` and `ipv6` settings of a profile back into the model, DNS and routes included.

use super::{err, str_prop, Reader, ReverseError};
use crate::finding::Severity;
use crate::model::{check_dns_option, check_search_domain, Dhcp, IpExtra, Ipv4, Ipv4Net, Ipv6, Ipv6Net, Route};
use crate::nm::profile::Profile;
use crate::nm::value::Value;
use std::str::FromStr;

impl Reader<'_> {
    pub(super) fn ipv4(&mut self, p: &Profile) -> Result<Option<Ipv4>, ReverseError> {
        let method = str_prop(p, "ipv4", "method").unwrap_or("auto");
        let nat = method == "shared";
        let dhcp = match method {
            "disabled" => return Ok(None),
            "auto" => Some(Dhcp { peerdns: !ignore_auto_dns(p, "ipv4") }),
            "manual" | "shared" => None,
            other => {
                self.note(
                    p,
                    Severity::Unsupported,
                    format!("ipv4.method '{other}' has no libvirt equivalent; left out"),
                );
                return Ok(None);
            }
        };
        let addresses = addresses(p, "ipv4")
            .into_iter()
            .map(|(a, prefix)| {
                a.parse()
                    .map(|address| Ipv4Net { address, prefix })
                    .map_err(|_| err(p, format!("bad IPv4 address '{a}'")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let gateway = gateway(p, "ipv4").map(|g| g.parse()).transpose().map_err(|_| err(p, "bad ipv4.gateway"))?;
        if dhcp.is_none() && addresses.is_empty() && !nat {
            return Ok(None);
        }
        let extra = self.extra(p, "ipv4", 32);
        Ok(Some(Ipv4 { dhcp, addresses, gateway, nat, extra }))
    }

    pub(super) fn ipv6(&mut self, p: &Profile) -> Result<Option<Ipv6>, ReverseError> {
        let method = str_prop(p, "ipv6", "method").unwrap_or("auto");
        let (autoconf, dhcp) = match method {
            "disabled" => return Ok(None),
            "ignore" => {
                // Not the same as disabled: NetworkManager leaves IPv6 to the kernel (which may
                // autoconfigure it); libvirt's format can say neither.
                self.note(
                    p,
                    Severity::Approximated,
                    "ipv6.method 'ignore' (NetworkManager leaves IPv6 to the kernel, which may still configure it) has no libvirt form; dumped without IPv6, which defines it as disabled".into(),
                );
                return Ok(None);
            }
            "auto" => {
                if ignore_auto_dns(p, "ipv6") {
                    self.note(
                        p,
                        Severity::Approximated,
                        "ipv6.ignore-auto-dns with SLAAC has no libvirt form; left out".into(),
                    );
                }
                (true, None)
            }
            "dhcp" => (false, Some(Dhcp { peerdns: !ignore_auto_dns(p, "ipv6") })),
            "manual" | "link-local" => (false, None),
            other => {
                self.note(
                    p,
                    Severity::Unsupported,
                    format!("ipv6.method '{other}' has no libvirt equivalent; left out"),
                );
                return Ok(None);
            }
        };
        let addresses = addresses(p, "ipv6")
            .into_iter()
            .map(|(a, prefix)| {
                a.parse()
                    .map(|address| Ipv6Net { address, prefix })
                    .map_err(|_| err(p, format!("bad IPv6 address '{a}'")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let gateway = gateway(p, "ipv6").map(|g| g.parse()).transpose().map_err(|_| err(p, "bad ipv6.gateway"))?;
        let extra = self.extra(p, "ipv6", 128);
        Ok(Some(Ipv6 { autoconf, dhcp, addresses, gateway, extra }))
    }

    /// DNS and routing of one family. What the XML could not carry back exactly (a DNS server
    /// with a DoT name, a route attribute other than metric and table) is a finding naming the
    /// property, and is left out of the XML.
    fn extra<A: FromStr + Copy>(&mut self, p: &Profile, family: &str, max_prefix: u8) -> IpExtra<A> {
        let mut x = IpExtra::default();
        let list = |k: &str| p.get(family, k).and_then(Value::as_str_list).unwrap_or(&[]).to_vec();
        let mut bad = Vec::new();
        match p.get(family, "dns-data").and_then(Value::as_str_list) {
            Some(servers) => {
                for s in servers {
                    match s.parse() {
                        Ok(a) => x.dns.push(a),
                        Err(_) => bad.push(format!("{family}.dns-data '{s}'")),
                    }
                }
            }
            // Before 1.42 only the legacy binary form exists, which nmiface does not decode.
            None if p.get(family, "dns").is_some_and(|v| !is_empty(v)) => bad.push(format!("{family}.dns")),
            None => {}
        }
        for d in list("dns-search") {
            match check_search_domain(&d) {
                Ok(()) => x.search.push(d),
                Err(_) => bad.push(format!("{family}.dns-search '{d}'")),
            }
        }
        for o in list("dns-options") {
            match check_dns_option(&o) {
                Ok(()) => x.dns_options.push(o),
                Err(_) => bad.push(format!("{family}.dns-options '{o}'")),
            }
        }
        for r in p.get(family, "route-data").and_then(Value::as_dict_list).unwrap_or(&[]) {
            match route(r, max_prefix) {
                Ok(route) => x.routes.push(route),
                Err(what) => bad.push(format!("{family}.route-data {what}")),
            }
        }
        x.route_metric = p.get(family, "route-metric").and_then(Value::as_int).and_then(|m| u32::try_from(m).ok());
        x.route_table = p.get(family, "route-table").and_then(Value::as_uint).and_then(|t| u32::try_from(t).ok());
        x.route_table = x.route_table.filter(|t| *t != 0);
        if !bad.is_empty() {
            let message = format!("not expressible in the XML, left out: {}", bad.join(", "));
            self.note(p, Severity::Unsupported, message);
        }
        x
    }
}

/// One `route-data` entry, or what of it the XML cannot say.
fn route<A: FromStr>(r: &std::collections::BTreeMap<String, Value>, max_prefix: u8) -> Result<Route<A>, String> {
    let dest = r.get("dest").and_then(Value::as_str).unwrap_or("");
    let address = dest.parse().map_err(|_| format!("destination '{dest}'"))?;
    let prefix = r.get("prefix").and_then(Value::as_uint).filter(|p| *p <= u64::from(max_prefix));
    let prefix = prefix.ok_or_else(|| format!("{dest}: prefix"))? as u8;
    let gateway = match r.get("next-hop").and_then(Value::as_str) {
        Some(g) => Some(g.parse().map_err(|_| format!("{dest}: next-hop '{g}'"))?),
        None => None,
    };
    let metric = r.get("metric").and_then(Value::as_uint).and_then(|m| u32::try_from(m).ok());
    let table = r.get("table").and_then(Value::as_uint).and_then(|t| u32::try_from(t).ok()).filter(|t| *t != 0);
    let others: Vec<&str> = r
        .keys()
        .map(String::as_str)
        .filter(|k| !matches!(*k, "dest" | "prefix" | "next-hop" | "metric" | "table"))
        .collect();
    if !others.is_empty() {
        return Err(format!("{dest}/{prefix}: route attributes {}", others.join(", ")));
    }
    Ok(Route { address, prefix, gateway, metric, table })
}

/// Whether a value is an empty list or text (NetworkManager's way of saying "not set" for
/// lists it always sends): the merge's rule, one definition.
pub(super) use crate::nm::merge::is_empty;

fn ignore_auto_dns(p: &Profile, family: &str) -> bool {
    p.get(family, "ignore-auto-dns").and_then(Value::as_bool).unwrap_or(false)
}

fn gateway<'a>(p: &'a Profile, family: &str) -> Option<&'a str> {
    str_prop(p, family, "gateway").filter(|g| !g.is_empty())
}

fn addresses(p: &Profile, family: &str) -> Vec<(String, u8)> {
    let Some(list) = p.get(family, "address-data").and_then(Value::as_dict_list) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|a| {
            let addr = a.get("address")?.as_str()?.to_string();
            let prefix = a.get("prefix")?.as_uint()?.min(128) as u8;
            Some((addr, prefix))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::finding::Severity;
    use crate::nm::{host_from_profiles, translate, Profile, Target, Value};
    use std::collections::BTreeMap;

    const XML: &str = "<interface type='ethernet' name='eth1' xmlns:nmi='urn:nmiface:interface:1'><protocol family='ipv4'>\
        <ip address='192.0.2.10' prefix='24'/><nmi:dns server='192.0.2.53'/><nmi:dns-search domain='example.com'/>\
        <nmi:dns-option value='rotate'/><nmi:route address='198.51.100.0' prefix='24' gateway='192.0.2.254' metric='100' table='200'/>\
        <nmi:route-metric value='300'/></protocol><protocol family='ipv6'><nmi:dns server='2001:db8::53'/>\
        <nmi:route-table value='9'/></protocol></interface>";

    fn profile(target: Target) -> (Profile, Vec<crate::finding::Finding>) {
        let d = crate::xml::parse_document("t", XML).unwrap();
        let t = translate(&d.host, &d.sources, &target);
        let p = t.profiles().next().unwrap().clone();
        (p, t.findings)
    }

    #[test]
    fn translate_writes_nm_properties_with_their_types() {
        let (p, findings) = profile(Target::default());
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(p.get("ipv4", "dns-data"), Some(&Value::StrList(vec!["192.0.2.53".into()])));
        assert_eq!(p.get("ipv4", "dns-search"), Some(&Value::StrList(vec!["example.com".into()])));
        assert_eq!(p.get("ipv4", "dns-options"), Some(&Value::StrList(vec!["rotate".into()])));
        assert_eq!(p.get("ipv4", "route-metric"), Some(&Value::I64(300)));
        assert_eq!(p.get("ipv6", "route-table"), Some(&Value::U32(9)));
        let route = BTreeMap::from([
            ("dest".to_string(), Value::from("198.51.100.0")),
            ("prefix".to_string(), Value::U32(24)),
            ("next-hop".to_string(), Value::from("192.0.2.254")),
            ("metric".to_string(), Value::U32(100)),
            ("table".to_string(), Value::U32(200)),
        ]);
        assert_eq!(p.get("ipv4", "route-data"), Some(&Value::DictList(vec![route])));
        // Never the legacy forms: NetworkManager would prefer them over the new ones.
        assert!(p.get("ipv4", "routes").is_none() && p.get("ipv4", "dns").is_none());
    }

    #[test]
    fn apply_sees_a_dns_or_route_change_and_reapplies_it_in_place() {
        use crate::nm::compare::{changes, reapplicable};
        let (a, _) = profile(Target::default());
        assert!(changes(&a, &a).is_empty());
        let mut b = a.clone();
        let ipv4 = b.settings.get_mut("ipv4").unwrap();
        ipv4.insert("dns-data".into(), Value::StrList(vec!["192.0.2.99".into()]));
        ipv4.insert("route-metric".into(), Value::I64(50));
        let c = changes(&b, &a);
        let names: Vec<&str> = c.iter().map(|c| c.property.as_str()).collect();
        assert_eq!(names, ["ipv4.dns-data", "ipv4.route-metric"]);
        assert!(reapplicable(&c));
    }

    #[test]
    fn before_1_42_dns_servers_are_left_out_with_a_finding() {
        let (p, findings) = profile(Target { nm: crate::nm::NmVersion::new(1, 30, 0) });
        assert!(p.get("ipv4", "dns-data").is_none() && p.get("ipv4", "dns-search").is_some());
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(findings[0].message.contains("need ipv4.dns-data (NetworkManager 1.42"), "{findings:?}");
    }

    #[test]
    fn reverse_reads_them_back_and_names_what_it_cannot() {
        let (mut p, _) = profile(Target::default());
        let back = host_from_profiles(std::slice::from_ref(&p)).unwrap();
        assert!(back.findings.is_empty(), "{:?}", back.findings);
        let d = crate::xml::parse_document("t", XML).unwrap();
        assert_eq!(back.host, d.host);

        // Another tool's profile: a route attribute and a DoT server the XML has no word for,
        // and NetworkManager's -1 ("default") metric.
        let ipv4 = p.settings.get_mut("ipv4").unwrap();
        ipv4.insert("dns-data".into(), Value::StrList(vec!["192.0.2.53".into(), "192.0.2.9#dns.example".into()]));
        ipv4.insert("route-metric".into(), Value::I64(-1));
        if let Some(Value::DictList(routes)) = ipv4.get_mut("route-data") {
            routes[0].insert("onlink".into(), Value::Bool(true));
        }
        let back = host_from_profiles(&[p]).unwrap();
        let x = &back.host.interfaces[0].ipv4.as_ref().unwrap().extra;
        assert_eq!((x.dns.len(), x.routes.len(), x.route_metric), (1, 0, None));
        let f = &back.findings;
        assert!(f.len() == 1 && f[0].severity == Severity::Unsupported, "{f:?}");
        assert!(f[0].message.contains("ipv4.dns-data '192.0.2.9#dns.example'"), "{f:?}");
        assert!(f[0].message.contains("route attributes onlink"), "{f:?}");
    }
}
