//! Updating a profile in place: the profile NetworkManager holds, with only what the document
//! says changed. nmiface never rebuilds a profile it updates from the document alone: a
//! document cannot say 802.1X, a firewall zone, Wake-on-LAN or `metered`, and sending only what
//! it says would delete all of them (NetworkManager's `Update2` replaces the whole profile).
//!
//! A property belongs to the document when the translation sets it, or when it is one the
//! format always describes ([`GOVERNED`]): absent from the translation, it goes back to
//! NetworkManager's default (no gateway in the document means no gateway), unless it is one a
//! document may leave out ([`OPTIONAL`]: `<mtu>`, `<mac>`, `peerdns`) and the user set it. Every other
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

/// Governed properties a document may leave out without meaning "the default": an MTU, a MAC
/// binding, `peerdns`. Left out, they are kept where they are the user's (a profile nmiface did
/// not write, or one whose [`user_key::KEPT`] names them) and go back to NetworkManager's
/// default where an earlier document of nmiface's set them.
pub const OPTIONAL: &[(&str, &str)] = &[
    ("802-3-ethernet", "mtu"),
    ("802-3-ethernet", "mac-address"),
    ("802-3-ethernet", "assigned-mac-address"),
    ("ipv4", "ignore-auto-dns"),
    ("ipv6", "ignore-auto-dns"),
];

/// The [`OPTIONAL`] properties `wanted` leaves out that `held` has and that are the user's.
fn users_optional(wanted: &Profile, held: &Profile) -> Vec<(&'static str, &'static str)> {
    // Only names nmiface knows are honoured: the mark is writable by whoever can edit the profile.
    let marked: Vec<&str> = held.user_data(user_key::KEPT).map(|v| v.split(',').collect()).unwrap_or_default();
    let theirs = held.user_data(user_key::MANAGED).is_none();
    OPTIONAL
        .iter()
        .copied()
        .filter(|(s, p)| {
            wanted.get(s, p).is_none()
                && held.get(s, p).is_some_and(|v| !is_empty(v) && !matches!(v, Value::Bool(false) | Value::U32(0)))
                && (theirs || marked.contains(&format!("{s}.{p}").as_str()))
        })
        .collect()
}

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
    let users = users_optional(wanted, held);
    for (setting, props) in GOVERNED {
        if let Some(s) = out.settings.get_mut(*setting) {
            s.retain(|p, _| !props.contains(&p.as_ref()) || users.contains(&(*setting, p.as_ref())));
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
    if !users.is_empty() {
        let names: Vec<String> = users.iter().map(|(s, p)| format!("{s}.{p}")).collect();
        let data = out.settings.entry("user".into()).or_default().entry("data".into());
        if let Value::StrDict(d) = data.or_insert_with(|| Value::StrDict(BTreeMap::new())) {
            d.insert(user_key::KEPT.to_string(), names.join(","));
        }
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
                (!governed(setting, p) || users.contains(&(setting.as_ref(), p.as_ref())))
                    && wanted.get(setting, p).is_none()
                    && !is_empty(v)
                    && !bookkeeping(setting, p)
            })
            .map(|(p, _)| p.to_string())
            .collect();
        if !names.is_empty() {
            kept.push((setting.to_string(), names));
        }
    }
    Merged { profile: out, kept, dropped }
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
    fn a_merge_of_its_own_result_changes_nothing() {
        let mut want =
            translated("<interface type='ethernet' name='eth0'><protocol family='ipv4'><dhcp/></protocol></interface>");
        let h = held(uuid::Uuid::from_u128(9));
        want.uuid = h.uuid;
        let once = merge(&want, &h).profile;
        assert_eq!(merge(&want, &once).profile, once);
    }

    /// An MTU a person set, and a document that says none.
    fn with_mtu(managed: Option<&str>) -> (Profile, Profile) {
        let mut want = translated(
            "<interface type='ethernet' name='eth0'><protocol family='ipv4'><ip address='192.0.2.7' prefix='24'/></protocol></interface>",
        );
        let mut h = held(uuid::Uuid::from_u128(9));
        want.uuid = h.uuid;
        h.settings.entry(key("802-3-ethernet")).or_default().insert(key("mtu"), Value::U32(1400));
        if let Some(Value::StrDict(d)) = h.settings.get_mut("user").and_then(|u| u.get_mut("data")) {
            if let Some(kept) = managed {
                d.insert(user_key::MANAGED.into(), "1".into());
                if !kept.is_empty() {
                    d.insert(user_key::KEPT.into(), kept.into());
                }
            }
        }
        (want, h)
    }

    #[test]
    fn an_mtu_the_document_leaves_out_is_kept_where_it_is_the_users() {
        // Another tool's profile: kept, reported, and marked as the user's.
        let (want, h) = with_mtu(None);
        let m = merge(&want, &h);
        assert_eq!(m.profile.get("802-3-ethernet", "mtu"), Some(&Value::U32(1400)));
        assert!(m.kept.iter().any(|(s, p)| s == "802-3-ethernet" && p.contains(&"mtu".to_string())), "{:?}", m.kept);
        assert_eq!(m.profile.user_data(user_key::KEPT), Some("802-3-ethernet.mtu"));
        // Merged again (now nmiface's, marked): still kept, nothing to change.
        assert_eq!(merge(&want, &m.profile).profile, m.profile);
        // nmiface's own, the MTU from an earlier document: the document is its definition.
        let (want, h) = with_mtu(Some(""));
        assert_eq!(merge(&want, &h).profile.get("802-3-ethernet", "mtu"), None);
        // A forged mark names only what nmiface knows.
        let (want, h) = with_mtu(Some("802-1x.password,802-3-ethernet.mtu"));
        let m = merge(&want, &h);
        assert_eq!(m.profile.get("802-3-ethernet", "mtu"), Some(&Value::U32(1400)));
        assert_eq!(m.profile.user_data(user_key::KEPT), Some("802-3-ethernet.mtu"));
    }
}
