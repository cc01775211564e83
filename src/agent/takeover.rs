//! Taking over what a device already has: the profile NetworkManager would use for an
//! interface (`--adopt` by device), and a NIC's configuration when a bridge or bond takes the
//! NIC as a port (its IP-level settings move to the controller, its link-level ones stay on the
//! port: [`crate::nm::carry::take_over`]).

use super::{Agent, AgentError};
use crate::nm::{self, Profile};
use crate::nm_client::{DeviceInfo, StoredProfile};
use std::collections::BTreeMap;

/// Which profile NetworkManager would use for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DeviceProfile {
    /// None (nothing bound to it, or several that would not come up by themselves).
    None,
    /// This one (an index into the stored profiles): active on the device, else the only one
    /// bound to it that autoconnects, else the only one bound to it.
    One(usize),
    /// Several autoconnect profiles, none active: which one comes up depends on timestamps.
    Several(Vec<usize>),
}

/// What the devices look like, read once per define and only when a decision needs it.
#[derive(Default)]
pub(super) struct DeviceView {
    devices: Option<Vec<DeviceInfo>>,
    /// Active connection -> profile path.
    active: Option<BTreeMap<String, String>>,
}

impl Agent {
    /// The profile NetworkManager would use for device `nic` among `stored`, leaving out those
    /// `skip` names (nmiface's own, ports): the active one on the device, else the single
    /// autoconnect profile bound to it by interface name or MAC. NetworkManager is asked about
    /// devices only when the profiles alone cannot tell (a MAC binding, several candidates, or
    /// one that does not autoconnect).
    pub(super) async fn device_profile(
        &self,
        nic: &str,
        stored: &[StoredProfile],
        skip: &(dyn Fn(&Profile) -> bool + Sync),
        view: &mut DeviceView,
    ) -> Result<DeviceProfile, AgentError> {
        let by_mac = stored.iter().any(|s| !skip(&s.profile) && s.profile.bound_by_mac());
        if by_mac {
            self.load_devices(view).await?;
        }
        let mac = view.devices.as_ref().and_then(|d| d.iter().find(|d| d.interface == nic)).and_then(mac_bytes);
        let candidates: Vec<usize> = stored
            .iter()
            .enumerate()
            .filter(|(_, s)| !skip(&s.profile) && s.profile.bound_to(nic, mac.as_deref()))
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() {
            return Ok(DeviceProfile::None);
        }
        let autoconnect: Vec<usize> =
            candidates.iter().copied().filter(|&i| stored[i].profile.autoconnects()).collect();
        if let ([only], true) = (autoconnect.as_slice(), autoconnect.len() == candidates.len()) {
            return Ok(DeviceProfile::One(*only));
        }
        // Several, or one that would not come up by itself: the active one decides.
        self.load_devices(view).await?;
        if view.active.is_none() {
            view.active = Some(self.nm.active_profiles().await?.into_iter().collect());
        }
        let device = view.devices.as_ref().and_then(|d| d.iter().find(|d| d.interface == nic));
        let profile_path = device
            .and_then(|d| d.active_connection.as_ref())
            .and_then(|ac| view.active.as_ref().and_then(|a| a.get(ac)));
        if let Some(i) = candidates.iter().copied().find(|&i| Some(&stored[i].path.to_string()) == profile_path) {
            return Ok(DeviceProfile::One(i));
        }
        Ok(match autoconnect.as_slice() {
            // The only profile bound to it: the one a person would bring up.
            [] if candidates.len() == 1 => DeviceProfile::One(candidates[0]),
            [] => DeviceProfile::None,
            [only] => DeviceProfile::One(*only),
            several => DeviceProfile::Several(several.to_vec()),
        })
    }

    /// A per-user change never takes a device or a name that root or another user holds: not a
    /// name another party's profile is bound to (a profile of the whole system, or another
    /// user's, as far as NetworkManager shows it), and not a device that is active with a
    /// profile that is not the caller's (another user's private profiles are invisible, their
    /// devices are not). Refused before anything changes. A no-op for system-wide changes:
    /// those are NetworkManager's polkit rules' to allow.
    pub(super) async fn refuse_others(
        &self,
        desired: &[Profile],
        stored: &[StoredProfile],
        view: &mut DeviceView,
    ) -> Result<(), AgentError> {
        if self.scope == nm::Scope::System {
            return Ok(());
        }
        let ours: Vec<uuid::Uuid> = desired.iter().map(|p| p.uuid).collect();
        // The caller's own hand-made private profiles are the caller's (`--adopt` takes them).
        let private_to_me =
            |p: &Profile| matches!(&self.scope, nm::Scope::User(me) if p.permitted_users() == [me.as_str()]);
        for want in desired {
            let Some(name) = want.interface_name() else { continue };
            let theirs = stored.iter().find(|s| {
                !ours.contains(&s.profile.uuid)
                    && !self.scope.owns(&s.profile)
                    && !private_to_me(&s.profile)
                    && s.profile.interface_name() == Some(name)
            });
            if let Some(s) = theirs {
                return Err(AgentError::HeldByOthers {
                    name: name.to_string(),
                    holder: format!("profile '{}', which {}", s.profile.id, crate::plan::Whose::of(&s.profile)),
                });
            }
            self.refuse_held_device(name, stored, view).await?;
        }
        Ok(())
    }

