//! Profiles as NetworkManager keyfiles (`*.nmconnection`), the text NetworkManager's keyfile
//! plugin reads from `/etc/NetworkManager/system-connections`.
//!
//! The keyfile format differs from the D-Bus one in a few documented places: the
//! `802-3-ethernet` setting and type are called `ethernet`; `assigned-mac-address` is stored
//! as `cloned-mac-address`; MACs are text; `address-data` becomes `address1`, `address2`, …;
//! the dictionaries `bond.options` and `user.data` become keys of their group; lists end in
//! `;`. Values are escaped as GKeyFile does (`\\`, `\n`, `\t`, `\r`, a leading `\s`).

use super::profile::Profile;
use super::value::Value;
use std::fmt::Write;

/// The order groups are written in: `connection` first, as NetworkManager writes it.
const GROUP_ORDER: [&str; 9] =
    ["connection", "802-3-ethernet", "bridge", "bridge-port", "bond", "bond-port", "vlan", "ipv4", "ipv6"];

fn group_name(setting: &str) -> &str {
    match setting {
        "802-3-ethernet" => "ethernet",
        other => other,
    }
}

/// Escapes a value the way GKeyFile does.
fn escape(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            ' ' if i == 0 => o.push_str("\\s"),
            c => o.push(c),
        }
    }
    o
}

fn mac_text(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::Str(s) => escape(s),
        Value::Bytes(b) => mac_text(b),
        Value::StrList(l) => l.iter().map(|s| format!("{};", escape(&s.replace(';', "\\;")))).collect(),
        // Dictionaries are expanded by the caller; a stray one, or an opaque value read from
        // NetworkManager (translations never make those), is written empty rather than as
        // something NetworkManager would misread.
        Value::StrDict(_) | Value::DictList(_) | Value::Encoded(_) => String::new(),
    }
}

/// `routeN=DEST/PREFIX[,GATEWAY[,METRIC]]` and, with a table, `routeN_options=table=T`, as
/// NetworkManager's keyfile writer spells them (an unset gateway before a metric is the
/// family's any-address).
fn route_line(family: &str, n: usize, r: &std::collections::BTreeMap<String, Value>) -> String {
    let dest = r.get("dest").and_then(Value::as_str).unwrap_or("");
    let prefix = r.get("prefix").and_then(Value::as_uint).unwrap_or(0);
    let mut line = format!("route{n}={dest}/{prefix}");
    let gw = r.get("next-hop").and_then(Value::as_str);
    let metric = r.get("metric").and_then(Value::as_uint);
    match (gw, metric) {
        (Some(g), Some(m)) => {
            let _ = write!(line, ",{g},{m}");
        }
        (Some(g), None) => {
            let _ = write!(line, ",{g}");
        }
        (None, Some(m)) => {
            let any = if family == "ipv4" { "0.0.0.0" } else { "::" };
            let _ = write!(line, ",{any},{m}");
        }
        (None, None) => {}
    }
    if let Some(t) = r.get("table").and_then(Value::as_uint) {
        let _ = write!(line, "\nroute{n}_options=table={t}");
    }
    line
}

/// The keyfile text of one profile.
pub fn to_keyfile(p: &Profile) -> String {
    let mut out = String::new();
    let mut groups: Vec<(&str, &super::profile::Setting)> = p.settings.iter().map(|(k, v)| (k.as_ref(), v)).collect();
    groups.sort_by_key(|(n, _)| (GROUP_ORDER.iter().position(|g| g == n).unwrap_or(GROUP_ORDER.len()), *n));
    for (name, props) in groups {
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "[{}]", group_name(name));
        for (key, v) in props {
            match (name, key.as_ref(), v) {
                ("connection", "type", Value::Str(t)) => {
                    let _ = writeln!(out, "type={}", group_name(t));
                }
                ("802-3-ethernet", "assigned-mac-address", v) => {
                    let _ = writeln!(out, "cloned-mac-address={}", scalar(v));
                }
                ("ipv4" | "ipv6", "address-data", Value::DictList(list)) => {
                    for (i, a) in list.iter().enumerate() {
                        let addr = a.get("address").and_then(Value::as_str).unwrap_or("");
                        let prefix = a.get("prefix").and_then(Value::as_uint).unwrap_or(0);
                        let _ = writeln!(out, "address{}={addr}/{prefix}", i + 1);
                    }
                }
                // The keyfile knows DNS servers under the legacy name, whatever the D-Bus form.
                ("ipv4" | "ipv6", "dns-data", v) => {
                    let _ = writeln!(out, "dns={}", scalar(v));
                }
                ("ipv4" | "ipv6", "route-data", Value::DictList(list)) => {
                    for (i, r) in list.iter().enumerate() {
                        let _ = writeln!(out, "{}", route_line(name, i + 1, r));
                    }
                }
                (_, _, Value::StrDict(d)) => {
                    for (k, v) in d {
                        let _ = writeln!(out, "{k}={}", escape(v));
                    }
                }
                (_, _, v) => {
                    let _ = writeln!(out, "{key}={}", scalar(v));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_gkeyfile() {
        assert_eq!(escape(" a\\b\nc\td"), "\\sa\\\\b\\nc\\td");
        assert_eq!(escape("a b"), "a b");
    }
}
