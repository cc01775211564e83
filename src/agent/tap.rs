//! VMs on a user's bridge: user-owned taps (add, remove) and a NAT subnet that collides with
//! nothing on the host (the VMs' leases: `leases.rs`).

use super::{Agent, AgentError};
use crate::model::Ipv4Net;
use crate::nm::tap::{tap_profile, tap_uuid, TapSpec, TAP_OF};
use crate::nm::{user_key, Profile, Scope};
use crate::nm_client::{Awaited, StoredProfile, BLOCK_AUTOCONNECT, IN_MEMORY, IN_MEMORY_ONLY, TO_DISK, VOLATILE};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// How long a tap lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapLife {
    /// A profile on disk: the tap stays (and comes back with its bridge) until `tap remove`.
    Kept,
    /// Opened here and handed to a VM as a descriptor (the bridge helper): the profile is in
    /// memory and volatile, the tap transient, so both go when the VM closes it (it stops, is
    /// destroyed or crashes) and neither survives a reboot.
    Handed {
        /// Open with a virtio-net header (qemu's `--use-vnet`).
        vnet_hdr: bool,
    },
}

/// What [`Agent::tap_add`] is asked to make.
#[derive(Debug, Clone, Copy)]
pub struct TapOrder<'a> {
    /// The bridge the tap becomes a port of.
    pub bridge: &'a str,
    /// The tap's name (else the first free `vtapN`).
    pub name: Option<&'a str>,
    /// The uid that may open it.
    pub owner: u32,
    /// One queue per vCPU.
    pub multi_queue: bool,
    /// How long to wait for it to come up.
    pub timeout: Duration,
    /// Kept, or handed to a VM.
    pub life: TapLife,
}

/// A tap made by [`Agent::tap_add`].
#[derive(Debug)]
pub struct TapAdded {
    /// The tap's name.
    pub name: String,
    /// The bridge it is a port of.
    pub bridge: String,
    /// Whether the bridge is system-wide (a NIC bridged by `nmiface bridge`: the VM is on the
    /// LAN) rather than the user's own NAT bridge.
    pub system_bridge: bool,
    /// The open tap, for [`TapLife::Handed`]: the tap lives as long as this descriptor and its
    /// copies.
    pub fd: Option<OwnedFd>,
}

/// Removes tap `name` if it is still there after its profile was deleted: opened (only its
/// owner, or root, may) and made transient, it goes with the descriptor dropped here. Its name
/// was free before this `tap add`, so a link of that name now is the one NetworkManager made.
fn remove_leftover_tap(name: &str, vnet_hdr: bool, multi_queue: bool) {
    if !std::path::Path::new("/sys/class/net").join(name).exists() {
        return;
    }
    if let Ok(fd) = crate::host_tun::open_tap(name, vnet_hdr, multi_queue) {
        let _ = crate::host_tun::make_transient(fd.as_fd(), name);
    }
}

/// Whether two networks overlap.
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    let p = a.prefix.min(b.prefix);
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    u32::from(a.address) & mask == u32::from(b.address) & mask
}

/// The first `10.42.N.0/24` (N = 0..=255; NetworkManager's own range for shared mode) that
/// overlaps none of `taken`, as the bridge's address (`.1`).
pub fn choose_subnet(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    (0..=255u8)
        .map(|n| Ipv4Net { address: Ipv4Addr::new(10, 42, n, 1), prefix: 24 })
        .find(|c| !taken.iter().any(|t| overlaps(*c, *t)))
}

pub(super) fn ipv4_nets(p: &Profile) -> Vec<Ipv4Net> {
    let Some(crate::nm::Value::DictList(list)) = p.get("ipv4", "address-data") else { return Vec::new() };
    list.iter()
        .filter_map(|d| {
            let address = d.get("address")?.as_str()?.parse().ok()?;
            Some(Ipv4Net { address, prefix: u8::try_from(d.get("prefix")?.as_uint()?).ok()? })
        })
        .collect()
}

