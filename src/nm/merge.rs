//! Updating a profile in place: the profile NetworkManager holds, with only what the document
//! says changed. nmiface never rebuilds a profile it updates from the document alone: a
//! document cannot say 802.1X, a firewall zone, Wake-on-LAN or `metered`, and sending only what
//! it says would delete all of them (NetworkManager's `Update2` replaces the whole profile).
//!
//! A property belongs to the document when the translation sets it, or when it is one the
//! format always describes ([`GOVERNED`]): absent from the translation, it goes back to
//! NetworkManager's default (no gateway in the document means no gateway). Every other
//! property is kept exactly as NetworkManager holds it, secrets included when the caller read
//! them (`GetSecrets`), and values of types nmiface does not read as their wire encoding.

use super::profile::{user_key, Profile};
use super::value::Value;
use std::collections::BTreeMap;

/// Properties the interface format always describes, per setting: the document is their
/// definition whether or not it sets them.
pub const GOVERNED: &[(&str, &[&str])] = &[
    ("connection", &["uuid", "type", "interface-name", "autoconnect", "master", "slave-type", "autoconnect-slaves"]),
    ("ipv4", &["method", "address-data", "addresses", "gateway", "ignore-auto-dns"]),
    ("ipv6", &["method", "address-data", "addresses", "gateway", "ignore-auto-dns"]),
    ("802-3-ethernet", &["mtu", "mac-address", "assigned-mac-address"]),
    ("bridge", &["stp", "forward-delay"]),
    ("bond", &["options"]),
    ("vlan", &["parent", "id", "flags", "protocol"]),
    ("bond-port", &["prio", "queue-id"]),
];

/// Whether the document governs `setting.prop` (see [`GOVERNED`]).
pub fn governed(setting: &str, prop: &str) -> bool {
    GOVERNED.iter().any(|(s, props)| *s == setting && props.contains(&prop))
}

/// Whether `setting.prop` holds a secret (a password, a PSK, a PIN, a private key's
/// passphrase): never printed, only sent to NetworkManager and kept in the 0600 journal.
pub fn is_secret(setting: &str, prop: &str) -> bool {
    prop.contains("password")
        || prop.contains("psk")
        || prop.ends_with("pin")
        || prop.contains("secret")
        || (setting == "wireguard" && prop == "private-key")
        || (setting == "vpn" && prop == "secrets")
}

/// A profile merged for an update, and what of the held profile it keeps that the document
/// cannot say.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// What to send.
    pub profile: Profile,
    /// Settings kept from the held profile, each with its properties (non-empty values only).
    pub kept: Vec<(String, Vec<String>)>,
    /// The held profile was of another type: its type-specific settings were dropped (named
    /// here); the IP and connection settings the document does not say were kept.
    pub dropped: Vec<String>,
}

/// Properties NetworkManager keeps about a profile rather than in it: never worth reporting.
fn bookkeeping(setting: &str, prop: &str) -> bool {
    matches!((setting, prop), ("connection", "timestamp" | "read-only" | "permissions"))
        || (setting == "user" && prop == "data")
}

/// A value that says nothing: what GetSettings returns for an unset list or string.
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Str(s) => s.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        Value::StrList(l) => l.is_empty(),
        Value::StrDict(d) => d.is_empty(),
        Value::DictList(l) => l.is_empty(),
        _ => false,
    }
}

/// What NetworkManager refuses in a family whose method is `disabled` or `ignore`.
const OFF_FAMILY_REFUSED: &[&str] =
    &["dns", "dns-data", "dns-search", "dns-options", "routes", "route-data", "routing-rules"];

/// Settings that only make sense for one connection type: dropped when a profile of another
/// type is taken over (a bridge does not carry an ethernet profile's wired settings).
const TYPE_SPECIFIC: &[&str] = &[
    "802-3-ethernet",
    "bridge",
    "bridge-port",
    "bond",
    "bond-port",
    "vlan",
    "802-11-wireless",
    "802-11-wireless-security",
    "tun",
    "ethtool",
    "802-1x",
    "infiniband",
    "team",
    "team-port",
];