    /// For a user: refuses when device `name` is active with a profile that is not among
    /// `mine` (the caller's profiles: nmiface's of this scope, or the caller's own private
    /// ones), e.g. another user's NAT bridge of the same name, or root's bridge.
    pub(super) async fn refuse_held_device(
        &self,
        name: &str,
        mine: &[StoredProfile],
        view: &mut DeviceView,
    ) -> Result<(), AgentError> {
        let nm::Scope::User(me) = &self.scope else { return Ok(()) };
        // One device by name, not all of them: a user's change pays at most three calls here
        // (a new bridge's name has no device: one).
        let device = match &view.devices {
            Some(all) => all.iter().find(|d| d.interface == name).cloned(),
            None => match self.nm.device(name).await {
                Ok(d) => Some(d),
                Err(crate::nm_client::NmError::UnknownDevice { .. }) => None,
                Err(e) => return Err(e.into()),
            },
        };
        let Some(ac) = device.filter(|d| d.real).and_then(|d| d.active_connection) else { return Ok(()) };
        let profile = match view.active.as_ref() {
            Some(a) => a.get(&ac).cloned(),
            None => self.nm.active_profile(&ac).await?,
        };
        let held = profile.as_ref().and_then(|p| mine.iter().find(|s| s.path.as_str() == p.as_str()));
        let callers = |p: &Profile| self.scope.owns(p) || p.permitted_users() == [me.as_str()];
        match held.is_some_and(|s| callers(&s.profile)) {
            true => Ok(()),
            false => Err(AgentError::HeldByOthers {
                name: name.to_string(),
                holder: "a profile that is not yours (the system's or another user's) is active on it".into(),
            }),
        }
    }

    async fn load_devices(&self, view: &mut DeviceView) -> Result<(), AgentError> {
        if view.devices.is_none() {
            view.devices = Some(self.nm.devices().await?);
        }
        Ok(())
    }

    /// For every NIC that `desired` makes a port (an ethernet port of a bridge or bond) and that
    /// has a profile of its own outside this definition: that profile's IP-level settings move
    /// to the controller, its link-level settings (802.1X with its secrets, ethtool, Wake-on-LAN)
    /// to the port, where the document does not say them. Returns, per controller interface,
    /// what moved (`'Wired connection 1' -> br0: ipv4 (dns, route-data)`), and what could not
    /// be carried (a family the controller's document turns off).
    pub(super) async fn carry_over(
        &self,
        desired: &mut [Profile],
        stored: &[StoredProfile],
        view: &mut DeviceView,
    ) -> Result<Carried, AgentError> {
        let ours: Vec<uuid::Uuid> = desired.iter().map(|p| p.uuid).collect();
        // Not this definition's own profiles, and not ports (the NIC's profile of its own is
        // what carries the user's configuration, whoever made it).
        let skip = |p: &Profile| ours.contains(&p.uuid) || p.master().is_some();
        let (mut out, mut not_carried) = (Vec::new(), Vec::new());
        for port_at in 0..desired.len() {
            let port = &desired[port_at];
            let (Some(master), Some(nic)) =
                (port.master().map(str::to_string), port.interface_name().map(str::to_string))
            else {
                continue;
            };
            if port.conn_type() != Some(nm::conn_type::ETHERNET) {
                continue;
            }
            let Some(ctrl_at) = desired.iter().position(|c| c.uuid.to_string() == master) else { continue };
            let DeviceProfile::One(k) = self.device_profile(&nic, stored, &skip, view).await? else { continue };
            let held = self.nm.with_secrets(&stored[k]).await?;
            let mut controller = desired[ctrl_at].clone();
            let moved = nm::carry::take_over(&held, &mut desired[port_at], &mut controller);
            desired[ctrl_at] = controller;
            let ctrl_name =
                desired[ctrl_at].user_data(nm::user_key::INTERFACE).unwrap_or(&desired[ctrl_at].id).to_string();
            for line in nm::merge::describe_kept(&moved.to_controller) {
                out.push((ctrl_name.clone(), format!("'{}' -> {ctrl_name}: {line}", held.id)));
            }
            for line in nm::merge::describe_kept(&moved.to_port) {
                out.push((ctrl_name.clone(), format!("'{}' -> port {nic}: {line}", held.id)));
            }
            for (fam, props) in &moved.not_carried {
                let line = format!("'{}': {fam} ({}): {ctrl_name} has {fam} off", held.id, props.join(", "));
                not_carried.push((ctrl_name.clone(), line));
            }
        }
        Ok(Carried { moved: out, not_carried })
    }
}

