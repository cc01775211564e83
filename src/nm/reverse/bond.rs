//! A bond profile and its ports back into the model.

use super::{err, unexpressed, Reader, ReverseError};
use crate::finding::Severity;
use crate::model::{ArpValidate, Bond, BondMode, Carrier, EthernetPort, IfName, Monitor};
use crate::nm::profile::{conn_type, Profile};
use crate::nm::value::Value;
use std::collections::BTreeMap;

impl Reader<'_> {
    pub(super) fn bond(&mut self, p: &Profile) -> Result<Bond, ReverseError> {
        let empty = BTreeMap::new();
        let opts = p.get("bond", "options").and_then(Value::as_str_dict).unwrap_or(&empty);
        let mode = match opts.get("mode") {
            Some(m) => BondMode::parse(m).ok_or_else(|| err(p, format!("unknown bond mode '{m}'")))?,
            None => BondMode::BalanceRr,
        };
        let num = |k: &str| opts.get(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        let monitor = if num("arp_interval") > 0 {
            let targets = opts.get("arp_ip_target").map(String::as_str).unwrap_or("");
            let mut list = targets.split(',').map(str::trim).filter(|t| !t.is_empty());
            let first = list.next().ok_or_else(|| err(p, "arp_interval without arp_ip_target"))?;
            let target = first.parse().map_err(|_| err(p, format!("invalid arp_ip_target '{first}'")))?;
            // libvirt's format holds one target; the others go to the extension.
            let mut more_targets = Vec::new();
            for t in list {
                more_targets.push(t.parse().map_err(|_| err(p, format!("invalid arp_ip_target '{t}'")))?);
            }
            let validate = opts.get("arp_validate").map(|v| match v.as_str() {
                "0" => Some(ArpValidate::None),
                "1" => Some(ArpValidate::Active),
                "2" => Some(ArpValidate::Backup),
                "3" => Some(ArpValidate::All),
                other => ArpValidate::parse(other),
            });
            let validate = match validate {
                Some(None) => {
                    let v = opts.get("arp_validate").cloned().unwrap_or_default();
                    self.note(
                        p,
                        Severity::Unsupported,
                        format!("arp_validate '{v}' has no libvirt equivalent; left out"),
                    );
                    None
                }
                Some(v) => v,
                None => None,
            };
            Some(Monitor::Arp { interval: num("arp_interval"), target, more_targets, validate })
        } else if num("miimon") > 0 {
            let carrier = opts.get("use_carrier").map(|v| if v == "0" { Carrier::Ioctl } else { Carrier::Netif });
            Some(Monitor::Mii { freq: num("miimon"), downdelay: num("downdelay"), updelay: num("updelay"), carrier })
        } else {
            // Neither set: NetworkManager applies its default MII monitoring.
            Some(Monitor::default_mii())
        };
        let mut options = crate::model::BondOptions::default();
        for spec in crate::model::bond::OPTION_SPECS.iter() {
            if let Some(v) = opts.get(spec.key) {
                if let Err(m) = options.set(spec.key, v) {
                    self.note(p, Severity::Unsupported, format!("bond option {}: {m}; left out", spec.key));
                }
            }
        }
        let mapped = |k: &str| {
            crate::nm::bond::BOND_CORE_KEYS.contains(&k) || crate::model::bond::OPTION_SPECS.iter().any(|s| s.key == k)
        };
        for (k, v) in opts.iter().filter(|(k, _)| !mapped(k)) {
            self.note(p, Severity::Unsupported, format!("bond option {k}={v} has no libvirt equivalent; left out"));
        }
        let mut ports = Vec::new();
        for port in self.ports_of(p) {
            self.findings.extend(unexpressed::findings(port, Some(p)));
            let Some(pname) = self.port_name(port, p)? else { continue };
            if port.conn_type() != Some(conn_type::ETHERNET) {
                self.note(
                    port,
                    Severity::Unsupported,
                    "a bond port that is not ethernet has no libvirt equivalent; left out".into(),
                );
                continue;
            }
            let ext = crate::model::PortExt {
                prio: port.get("bond-port", "prio").and_then(Value::as_int).and_then(|v| i32::try_from(v).ok()),
                // NM leaves out queue-id 0, its default.
                queue_id: port
                    .get("bond-port", "queue-id")
                    .and_then(Value::as_uint)
                    .and_then(|v| u16::try_from(v).ok()),
            };
            ports.push(EthernetPort { name: pname, mac: self.mac(port, "mac-address"), port: ext });
        }
        let primary = match opts.get("primary") {
            Some(pr) if mode.has_primary() => Some(IfName::new(pr).map_err(|m| err(p, m))?),
            _ => None,
        };
        let mut bond = Bond { mode, monitor, primary, ports, options };
        bond.sort_ports();
        Ok(bond)
    }
}
