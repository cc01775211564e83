//! A NIC taken over as a port (`bridge`, `<shared bridge>`, a NIC listed in a bridge or bond):
//! its own profile's configuration goes where it belongs now. IP-level settings move to the
//! controller, which holds the addresses; link-level ones stay with the card, on its port
//! profile. What the new place cannot hold is not carried, and said so.

use super::merge::{governed, is_empty, OPTIONAL};
use super::profile::Profile;
use super::value::Value;

/// Settings of a NIC's profile that belong to the link: they stay with the NIC, on its port
/// profile, when a bridge takes the NIC over (802.1X authenticates the port, Wake-on-LAN and
/// ethtool features are the card's).
const LINK_LEVEL: &[&str] = &["802-1x", "ethtool", "802-3-ethernet", "sriov", "dcb", "link"];

/// Settings (and `connection` properties) that belong to the IP configuration: they move to the
/// bridge, which holds the addresses now.
const IP_LEVEL: &[&str] = &["ipv4", "ipv6", "proxy"];
const IP_LEVEL_CONNECTION: &[&str] =
    &["zone", "metered", "mdns", "llmnr", "dns-over-tls", "mptcp-flags", "dns-priority", "lldp"];

/// What a takeover moved, per destination: (setting, properties).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Moved {
    /// To the controller (bridge or bond): IP-level configuration.
    pub to_controller: Vec<(String, Vec<String>)>,
    /// To the NIC's port profile: link-level configuration.
    pub to_port: Vec<(String, Vec<String>)>,
    /// Not carried: IP settings of a family the controller has turned off (its document says
    /// `disabled`; NetworkManager refuses DNS and routes there, and the rest would mean nothing).
    pub not_carried: Vec<(String, Vec<String>)>,
}

/// Properties the document governs but may leave out ([`OPTIONAL`]): left out, the NIC's
/// value goes with it (an MTU stays with the card, `peerdns` with the addresses). Not the
/// cloned MAC: the bridge takes the NIC's MAC as before, and a port keeps the card's own.
fn carried_if_unsaid(setting: &str, prop: &str) -> bool {
    OPTIONAL.contains(&(setting, prop)) && prop != "assigned-mac-address"
}

/// Whether `profile` turns family `fam` off.
fn off(profile: &Profile, fam: &str) -> bool {
    matches!(profile.get(fam, "method").and_then(Value::as_str), Some("disabled" | "ignore"))
}