impl Agent {
    /// Every IPv4 network on the host: on devices now, and in every profile this caller can
    /// read (another user's private bridges are not readable: NetworkManager refuses a
    /// colliding activation of those).
    /// Each with the interface (or profile) it belongs to.
    pub async fn networks_in_use(&self) -> Result<Vec<(Ipv4Net, String)>, AgentError> {
        let (devices, profiles) = tokio::join!(self.nm.devices(), self.nm.profiles());
        let mut taken: Vec<(Ipv4Net, String)> = Vec::new();
        for s in profiles? {
            let owner = s.profile.interface_name().unwrap_or(&s.profile.id).to_string();
            taken.extend(ipv4_nets(&s.profile).into_iter().map(|n| (n, owner.clone())));
        }
        for d in devices? {
            if let Some(c) = d.ip4_config.filter(|c| c != "/") {
                for (a, p) in self.nm.addresses(&c, false).await? {
                    if let (Ok(address), Ok(prefix)) = (a.parse(), u8::try_from(p)) {
                        taken.push((Ipv4Net { address, prefix }, d.interface.clone()));
                    }
                }
            }
        }
        Ok(taken)
    }

    /// The subnet for NAT bridge `bridge`: `asked` if it collides with no other interface's
    /// network, else refused; not asked: the bridge's own if it has one, else the first free
    /// `10.42.N.0/24`. Returns it, whether nmiface chose it, and the bridge's own subnet when
    /// `asked` replaces a different one (its VMs need new leases: said, never silent).
    pub async fn nat_subnet(
        &self,
        bridge: &str,
        asked: Option<Ipv4Net>,
    ) -> Result<(Ipv4Net, bool, Option<Ipv4Net>), AgentError> {
        let all = self.networks_in_use().await?;
        let (own, others): (Vec<_>, Vec<_>) = all.into_iter().partition(|(_, owner)| owner == bridge);
        if let Some(a) = asked {
            return match others.iter().find(|(n, _)| overlaps(a, *n)) {
                Some((n, owner)) => Err(AgentError::SubnetCollides {
                    asked: format!("{}/{}", a.address, a.prefix),
                    taken: format!("{}/{} ({owner})", n.address, n.prefix),
                }),
                None => Ok((a, false, own.first().map(|(n, _)| *n).filter(|n| *n != a))),
            };
        }
        if let Some((n, _)) = own.first() {
            return Ok((*n, false, None));
        }
        let taken: Vec<Ipv4Net> = others.into_iter().map(|(n, _)| n).collect();
        Ok((choose_subnet(&taken).ok_or(AgentError::NoFreeSubnet)?, true, None))
    }

    /// Makes a tap (see `tap_add_in`) under `safety`: the open transaction's journal,
    /// or a journal of its own written ahead and removed when done, so an interrupted or failed
    /// `tap add` removes the tap instead of leaking it.
    pub async fn tap_add(&self, order: TapOrder<'_>, safety: super::Safety<'_>) -> Result<TapAdded, AgentError> {
        let steps = async |j: Option<&mut crate::transaction::Journal>| self.tap_add_in(order, j).await;
        // A tap is never under a checkpoint of its own (its safety is a journal): no devices.
        self.guarded(safety, &super::touched::DeviceScope::default(), steps, |_| false).await.map_err(|g| match g {
            super::guard::Guarded::Failed(e) => e,
            super::guard::Guarded::RolledBack { result, problems, checkpoint } => AgentError::RolledBack {
                cause: Box::new(result.err().unwrap_or(AgentError::Nm(crate::nm_client::NmError::ObjectGone))),
                problems,
                checkpoint,
            },
        })
    }

