//! The settings of a profile that the XML does not carry: every property set to something
//! other than NetworkManager's default that no element of libvirt's format or nmiface's
//! namespace says, named by its NetworkManager property (as nmcli spells it), one finding per
//! setting. So `dumpxml` of another tool's profile says what a re-define from that XML would
//! not know (a firewall zone, 802.1X, a cloned MAC, IPv6 privacy).

use super::ip::is_empty;
use crate::finding::{Finding, Severity};
use crate::nm::profile::{conn_type, Profile};
use crate::nm::translate::SHARED_PORT_PRIORITY;
use crate::nm::value::Value;

/// Properties the model reads back (or that only mirror ones it reads), per setting.
fn read_back(setting: &str, prop: &str) -> bool {
    match setting {
        "connection" => matches!(
            prop,
            "id" | "uuid"
                | "type"
                | "interface-name"
                | "timestamp"
                | "autoconnect"
                | "master"
                | "slave-type"
                | "controller"
                | "port-type"
                | "autoconnect-slaves"
                | "autoconnect-ports"
        ),
        "bridge" => matches!(prop, "stp" | "forward-delay" | "interface-name"),
        "bond" => matches!(prop, "options" | "interface-name"),
        "bond-port" => matches!(prop, "prio" | "queue-id"),
        "vlan" => matches!(prop, "id" | "parent" | "flags" | "protocol" | "interface-name"),
        "ipv4" | "ipv6" => matches!(
            prop,
            "method"
                | "address-data"
                | "addresses"
                | "gateway"
                | "ignore-auto-dns"
                | "dns-data"
                | "dns"
                | "dns-search"
                | "dns-options"
                | "route-data"
                | "routes"
                | "route-metric"
                | "route-table"
        ),
        _ => false,
    }
}

/// NetworkManager's defaults for properties GetSettings sends even when they hold them.
fn is_default(setting: &str, prop: &str, v: &Value) -> bool {
    is_empty(v)
        || crate::nm::compare::nm_default(setting, prop).as_ref() == Some(v)
        || matches!(
            (setting, prop, v),
            ("802-3-ethernet", "auto-negotiate", Value::Bool(false))
                | ("ipv4" | "ipv6", "route-metric", Value::I64(-1))
                | ("connection", "autoconnect-priority", Value::I32(0))
        )
}

/// The name nmcli shows for a property (`ethernet.cloned-mac-address` for D-Bus's
/// `802-3-ethernet.assigned-mac-address`).
fn nmcli_name(setting: &str, prop: &str) -> String {
    let s = match setting {
        "802-3-ethernet" => "ethernet",
        "802-11-wireless" => "wifi",
        "802-11-wireless-security" => "wifi-sec",
        other => other,
    };
    let p = match (setting, prop) {
        ("802-3-ethernet", "assigned-mac-address") => "cloned-mac-address",
        _ => prop,
    };
    format!("{s}.{p}")
}

/// Whether `p`'s `setting.prop` = `v` is said by the XML, given where `p` sits (`controller`:
/// the profile it is a port of).
fn expressed(p: &Profile, controller: Option<&Profile>, setting: &str, prop: &str, v: &Value) -> bool {
    let kind = p.conn_type().unwrap_or("");
    let autoconnect = |q: &Profile| q.get("connection", "autoconnect").and_then(Value::as_bool).unwrap_or(true);
    let mtu = |q: &Profile| q.get("802-3-ethernet", "mtu").and_then(Value::as_uint).unwrap_or(0);
    match (setting, prop, controller) {
        // Ports take their controller's start mode and MTU: only theirs is said.
        ("connection", "autoconnect", Some(c)) => autoconnect(p) == autoconnect(c),
        ("802-3-ethernet", "mtu", Some(c)) => mtu(p) == mtu(c),
        ("802-3-ethernet", "mtu", None) => true,
        // A shared NIC's port wins over the NIC's own profile (see `bridge`).
        ("connection", "autoconnect-priority", Some(_)) => v.as_int() == Some(SHARED_PORT_PRIORITY.into()),
        ("802-3-ethernet", "mac-address", _) => {
            matches!(kind, conn_type::ETHERNET | conn_type::VLAN) && v.as_bytes().is_some_and(|b| b.len() == 6)
        }
        // A bridge's own MAC (a shared NIC's): the bridge's reader says what it makes of it.
        ("802-3-ethernet", "assigned-mac-address", _) => kind == conn_type::BRIDGE,
        ("user", "data", _) => v.as_str_dict().is_some_and(|d| d.keys().all(|k| k.starts_with("nmiface."))),
        (s, k, _) => read_back(s, k),
    }
}

