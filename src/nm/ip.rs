//! The `ipv4` and `ipv6` settings of a profile, from the model's IP configuration.

use super::features::{supports, NmFeature};
use super::profile::{Key, Setting, Settings};
use super::value::Value;
use super::version::Target;
use crate::model::{Ipv4, Ipv6};
use std::collections::BTreeMap;

fn setting<'a>(s: &'a mut Settings, name: &'static str) -> &'a mut Setting {
    s.entry(Key::Borrowed(name)).or_default()
}

/// Writes both families' settings: no IPv4 is `method=disabled`, no IPv6 `disabled` (`ignore`
/// before NetworkManager 1.20), an empty IPv6 protocol `link-local`.
pub(super) fn settings(s: &mut Settings, v4: Option<&Ipv4>, v6: Option<&Ipv6>, target: &Target) {
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
        }
    }
}

fn address(addr: &str, prefix: u8) -> BTreeMap<String, Value> {
    BTreeMap::from([("address".to_string(), Value::from(addr)), ("prefix".to_string(), Value::U32(prefix.into()))])
}