    /// Makes `name` (else the first free `vtapN`) a tap owned by `owner` and a port of `bridge`,
    /// and activates it. The bridge must be this scope's NAT bridge, or a system-wide bridge
    /// nmiface made for a NIC (`nmiface bridge`): a VM on the LAN; anything else is refused
    /// before anything changes.
    async fn tap_add_in(
        &self,
        order: TapOrder<'_>,
        journal: Option<&mut crate::transaction::Journal>,
    ) -> Result<TapAdded, AgentError> {
        let TapOrder { bridge, name, owner, multi_queue, timeout, life } = order;
        // One read each of the devices, the profiles (the bridge and the taps) and the active
        // profiles (is the bridge up), at once: a VM start waits on this.
        let (devices, all, active) = tokio::join!(self.nm.devices(), self.nm.profiles(), self.nm.active_profiles());
        let all = all?;
        let (found, system_bridge) = match self.find_in(&all, bridge) {
            Ok(f) => (f, false),
            Err(AgentError::NotDefined { .. }) if self.scope != Scope::System => {
                let system = self.with_client(self.nm.clone()).with_scope(Scope::System);
                match system.find_in(&all, bridge) {
                    Ok(f) if f.main.profile.user_data(user_key::REPLACES).is_some() => (f, true),
                    Ok(_) => return Err(AgentError::NotAVmBridge(bridge.to_string())),
                    Err(_) => return Err(AgentError::NotYourBridge(bridge.to_string())),
                }
            }
            Err(e) => return Err(e),
        };
        let main = &found.main.profile;
        let shared = main.get("ipv4", "method").and_then(|v| v.as_str()) == Some("shared");
        if main.conn_type() != Some(crate::nm::conn_type::BRIDGE) || !(shared || system_bridge) {
            return Err(AgentError::NotAVmBridge(bridge.to_string()));
        }
        // A tap on a bridge that is down would fail in NetworkManager's words ("Master
        // connection … can't be activated: No device available") after making its device.
        if !active?.iter().any(|(_, p)| p == found.main.path.as_str()) {
            return Err(AgentError::BridgeDown(bridge.to_string()));
        }
        // In use: a device has the name, or a profile of this scope holds the tap already.
        // A user's taps have UUIDs nobody can predict: their names are read from the profiles.
        let mut taken: Vec<String> = devices?.into_iter().filter(|d| d.real).map(|d| d.interface).collect();
        let taps = all.iter().filter(|s| self.scope.owns(&s.profile) && s.profile.user_data(TAP_OF).is_some());
        taken.extend(taps.filter_map(|s| s.profile.interface_name().map(str::to_string)));
        let name = match name {
            Some(n) => {
                let n = super::share::if_name(n)?.to_string();
                if taken.contains(&n) {
                    return Err(AgentError::NameInUse(n));
                }
                n
            }
            None => (0..1000)
                .map(|i| format!("vtap{i}"))
                .find(|n| !taken.contains(n))
                .ok_or(AgentError::NameInUse("vtap*".into()))?,
        };
        let vnet_hdr = match life {
            TapLife::Kept => true,
            TapLife::Handed { vnet_hdr } => vnet_hdr,
        };
        let spec = TapSpec { name: &name, bridge, bridge_uuid: found.main.profile.uuid, owner, multi_queue, vnet_hdr };
        let mut p = vec![tap_profile(&spec)];
        self.scope.stamp(&mut p);
        // A user's tap gets a UUID nobody can predict (see `Agent::unsquat`).
        if self.scope != Scope::System {
            let map = std::collections::BTreeMap::from([(p[0].uuid, super::squat::fresh_uuid()?)]);
            super::squat::renumber(p.iter_mut(), &map);
        }
        // Recorded ahead: an interrupted `tap add` (Ctrl-C, a killed service) or a transaction's
        // rollback removes the tap instead of leaking it.
        if let Some(j) = journal {
            j.remember_added(p[0].uuid);
            j.sync()?;
        }
        // Blocked from autoconnecting until activated here: else NetworkManager activates it on
        // add, and the activation below would start it a second time.
        // A handed tap is in memory from the start: a crash before the hand-over leaves nothing
        // a reboot keeps.
        let store = if life == TapLife::Kept { TO_DISK } else { IN_MEMORY };
        let path = self.nm.add(&p[0], store | BLOCK_AUTOCONNECT).await?;
        let w = Awaited { main: &name, ports: &[], ethernet: &[], ready_at_ip_config: false };
        if let Err(failure) = self.nm.activate_and_wait(&path.as_ref(), w, timeout, &mut |_| {}).await {
            // Nothing half-made stays behind: the profile, and the tun device NetworkManager may
            // have made for the failed activation and keeps (seen: persistent and unmanaged
            // after its bridge could not come up), removed the way its owner can.
            let _ = self.nm.delete(&path.as_ref()).await;
            remove_leftover_tap(&name, vnet_hdr, multi_queue);
            return Err(AgentError::Activation { interface: name, failure: Box::new(failure), hint: None });
        }
        let fd = match life {
            TapLife::Kept => None,
            TapLife::Handed { vnet_hdr } => {
                match self.hand_over(&path.as_ref(), &p[0], &name, vnet_hdr, multi_queue).await {
                    Ok(fd) => Some(fd),
                    Err(e) => {
                        let _ = self.nm.delete(&path.as_ref()).await;
                        remove_leftover_tap(&name, vnet_hdr, multi_queue);
                        return Err(e);
                    }
                }
            }
        };
        Ok(TapAdded { name, bridge: bridge.to_string(), system_bridge, fd })
    }

