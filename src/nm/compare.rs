//! What would change: the settings nmiface would send against the settings NetworkManager
//! holds, property by property, and which of those changes NetworkManager can apply to a running
//! device in place (`Device.Reapply`) rather than by re-activating it.

use super::profile::Profile;
use super::value::Value;
use serde::Serialize;

/// NetworkManager's default for a property nmiface sends: GetSettings leaves out properties
/// that hold their default (libnm's property specs), so "absent" means this value.
pub fn nm_default(setting: &str, prop: &str) -> Option<Value> {
    use Value::*;
    Some(match (setting, prop) {
        ("connection", "autoconnect") => Bool(true),
        ("bridge", "stp") => Bool(true),
        ("bridge", "forward-delay") => U32(15),
        ("vlan", "flags") => U32(1),
        ("vlan", "id") => U32(0),
        ("802-3-ethernet", "mtu") => U32(0),
        ("ipv4" | "ipv6", "ignore-auto-dns") => Bool(false),
        _ => return None,
    })
}

/// One property that would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `setting.property`.
    pub property: String,
    /// What NetworkManager holds (`None`: not set).
    pub before: Option<Value>,
    /// What nmiface would send (`None`: nothing, the property goes back to NetworkManager's
    /// default: the document no longer says it).
    pub after: Option<Value>,
}

/// What sending `desired` changes in `stored`: the properties whose value `stored` does not
/// hold (its defaults counted), and the properties `stored` holds that `desired` no longer has
/// (an update is a merge, [`super::merge`], so the only properties it leaves out are the
/// document's, removed on purpose). Values that say nothing (empty lists, defaults) never count.
pub fn changes(desired: &Profile, stored: &Profile) -> Vec<Change> {
    let mut out = Vec::new();
    for (setting, props) in &desired.settings {
        for (prop, after) in props {
            let before = stored.get(setting, prop).cloned();
            let said = |v: &Value| !super::merge::is_empty(v);
            let held = before.clone().or_else(|| nm_default(setting, prop)).filter(said);
            let wanted = Some(after.clone()).filter(said);
            if held != wanted {
                out.push(Change { property: format!("{setting}.{prop}"), before, after: Some(after.clone()) });
            }
        }
    }
    for (setting, props) in &stored.settings {
        for (prop, before) in props {
            let default = nm_default(setting, prop);
            if desired.get(setting, prop).is_none()
                && !super::merge::is_empty(before)
                && default.as_ref() != Some(before)
            {
                out.push(Change { property: format!("{setting}.{prop}"), before: Some(before.clone()), after: None });
            }
        }
    }
    out
}

/// Whether NetworkManager applies every one of `changes` to an active device in place: IP
/// configuration, nmiface's own marks, and the profile's autoconnect policy (NetworkManager's
/// `can_reapply_change`). Anything else (bridge, bond, VLAN, Ethernet settings) needs a
/// re-activation.
pub fn reapplicable(changes: &[Change]) -> bool {
    changes.iter().all(|c| {
        let (setting, prop) = c.property.split_once('.').unwrap_or((c.property.as_str(), ""));
        matches!(setting, "ipv4" | "ipv6" | "user")
            || (setting == "connection" && matches!(prop, "autoconnect" | "autoconnect-priority" | "id"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nm::{translate, Target};

    fn profile(xml: &str) -> Profile {
        let d = crate::xml::parse_document("t", xml).unwrap();
        translate(&d.host, &d.sources, &Target::default()).profiles().next().unwrap().clone()
    }

    #[test]
    fn same_definition_has_no_changes_and_an_address_is_reapplied() {
        let a = profile("<interface type='bridge' name='br0'><protocol family='ipv4'><ip address='192.0.2.1' prefix='24'/></protocol><bridge stp='off'/></interface>");
        assert!(changes(&a, &a).is_empty());
        // NetworkManager leaves out what holds its default.
        let mut stored = a.clone();
        stored.settings.get_mut("connection").unwrap().remove("autoconnect");
        assert!(changes(&a, &stored).is_empty());
        let b = profile("<interface type='bridge' name='br0'><protocol family='ipv4'><ip address='192.0.2.2' prefix='24'/></protocol><bridge stp='off'/></interface>");
        let c = changes(&b, &a);
        assert!(c.iter().any(|c| c.property == "ipv4.address-data"), "{c:?}");
        assert!(reapplicable(&c), "{c:?}");
        let stp = profile("<interface type='bridge' name='br0'><protocol family='ipv4'><ip address='192.0.2.1' prefix='24'/></protocol><bridge stp='on'/></interface>");
        let c = changes(&stp, &a);
        assert!(c.iter().any(|c| c.property == "bridge.stp") && !reapplicable(&c), "{c:?}");
    }
}
