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
//! Both are one step for the host (a checkpoint, or the user's transaction). Bridging a NIC is
//! `apply` of the model [`Agent::bridge_model`] makes; NAT sharing is `apply` of [`Agent::nat_model`].

use super::guard::Guarded;
use super::{Agent, AgentError, Safety, StoredInterface, Wanted};
use crate::finding::{Finding, Severity};
use crate::model::{self, Bridge, EthernetPort, Host, IfName, Interface, Ipv4, Ipv4Net, Kind, Mac, Member, StartMode};
use crate::nm::{self, conn_type, user_key, DeviceType, Scope};
use crate::nm_client::{Awaited, DeviceInfo, StoredProfile};
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
}

fn doc_of(iface: Interface, findings: Vec<Finding>) -> Document {
    let source = xml::write_interface(&iface).0;
    Document { host: Host { interfaces: vec![iface] }, findings, sources: vec![source] }
}

pub(super) fn if_name(name: &str) -> Result<IfName, AgentError> {
    IfName::new(name).map_err(AgentError::InvalidName)
}

impl Agent {
    /// The model `bridge NIC BRIDGE` would define: the bridge with the NIC's configuration and
    /// MAC, recording the NIC's standalone profile. Changes nothing (for `check` and `--force`).
    pub async fn bridge_model(&self, nic: &str, bridge: &str, o: &BridgeOptions) -> Result<Document, AgentError> {
        if matches!(self.scope, Scope::User(_)) {
            return Err(AgentError::SystemScopeOnly { what: format!("bridging NIC {nic}") });
        }
        let nic_name = if_name(nic)?;
        let name = if_name(bridge)?;
        let devices = self.nm.devices().await?;
        let dev = devices
            .iter()
            .find(|d| d.interface == nic && d.real)
            .ok_or_else(|| AgentError::NoSuchDevice(nic.to_string()))?;
        if dev.device_type == DeviceType::Wifi {
            return Err(AgentError::WifiStation(nic.to_string()));
        }
        if devices.iter().any(|d| d.interface == bridge && d.real) {
            return Err(AgentError::DeviceExists(bridge.to_string()));
        }
        let stored = self.nm.profiles().await?;
        if stored.iter().any(|s| {
            s.profile.interface_name() == Some(bridge) || s.profile.user_data(user_key::INTERFACE) == Some(bridge)
        }) {
            return Err(AgentError::ProfileExists(bridge.to_string()));
        }
        let active = self.nm.active_profiles().await?;
        let active_path =
            dev.active_connection.as_ref().and_then(|ac| active.iter().find(|(a, _)| a == ac)).map(|(_, p)| p.clone());
        let standalone = standalone_profile(&stored, nic, active_path.as_deref())
            .ok_or_else(|| AgentError::NoProfileToTake(nic.to_string()))?;
        if let Some(m) = standalone.profile.master() {
            return Err(AgentError::AlreadyPort {
                nic: nic.to_string(),
                controller: m.to_string(),
                profile: standalone.profile.id.clone(),
            });
        }
        if standalone.profile.conn_type() != Some(conn_type::ETHERNET) {
            return Err(AgentError::NotEthernetProfile {
                nic: nic.to_string(),
                profile: standalone.profile.id.clone(),
            });
        }
        let src = nm::host_from_profiles(std::slice::from_ref(&standalone.profile))?;
        let Some(src) = src.host.interfaces.into_iter().next() else {
            return Err(AgentError::NoProfileToTake(nic.to_string()));
        };
        let mac = Mac::parse(&dev.hw_address).ok();
        let mut br = Bridge::shared(nic_name, mac);
        let asked = o.delay.unwrap_or(if o.stp { model::MIN_STP_FORWARD_DELAY } else { 0 });
        let (delay, why) = model::forward_delay(f64::from(asked), o.stp);
        br.stp = o.stp;
        br.forward_delay = delay;
        br.replaces = Some(standalone.profile.uuid);
        let mut findings = Vec::new();
        if let Some(why) = why {
            let sev = if o.stp { Severity::Approximated } else { Severity::Info };
            findings.push(Finding::at(sev, "--delay", None, why));
        }
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

    /// The bridge `bridge NIC BRIDGE` would make, when nmiface made it already: its own bridge
    /// profile with the NIC as its only port and the STP and forward delay asked for. `None` when
    /// there is no such bridge (a different one under that name is refused by
    /// [`Agent::bridge_model`]).
    pub async fn bridged_already(
        &self,
        nic: &str,
        bridge: &str,
        o: &BridgeOptions,
    ) -> Result<Option<StoredInterface>, AgentError> {
        let found = match self.find(bridge).await {
            Ok(f) => f,
            Err(AgentError::NotDefined { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(iface) = found.model()?.interfaces.into_iter().next() else { return Ok(None) };
        let Kind::Bridge(b) = &iface.kind else { return Ok(None) };
        let asked = o.delay.unwrap_or(if o.stp { model::MIN_STP_FORWARD_DELAY } else { 0 });
        let (delay, _) = model::forward_delay(f64::from(asked), o.stp);
        let same = matches!(b.ports.as_slice(), [Member::Ethernet(p)] if p.name.as_str() == nic)
            && b.stp == o.stp
            && b.forward_delay == delay
            && b.replaces.is_some();
        Ok(same.then_some(found))
    }

    /// The running bridge that took over `s`'s own profile (`nmiface bridge` recorded its UUID
    /// in `nmiface.replaces`), by interface name: starting `s` would pull its NIC out of it.
    /// Bridging a NIC is system-wide only, so only system-wide bridges are asked.
    pub async fn taken_over_by(&self, s: &StoredInterface) -> Result<Option<String>, AgentError> {
        if s.main.profile.conn_type() != Some(conn_type::ETHERNET) {
            return Ok(None);
        }
        let uuid = s.main.profile.uuid.to_string();
        let (profiles, active) = tokio::join!(self.nm.profiles(), self.nm.active_profiles());
        let (profiles, active) = (profiles?, active?);
        Ok(profiles
            .iter()
            .filter(|b| Scope::System.owns(&b.profile) && b.profile.user_data(user_key::REPLACES) == Some(&uuid))
            .find(|b| active.iter().any(|(_, p)| p == b.path.as_str()))
            .and_then(|b| b.profile.user_data(user_key::INTERFACE).map(str::to_string)))
    }

    /// The bridge's NIC ports whose device is not its port now (another profile took the NIC,
    /// or the bridge has no device): read from the devices, since a port profile says only where
    /// a NIC should be. A NetworkManager that does not report ports (before 1.34) counts as
    /// attached: nothing is guessed.
    pub async fn detached_ports<'s>(&self, s: &'s StoredInterface) -> Result<Vec<&'s StoredProfile>, AgentError> {
        let devices = self.nm.devices().await?;
        let bridge = devices.iter().find(|d| d.real && d.interface == s.name);
        Ok(s.ports
            .iter()
            .filter(|p| p.profile.conn_type() == Some(conn_type::ETHERNET))
            .filter(|p| {
                let nic = p.profile.interface_name();
                let dev = devices.iter().find(|d| d.real && Some(d.interface.as_str()) == nic);
                match (bridge, dev) {
                    (Some(b), Some(d)) => {
                        DeviceInfo::controller_of(&devices, d).is_some_and(|c| c.is_none_or(|c| c.path != b.path))
                    }
                    _ => true,
                }
            })
            .collect())
    }

    /// Activates the port profiles of NICs that left their running bridge (see
    /// [`Agent::detached_ports`]), so `bridge NIC BRIDGE` again puts the NIC back.
    pub async fn reattach(&self, ports: &[&StoredProfile], timeout: Duration) -> Result<(), AgentError> {
        for p in ports {
            let Some(nic) = p.profile.interface_name() else { continue };
            let eth = [nic.to_string()];
            let awaited = Awaited { main: nic, ports: &[], ethernet: &eth, ready_at_ip_config: false };
            self.nm.activate_and_wait(&p.path, awaited, timeout, &mut |_| {}).await.map_err(|failure| {
                AgentError::Activation { interface: nic.to_string(), failure: Box::new(failure), hint: None }
            })?;
        }
        Ok(())
    }

    /// `virsh iface-unbridge`: the bridge and its port go; the NIC's standalone profile (the one
    /// `bridge` kept) is activated again, or, for a bridge made from XML, the NIC gets the
    /// bridge's configuration. One step for the host under `safety`. Returns the NIC's name.
    pub async fn unbridge(
        &self,
        found: &StoredInterface,
        start: bool,
        timeout: Duration,
        safety: Safety<'_>,
    ) -> Result<String, AgentError> {
        let host = found.model()?;
        let Some(iface) = host.interfaces.into_iter().next() else {
            return Err(AgentError::NotDefined { name: found.name.clone(), foreign: None });
        };
        let Kind::Bridge(b) = &iface.kind else {
            return Err(AgentError::NotABridge { name: found.name.clone(), kind: iface.kind.type_name() });
        };
        let port = match b.ports.as_slice() {
            [Member::Ethernet(p)] => p.clone(),
            other => {
                let ports = match other {
                    [] => "no port".to_string(),
                    [_] => "a port that is not an ethernet NIC".to_string(),
                    many => format!("{} ports", many.len()),
                };
                return Err(AgentError::NotOneNic { bridge: found.name.clone(), ports });
            }
        };
        // `replaces` is only a mark in user.data: honour it for an ethernet profile of this
        // very NIC, never for an arbitrary profile someone wrote there.
        let old = match b.replaces {
            Some(u) => self.nm.profile_by_uuid(&u.to_string()).await?.filter(|s| {
                s.profile.conn_type() == Some(conn_type::ETHERNET)
                    && s.profile.interface_name() == Some(port.name.as_str())
                    && s.profile.master().is_none()
            }),
            None => None,
        };
        let nic = port.name.to_string();
        let steps = async |j: Option<&mut Journal>| {
            self.unbridge_steps(found, &iface, &port, old.as_ref(), start, timeout, j).await
        };
        // The bridge and its NIC, and whatever runs the profiles that go or come back.
        let scope = super::touched::DeviceScope {
            names: [found.name.clone(), nic.clone()].into(),
            profiles: found.profiles().chain(old.as_ref()).map(|p| p.path.to_string()).collect(),
        };
        match self.guarded(safety, &scope, steps, |_| false).await {
            Ok(()) => Ok(nic),
            Err(Guarded::Failed(e)) => Err(e),
            Err(Guarded::RolledBack { result, problems, checkpoint }) => {
                let cause = result.err().unwrap_or(AgentError::NotActive(nic));
                Err(AgentError::RolledBack { cause: Box::new(cause), problems, checkpoint })
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn unbridge_steps(
        &self,
        found: &StoredInterface,
        iface: &Interface,
        port: &EthernetPort,
        old: Option<&StoredProfile>,
        start: bool,
        timeout: Duration,
        mut j: Option<&mut Journal>,
    ) -> Result<(), AgentError> {
        self.undefine(found, j.as_deref_mut()).await?;
        let nic = port.name.to_string();
        match old {
            Some(old) if start => {
                let eth = [nic.clone()];
                let awaited = Awaited { main: &nic, ports: &[], ethernet: &eth, ready_at_ip_config: false };
                self.nm.activate_and_wait(&old.path, awaited, timeout, &mut |_| {}).await.map_err(|failure| {
                    AgentError::Activation { interface: nic.clone(), failure: Box::new(failure), hint: None }
                })?;
            }
            Some(_) => {}
            None => {
                // Made from XML: the NIC gets the bridge's configuration, as iface-unbridge does.
                let mut back = iface.clone();
                back.name = port.name.clone();
                back.kind = Kind::Ethernet(model::Ethernet { mac: port.mac });
                let doc = doc_of(back, Vec::new());
                let profiles = self.translate(&doc).into_profiles();
                if start {
                    let safety = match j {
                        Some(j) => Safety::Transaction(j),
                        None => Safety::Unprotected,
                    };
                    let (_, started) =
                        self.apply(Wanted { doc: &doc, profiles }, false, timeout, safety, &mut |_, _| {}).await?;
                    if let Some(e) = started.into_iter().find_map(|(_, r)| r.err()) {
                        return Err(e);
                    }
                } else {
                    self.define(Wanted { doc: &doc, profiles }, false, j).await?;
                }
            }
        }
        Ok(())
    }

    /// The model `share --nat` would define: a VM bridge with NetworkManager's shared method.
    /// `persist`: it comes up by itself (at boot for a system-wide profile, at each login for a
    /// user's); else it is started now only.
    pub fn nat_model(bridge: &str, subnet: Option<Ipv4Net>, persist: bool) -> Result<Document, AgentError> {
        let name = if_name(bridge)?;
        let ipv4 = Ipv4 {
            dhcp: None,
            addresses: subnet.into_iter().collect(),
            gateway: None,
            nat: true,
            extra: Default::default(),
        };
        let kind = Kind::Bridge(Bridge { stp: false, forward_delay: 0, mac: None, replaces: None, ports: Vec::new() });
        let start = if persist { StartMode::Onboot } else { StartMode::None };
        let iface = Interface { name, uuid: None, start, mtu: None, ipv4: Some(ipv4), ipv6: None, kind };
        Ok(doc_of(iface, Vec::new()))
    }
}

/// The NIC's standalone profile: the active one, else nmiface's own for it, else its only
/// ethernet profile.
fn standalone_profile<'s>(stored: &'s [StoredProfile], nic: &str, active: Option<&str>) -> Option<&'s StoredProfile> {
    active
        .and_then(|p| stored.iter().find(|s| s.path.as_str() == p))
        .or_else(|| {
            stored.iter().find(|s| {
                Scope::System.owns(&s.profile)
                    && s.profile.user_data(user_key::INTERFACE) == Some(nic)
                    && s.profile.master().is_none()
            })
        })
        .or_else(|| {
            let mut c = stored.iter().filter(|s| {
                s.profile.interface_name() == Some(nic) && s.profile.conn_type() == Some(conn_type::ETHERNET)
            });
            match (c.next(), c.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        })
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