    /// Opens the active tap for a VM and ties its life to the descriptor: the tap goes with
    /// its last descriptor (persist cleared), and NetworkManager deletes the profile when its
    /// device goes (volatile, in memory only). Without the second, NetworkManager brings the
    /// link back as soon as qemu closes it.
    async fn hand_over(
        &self,
        path: &zbus::zvariant::ObjectPath<'_>,
        profile: &Profile,
        name: &str,
        vnet_hdr: bool,
        multi_queue: bool,
    ) -> Result<OwnedFd, AgentError> {
        let fd = crate::host_tun::open_tap(name, vnet_hdr, multi_queue)?;
        crate::host_tun::make_transient(fd.as_fd(), name)?;
        self.nm.update(path, profile, IN_MEMORY_ONLY | VOLATILE).await?;
        Ok(fd)
    }

    /// The taps of this scope (`bridge`: only that bridge's).
    pub async fn taps(&self, bridge: Option<&str>) -> Result<Vec<StoredProfile>, AgentError> {
        Ok(self
            .nm
            .profiles()
            .await?
            .into_iter()
            .filter(|s| self.scope.owns(&s.profile) && s.profile.user_data(TAP_OF).is_some())
            .filter(|s| bridge.is_none_or(|b| s.profile.user_data(TAP_OF) == Some(b)))
            .collect())
    }

    /// Removes this scope's tap `name` (its device goes with its profile).
    pub async fn tap_remove(&self, name: &str) -> Result<(), AgentError> {
        let by_uuid = match self.scope {
            Scope::System => self.nm.profile_by_uuid(&self.scope.uuid(tap_uuid(name)).to_string()).await?,
            // A user's taps have random UUIDs: found by name.
            Scope::User(_) => None,
        };
        let found = match by_uuid {
            Some(s) if self.scope.owns(&s.profile) && s.profile.user_data(TAP_OF).is_some() => Some(s),
            _ => self.taps(None).await?.into_iter().find(|s| s.profile.interface_name() == Some(name)),
        };
        match found {
            Some(s) => Ok(self.nm.delete(&s.path.as_ref()).await?),
            None => Err(AgentError::NoSuchTap(name.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        let (a, p) = s.split_once('/').unwrap();
        Ipv4Net { address: a.parse().unwrap(), prefix: p.parse().unwrap() }
    }

    #[test]
    fn a_subnet_that_collides_with_nothing() {
        assert_eq!(choose_subnet(&[]), Some(net("10.42.0.1/24")));
        let taken = [net("10.42.0.1/24"), net("10.42.1.7/24"), net("192.168.1.5/24")];
        assert_eq!(choose_subnet(&taken), Some(net("10.42.2.1/24")));
        // A /16 uplink over the whole range: nothing is free.
        assert_eq!(choose_subnet(&[net("10.42.3.4/16")]), None);
        assert!(overlaps(net("10.0.0.1/8"), net("10.42.7.1/24")));
        assert!(!overlaps(net("10.43.0.1/16"), net("10.42.7.1/24")));
    }
}
