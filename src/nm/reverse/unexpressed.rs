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