/// `wanted` (a translation, stamped and renumbered to the held profile's UUID) laid over
/// `held` (what NetworkManager holds, as exact as the caller read it).
pub fn merge(wanted: &Profile, held: &Profile) -> Merged {
    let mut out = held.without_legacy_duplicates();
    let mut dropped = Vec::new();
    if held.conn_type() != wanted.conn_type() {
        out.settings.retain(|name, _| {
            let keep = !TYPE_SPECIFIC.contains(&name.as_ref());
            if !keep {
                dropped.push(format!("{name} (the profile taken over was of another type)"));
            }
            keep
        });
    }
    for (setting, props) in GOVERNED {
        if let Some(s) = out.settings.get_mut(*setting) {
            s.retain(|p, _| !props.contains(&p.as_ref()));
        }
    }
    for (setting, props) in &wanted.settings {
        let target = out.settings.entry(setting.clone()).or_default();
        for (prop, v) in props {
            match (setting.as_ref(), prop.as_ref(), target.get(prop), v) {
                // The profile keeps its name: a person knows it by it (GNOME shows it), and
                // nmiface finds its profiles by their marks, not by name.
                ("connection", "id", Some(Value::Str(held)), _) if !held.is_empty() => {}
                // user.data is shared with other tools: only nmiface's own keys are the
                // document's.
                ("user", "data", Some(Value::StrDict(theirs)), Value::StrDict(ours)) => {
                    let mut d: BTreeMap<String, String> =
                        theirs.iter().filter(|(k, _)| !k.starts_with(user_key::PREFIX)).map(clone2).collect();
                    d.extend(ours.iter().map(clone2));
                    target.insert(prop.clone(), Value::StrDict(d));
                }
                _ => {
                    target.insert(prop.clone(), v.clone());
                }
            }
        }
    }
    if out.id.is_empty() {
        out.id = wanted.id.clone();
    }
    // A family the document turns off cannot keep its DNS or routes: NetworkManager refuses
    // them with `method=disabled` (the document asked for it; said as dropped).
    for fam in ["ipv4", "ipv6"] {
        let off = matches!(wanted.get(fam, "method").and_then(Value::as_str), Some("disabled" | "ignore"));
        let Some(s) = out.settings.get_mut(fam).filter(|_| off) else { continue };
        for prop in OFF_FAMILY_REFUSED {
            if wanted.get(fam, prop).is_none() && s.remove(*prop).is_some_and(|v| !is_empty(&v)) {
                dropped.push(format!("{fam}.{prop} (the document turns {fam} off)"));
            }
        }
    }
    out.uuid = wanted.uuid;
    let mut kept = Vec::new();
    for (setting, props) in &out.settings {
        let names: Vec<String> = props
            .iter()
            .filter(|(p, v)| {
                !governed(setting, p) && wanted.get(setting, p).is_none() && !is_empty(v) && !bookkeeping(setting, p)
            })
            .map(|(p, _)| p.to_string())
            .collect();
        if !names.is_empty() {
            kept.push((setting.to_string(), names));
        }
    }
    Merged { profile: out, kept, dropped }
}

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
            if !which(name, prop) || governed(name, prop) || is_empty(v) || to.get(name, prop).is_some() {
                continue;
            }
            to.settings.entry(setting.clone()).or_default().insert(prop.clone(), v.clone());
            names.push(prop.to_string());
        }
        if !names.is_empty() {
            report.push((name.to_string(), names));
        }
    }
    moved
}

fn clone2((k, v): (&String, &String)) -> (String, String) {
    (k.clone(), v.clone())
}