/// What [`Agent::carry_over`] did, as (controller interface, line) pairs.
pub(super) struct Carried {
    /// Moved to the controller or the port.
    pub moved: Vec<(String, String)>,
    /// Left behind on the NIC's own profile: the new place cannot hold it.
    pub not_carried: Vec<(String, String)>,
}

/// What the devices of a definition already have: the profiles `--adopt` takes over (wanted
/// UUID -> held UUID), and, without `--adopt`, warnings about profiles that will compete with
/// the new ones at boot, per interface.
pub(super) struct Owners {
    /// Adopted by device.
    pub by_device: BTreeMap<uuid::Uuid, uuid::Uuid>,
    /// (interface, warning).
    pub compete: Vec<(String, String)>,
}

impl Agent {
    /// For each interface `desired` defines at the top (not ports): the profile NetworkManager
    /// would use for its device today, if it is not nmiface's. With `adopt` it is taken over
    /// (several candidates: refused, naming them); without, a definition that would compete
    /// with it at boot is warned about.
    pub(super) async fn device_owners(
        &self,
        desired: &[Profile],
        stored: &[StoredProfile],
        adopt: bool,
        view: &mut DeviceView,
    ) -> Result<Owners, AgentError> {
        let ours: Vec<uuid::Uuid> = desired.iter().map(|p| p.uuid).collect();
        let skip = |p: &Profile| ours.contains(&p.uuid) || p.master().is_some() || self.scope.owns(p);
        let mut owners = Owners { by_device: BTreeMap::new(), compete: Vec::new() };
        for want in desired.iter().filter(|p| p.master().is_none()) {
            let Some(name) = want.interface_name() else { continue };
            match (self.device_profile(name, stored, &skip, view).await?, adopt) {
                (DeviceProfile::None, _) => {}
                (DeviceProfile::One(k), true) => {
                    owners.by_device.insert(want.uuid, stored[k].profile.uuid);
                }
                (DeviceProfile::Several(v), true) => {
                    return Err(AgentError::AmbiguousProfile {
                        name: name.to_string(),
                        profiles: v.iter().map(|&k| stored[k].profile.id.clone()).collect(),
                    })
                }
                (found, false) if want.autoconnects() => {
                    let ks: Vec<usize> = match found {
                        DeviceProfile::One(k) => vec![k],
                        DeviceProfile::Several(v) => v,
                        DeviceProfile::None => continue,
                    };
                    // Only a profile that comes up by itself competes at boot.
                    let ks: Vec<usize> = ks.into_iter().filter(|&k| stored[k].profile.autoconnects()).collect();
                    if ks.is_empty() {
                        continue;
                    }
                    let names: Vec<String> = ks.iter().map(|&k| format!("'{}'", stored[k].profile.id)).collect();
                    owners.compete.push((
                        name.to_string(),
                        format!(
                            "{name} also has {} of another tool that NetworkManager brings up by itself: at boot it \
                             activates one of them (the one used most recently), not necessarily nmiface's; \
                             `--adopt` takes it over instead",
                            names.join(", ")
                        ),
                    ));
                }
                (_, false) => {}
            }
        }
        Ok(owners)
    }
}

fn mac_bytes(d: &DeviceInfo) -> Option<Vec<u8>> {
    crate::model::Mac::parse(&d.hw_address).ok().map(|m| m.bytes().to_vec())
}

impl Agent {
    /// Before a user's `start`: the interface's device is not held by another party's profile,
    /// and, for a NAT bridge, its subnet is not on another interface already.
    pub async fn refuse_others_at_start(&self, found: &super::StoredInterface) -> Result<(), AgentError> {
        let mine: Vec<StoredProfile> = found.profiles().cloned().collect();
        self.refuse_held_device(&found.name, &mine, &mut DeviceView::default()).await?;
        let main = &found.main.profile;
        if main.get("ipv4", "method").and_then(nm::Value::as_str) != Some("shared") {
            return Ok(());
        }
        let own = super::tap::ipv4_nets(main);
        for (n, owner) in self.networks_in_use().await? {
            if owner == found.name {
                continue;
            }
            if let Some(m) = own.iter().find(|m| super::overlaps(**m, n)) {
                return Err(AgentError::SubnetCollides {
                    asked: format!("{}/{}", m.address, m.prefix),
                    taken: format!("{}/{} ({owner})", n.address, n.prefix),
                });
            }
        }
        Ok(())
    }
}
