//! The `bond` setting's options, from the model's bond.

use crate::model::{Bond, Carrier, Monitor};
use std::collections::BTreeMap;

/// The `bond.options` keys [`bond_options`] writes from libvirt's own elements (mode, monitor,
/// primary). The extension's keys are [`crate::model::bond::OPTION_SPECS`]; together they are every
/// key nmiface reads back. (`arp_all_targets` has no libvirt form; it is read as NM's default.)
pub const BOND_CORE_KEYS: [&str; 10] = [
    "mode",
    "miimon",
    "downdelay",
    "updelay",
    "use_carrier",
    "arp_interval",
    "arp_ip_target",
    "arp_validate",
    "primary",
    "arp_all_targets",
];

/// The kernel bonding options for a bond, as NetworkManager's `bond.options` strings.
pub fn bond_options(b: &Bond) -> BTreeMap<String, String> {
    let mut o = BTreeMap::new();
    o.insert("mode".to_string(), b.mode.as_str().to_string());
    match &b.monitor {
        Some(Monitor::Mii { freq, downdelay, updelay, carrier }) => {
            o.insert("miimon".into(), freq.to_string());
            if *downdelay > 0 {
                o.insert("downdelay".into(), downdelay.to_string());
            }
            if *updelay > 0 {
                o.insert("updelay".into(), updelay.to_string());
            }
            if let Some(c) = carrier {
                o.insert("use_carrier".into(), if *c == Carrier::Ioctl { "0" } else { "1" }.into());
            }
        }
        Some(Monitor::Arp { interval, target, more_targets, validate }) => {
            o.insert("arp_interval".into(), interval.to_string());
            let all: Vec<String> = std::iter::once(target).chain(more_targets.iter()).map(|t| t.to_string()).collect();
            o.insert("arp_ip_target".into(), all.join(","));
            if let Some(v) = validate {
                o.insert("arp_validate".into(), v.as_str().into());
            }
        }
        None => {}
    }
    if let Some(p) = &b.primary {
        o.insert("primary".into(), p.to_string());
    }
    for (k, v) in b.options.pairs() {
        o.insert(k.to_string(), v);
    }
    o
}
