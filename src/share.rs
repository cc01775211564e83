//! Sharing a host's network with virtual machines, the seed thread's central idea: a NIC
//! bridged for VMs (`nmiface bridge`/`unbridge`, libvirt's iface-bridge/iface-unbridge, and the
//! draft's `<shared bridge=…/>`), or NAT sharing behind whatever uplink is active
//! (`nmiface share --nat`).
//!
//! Decisions: `bridge` leaves the NIC's standalone profile untouched (it may not even be
//! nmiface's); the bridge's port profile takes the device, so the standalone one goes inactive,
//! and the port has a higher autoconnect priority so it also wins at boot. The bridge records
//! the standalone profile's UUID (`nmiface.replaces`), and `unbridge` deletes the bridge and its
//! port and activates exactly that profile again. A bridge made from XML has no such profile:
//! `unbridge` then gives the NIC the bridge's configuration, as libvirt's iface-unbridge does.
//! Both are one step for the host (a checkpoint, or the user's transaction).

use crate::agent::{Agent, AgentError, Safety};
use crate::model::{self, Bridge, EthernetPort, Host, IfName, Interface, Ipv4, Ipv4Net, Kind, Mac, Member, StartMode};
use crate::nm::{self, conn_type, user_key};
use crate::nm_client::Progress;
use crate::transaction::Journal;
use crate::xml::{self, Document};
use std::time::Duration;

/// How `bridge` should make the bridge.
#[derive(Debug, Clone, Copy)]
pub struct BridgeOptions {
    /// Spanning tree on (libvirt's default).
    pub stp: bool,
    /// Forward delay asked for, seconds; `None`: the smallest allowed (2 with STP, else 0).
    pub delay: Option<u16>,
    /// Activate after defining.
    pub start: bool,
    /// Seconds to wait for activation.
    pub timeout: Duration,
    /// Seconds NetworkManager waits for a keep-alive before rolling back by itself.
    pub rollback_timeout: u32,
}

/// What `unbridge` works from.
struct Unbridge<'a> {
    found: &'a crate::agent::Startable,
    start: bool,
    timeout: Duration,
    old: Option<&'a crate::nm_client::StoredProfile>,
    iface: &'a Interface,
    port: &'a EthernetPort,
}

/// NMDeviceType of a Wi-Fi device.
const WIFI: u32 = 2;

fn doc_of(iface: Interface, findings: Vec<crate::finding::Finding>) -> Document {
    let source = xml::write_interface(&iface).0;
    Document { host: Host { interfaces: vec![iface] }, findings, sources: vec![source] }
}

fn safety(journal: Option<&mut Journal>, rollback_timeout: u32) -> Safety<'_> {
    match journal {
        Some(j) => Safety::Transaction(j),
        None => Safety::Checkpoint { rollback_timeout },
    }
}