/// The settings of `held` that would be lost if `wanted` replaced it outright: for a message.
pub fn describe_kept(kept: &[(String, Vec<String>)]) -> Vec<String> {
    kept.iter().map(|(s, props)| format!("{s} ({})", props.join(", "))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nm::{translate, Key, Target};

    fn key(s: &str) -> Key {
        Key::Owned(s.to_string())
    }

    fn translated(xml: &str) -> Profile {
        let d = crate::xml::parse_document("t", xml).unwrap();
        translate(&d.host, &d.sources, &Target::default()).profiles().next().unwrap().clone()
    }

    /// A hand-made wired profile: 802.1X with its password, a zone, DNS and a route, metered.
    fn held(uuid: uuid::Uuid) -> Profile {
        let mut p = Profile { id: "Wired connection 1".into(), uuid, settings: Default::default() };
        let mut set = |s: &str, k: &str, v: Value| {
            p.settings.entry(key(s)).or_default().insert(key(k), v);
        };
        set("connection", "id", Value::Str("Wired connection 1".into()));
        set("connection", "uuid", Value::Str(uuid.to_string()));
        set("connection", "type", Value::Str("802-3-ethernet".into()));
        set("connection", "interface-name", Value::Str("eth0".into()));
        set("connection", "zone", Value::Str("work".into()));
        set("connection", "metered", Value::I32(1));
        set("802-1x", "eap", Value::StrList(vec!["peap".into()]));
        set("802-1x", "identity", Value::Str("me".into()));
        set("802-1x", "password", Value::Str("secret".into()));
        set("ipv4", "method", Value::Str("manual".into()));
        set("ipv4", "gateway", Value::Str("192.0.2.254".into()));
        set("ipv4", "dns-search", Value::StrList(vec!["corp.example".into()]));
        set("ipv4", "dns", Value::Encoded(vec![1, 2, 3]));
        set(
            "ipv4",
            "route-data",
            Value::DictList(vec![BTreeMap::from([("dest".into(), Value::Str("10.9.0.0".into()))])]),
        );
        set("ipv4", "routes", Value::Encoded(vec![4]));
        set("ipv4", "addresses", Value::Encoded(vec![5]));
        set("ipv4", "address-data", Value::DictList(vec![]));
        set("user", "data", Value::StrDict(BTreeMap::from([("org.gnome.x".into(), "1".into())])));
        p
    }

    #[test]
    fn what_the_document_cannot_say_is_kept_exactly() {
        let mut want = translated(
            "<interface type='ethernet' name='eth0'><protocol family='ipv4'><ip address='192.0.2.7' prefix='24'/></protocol></interface>",
        );
        let h = held(uuid::Uuid::from_u128(9));
        want.uuid = h.uuid;
        let m = merge(&want, &h);
        let p = &m.profile;
        assert_eq!(p.uuid, h.uuid);
        for (s, k) in [
            ("802-1x", "password"),
            ("802-1x", "eap"),
            ("connection", "zone"),
            ("connection", "metered"),
            ("ipv4", "dns-search"),
            ("ipv4", "dns"),
            ("ipv4", "route-data"),
        ] {
            assert_eq!(p.get(s, k), h.get(s, k), "{s}.{k}");
        }
        // The document's: its address, and no gateway (it says none).
        assert_eq!(p.get("ipv4", "address-data"), want.get("ipv4", "address-data"));
        assert_eq!(p.get("ipv4", "gateway"), None);
        // Legacy forms beside their successors would win over them in NetworkManager.
        assert_eq!(p.get("ipv4", "routes"), None);
        assert_eq!(p.get("ipv4", "addresses"), None);
        // Other tools' user data stays beside nmiface's marks.
        let data = p.get("user", "data").and_then(Value::as_str_dict).unwrap();
        assert_eq!(data.get("org.gnome.x").map(String::as_str), Some("1"));
        assert!(data.keys().any(|k| k.starts_with(user_key::PREFIX)));
        let kept: Vec<&str> = m.kept.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(kept, ["802-1x", "connection", "ipv4"], "{:?}", m.kept);
        assert!(m.dropped.is_empty());
    }

    #[test]
    fn another_type_keeps_ip_and_drops_its_own_settings() {
        let mut want = translated(
            "<interface type='bridge' name='eth0'><protocol family='ipv4'><ip address='192.0.2.7' prefix='24'/></protocol><bridge stp='off'/></interface>",
        );
        let h = held(uuid::Uuid::from_u128(9));
        want.uuid = h.uuid;
        let m = merge(&want, &h);
        assert_eq!(m.dropped, ["802-1x (the profile taken over was of another type)"]);
        assert_eq!(m.profile.get("ipv4", "dns-search"), h.get("ipv4", "dns-search"));
        assert_eq!(m.profile.conn_type(), Some("bridge"));
    }

    #[test]
    fn a_takeover_moves_ip_to_the_bridge_and_keeps_the_link_on_the_port() {
        let d = crate::xml::parse_document(
            "t",
            "<interface type='bridge' name='br0'><protocol family='ipv4'><ip address='192.0.2.7' prefix='24'/></protocol><bridge stp='off'><interface type='ethernet' name='eth0'/></bridge></interface>",
        )
        .unwrap();
        let t = translate(&d.host, &d.sources, &Target::default());
        let mut ps: Vec<Profile> = t.profiles().cloned().collect();
        let (mut br, mut port) = (ps.remove(0), ps.remove(0));
        let nic = held(uuid::Uuid::from_u128(9));
        let before = br.get("ipv4", "address-data").cloned();
        let m = take_over(&nic, &mut port, &mut br);
        assert_eq!(br.get("ipv4", "dns-search"), nic.get("ipv4", "dns-search"));
        assert_eq!(br.get("ipv4", "route-data"), nic.get("ipv4", "route-data"));
        assert_eq!(br.get("connection", "zone"), nic.get("connection", "zone"));
        assert_eq!(br.get("connection", "metered"), nic.get("connection", "metered"));
        assert_eq!(port.get("802-1x", "password"), nic.get("802-1x", "password"));
        // The document's own: untouched.
        assert_eq!(br.get("ipv4", "address-data").cloned(), before);
        assert_eq!(br.get("ipv4", "gateway"), None);
        assert_eq!(port.get("connection", "zone"), None);
        assert!(m.to_port.iter().any(|(s, _)| s == "802-1x"));
        assert!(m.to_controller.iter().any(|(s, p)| s == "connection" && p == &["metered", "zone"]), "{m:?}");
    }

    #[test]
    fn a_merge_of_its_own_result_changes_nothing() {
        let mut want =
            translated("<interface type='ethernet' name='eth0'><protocol family='ipv4'><dhcp/></protocol></interface>");
        let h = held(uuid::Uuid::from_u128(9));
        want.uuid = h.uuid;
        let once = merge(&want, &h).profile;
        assert_eq!(merge(&want, &once).profile, once);
    }
}