/// One finding per setting of `p` that holds properties the XML does not carry.
pub(super) fn findings(p: &Profile, controller: Option<&Profile>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (setting, props) in &p.settings {
        let names: Vec<String> = props
            .iter()
            .filter(|(k, v)| !is_default(setting, k, v) && !expressed(p, controller, setting, k, v))
            .map(|(k, v)| match (setting.as_ref(), k.as_ref(), v) {
                // Which keys, since nmiface's own are said.
                ("user", "data", Value::StrDict(d)) => {
                    let keys: Vec<&str> = d.keys().map(String::as_str).collect();
                    format!("user.data ({})", keys.join(", "))
                }
                _ => nmcli_name(setting, k),
            })
            .collect();
        if !names.is_empty() {
            out.push(Finding::at(
                Severity::Unsupported,
                format!("profile '{}'", p.id),
                None,
                format!("not expressible in the XML (kept in the profile only): {}", names.join(", ")),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::finding::{any_loses_meaning, Severity};
    use crate::model::{Kind, Mac, Member};
    use crate::nm::{host_from_profiles_around, Around, Profile, Value};

    /// A profile as GetSettings gives it (NetworkManager's always-sent empties included).
    fn profile(id: &str, uuid: u128, props: &[(&'static str, &'static str, Value)]) -> Profile {
        let mut p = Profile { id: id.into(), uuid: uuid::Uuid::from_u128(uuid), settings: Default::default() };
        let c = p.settings.entry("connection".into()).or_default();
        c.insert("id".into(), id.into());
        c.insert("permissions".into(), Value::StrList(Vec::new()));
        let e = p.settings.entry("802-3-ethernet".into()).or_default();
        e.insert("auto-negotiate".into(), Value::Bool(false));
        e.insert("mac-address-blacklist".into(), Value::StrList(Vec::new()));
        for (s, k, v) in props {
            p.settings.entry((*s).into()).or_default().insert((*k).into(), v.clone());
        }
        p
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0xbb, 1];

    #[test]
    fn every_unexpressed_setting_is_named_once_per_setting() {
        let p = profile(
            "Office",
            1,
            &[
                ("connection", "type", "802-3-ethernet".into()),
                ("connection", "interface-name", "eth1".into()),
                ("connection", "zone", "work".into()),
                ("802-3-ethernet", "assigned-mac-address", "random".into()),
                ("ipv4", "method", "auto".into()),
                ("ipv4", "dns-search", Value::StrList(Vec::new())),
                ("ipv6", "method", "ignore".into()),
                ("ipv6", "addr-gen-mode", Value::I32(0)),
                ("ipv6", "ip6-privacy", Value::I32(2)),
                ("802-1x", "eap", Value::StrList(vec!["peap".into()])),
            ],
        );
        let r = host_from_profiles_around(&[p], Around::default()).unwrap();
        let all: Vec<&str> = r.findings.iter().map(|f| f.message.as_str()).collect();
        let text = all.join("\n");
        for name in [
            "connection.zone",
            "ethernet.cloned-mac-address",
            "ipv6.addr-gen-mode, ipv6.ip6-privacy",
            "802-1x.eap",
            "ipv6.method 'ignore'",
        ] {
            assert!(text.contains(name), "{name} not named:\n{text}");
        }
        assert!(!text.contains("auto-negotiate") && !text.contains("dns-search"), "defaults named:\n{text}");
        assert!(any_loses_meaning(&r.findings));
        assert_eq!(r.host.interfaces[0].ipv6, None);
    }

    #[test]
    fn mac_bound_profiles_nameless_ports_and_vlan_parents_by_mac_are_resolved() {
        let eth = ("connection", "type", Value::from("802-3-ethernet"));
        let wired = profile(
            "Test Wired Connection",
            2,
            &[eth.clone(), ("802-3-ethernet", "mac-address", Value::Bytes(MAC.to_vec()))],
        );
        let devices = [("eth1".to_string(), Mac(MAC))];
        let live = Around { devices: &devices, profiles: &[], name_by_device: true };
        let r = host_from_profiles_around(std::slice::from_ref(&wired), live).unwrap();
        let i = &r.host.interfaces[0];
        assert_eq!(
            (i.name.as_str(), &i.kind),
            ("eth1", &Kind::Ethernet(crate::model::Ethernet { mac: Some(Mac(MAC)) }))
        );
        assert!(r.findings.iter().any(|f| f.severity == Severity::Approximated && f.message.contains("by MAC")));
        // The definition alone: named by its MAC.
        let r = host_from_profiles_around(&[wired], Around { name_by_device: false, ..live }).unwrap();
        assert_eq!(r.host.interfaces[0].name.as_str(), "enx525400aabb01");

        let br = profile(
            "br",
            3,
            &[("connection", "type", "bridge".into()), ("connection", "interface-name", "br7".into())],
        );
        let master = ("connection", "master", Value::from("br7"));
        let slave = ("connection", "slave-type", Value::from("bridge"));
        let named = profile(
            "p1",
            4,
            &[eth.clone(), master.clone(), slave.clone(), ("connection", "interface-name", "eth2".into())],
        );
        let nameless = profile("p2", 5, &[eth.clone(), master, slave, ("bridge-port", "priority", Value::U32(40))]);
        let r = host_from_profiles_around(&[br, named, nameless], Around::default()).unwrap();
        let Kind::Bridge(b) = &r.host.interfaces[0].kind else { panic!() };
        assert!(matches!(b.ports.as_slice(), [Member::Ethernet(p)] if p.name.as_str() == "eth2"));
        let text: Vec<&str> = r.findings.iter().map(|f| f.message.as_str()).collect();
        assert!(text.iter().any(|m| m.contains("left out")), "{text:?}");
        assert!(text.iter().any(|m| m.contains("bridge-port.priority")), "{text:?}");
        assert!(any_loses_meaning(&r.findings));

        let vlan = profile(
            "vl",
            6,
            &[
                ("connection", "type", "vlan".into()),
                ("vlan", "id", Value::U32(10)),
                ("802-3-ethernet", "mac-address", Value::Bytes(MAC.to_vec())),
            ],
        );
        let r = host_from_profiles_around(std::slice::from_ref(&vlan), live).unwrap();
        let Kind::Vlan(v) = &r.host.interfaces[0].kind else { panic!() };
        assert_eq!((v.parent.as_str(), r.host.interfaces[0].name.as_str()), ("eth1", "eth1.10"));
        assert!(!r.findings.iter().any(|f| f.message.contains("not expressible")), "{:?}", r.findings);
        // By the parent profile's UUID.
        let parent = profile("up", 7, &[eth, ("connection", "interface-name", "eth3".into())]);
        let mut vlan = vlan;
        vlan.settings.get_mut("vlan").unwrap().insert("parent".into(), parent.uuid.to_string().into());
        vlan.settings.get_mut("connection").unwrap().insert("interface-name".into(), "vl10".into());
        let around = Around { profiles: std::slice::from_ref(&parent), ..live };
        let r = host_from_profiles_around(&[vlan], around).unwrap();
        let Kind::Vlan(v) = &r.host.interfaces[0].kind else { panic!() };
        assert_eq!(v.parent.as_str(), "eth3");
    }
}