impl Agent {
    /// The model `bridge NIC BRIDGE` would define: the bridge with the NIC's configuration and
    /// MAC, recording the NIC's standalone profile. Changes nothing (for `check` and `--force`).
    pub async fn bridge_model(&self, nic: &str, bridge: &str, o: &BridgeOptions) -> Result<Document, AgentError> {
        let devices = self.client().devices().await?;
        let dev = devices
            .iter()
            .find(|d| d.interface == nic && d.real)
            .ok_or_else(|| AgentError::Lookup(format!("no network device named {nic}")))?;
        if dev.device_type == WIFI {
            return Err(AgentError::Lookup(format!(
                "{nic} is a Wi-Fi station: bridging a station does not work (802.11 carries no frames for other MACs); share it with NAT instead: nmiface share --nat"
            )));
        }
        if devices.iter().any(|d| d.interface == bridge && d.real) {
            return Err(AgentError::Lookup(format!("network device {bridge} already exists")));
        }
        let stored = self.client().profiles().await?;
        if stored.iter().any(|s| {
            s.profile.interface_name() == Some(bridge) || s.profile.user_data(user_key::INTERFACE) == Some(bridge)
        }) {
            return Err(AgentError::Lookup(format!("a profile for {bridge} already exists")));
        }
        let active = self.client().active_profiles().await?;
        let active_path =
            dev.active_connection.as_ref().and_then(|ac| active.iter().find(|(a, _)| a == ac)).map(|(_, p)| p.clone());
        let standalone = active_path
            .and_then(|p| stored.iter().find(|s| s.path.as_str() == p))
            .or_else(|| {
                stored.iter().find(|s| {
                    s.profile.is_managed() && s.profile.user_data(user_key::INTERFACE) == Some(nic) && s.profile.master().is_none()
                })
            })
            .or_else(|| {
                let c: Vec<_> = stored
                    .iter()
                    .filter(|s| s.profile.interface_name() == Some(nic) && s.profile.conn_type() == Some(conn_type::ETHERNET))
                    .collect();
                (c.len() == 1).then(|| c[0])
            })
            .ok_or_else(|| {
                AgentError::Lookup(format!(
                    "{nic} has no profile to take its IP configuration from: define it first (nmiface define) or activate one"
                ))
            })?;
        if let Some(m) = standalone.profile.master() {
            return Err(AgentError::Lookup(format!(
                "{nic} is already a port of {m} (profile '{}')",
                standalone.profile.id
            )));
        }
        if standalone.profile.conn_type() != Some(conn_type::ETHERNET) {
            return Err(AgentError::Lookup(format!(
                "{nic}'s profile '{}' is not an ethernet profile",
                standalone.profile.id
            )));
        }
        let src = nm::host_from_profiles(std::slice::from_ref(&standalone.profile))?;
        let src = src
            .host
            .interfaces
            .into_iter()
            .next()
            .ok_or_else(|| AgentError::Lookup(format!("cannot read {nic}'s profile")))?;
        let nic_name = IfName::new(nic).map_err(AgentError::Lookup)?;
        let mac = Mac::parse(&dev.hw_address).ok();
        let mut br = Bridge::shared(nic_name, mac);
        let asked = o.delay.unwrap_or(if o.stp { model::MIN_STP_FORWARD_DELAY } else { 0 });
        let (delay, why) = model::forward_delay(f64::from(asked), o.stp);
        br.stp = o.stp;
        br.forward_delay = delay;
        br.replaces = Some(standalone.profile.uuid);
        let mut findings = Vec::new();
        if let Some(why) = why {
            let sev = if o.stp { crate::finding::Severity::Approximated } else { crate::finding::Severity::Info };
            findings.push(crate::finding::Finding::at(sev, "--delay", None, why));
        }
        let name = IfName::new(bridge).map_err(AgentError::Lookup)?;
        let iface = Interface {
            name,
            uuid: None,
            start: src.start,
            mtu: src.mtu,
            ipv4: src.ipv4,
            ipv6: src.ipv6,
            kind: Kind::Bridge(br),
        };
        Ok(doc_of(iface, findings))
    }