/// A NIC taken over as a port: `nic` (its profile as NetworkManager holds it, with secrets)
/// gives its IP-level configuration to `controller` and its link-level configuration to `port`,
/// wherever the document does not say otherwise (what `controller` or `port` already set wins,
/// and what the document governs is never copied: it is the document's).
pub fn take_over(nic: &Profile, port: &mut Profile, controller: &mut Profile) -> Moved {
    let nic = nic.without_legacy_duplicates();
    let mut moved = Moved::default();
    for (setting, props) in &nic.settings {
        let name = setting.as_ref();
        let family_off = matches!(name, "ipv4" | "ipv6") && off(controller, name) && !off(&nic, name);
        let (to, report, which): (&mut Profile, _, fn(&str, &str) -> bool) = if IP_LEVEL.contains(&name) {
            (&mut *controller, &mut moved.to_controller, |_, _| true)
        } else if name == "connection" {
            (&mut *controller, &mut moved.to_controller, |_, p| IP_LEVEL_CONNECTION.contains(&p))
        } else if LINK_LEVEL.contains(&name) {
            (&mut *port, &mut moved.to_port, |_, _| true)
        } else {
            continue;
        };
        let mut names = Vec::new();
        for (prop, v) in props {
            let document_s = governed(name, prop) && !carried_if_unsaid(name, prop);
            if !which(name, prop) || document_s || is_empty(v) || to.get(name, prop).is_some() {
                continue;
            }
            if family_off {
                names.push(prop.to_string());
                continue;
            }
            to.settings.entry(setting.clone()).or_default().insert(prop.clone(), v.clone());
            names.push(prop.to_string());
        }
        match (names.is_empty(), family_off) {
            (true, _) => {}
            (false, false) => report.push((name.to_string(), names)),
            (false, true) => moved.not_carried.push((name.to_string(), names)),
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nm::{translate, Key, Target};

    fn profiles(xml: &str) -> Vec<Profile> {
        let d = crate::xml::parse_document("t", xml).unwrap();
        translate(&d.host, &d.sources, &Target::default()).profiles().cloned().collect()
    }

    /// A hand-made wired profile: 802.1X with its password, a zone, metered, IPv4 DNS search
    /// and routes, IPv6 with a token and DNS search.
    fn nic() -> Profile {
        let mut p =
            Profile { id: "Wired connection 1".into(), uuid: uuid::Uuid::from_u128(9), settings: Default::default() };
        let mut set = |s: &str, k: &str, v: Value| {
            p.settings.entry(Key::Owned(s.into())).or_default().insert(Key::Owned(k.into()), v);
        };
        set("connection", "type", Value::Str("802-3-ethernet".into()));
        set("connection", "zone", Value::Str("work".into()));
        set("connection", "metered", Value::I32(1));
        set("802-1x", "password", Value::Str("secret".into()));
        set("ipv4", "method", Value::Str("manual".into()));
        set("ipv4", "dns-search", Value::StrList(vec!["corp.example".into()]));
        set(
            "ipv4",
            "route-data",
            Value::DictList(vec![std::collections::BTreeMap::from([("dest".into(), Value::Str("10.9.0.0".into()))])]),
        );
        set("ipv6", "method", Value::Str("auto".into()));
        set("ipv6", "token", Value::Str("::5".into()));
        set("ipv6", "dns-search", Value::StrList(vec!["v6.example".into()]));
        p
    }

    #[test]
    fn a_takeover_moves_ip_to_the_bridge_and_keeps_the_link_on_the_port() {
        let mut ps = profiles(
            "<interface type='bridge' name='br0'><protocol family='ipv4'><ip address='192.0.2.7' prefix='24'/></protocol><protocol family='ipv6'><autoconf/></protocol><bridge stp='off'><interface type='ethernet' name='eth0'/></bridge></interface>",
        );
        let (mut br, mut port) = (ps.remove(0), ps.remove(0));
        let nic = nic();
        let before = br.get("ipv4", "address-data").cloned();
        let m = take_over(&nic, &mut port, &mut br);
        for (s, k) in [("ipv4", "dns-search"), ("ipv4", "route-data"), ("connection", "zone"), ("ipv6", "token")] {
            assert_eq!(br.get(s, k), nic.get(s, k), "{s}.{k}");
        }
        assert_eq!(port.get("802-1x", "password"), nic.get("802-1x", "password"));
        // The document's own: untouched.
        assert_eq!(br.get("ipv4", "address-data").cloned(), before);
        assert_eq!(br.get("ipv4", "gateway"), None);
        assert_eq!(port.get("connection", "zone"), None);
        assert!(m.to_port.iter().any(|(s, _)| s == "802-1x"));
        assert!(m.to_controller.iter().any(|(s, p)| s == "connection" && p == &["metered", "zone"]), "{m:?}");
        assert!(m.not_carried.is_empty());
    }

    #[test]
    fn a_family_the_bridge_has_off_is_not_carried_but_named() {
        // The 2009 draft cannot say IPv6: its shared bridge has IPv6 off.
        let mut ps = profiles(
            "<interface type='bridge' name='br0'><protocol family='ipv4'><ip address='192.0.2.7' prefix='24'/></protocol><bridge stp='off'><interface type='ethernet' name='eth0'/></bridge></interface>",
        );
        let (mut br, mut port) = (ps.remove(0), ps.remove(0));
        let m = take_over(&nic(), &mut port, &mut br);
        assert_eq!(br.get("ipv6", "dns-search"), None);
        assert_eq!(br.get("ipv6", "token"), None);
        assert_eq!(m.not_carried, [("ipv6".to_string(), vec!["dns-search".to_string(), "token".to_string()])]);
        assert_eq!(br.get("ipv4", "dns-search"), nic().get("ipv4", "dns-search"));
    }
}
