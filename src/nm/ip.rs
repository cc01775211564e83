//! The `ipv4` and `ipv6` settings of a profile, from the model's IP configuration.

use super::features::{supports, NmFeature};
use super::profile::{Key, Setting, Settings};
use super::value::Value;
use super::version::Target;
use crate::model::{IpExtra, Ipv4, Ipv6};
use std::collections::BTreeMap;

fn setting<'a>(s: &'a mut Settings, name: &'static str) -> &'a mut Setting {
    s.entry(Key::Borrowed(name)).or_default()
}

/// Writes both families' settings: no IPv4 is `method=disabled`, no IPv6 `disabled` (`ignore`
/// before NetworkManager 1.20), an empty IPv6 protocol `link-local`. Returns the families whose
/// DNS servers the target cannot take (`dns-data` is 1.42's; the legacy `dns` is not written).
pub(super) fn settings(s: &mut Settings, v4: Option<&Ipv4>, v6: Option<&Ipv6>, target: &Target) -> Vec<&'static str> {
    let dns_data = supports(target.nm, NmFeature::DnsData);
    let mut dns_left_out = Vec::new();
    let ipv4 = setting(s, "ipv4");
    match v4 {
        None => {
            ipv4.insert("method".into(), "disabled".into());
        }
        Some(v4) => {
            let method = if v4.nat {
                "shared"
            } else if v4.dhcp.is_some() {
                "auto"
            } else {
                "manual"
            };
            ipv4.insert("method".into(), method.into());
            if let Some(d) = v4.dhcp {
                if !d.peerdns {
                    ipv4.insert("ignore-auto-dns".into(), true.into());
                }
            }
            if !v4.addresses.is_empty() {
                let list = v4.addresses.iter().map(|a| address(&a.address.to_string(), a.prefix)).collect();
                ipv4.insert("address-data".into(), Value::DictList(list));
            }
            if let Some(gw) = v4.gateway {
                ipv4.insert("gateway".into(), gw.to_string().into());
            }
            if !extra(ipv4, &v4.extra, dns_data) {
                dns_left_out.push("ipv4");
            }
        }
    }
    // Before 1.20 'ignore' is the closest: the report lists it as approximated.
    let disabled = if supports(target.nm, NmFeature::Ipv6Disabled) { "disabled" } else { "ignore" };
    let ipv6 = setting(s, "ipv6");
    match v6 {
        None => {
            ipv6.insert("method".into(), disabled.into());
        }
        Some(v6) => {
            let method = if v6.autoconf {
                "auto"
            } else if v6.dhcp.is_some() {
                "dhcp"
            } else if !v6.addresses.is_empty() {
                "manual"
            } else {
                "link-local"
            };
            ipv6.insert("method".into(), method.into());
            if let Some(d) = v6.dhcp {
                if !d.peerdns {
                    ipv6.insert("ignore-auto-dns".into(), true.into());
                }
            }
            if !v6.addresses.is_empty() {
                let list = v6.addresses.iter().map(|a| address(&a.address.to_string(), a.prefix)).collect();
                ipv6.insert("address-data".into(), Value::DictList(list));
            }
            if let Some(gw) = v6.gateway {
                ipv6.insert("gateway".into(), gw.to_string().into());
            }
            if !extra(ipv6, &v6.extra, dns_data) {
                dns_left_out.push("ipv6");
            }
        }
    }
    dns_left_out
}

/// DNS and routing (nmiface's extension) into one family's setting. Only what is set is
/// written, so a profile without them is unchanged. Routes go as `route-data` alone: sending
/// the legacy `routes` too would make NetworkManager ignore `route-data`. False when DNS
/// servers were left out (no `dns-data` on the target).
fn extra<A: std::fmt::Display>(ip: &mut Setting, x: &IpExtra<A>, dns_data: bool) -> bool {
    let strings = |v: &[String]| Value::StrList(v.to_vec());
    let servers_fit = x.dns.is_empty() || dns_data;
    if !x.dns.is_empty() && dns_data {
        ip.insert("dns-data".into(), Value::StrList(x.dns.iter().map(ToString::to_string).collect()));
    }
    if !x.search.is_empty() {
        ip.insert("dns-search".into(), strings(&x.search));
    }
    if !x.dns_options.is_empty() {
        ip.insert("dns-options".into(), strings(&x.dns_options));
    }
    if !x.routes.is_empty() {
        let list = x
            .routes
            .iter()
            .map(|r| {
                let mut m = BTreeMap::from([
                    ("dest".to_string(), Value::from(r.address.to_string())),
                    ("prefix".to_string(), Value::U32(r.prefix.into())),
                ]);
                if let Some(g) = &r.gateway {
                    m.insert("next-hop".into(), Value::from(g.to_string()));
                }
                if let Some(metric) = r.metric {
                    m.insert("metric".into(), Value::U32(metric));
                }
                if let Some(t) = r.table {
                    m.insert("table".into(), Value::U32(t));
                }
                m
            })
            .collect();
        ip.insert("route-data".into(), Value::DictList(list));
    }
    if let Some(m) = x.route_metric {
        ip.insert("route-metric".into(), Value::I64(m.into()));
    }
    if let Some(t) = x.route_table {
        ip.insert("route-table".into(), Value::U32(t));
    }
    servers_fit
}

fn address(addr: &str, prefix: u8) -> BTreeMap<String, Value> {
    BTreeMap::from([("address".to_string(), Value::from(addr)), ("prefix".to_string(), Value::U32(prefix.into()))])
}