    /// `virsh iface-bridge`: the NIC's configuration moves to a new bridge with the NIC as its
    /// port, in one step; the NIC's standalone profile is kept for `unbridge`.
    pub async fn bridge(
        &self,
        doc: &Document,
        o: &BridgeOptions,
        journal: Option<&mut Journal>,
        progress: &mut (dyn FnMut(&str, Progress) + Send),
    ) -> Result<(), AgentError> {
        if !o.start {
            self.define(doc, false, journal).await?;
            return Ok(());
        }
        let (_, started) = self.apply(doc, false, o.timeout, safety(journal, o.rollback_timeout), progress).await?;
        match started.into_iter().find_map(|(_, r)| r.err()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `virsh iface-unbridge`: the bridge and its port go; the NIC's standalone profile (the one
    /// `bridge` kept) is activated again, or, for a bridge made from XML, the NIC gets the
    /// bridge's configuration. One step for the host. Returns the NIC's name.
    pub async fn unbridge(
        &self,
        bridge: &str,
        start: bool,
        timeout: Duration,
        rollback_timeout: u32,
        journal: Option<&mut Journal>,
    ) -> Result<String, AgentError> {
        let found = self.startable(bridge).await?;
        let iface = found
            .host
            .interfaces
            .first()
            .cloned()
            .ok_or_else(|| AgentError::NotDefined { name: bridge.into(), hint: None })?;
        let Kind::Bridge(b) = &iface.kind else {
            return Err(AgentError::Lookup(format!("{bridge} is a {}, not a bridge", iface.kind.type_name())));
        };
        let port = match b.ports.as_slice() {
            [Member::Ethernet(p)] => p.clone(),
            [] => return Err(AgentError::Lookup(format!("no interface attached to bridge {bridge}"))),
            [_] => return Err(AgentError::Lookup(format!("the port of {bridge} is not an ethernet NIC"))),
            _ => return Err(AgentError::Lookup(format!("multiple interfaces attached to bridge {bridge}"))),
        };
        let old = match b.replaces {
            Some(u) => self.client().profile_by_uuid(&u.to_string()).await?,
            None => None,
        };
        let nic = port.name.to_string();
        let undo = Unbridge { found: &found, start, timeout, old: old.as_ref(), iface: &iface, port: &port };
        match journal {
            Some(j) => self.unbridge_steps(&undo, Some(j)).await?,
            None => {
                let mut guard = self.guard(rollback_timeout).await?;
                match self.unbridge_steps(&undo, Some(&mut guard.journal)).await {
                    Ok(()) => guard.release(self).await?,
                    Err(cause) => {
                        let problems = guard.undo(self).await;
                        return Err(AgentError::RolledBack { cause: Box::new(cause), problems });
                    }
                }
            }
        }
        Ok(nic)
    }

    async fn unbridge_steps(&self, u: &Unbridge<'_>, mut j: Option<&mut Journal>) -> Result<(), AgentError> {
        self.undefine_found(u.found, j.as_deref_mut()).await?;
        let nic = u.port.name.to_string();
        match u.old {
            Some(old) if u.start => {
                let eth = [nic.clone()];
                self.client()
                    .activate_and_wait(&old.path, &nic, &[], &eth, u.timeout, &mut |_| {})
                    .await
                    .map_err(|failure| AgentError::Activation { interface: nic.clone(), failure, hint: None })?;
            }
            Some(_) => {}
            None => {
                // Made from XML: the NIC gets the bridge's configuration, as iface-unbridge does.
                let mut back = u.iface.clone();
                back.name = u.port.name.clone();
                back.kind = Kind::Ethernet(model::Ethernet { mac: u.port.mac });
                let doc = doc_of(back, Vec::new());
                if u.start {
                    let (_, started) = self
                        .apply(&doc, false, u.timeout, Safety::Transaction(j.expect("journal")), &mut |_, _| {})
                        .await?;
                    if let Some(e) = started.into_iter().find_map(|(_, r)| r.err()) {
                        return Err(e);
                    }
                } else {
                    self.define(&doc, false, j).await?;
                }
            }
        }
        Ok(())
    }

    /// The model `share --nat` would define: a VM bridge with NetworkManager's shared method.
    pub fn nat_model(bridge: &str, subnet: Option<Ipv4Net>) -> Result<Document, String> {
        let name = IfName::new(bridge)?;
        let ipv4 = Ipv4 { dhcp: None, addresses: subnet.into_iter().collect(), gateway: None, nat: true };
        let kind = Kind::Bridge(Bridge { stp: false, forward_delay: 0, mac: None, replaces: None, ports: Vec::new() });
        let iface =
            Interface { name, uuid: None, start: StartMode::Onboot, mtu: None, ipv4: Some(ipv4), ipv6: None, kind };
        Ok(doc_of(iface, Vec::new()))
    }
}

/// `--subnet 10.42.7.0/24` as the bridge's own address: the first host, with the prefix.
pub fn subnet_address(text: &str) -> Result<Ipv4Net, String> {
    let (addr, prefix) =
        text.split_once('/').ok_or_else(|| format!("invalid subnet '{text}' (expected e.g. 10.42.7.0/24)"))?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| format!("invalid subnet address '{addr}'"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (8..=30).contains(p))
        .ok_or_else(|| format!("prefix '/{prefix}': use /8 to /30"))?;
    let mask = u32::MAX << (32 - prefix);
    let net = u32::from(addr) & mask;
    Ok(Ipv4Net { address: (net + 1).into(), prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let n = subnet_address("10.42.7.0/24").unwrap();
        assert_eq!((n.address.to_string(), n.prefix), ("10.42.7.1".to_string(), 24));
        assert!(subnet_address("10.42.7.0").is_err());
        assert!(subnet_address("10.42.7.0/31").is_err());
    }
}
